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

import functools
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


# ---- sin: argument reduction for every finite argument ----
#
# sin(x) = +-sin(r) or +-cos(r) where x = k * pi/2 + r, |r| <= ~pi/4 and k mod 4
# picks the case. Finding r is the hard part: for |x| = 1e20 the integer k has
# 67 bits, so pi/2 must be known to well over 67 + 53 bits, and no float
# arithmetic on x itself can do that. Two methods:
#
# * small |x| (< 2**19): Cody-Waite. k = round(x * 2/pi) and x - k*pi/2 with
#   pi/2 split into three 33-bit parts: each k*part is exact, so r is exact
#   to ~1e-30 absolute.
# * large |x|: Payne-Hanek. Write |x| = M * 2**s with an integer M (24 bits
#   for float32, 53 for float64). Only W = (2**s * 2/pi) mod 4 matters: M times
#   a multiple of 4 adds a multiple of 4 to x * 2/pi, i.e. a multiple of 2*pi
#   to x. For every exponent a small table holds W in three float64 pieces,
#   cut so that the products M * piece are exact (float32) or recovered
#   exactly with an FMA (float64); their sum mod 4 gives k and r to ~2**-80
#   absolute.
# Both methods are evaluated and a select picks one by |x|: the loop stays
# branch-free, so it still vectorises. float32 inputs are evaluated in float64
# with their own cheaper reduction (24-bit M, exponents up to 127 only).

SIN_FAST_LIMIT = 2.0 ** 19     # |x| below this: Cody-Waite (k < 2**19 keeps k * part exact)
_TABLE_FIRST_EXPONENT = 19     # the tables' first entries serve 2**19 <= |x| < 2**20
# binary places after which W's three pieces end, and the significand bits of M, per input type
_F32_PIECES, _F32_MANT = (27, 55, 83), 23
_F64_PIECES, _F64_MANT = (50, 103, 156), 52


@functools.lru_cache(maxsize=None)
def _two_over_pi_bits(bits: int) -> int:
    """floor(2/pi * 2**bits) (to within a few units), from Machin's formula pi = 16 atan(1/5) - 4 atan(1/239)
    in integer arithmetic with 64 guard bits."""
    guard = 64
    one = 1 << (bits + guard + 4)

    def atan_inverse(n: int) -> int:  # atan(1/n) * one
        total, power, k, sign = 0, one // n, 1, 1
        n2 = n * n
        while power:
            total += sign * (power // k)
            power //= n2
            k += 2
            sign = -sign
        return total

    pi = 16 * atan_inverse(5) - 4 * atan_inverse(239)  # pi * one
    return ((2 * one) << bits) // pi


@functools.lru_cache(maxsize=None)
def _payne_hanek_table(max_exponent: int, mant_bits: int, pieces: tuple) -> tuple:
    """Three tuples of doubles (W0, W1, W2), one entry per binary exponent 19..max_exponent of |x|.

    For |x| in [2**e, 2**(e+1)), |x| = M * 2**s with s = e - mant_bits and M an
    integer below 2**(mant_bits+1). The entry holds W = (2**s * 2/pi) mod 4 cut
    after pieces[i] binary places: W0 has the 2 integer bits and the places
    up to pieces[0], W1 the places up to pieces[1], W2 those up to pieces[2].
    Every piece is exact in float64.
    """
    places = pieces[-1]
    top = max_exponent - mant_bits + places + 8
    two_over_pi = _two_over_pi_bits(top)
    out = ([], [], [])
    for exponent in range(_TABLE_FIRST_EXPONENT, max_exponent + 1):
        s = exponent - mant_bits
        rest = (two_over_pi >> (top - s - places)) & ((4 << places) - 1)  # W * 2**places
        for column, end in zip(out, pieces):
            piece = rest >> (places - end)        # W's bits down to place `end`, not yet taken
            rest -= piece << (places - end)
            column.append(math.ldexp(float(piece), -end))
    return tuple(tuple(column) for column in out)


def _table_global(b: ir.IRBuilder, name: str, values: tuple):
    """A constant array of doubles in the builder's module (made once per module).

    On NVPTX a constant global must live in the global address space (1);
    elsewhere the default address space is used."""
    module = b.module
    existing = module.globals.get(name)
    if existing is not None:
        return existing
    array_type = ir.ArrayType(F64, len(values))
    addrspace = 1 if "nvptx" in (module.triple or "") else 0
    g = ir.GlobalVariable(module, array_type, name, addrspace=addrspace)
    g.global_constant = True
    g.linkage = "internal"
    g.initializer = ir.Constant(array_type, [ir.Constant(F64, v) for v in values])
    g.align = 8
    return g


def _fma(b: ir.IRBuilder, a, c, d):
    """a*c + d rounded once (llvm.fma declared by hand: Module.declare_intrinsic gets its type wrong)."""
    module = b.module
    fn = module.globals.get("llvm.fma.f64") or ir.Function(module, ir.FunctionType(F64, [F64, F64, F64]),
                                                           name="llvm.fma.f64")
    return b.call(fn, [a, c, d])


def _two_sum(b: ir.IRBuilder, a, c):
    """(s, e) with s = fl(a + c) and s + e == a + c exactly (Knuth's TwoSum)."""
    s = b.fadd(a, c)
    z = b.fsub(s, a)
    e = b.fadd(b.fsub(a, b.fsub(s, z)), b.fsub(c, z))
    return s, e


def _lookup_pieces(b: ir.IRBuilder, biased_exponent, int_type, bias: int, max_exponent: int, mant_bits: int,
                   pieces: tuple):
    """W0, W1, W2 for an input's biased exponent (clamped into the table: lanes outside it are discarded)."""
    count = max_exponent - _TABLE_FIRST_EXPONENT + 1
    index = b.sub(biased_exponent, ir.Constant(int_type, bias + _TABLE_FIRST_EXPONENT))
    index = b.select(b.icmp_signed("<", index, ir.Constant(int_type, 0)), ir.Constant(int_type, 0), index)
    index = b.select(b.icmp_signed(">", index, ir.Constant(int_type, count - 1)),
                     ir.Constant(int_type, count - 1), index)
    if int_type != I64:
        index = b.zext(index, I64)
    tables = _payne_hanek_table(max_exponent, mant_bits, pieces)
    out = []
    for i, values in enumerate(tables):
        table = _table_global(b, f"lazygrad_two_over_pi_w{i}_m{mant_bits}", values)
        out.append(b.load(b.gep(table, [ir.Constant(I32, 0), index], inbounds=True), align=8))
    return out


def _mod4(m: "_Math", v):
    """v - 4*round(v/4), in [-2, 2]; exact for the values it is used on (v a multiple of r's granularity)."""
    b = m.b
    return b.fsub(v, b.fmul(m.rint(b.fmul(v, m.c(0.25))), m.c(4.0)))


def _reduce_large_f32(m: "_Math", x32):
    """(r, k) with |x| = k*pi/2 + r (mod 2*pi) for a float32 |x| >= 2**19, as doubles (r already in radians).

    M < 2**24 and the pieces end at places 27, 55, 83, so every M * piece is an
    exact double; r is kept to ~2**-80 absolute with one TwoSum."""
    b = m.b
    bits = b.and_(b.bitcast(x32, I32), ir.Constant(I32, 0x7FFFFFFF))
    biased = b.lshr(bits, ir.Constant(I32, 23))
    # M as a float: the significand bits under the exponent of 2**23 give exactly M
    big_m = b.fpext(b.bitcast(b.or_(b.and_(bits, ir.Constant(I32, (1 << 23) - 1)), ir.Constant(I32, 150 << 23)),
                              F32), F64)
    w0, w1, w2 = _lookup_pieces(b, biased, I32, 127, 127, _F32_MANT, _F32_PIECES)
    s0 = _mod4(m, b.fmul(big_m, w0))             # exact: M*W0 < 2**26 with 27 places
    p1, p2 = b.fmul(big_m, w1), b.fmul(big_m, w2)  # exact, < 1/8 and < 2**-31
    k = m.rint(b.fadd(s0, p1))
    r, err = _two_sum(b, b.fsub(s0, k), p1)      # s0 - k: exact
    r = b.fadd(r, b.fadd(err, p2))
    return b.fmul(r, m.c(math.pi / 2)), k


def _reduce_large_f64(m: "_Math", ax):
    """(r, k) with |x| = k*pi/2 + r (mod 2*pi) for a float64 |x| >= 2**19 (r in radians).

    M < 2**53: the products M * W0 and M * W1 are recovered exactly as a
    rounded product plus its FMA error; W0 ends at place 50 so that sums of
    its multiples below 8 stay exact in 53 bits."""
    b = m.b
    c = m.c
    bits = b.bitcast(ax, I64)
    biased = b.lshr(bits, ir.Constant(I64, 52))
    big_m = b.bitcast(b.or_(b.and_(bits, ir.Constant(I64, (1 << 52) - 1)), ir.Constant(I64, 1075 << 52)), F64)
    w0, w1, w2 = _lookup_pieces(b, biased, I64, 1023, 1023, _F64_MANT, _F64_PIECES)
    p0 = b.fmul(big_m, w0)
    e0 = _fma(b, big_m, w0, b.fneg(p0))          # M*W0 = p0 + e0 exactly; both multiples of 2**-50
    s0 = _mod4(m, b.fadd(_mod4(m, p0), e0))      # exact: below 8 in magnitude, 50 places
    p1 = b.fmul(big_m, w1)
    e1 = _fma(b, big_m, w1, b.fneg(p1))
    t, err = _two_sum(b, s0, p1)
    t = _mod4(m, t)
    low = b.fadd(b.fadd(err, e1), b.fmul(big_m, w2))  # |low| < 2**-48
    k = m.rint(t)
    r_hi = b.fsub(t, k)                           # exact (Sterbenz), |r_hi| <= 1/2
    # (r_hi + low) * pi/2 with pi/2 = PIO2_HI + PIO2_LO, the product's rounding error kept by an FMA
    pio2_hi, pio2_lo = 1.5707963267948966, 6.123233995736766e-17
    head = b.fmul(r_hi, c(pio2_hi))
    tail = _fma(b, r_hi, c(pio2_hi), b.fneg(head))
    tail = b.fadd(tail, _fma(b, r_hi, c(pio2_lo), b.fmul(low, c(pio2_hi))))
    return b.fadd(head, tail), k


def sin(b: ir.IRBuilder, x):
    """sin(x): x = k*pi/2 + r (Cody-Waite for |x| < 2**19, Payne-Hanek above), then +-sin(r) or +-cos(r).

    float32 inputs are computed in double precision.
    """
    m = _Math(b, F64)
    x32 = x if x.type == F32 else None
    xd = b.fpext(x, F64) if x32 is not None else x
    ax = b.call(b.module.declare_intrinsic("llvm.fabs", [F64]), [xd])
    # Cody-Waite, for |x| < SIN_FAST_LIMIT
    k_small = m.rint(m.mul(xd, m.c(2.0 / math.pi)))
    r = m.sub(xd, m.mul(k_small, m.c(1.57079632673412561417e+00)))
    r = m.sub(r, m.mul(k_small, m.c(6.07710050630396597660e-11)))
    r_small = m.sub(r, m.mul(k_small, m.c(2.02226624879595063154e-21)))
    # Payne-Hanek on |x|, for larger |x|; then the sign goes back on: x = -(k*pi/2 + r)
    r_big, k_big = _reduce_large_f32(m, x32) if x32 is not None else _reduce_large_f64(m, ax)
    negative = b.fcmp_ordered("olt", xd, m.c(0.0))
    r_big = b.select(negative, b.fneg(r_big), r_big)
    k_big = b.select(negative, b.fneg(k_big), k_big)
    small = b.fcmp_ordered("olt", ax, m.c(SIN_FAST_LIMIT))
    r = b.select(small, r_small, r_big)
    k = b.select(small, k_small, k_big)    # |k| < 2**19 either way (inf/nan: garbage, replaced below)
    r2 = m.mul(r, r)
    sin_r = m.mul(r, m.horner(r2, [(-1) ** j / math.factorial(2 * j + 1) for j in range(8)]))
    cos_r = m.horner(r2, [(-1) ** j / math.factorial(2 * j) for j in range(9)])
    quadrant = b.and_(b.fptosi(k, I32), ir.Constant(I32, 3))
    use_cos = b.trunc(quadrant, I1)
    negate = b.icmp_unsigned(">=", quadrant, ir.Constant(I32, 2))
    value = b.select(use_cos, cos_r, sin_r)
    value = b.select(negate, b.fneg(value), value)
    # sin(inf) and sin(nan) are nan
    value = b.select(b.fcmp_unordered("uge", ax, m.c(float("inf"))), m.c(float("nan")), value)
    return b.fptrunc(value, F32) if x32 is not None else value
