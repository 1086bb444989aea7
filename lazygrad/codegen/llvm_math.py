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
I8P = ir.IntType(8).as_pointer()
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
# On the GPU (and its host emulation) both methods are evaluated and a select
# picks one by |x|. On the CPU only Cody-Waite is in the vectorised loop and
# Payne-Hanek is called for vectors that hold a huge lane (see "CPU" below).
# float32 inputs are evaluated in float64 with their own cheaper Payne-Hanek
# (24-bit M, exponents up to 127 only).

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


def _cody_waite(m: "_Math", xd):
    """(r, k) with x = k*pi/2 + r for a double |x| < SIN_FAST_LIMIT (pi/2 in three 33-bit parts)."""
    k = m.rint(m.mul(xd, m.c(2.0 / math.pi)))
    r = m.sub(xd, m.mul(k, m.c(1.57079632673412561417e+00)))
    r = m.sub(r, m.mul(k, m.c(6.07710050630396597660e-11)))
    return m.sub(r, m.mul(k, m.c(2.02226624879595063154e-21))), k


def _payne_hanek(m: "_Math", x, xd, ax):
    """(r, k) with x = k*pi/2 + r (mod 2*pi) for |x| >= SIN_FAST_LIMIT; x is the input (float or double)."""
    b = m.b
    r, k = _reduce_large_f32(m, x) if x.type == F32 else _reduce_large_f64(m, ax)
    negative = b.fcmp_ordered("olt", xd, m.c(0.0))     # x = -(k*pi/2 + r)
    return b.select(negative, b.fneg(r), r), b.select(negative, b.fneg(k), k)


def _sin_of_reduced(m: "_Math", r, k, ax, out_type):
    """+-sin(r) or +-cos(r) by k mod 4 (|k| < 2**31), nan where |x| is inf or nan; rounded to out_type."""
    b = m.b
    r2 = m.mul(r, r)
    sin_r = m.mul(r, m.horner(r2, [(-1) ** j / math.factorial(2 * j + 1) for j in range(8)]))
    cos_r = m.horner(r2, [(-1) ** j / math.factorial(2 * j) for j in range(9)])
    quadrant = b.and_(b.fptosi(k, I32), ir.Constant(I32, 3))
    use_cos = b.trunc(quadrant, I1)
    negate = b.icmp_unsigned(">=", quadrant, ir.Constant(I32, 2))
    value = b.select(use_cos, cos_r, sin_r)
    value = b.select(negate, b.fneg(value), value)
    value = b.select(b.fcmp_unordered("uge", ax, m.c(float("inf"))), m.c(float("nan")), value)
    return b.fptrunc(value, F32) if out_type == F32 else value


def _sin_branch_free(b: ir.IRBuilder, x):
    """Both reductions for every element, a select picks one by |x| (GPU and emulation: no vectoriser)."""
    m = _Math(b, F64)
    xd = b.fpext(x, F64) if x.type == F32 else x
    ax = m.intrinsic("llvm.fabs", xd)
    r_small, k_small = _cody_waite(m, xd)
    r_big, k_big = _payne_hanek(m, x, xd, ax)
    small = b.fcmp_ordered("olt", ax, m.c(SIN_FAST_LIMIT))
    r = b.select(small, r_small, r_big)
    k = b.select(small, k_small, k_big)    # |k| < 2**19 either way (inf/nan: garbage, replaced by nan)
    return _sin_of_reduced(m, r, k, ax, x.type)


# ---- CPU: the huge-argument path out of the vector loop ----
#
# Evaluating Payne-Hanek for every element (three table lookups and a dozen
# double operations; the lookups also made LLVM choose narrower vectors) more
# than doubled the time of sin on ordinary inputs. On the CPU the loop body
# therefore computes only Cody-Waite (huge lanes are fed 0 instead) and
# branches to a call `lazygrad_sin_huge_<t>(x)` for |x| >= 2**19.
#
# The loop vectoriser flattens every branch whose code it can speculate, but
# not a call: it vectorises the loop only because the call site names masked
# vector variants ("vector-function-abi-variant", `_ZGV_LLVM_M<VF>v_...`, at
# the widths it picks on this CPU), and then calls the variant once per
# vector with the mask of huge lanes. The variant tests the
# mask and returns (the common case: one call, a test and a return per
# vector). Lanes set go to one function per type that
# holds the Payne-Hanek code (_CORE_WIDTH lanes, written as a short loop that
# the vectoriser turns into vector code); the scalar function, used by the
# loop's scalar remainder, calls it too. The scalar function is `noinline`
# (inlined into the loop, it would be flattened into every element again) and
# the variants are kept alive through @llvm.compiler.used until the vectoriser
# has used them (LangRef's rule). The variants are internal to each kernel's
# module: no symbol is shared between kernels.


@functools.lru_cache(maxsize=None)
def _vector_widths(t) -> tuple:
    """The widths at which variants for type t are offered: those the loop vectoriser picks for sin on
    this CPU (doubles or floats filling a register; each variant costs ~10 ms of compile time).

    With AVX, only vectors of 256 bits or more (the widths the vectoriser picks there)."""
    import llvmlite.binding as llvm
    features = llvm.get_host_cpu_features()
    bits = 512 if features.get("avx512f") else 256 if features.get("avx") else 128
    element_bits = 32 if t == F32 else 64
    return tuple(n for n in (bits // 64, bits // 32) if bits == 128 or n * element_bits >= 256)


_CORE_WIDTH = 4                  # lanes of the one function with the Payne-Hanek code (256-bit doubles)


class _RawCallAttributes(ir.instructions.CallInstrAttributes):
    """Call-site attributes printed verbatim (llvmlite knows no string attributes)."""

    def add(self, name):
        return set.add(self, name)


class _CompilerUsed(ir.GlobalVariable):
    """@llvm.compiler.used: keeps `functions` alive until code generation; one per module, so the
    array is sized when printed (float32 and float64 sin may both add their variants)."""

    def __init__(self, module: ir.Module):
        super().__init__(module, ir.ArrayType(I8P, 0), "llvm.compiler.used")
        self.linkage = "appending"
        self.section = "llvm.metadata"
        self.functions = []

    def descr(self, buf):
        self.value_type = ir.ArrayType(I8P, len(self.functions))
        self.initializer = ir.Constant(self.value_type, [f.bitcast(I8P) for f in self.functions])
        super().descr(buf)


def _vector_variant(module: ir.Module, name: str, t, n: int):
    """`<n x t> name(<n x t> x, <n x i1> mask)`: sin by Payne-Hanek of every lane when any mask bit is
    set, else nothing (the caller uses only the masked lanes).

    The lanes go through memory and a loop of n iterations with the reduction
    inline, which the loop vectoriser turns into straight vector code (no
    gathers: it loads the table entries lane by lane)."""
    vt, mt = ir.VectorType(t, n), ir.VectorType(I1, n)
    fn = ir.Function(module, ir.FunctionType(vt, [vt, mt]), name=name)
    fn.linkage = "internal"
    fn.attributes.add("nounwind")
    fn.attributes.add("noinline")     # one copy, however many wrappers call it
    vx, mask = fn.args
    entry, fill, loop, after, done = (fn.append_basic_block(s) for s in ("entry", "fill", "loop", "after", "done"))
    b = ir.IRBuilder(entry)
    array = ir.ArrayType(t, n)
    xs, ys = b.alloca(array), b.alloca(array)
    size = n * (4 if t == F32 else 8)     # whole-vector accesses below: align the arrays to the vector
    xs.align = ys.align = size
    b.cbranch(b.icmp_unsigned("!=", b.bitcast(mask, ir.IntType(n)), ir.Constant(ir.IntType(n), 0)), fill, done)
    b.position_at_end(fill)
    b.store(vx, b.bitcast(xs, vt.as_pointer()), align=size)
    b.branch(loop)
    b.position_at_end(loop)
    i = b.phi(I64)
    zero = ir.Constant(I64, 0)
    x = b.load(b.gep(xs, [zero, i], inbounds=True))
    m = _Math(b, F64)
    xd = b.fpext(x, F64) if t == F32 else x
    ax = m.intrinsic("llvm.fabs", xd)
    r, k = _payne_hanek(m, x, xd, ax)
    b.store(_sin_of_reduced(m, r, k, ax, t), b.gep(ys, [zero, i], inbounds=True))
    i_next = b.add(i, ir.Constant(I64, 1))
    i.add_incoming(zero, fill)
    i.add_incoming(i_next, b.block)
    b.cbranch(b.icmp_unsigned("<", i_next, ir.Constant(I64, n)), loop, after)
    b.position_at_end(after)
    y = b.load(b.bitcast(ys, vt.as_pointer()), align=size)
    b.branch(done)
    b.position_at_end(done)
    result = b.phi(vt)
    result.add_incoming(ir.Constant(vt, None), entry)
    result.add_incoming(y, after)
    b.ret(result)
    return fn


def _lanes(b: ir.IRBuilder, v, first: int, count: int):
    """Lanes first .. first+count-1 of vector v as a vector (lanes past v's end: 0)."""
    width = v.type.count
    picks = [first + i if first + i < width else width for i in range(count)]
    return b.shuffle_vector(v, ir.Constant(v.type, None), ir.Constant(ir.VectorType(I32, count), picks))


def _wrapper_variant(module: ir.Module, name: str, core, n: int) -> None:
    """`<n x t> name(<n x t> x, <n x i1> mask)`, what the vectorised loop calls for every vector.

    It only tests the mask (normally all false) and returns; when a lane is set
    it calls `name_work`, which runs the core variant on the lanes in chunks of
    the core's width (a narrower vector padded with masked-off lanes).

    (Both use the C calling convention. LLVM's preserve_all convention would
    save the loop from spilling its vector registers around the call, about
    10% on float64, but LLVM 22 can end such a function with `vzeroupper`,
    which silently wipes the caller's registers: wrong results. Not worth it.)"""
    t, base = core.function_type.return_type.element, core.function_type.return_type.count
    vt, mt = ir.VectorType(t, n), ir.VectorType(I1, n)
    work_fn = ir.Function(module, ir.FunctionType(vt, [vt, mt]), name=name + "_work")
    work_fn.linkage = "internal"
    for a in ("noinline", "nounwind"):
        work_fn.attributes.add(a)
    vx, mask = work_fn.args
    b = ir.IRBuilder(work_fn.append_basic_block("entry"))
    if n < base:
        wide_mask = b.shuffle_vector(mask, ir.Constant(mt, [0] * n),
                                     ir.Constant(ir.VectorType(I32, base), [i if i < n else n for i in range(base)]))
        b.ret(_lanes(b, b.call(core, [_lanes(b, vx, 0, base), wide_mask]), 0, n))
    else:
        parts = [b.call(core, [_lanes(b, vx, i, base), _lanes(b, mask, i, base)]) for i in range(0, n, base)]
        while len(parts) > 1:        # concatenate pairwise
            parts = [b.shuffle_vector(parts[i], parts[i + 1],
                                      ir.Constant(ir.VectorType(I32, 2 * parts[i].type.count),
                                                  list(range(2 * parts[i].type.count))))
                     for i in range(0, len(parts), 2)]
        b.ret(parts[0])

    fn = ir.Function(module, ir.FunctionType(vt, [vt, mt]), name=name)
    fn.linkage = "internal"
    fn.attributes.add("nounwind")
    vx, mask = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    with b.if_then(b.icmp_unsigned("==", b.bitcast(mask, ir.IntType(n)), ir.Constant(ir.IntType(n), 0))):
        b.ret(ir.Constant(vt, None))  # the common case: no lane set
    b.ret(b.call(work_fn, [vx, mask]))


def _huge_functions(module: ir.Module, t):
    """(scalar function, call-site attribute text) for type t, made once per module.

    Only one function holds the Payne-Hanek code, the vector variant of width
    _CORE_WIDTH (a loop for the vectoriser: compiling that is what costs); the
    other widths and the scalar function (the loop's scalar remainder) call it."""
    scalar_name = f"lazygrad_sin_huge_{'f32' if t == F32 else 'f64'}"
    variants = [(n, f"{scalar_name}_v{n}") for n in _vector_widths(t)]
    attr = '"vector-function-abi-variant"="%s"' % ",".join(
        f"_ZGV_LLVM_M{n}v_{scalar_name}({name})" for n, name in variants)
    fn = module.globals.get(scalar_name)
    if fn is not None:
        return fn, attr
    core = _vector_variant(module, f"{scalar_name}_core", t, _CORE_WIDTH)
    for n, name in variants:
        _wrapper_variant(module, name, core, n)
    used = module.globals.get("llvm.compiler.used") or _CompilerUsed(module)
    used.functions.extend(module.globals[name] for _, name in variants)

    fn = ir.Function(module, ir.FunctionType(t, [t]), name=scalar_name)
    fn.linkage = "internal"
    for a in ("noinline", "nounwind", "readnone"):
        fn.attributes.add(a)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    vt, mt = ir.VectorType(t, _CORE_WIDTH), ir.VectorType(I1, _CORE_WIDTH)
    v = b.call(core, [b.insert_element(ir.Constant(vt, None), fn.args[0], ir.Constant(I32, 0)),
                      ir.Constant(mt, [1] + [0] * (_CORE_WIDTH - 1))])
    b.ret(b.extract_element(v, ir.Constant(I32, 0)))
    return fn, attr


def _sin_cpu(b: ir.IRBuilder, x):
    """Cody-Waite in the (vectorised) loop body; |x| >= 2**19 through a call, see above."""
    m = _Math(b, F64)
    xd = b.fpext(x, F64) if x.type == F32 else x
    ax = m.intrinsic("llvm.fabs", xd)
    huge = b.fcmp_ordered("oge", ax, m.c(SIN_FAST_LIMIT))
    r, k = _cody_waite(m, b.select(huge, m.c(0.0), xd))    # huge lanes: finite garbage, replaced below
    fast = _sin_of_reduced(m, r, k, ax, x.type)
    fn, attr = _huge_functions(b.module, x.type)
    here = b.block
    slow_block = b.append_basic_block("sin_huge")
    join_block = b.append_basic_block("sin_join")
    b.cbranch(huge, slow_block, join_block)
    b.position_at_end(slow_block)
    call = b.call(fn, [x])
    call.attributes = _RawCallAttributes()
    call.attributes.add(attr)
    b.branch(join_block)
    b.position_at_end(join_block)
    out = b.phi(x.type)
    out.add_incoming(fast, here)
    out.add_incoming(call, slow_block)
    return out


def sin(b: ir.IRBuilder, x):
    """sin(x): x = k*pi/2 + r (Cody-Waite for |x| < 2**19, Payne-Hanek above), then +-sin(r) or +-cos(r).

    float32 inputs are computed in double precision. On the CPU (a module whose
    triple is neither empty nor NVPTX) the Payne-Hanek path is a call taken only
    for huge lanes; elsewhere both reductions are computed and selected.
    """
    triple = b.module.triple or ""
    if triple and "nvptx" not in triple:
        return _sin_cpu(b, x)
    return _sin_branch_free(b, x)
