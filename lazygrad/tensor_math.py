"""Tensor's elementwise methods: arithmetic and math functions (exp, log, sin, sigmoid, round, ...).

Every binary operation first brings its operands to one dtype and one shape:
PyTorch's type promotion (`_operands`, `dtypes.result_type`) and broadcasting
(`broadcast_shapes`: RESHAPE to prepend 1s, then EXPAND). The math functions
are compositions of the IR's primitives (EXP2, LOG2, SIN, ...), written for
accuracy at the edges (-0.0, nan, inf, overflow), so their gradients, fusion
and code generation come for free.

`MathMethods` is one of the classes that `Tensor` (lazygrad/tensor.py) inherits.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .autograd_state import is_grad_enabled
from .ir import dtypes
from .ir import node as N
from .ir.dtypes import DType
from .ir.node import Node
from .ir.ops import Op
from .tensor_compare import _as_bool, _negate_order

LOG2E = math.log2(math.e)
LN2 = math.log(2.0)
# The ops that nearly every tensor operation names, read once here: on Python 3.11 reading an Enum
# member through its class (`Op.ADD`) takes EnumType's slow attribute path (about as long as
# building a small IR node). Elsewhere `Op.X` reads better and is fast enough.
_ADD, _MUL, _NEG, _CONST = Op.ADD, Op.MUL, Op.NEG, Op.CONST
_RESHAPE, _EXPAND = Op.RESHAPE, Op.EXPAND

# Tensor, Size and the tensor() factory are defined in lazygrad/tensor.py, which imports this
# module before it defines them (class Tensor inherits the methods below). They are used only
# when a method runs, and tensor.py fills them in here as soon as they exist.
Tensor = Size = tensor = None


class MathMethods:
    """Tensor's elementwise arithmetic and math methods (class Tensor in lazygrad/tensor.py inherits them)."""

    # ---- building results: type promotion and broadcasting ----
    def _priority(self) -> int:
        return 2 if self.ndim > 0 else 1

    @staticmethod
    def _operands(a, b, op_name: str):
        """Both operands as nodes of a common dtype and shape (PyTorch promotion and broadcasting)."""
        # Fast paths for the most common cases, with the same results as the general rules below:
        # two tensors of one dtype and shape, or a floating-point tensor and a Python number
        # (which takes the tensor's dtype).
        if isinstance(a, Tensor):
            na = a._node
            if isinstance(b, Tensor):
                nb = b._node
                if na.dtype is nb.dtype:   # (one dtype: nothing to promote)
                    if na.shape == nb.shape:
                        return na, nb, na.dtype
                    try:
                        shape = broadcast_shapes(na.shape, nb.shape)
                    except RuntimeError as e:
                        raise RuntimeError(f"{op_name}: {e}") from None
                    return _broadcast_node(na, shape), _broadcast_node(nb, shape), na.dtype
            elif (b.__class__ is float or b.__class__ is int) and na.dtype.category == 2:
                return na, N.const(b, na.dtype, na.shape), na.dtype
        elif isinstance(b, Tensor) and (a.__class__ is float or a.__class__ is int) and b._node.dtype.category == 2:
            nb = b._node
            return N.const(a, nb.dtype, nb.shape), nb, nb.dtype
        ta = a if isinstance(a, Tensor) else None
        tb = b if isinstance(b, Tensor) else None
        if ta is None and tb is None:
            raise TypeError(f"{op_name}: expected at least one Tensor")
        ops = []
        for x in (a, b):
            if isinstance(x, Tensor):
                ops.append((x.dtype, x._priority()))
            elif _is_scalar(x):
                ops.append((dtypes.scalar_dtype(x), 0))
            elif isinstance(x, (list, tuple, np.ndarray)):
                x = tensor(x)
                ops.append((x.dtype, x._priority()))
            else:
                raise TypeError(f"{op_name}(): unsupported operand type {type(x).__name__}")
        dtype = dtypes.result_type(*ops)
        try:
            shape = broadcast_shapes(_shape_of(a), _shape_of(b))
        except RuntimeError as e:
            raise RuntimeError(f"{op_name}: {e}") from None
        return _lift(a, dtype, shape), _lift(b, dtype, shape), dtype

    def _binary(self, other, op: Op, name: str, reverse: bool = False) -> "Tensor":
        a, b = (other, self) if reverse else (self, other)
        na, nb, _ = Tensor._operands(a, b, name)
        return Tensor._make(N.binary(op, na, nb), a, b)

    def _unary(self, op: Op) -> "Tensor":
        return Tensor._make(N.unary(op, self._node), self)

    def _float_input(self) -> "Tensor":
        """Integer and bool inputs of float functions (exp, sqrt, ...) become float32, as in PyTorch."""
        return self if self.dtype.is_floating_point else self._cast(dtypes.default_float)

    def _const_like(self, value, dtype: DType | None = None) -> "Tensor":
        return Tensor._from_node(N.const(value, dtype or self.dtype, self._node.shape))

    # ---- elementwise arithmetic ----
    def add(self, other, alpha=1):
        if alpha != 1:
            other = other * alpha
        if self.dtype.is_bool and isinstance(other, Tensor) and other.dtype.is_bool:
            return self._binary(other, Op.MAX, "add")
        return self._binary(other, _ADD, "add")

    def __add__(self, other):
        return self.add(other)

    def __radd__(self, other):
        return self._binary(other, Op.ADD, "add", reverse=True)

    def neg(self):
        if self.dtype.is_bool:
            raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. "
                               "If you are trying to invert a mask, use the `~` or `logical_not()` operator instead.")
        return self._unary(Op.NEG)

    __neg__ = neg
    negative = neg

    def sub(self, other, alpha=1):
        if self.dtype.is_bool and isinstance(other, Tensor) and other.dtype.is_bool:
            raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not supported. "
                               "Use the `^` or `logical_xor()` operator instead.")
        if alpha != 1:
            other = other * alpha
        if isinstance(other, Tensor):
            a, b = self._node, other._node
            if (a.shape == b.shape and a.dtype is b.dtype and a.dtype.category == 2 and self._strides is None
                    and other._strides is None and (not other._requires_grad or is_grad_enabled())):
                # the common case, built in one step: the same graph as self + (-other) below
                return Tensor._make(N.binary(_ADD, a, N.unary(_NEG, b)), self, other)
            return self + (-other)
        return self + (-other)

    def __sub__(self, other):
        return self.sub(other)

    def __rsub__(self, other):
        return (-self) + other

    def mul(self, other):
        return self._binary(other, _MUL, "mul")

    __mul__ = mul

    def __rmul__(self, other):
        return self._binary(other, Op.MUL, "mul", reverse=True)

    def reciprocal(self):
        return self._float_input()._unary(Op.RECIP)

    def div(self, other, rounding_mode=None):
        if rounding_mode == "floor":
            return self.floor_divide(other)
        if rounding_mode == "trunc":
            if _both_int(self, other):  # integer division rounding toward zero: exact, integer-typed, and
                na, nb, dtype = Tensor._operands(self, other, "div")  # raises ZeroDivisionError like torch
                if not dtype.is_bool:
                    return Tensor._make(N.binary(Op.IDIV, na, nb), *(x for x in (self, other) if isinstance(x, Tensor)))
            q = self._true_div(other)
            return q.trunc() if q.dtype.is_floating_point and not _both_int(self, other) else \
                _int_result(q.trunc(), self, other)
        return self._true_div(other)

    def _true_div(self, other, reverse=False):
        a, b = (other, self) if reverse else (self, other)
        na, nb, dtype = Tensor._operands(a, b, "div")
        if not dtype.is_floating_point:
            na, nb = N.cast(na, dtypes.default_float), N.cast(nb, dtypes.default_float)
        node = N.binary(Op.MUL, na, N.unary(Op.RECIP, nb))
        return Tensor._make(node, *(x for x in (a, b) if isinstance(x, Tensor)))

    __truediv__ = div
    true_divide = div
    divide = div

    def __rtruediv__(self, other):
        return self._true_div(other, reverse=True)

    def floor_divide(self, other):
        return _floor_div(self, other)

    def __floordiv__(self, other):
        return _floor_div(self, other)

    def __rfloordiv__(self, other):
        return _floor_div(other, self)

    def fmod(self, other):
        return self._binary(other, Op.MOD, "fmod")

    def remainder(self, other):
        return _remainder(self, other)

    def __mod__(self, other):
        return _remainder(self, other)

    def __rmod__(self, other):
        return _remainder(other, self)

    def pow(self, exponent):
        return _pow(self, exponent)

    __pow__ = pow

    def __rpow__(self, base):
        return _pow(base, self)

    def square(self):
        x = self.long() if self.dtype.is_bool else self  # PyTorch: square of a bool tensor is int64
        return x * x

    def maximum(self, other):
        return self._binary(other, Op.MAX, "maximum")

    def minimum(self, other):
        a, b, dtype = Tensor._operands(self, other, "minimum")
        ta = Tensor._make(a, self, other)
        tb = Tensor._make(b, self, other)
        return _negate_order(_negate_order(ta).maximum(_negate_order(tb)))

    def __abs__(self):
        return self.abs()

    def abs(self):
        _no_bool(self, "abs_cpu")
        neg = self < 0
        out = where(neg, -self, self)
        if self.dtype.is_floating_point:
            # abs(-0.0) is +0.0; and at 0 the gradient is 0 (PyTorch's sign(0)), not 1: that element comes
            # from x * 0 (which keeps nan: abs(nan) is nan)
            out = where(self > 0, self, where(neg, -self, self * 0.0)) + 0.0
        return out

    absolute = abs

    def sign(self):
        if self.dtype.is_bool:
            return self
        pos = (self > 0)._cast(self.dtype)
        neg = (self < 0)._cast(self.dtype)
        return pos - neg  # sign(nan) is 0, as in PyTorch

    def exp(self):
        x = self._float_input()
        return Tensor._make(N.unary(Op.EXP2, (x * LOG2E)._node), self)

    def exp2(self):
        return self._float_input()._unary(Op.EXP2)

    def expm1(self):
        x = self._float_input()
        # Kahan's expm1: with u = exp(x), (u - 1) * x / log(u) is accurate where exp(x) - 1 cancels
        u = x.exp()
        um1 = u - 1.0
        # x / log(u) is about 1: no overflow. Where u underflowed to 0 the branch is unused; log(0.5)
        # stands in for log(0) there, so that its gradient is not 0 * inf = nan
        out = um1 * (x / where(um1 == 0, 1.0, where(um1 == -1.0, 0.5, u).log()))
        out = where(um1 == 0, x, out)                   # u rounds to 1: expm1(x) = x (keeps -0.0)
        out = where(u == float("inf"), u, out)          # overflow
        return where(um1 == -1.0, um1, out)             # underflow: -1

    def log2(self):
        return self._float_input()._unary(Op.LOG2)

    def log(self):
        return self.log2() * LN2

    def log10(self):
        return self.log2() * (LN2 / math.log(10.0))

    def log1p(self):
        x = self._float_input()
        # log1p(x) = log(u) * x / (u - 1) with u = 1 + x: exact for tiny x where log(1 + x) would round to 0
        u = x + 1.0
        d = u - 1.0
        out = where(d == 0, x, u.log() * (x / where(d == 0, 1.0, d)))  # x / d ~ 1: no overflow for huge x
        return where(x == float("inf"), x, out)  # log1p(inf) = inf (not inf/inf)

    def sqrt(self):
        return self._float_input()._unary(Op.SQRT)

    def rsqrt(self):
        return self.sqrt().reciprocal()

    def sin(self):
        x = self._float_input()
        return where(x == 0, x, x._unary(Op.SIN))  # sin(-0.0) is -0.0

    def cos(self):
        x = self._float_input()
        # cos(x) = 1 - 2 sin(x/2)^2: x/2 is exact, while x + pi/2 rounds (by 8e-3 at x = 1e14 even in
        # float64). float32 is computed in float64 (SIN computes float32 in float64 anyway).
        xd = x.double() if x.dtype is dtypes.float32 else x
        h = (xd * 0.5)._unary(Op.SIN)
        out = 1.0 - 2.0 * (h * h)
        return out.float() if x.dtype is dtypes.float32 else out

    def tan(self):
        return self.sin() / self.cos()

    def softmax(self, dim, dtype=None):
        from .nn.functional import softmax
        return softmax(self, dim, dtype=dtype)

    def log_softmax(self, dim, dtype=None):
        from .nn.functional import log_softmax
        return log_softmax(self, dim, dtype=dtype)

    def sigmoid(self):
        x = self._float_input()
        # 1 / (1 + exp(-x)) for x >= 0 and exp(x) / (1 + exp(x)) for x < 0, each fed only the inputs of
        # its own side: no exp overflows, so no 0 * inf = nan in the gradient (x < -88 in float32)
        xp = where(x >= 0, x, 0.0)
        xn = where(x < 0, x, 0.0)
        en = xn.exp()
        # PyTorch's 1 / (1 + exp(-x)) is exactly 0 once exp(-x) overflows: so is this
        overflow = -math.log(np.finfo(x.dtype.np).max)
        out = where(x >= 0, (1.0 + (-xp).exp()).reciprocal(), where(x < overflow, 0.0, en / (1.0 + en)))
        return where(x != x, x * x, out)  # sigmoid(nan) is nan (and so is its gradient: 2 * nan)

    def tanh(self):
        x = self._float_input()
        # tanh|x| = -t / (2 + t) with t = expm1(-2|x|): no cancellation for small x (2*sigmoid(2x) - 1 has it)
        t = (x.abs() * -2.0).expm1()
        r = -t / (t + 2.0)
        return where(x == 0, x, where(x < 0, -r, r))  # tanh(-0.0) is -0.0

    def relu(self):
        if self.dtype.is_bool:
            return self
        return self.maximum(self._const_like(0))

    def trunc(self):
        _no_bool(self, "trunc_vml_cpu")
        if not self.dtype.is_floating_point:
            return self
        return self._unary(Op.TRUNC)

    fix = trunc

    def floor(self):
        _no_bool(self, "floor_vml_cpu")
        if not self.dtype.is_floating_point:
            return self
        t = self.trunc()
        return where(self < t, t - 1.0, t)

    def ceil(self):
        _no_bool(self, "ceil_vml_cpu")
        if not self.dtype.is_floating_point:
            return self
        t = self.trunc()
        return where(self > t, t + 1.0, t)  # ceil(-0.5) is -0.0, as trunc(-0.5) is

    def round(self, decimals: int = 0):
        _no_bool(self, "round_vml_cpu")
        if not self.dtype.is_floating_point:
            return self
        if decimals:
            scale = 10.0 ** decimals
            return (self * scale).round() / scale
        # round half to even, as PyTorch does
        f = (self + 0.5).floor()
        tie = (f - self) == 0.5
        odd = (f - (f * 0.5).floor() * 2.0) == 1.0
        out = where(tie & odd, f - 1.0, f)
        out = where(out == 0, self * 0.0, out)  # a zero result keeps x's sign: round(-0.4) is -0.0
        big = self.abs() >= (2.0 ** 52 if self.dtype is dtypes.float64 else 2.0 ** 23)
        return where(big | (self != self), self, out)

    def frac(self):
        if not self.dtype.is_floating_point:
            raise NotImplementedError(f'"frac_cpu" not implemented for \'{_TYPE_NAMES[self.dtype.name]}\'')
        return self - self.trunc()

    def clamp(self, min=None, max=None):
        if min is None and max is None:
            raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
        # PyTorch's clamp: min(max(x, lo), hi) with max(a, b) = a < b ? b : a, so clamp(-0.0, min=0) is -0.0;
        # a NaN input stays NaN, a NaN bound gives NaN
        out = self
        if min is not None:
            lo = min if isinstance(min, Tensor) else _scalar_tensor(min, out)
            out = where(out < lo, lo, out)
            if lo.dtype.is_floating_point and not (_is_scalar(min) and min == min):
                out = where(lo != lo, lo, out)
        if max is not None:
            hi = max if isinstance(max, Tensor) else _scalar_tensor(max, out)
            out = where(hi < out, hi, out)
            if hi.dtype.is_floating_point and not (_is_scalar(max) and max == max):
                out = where(hi != hi, hi, out)
        return out

    clip = clamp

    def clamp_min(self, min):
        return self.clamp(min=min)

    def clamp_max(self, max):
        return self.clamp(max=max)

    def lerp(self, end, weight):
        # PyTorch's two-sided formula: exact at weight 0 and 1, and no inf - inf for infinite end points
        diff = end - self
        if isinstance(weight, Tensor):
            return where(weight.abs() < 0.5, self + weight * diff, end - diff * (1 - weight))
        return self + weight * diff if abs(weight) < 0.5 else end - diff * (1 - weight)

    def where(self, condition, other):
        return where(condition, self, other)


# ---- broadcasting and type promotion ----

def _is_scalar(x) -> bool:
    return isinstance(x, (numbers.Number, np.bool_, np.number)) and not isinstance(x, np.ndarray)


def broadcast_shapes(a: tuple, b: tuple) -> tuple:
    if a == b or not b:   # (the common cases: equal shapes, or a 0-d operand)
        return tuple(a)
    if not a:
        return tuple(b)
    n = max(len(a), len(b))
    a1 = (1,) * (n - len(a)) + tuple(a)
    b1 = (1,) * (n - len(b)) + tuple(b)
    out = []
    for i, (x, y) in enumerate(zip(a1, b1)):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            raise RuntimeError(f"The size of tensor a ({x}) must match the size of tensor b ({y}) "
                               f"at non-singleton dimension {i}")
    return tuple(out)


def _shape_of(x) -> tuple:
    if isinstance(x, Tensor):
        return x._node.shape
    if isinstance(x, (list, tuple, np.ndarray)):
        return np.shape(x)
    return ()


def _lift(x, dtype: DType, shape: tuple) -> Node:
    """x (Tensor, Python number, list) as a node of `dtype` broadcast to `shape`."""
    if isinstance(x, Tensor):
        node = N.cast(x._node, dtype)
    elif _is_scalar(x):
        return N.const(x, dtype, shape)
    else:
        node = N.cast(tensor(x)._node, dtype)
    return _broadcast_node(node, shape)


def _broadcast_node(node: Node, shape: tuple) -> Node:
    if node.shape == shape:
        return node
    lead = len(shape) - len(node.shape)
    if lead:
        node = N.movement(_RESHAPE, node, (1,) * lead + node.shape)
    if node.op is _CONST and node.realized is None:
        return N.const(node.arg, node.dtype, shape)
    return N.movement(_EXPAND, node, shape)


# ---- helpers of the methods above ----

def _scalar_tensor(value, like: Tensor) -> Tensor:
    return Tensor._from_node(N.const(value, dtypes.scalar_dtype(value), ()))


def _both_int(a, b) -> bool:
    da = a.dtype if isinstance(a, Tensor) else dtypes.scalar_dtype(a)
    db = b.dtype if isinstance(b, Tensor) else dtypes.scalar_dtype(b)
    return not da.is_floating_point and not db.is_floating_point


def _int_result(x: Tensor, a, b) -> Tensor:
    return x


def _floor_div(a, b) -> Tensor:
    na, nb, dtype = Tensor._operands(a, b, "floor_divide")
    inputs = [x for x in (a, b) if isinstance(x, Tensor)]
    if dtype.is_bool:
        raise RuntimeError("floor_divide(): bool inputs are not supported")
    ta, tb = Tensor._make(na, *inputs), Tensor._make(nb, *inputs)
    if dtype.is_floating_point:
        # PyTorch's div_floor_floating: from fmod, so that e.g. 7.5 // 2.5 is exactly 3 and inf // 1 is nan
        mod = Tensor._make(N.binary(Op.MOD, na, nb), *inputs)
        div = (ta - mod) / tb
        div = where((mod != 0) & ((tb < 0) != (mod < 0)), div - 1.0, div)
        fl = div.floor()
        fl = where(div - fl > 0.5, fl + 1.0, fl)
        out = where(div != 0, fl, (ta / tb) * 0.0)       # a zero quotient has the sign of a / b
        return where(tb == 0, ta / tb, out)               # division by zero: IEEE's inf or nan
    q = Tensor._make(N.binary(Op.IDIV, na, nb), *inputs)
    r = Tensor._make(N.binary(Op.MOD, na, nb), *inputs)
    adjust = (r != 0) & ((r < 0) != (tb < 0))
    return q - adjust._cast(dtype)


_TYPE_NAMES = {"float32": "Float", "float64": "Double", "int64": "Long", "int32": "Int", "bool": "Bool"}


def _no_bool(x: Tensor, kernel_name: str) -> None:
    """PyTorch has no bool kernel for some math ops (abs, floor, ...) and says so."""
    if x.dtype.is_bool:
        raise NotImplementedError(f'"{kernel_name}" not implemented for \'Bool\'')


def _remainder(a, b) -> Tensor:
    """Python's / PyTorch's remainder: the result has the sign of the divisor."""
    na, nb, dtype = Tensor._operands(a, b, "remainder")
    inputs = [x for x in (a, b) if isinstance(x, Tensor)]
    tb = Tensor._make(nb, *inputs)
    r = Tensor._make(N.binary(Op.MOD, na, nb), *inputs)
    adjust = (r != 0) & ((r < 0) != (tb < 0))
    return where(adjust, r + tb, r)


def _pow(base, exponent) -> Tensor:
    if _is_scalar(exponent) and isinstance(base, Tensor):
        e = exponent
        if not isinstance(e, bool) and float(e) == int(e) and abs(e) <= 64 and (
                base.dtype.is_floating_point or e >= 0):
            e = int(e)
            dtype = dtypes.result_type((base.dtype, base._priority()), (dtypes.scalar_dtype(exponent), 0))
            x = base.to(dtype)
            if e == 0:
                return Tensor._make(N.const(1, dtype, x._node.shape), base)
            result, power, n = None, x, abs(e)
            while n:  # exponentiation by squaring: exact for integers, like PyTorch
                if n & 1:
                    result = power if result is None else result * power
                n >>= 1
                if n:
                    power = power * power
            return result.reciprocal() if e < 0 else result
        if isinstance(e, float) and e == 0.5:
            return base._float_input().sqrt()
        if not base.dtype.is_floating_point and isinstance(e, int) and e < 0:
            raise RuntimeError("Integers to negative integer powers are not allowed.")
    na, nb, dtype = Tensor._operands(base, exponent, "pow")
    inputs = [x for x in (base, exponent) if isinstance(x, Tensor)]
    # float64 work: y * log2|x| must be exact to float32 precision (exp2 scales its error by |y * log2|x||)
    work = dtypes.float64
    x = Tensor._make(N.cast(na, work), *inputs)
    y = Tensor._make(N.cast(nb, work), *inputs)
    magnitude = (y * x.abs().log2()).exp2()
    y_is_int = y.trunc() == y
    y_is_odd = y_is_int & ((y * 0.5).trunc() != y * 0.5)
    sign_bit = (x < 0) | ((x == 0) & (x.reciprocal() < 0))      # x < 0 or x is -0.0
    out = where(sign_bit & y_is_odd, -magnitude, magnitude)    # (-2)**3 = -8, (-0.0)**-1 = -inf
    negative_finite = (x < 0) & (x > float("-inf"))
    out = where(negative_finite & ~y_is_int, float("nan"), out)  # (-2)**0.5 is nan; (-inf)**0.5 is inf
    out = where((x.abs() == 1) & (y.abs() == float("inf")), 1.0, out)  # (-1)**inf == 1
    out = where(y == 0, 1.0, out)            # x**0 == 1, even for nan
    out = where(x == 1, 1.0, out)            # 1**y == 1, even for nan
    if not dtype.is_floating_point:
        out = out.round()
    return out.to(dtype)


# ---- torch.where: the elementwise choice (x.where(cond, y) above, and lazygrad.where) ----

def where(condition, input, other) -> Tensor:
    """torch.where(condition, input, other) with broadcasting and type promotion."""
    if isinstance(condition, Tensor) and not condition.dtype.is_bool:
        names = {"float32": "Float", "float64": "Double", "int64": "Long", "int32": "Int"}
        raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor with dtype "
                           f"{names[condition.dtype.name]}")
    cond = _as_bool(condition) if isinstance(condition, Tensor) else tensor(condition).bool()
    a_is, b_is = isinstance(input, Tensor), isinstance(other, Tensor)
    if not a_is and not b_is:
        dtype = dtypes.result_type((dtypes.scalar_dtype(input), 0), (dtypes.scalar_dtype(other), 0))
    else:
        ops = [((x.dtype, x._priority()) if isinstance(x, Tensor) else (dtypes.scalar_dtype(x), 0))
               for x in (input, other)]
        dtype = dtypes.result_type(*ops)
    try:
        shape = broadcast_shapes(broadcast_shapes(tuple(cond.shape), _shape_of(input)), _shape_of(other))
    except RuntimeError as e:
        raise RuntimeError(f"where: {e}") from None
    node = N.where(_broadcast_node(cond._node, shape), _lift(input, dtype, shape), _lift(other, dtype, shape))
    return Tensor._make(node, *(x for x in (cond, input, other) if isinstance(x, Tensor)))
