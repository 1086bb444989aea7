"""Transcendental functions written out in LLVM IR.

LLVM's `llvm.exp`/`llvm.log`/`llvm.sin` intrinsics become one scalar libm
call per element, which stops the loop vectoriser. Written as plain
arithmetic (range reduction, a polynomial, exponent bit tricks) they
vectorise to the host's SIMD width like any other elementwise op.

Each function takes an IRBuilder and a scalar float/double value and
returns a value of the same type. Accuracy targets: a few ulp over the whole
range, with inf and nan handled as in PyTorch.
"""
from __future__ import annotations

import math

from llvmlite import ir

F32, F64 = ir.FloatType(), ir.DoubleType()
I1, I32, I64 = ir.IntType(1), ir.IntType(32), ir.IntType(64)
FLAGS = ("contract",)


class _Math:
    def __init__(self, b: ir.IRBuilder, t):
        self.b, self.t = b, t
        self.is64 = t == F64
        self.it = I64 if self.is64 else I32
        self.mant_bits = 52 if self.is64 else 23
        self.bias = 1023 if self.is64 else 127

    def c(self, v) -> ir.Constant:
        return ir.Constant(self.t, v)

    def ci(self, v) -> ir.Constant:
        return ir.Constant(self.it, v)

    def add(self, a, b):
        return self.b.fadd(a, b, flags=FLAGS)

    def sub(self, a, b):
        return self.b.fsub(a, b, flags=FLAGS)

    def mul(self, a, b):
        return self.b.fmul(a, b, flags=FLAGS)

    def select_cmp(self, op, a, b, then, otherwise):
        return self.b.select(self.b.fcmp_ordered(op, a, b), then, otherwise)

    def intrinsic(self, name, *args):
        fn = self.b.module.declare_intrinsic(name, [self.t])
        return self.b.call(fn, list(args))

    def rint(self, x):
        return self.intrinsic("llvm.rint", x)

    def horner(self, x, coeffs):
        """coeffs[0] + x*(coeffs[1] + x*(...))"""
        acc = self.c(coeffs[-1])
        for k in reversed(coeffs[:-1]):
            acc = self.add(self.mul(acc, x), self.c(k))
        return acc

    def pow2i(self, n_int):
        """2**n as a float for an integer n in the normal exponent range."""
        bits = self.b.shl(self.b.add(n_int, self.ci(self.bias)), self.ci(self.mant_bits))
        return self.b.bitcast(bits, self.t)

    def scale(self, p, n_float):
        """p * 2**n for n up to +-(2*bias), split in two so that no partial power overflows."""
        n = self.b.fptosi(n_float, self.it)
        half = self.b.ashr(n, self.ci(1))
        rest = self.b.sub(n, half)
        return self.mul(self.mul(p, self.pow2i(half)), self.pow2i(rest))

    def is_nan(self, x):
        return self.b.fcmp_unordered("uno", x, x)


def _taylor_exp(ln_scale: float, degree: int) -> list[float]:
    """Coefficients of exp(ln_scale * r) as a polynomial in r."""
    return [ln_scale ** k / math.factorial(k) for k in range(degree + 1)]


def exp(b: ir.IRBuilder, x):
    """e**x: n = round(x/ln2), r = x - n*ln2 in two parts, e**r by polynomial, times 2**n."""
    m = _Math(b, x.type)
    if m.is64:
        lo, hi, ln2_hi, ln2_lo, degree = -746.0, 710.0, 0.6931471803691238, 1.9082149292705877e-10, 13
    else:
        lo, hi, ln2_hi, ln2_lo, degree = -104.0, 89.0, 0.693359375, -2.12194440e-4, 7
    xc = m.select_cmp("olt", x, m.c(lo), m.c(lo), m.select_cmp("ogt", x, m.c(hi), m.c(hi), x))
    n = m.rint(m.mul(xc, m.c(1.0 / math.log(2.0))))
    r = m.sub(m.sub(xc, m.mul(n, m.c(ln2_hi))), m.mul(n, m.c(ln2_lo)))
    p = m.horner(r, _taylor_exp(1.0, degree))
    out = m.scale(p, n)
    return b.select(m.is_nan(x), x, out)


def exp2(b: ir.IRBuilder, x):
    """2**x: n = round(x), 2**(x-n) by polynomial, times 2**n."""
    m = _Math(b, x.type)
    lo, hi, degree = (-1076.0, 1025.0, 13) if m.is64 else (-151.0, 129.0, 7)
    xc = m.select_cmp("olt", x, m.c(lo), m.c(lo), m.select_cmp("ogt", x, m.c(hi), m.c(hi), x))
    n = m.rint(xc)
    p = m.horner(m.sub(xc, n), _taylor_exp(math.log(2.0), degree))
    out = m.scale(p, n)
    return b.select(m.is_nan(x), x, out)


def log2(b: ir.IRBuilder, x):
    """log2(x) = e + log2(mantissa), the mantissa in [sqrt(1/2), sqrt(2)) through atanh's series."""
    m = _Math(b, x.type)
    tiny = 2.2250738585072014e-308 if m.is64 else 1.1754943508222875e-38
    # subnormal inputs: scale into the normal range first
    is_sub = b.fcmp_ordered("olt", x, m.c(tiny))
    xs = b.select(is_sub, m.mul(x, m.c(2.0 ** m.mant_bits)), x)
    e_adjust = b.select(is_sub, m.c(-float(m.mant_bits)), m.c(0.0))
    bits = b.bitcast(xs, m.it)
    exponent = b.sub(b.lshr(bits, m.ci(m.mant_bits)), m.ci(m.bias))
    mant_mask = (1 << m.mant_bits) - 1
    one_bits = m.bias << m.mant_bits
    mant = b.bitcast(b.or_(b.and_(bits, m.ci(mant_mask)), m.ci(one_bits)), m.t)  # in [1, 2)
    big = b.fcmp_ordered("ogt", mant, m.c(math.sqrt(2.0)))
    mant = b.select(big, m.mul(mant, m.c(0.5)), mant)
    e = m.add(m.add(b.sitofp(exponent, m.t), e_adjust), b.select(big, m.c(1.0), m.c(0.0)))
    s = b.fdiv(m.sub(mant, m.c(1.0)), m.add(mant, m.c(1.0)))
    s2 = m.mul(s, s)
    terms = 10 if m.is64 else 5
    series = m.horner(s2, [1.0 / (2 * k + 1) for k in range(terms)])
    ln_mant = m.mul(m.mul(s, series), m.c(2.0))
    out = m.add(e, m.mul(ln_mant, m.c(1.0 / math.log(2.0))))
    # special values: log2(0) = -inf, log2(x<0) = nan, log2(inf) = inf, nan stays nan
    out = b.select(b.fcmp_ordered("oeq", x, m.c(0.0)), m.c(float("-inf")), out)
    out = b.select(b.fcmp_unordered("ult", x, m.c(0.0)), m.c(float("nan")), out)
    out = b.select(b.fcmp_ordered("oeq", x, m.c(float("inf"))), x, out)
    return out


def sin(b: ir.IRBuilder, x):
    """sin(x): k = round(x / (pi/2)), r = x - k*pi/2 in three parts, then +-sin(r) or +-cos(r).

    float32 inputs are computed in double precision, which keeps the range
    reduction exact far beyond what float32 arithmetic would allow.
    """
    if x.type == F32:
        return b.fptrunc(sin(b, b.fpext(x, F64)), F32)
    m = _Math(b, F64)
    k = m.rint(m.mul(x, m.c(2.0 / math.pi)))
    r = m.sub(x, m.mul(k, m.c(1.57079632673412561417e+00)))
    r = m.sub(r, m.mul(k, m.c(6.07710050630396597660e-11)))
    r = m.sub(r, m.mul(k, m.c(2.02226624879595063154e-21)))
    r2 = m.mul(r, r)
    sin_r = m.mul(r, m.horner(r2, [(-1) ** j / math.factorial(2 * j + 1) for j in range(8)]))
    cos_r = m.horner(r2, [(-1) ** j / math.factorial(2 * j) for j in range(9)])
    # k is finite after clamping; huge |x| lose accuracy anyway, keep the integer in range
    kc = m.select_cmp("olt", k, m.c(-1e15), m.c(0.0), m.select_cmp("ogt", k, m.c(1e15), m.c(0.0), k))
    quadrant = b.and_(b.fptosi(kc, I64), ir.Constant(I64, 3))
    use_cos = b.trunc(quadrant, I1)
    negate = b.icmp_unsigned(">=", quadrant, ir.Constant(I64, 2))
    value = b.select(use_cos, cos_r, sin_r)
    value = b.select(negate, b.fneg(value), value)
    # sin(inf) and sin(nan) are nan
    not_finite = b.fcmp_unordered("uge", b.call(b.module.declare_intrinsic("llvm.fabs", [F64]), [x]),
                                  m.c(float("inf")))
    return b.select(not_finite, m.c(float("nan")), value)
