"""Tensor's comparison and logic methods: <, ==, isnan, logical_and, &, allclose, ...

Comparisons give bool tensors; the IR has only CMPLT and CMPEQ, so the others
are built from them (with care for NaN: `a <= b` is false when either is NaN).

`ComparisonMethods` is one of the classes that `Tensor` (lazygrad/tensor.py) inherits.
"""
from __future__ import annotations

from .ir import dtypes
from .ir import node as N
from .ir.ops import Op

# Tensor, Size and the tensor() factory are defined in lazygrad/tensor.py, which imports this
# module before it defines them (class Tensor inherits the methods below). They are used only
# when a method runs, and tensor.py fills them in here as soon as they exist.
Tensor = Size = tensor = None


class ComparisonMethods:
    """Tensor's comparison and logic methods (class Tensor in lazygrad/tensor.py inherits them)."""

    # ---- comparisons and logic ----
    def lt(self, other):
        return self._binary(other, Op.CMPLT, "lt")

    def gt(self, other):
        return self._binary(other, Op.CMPLT, "gt", reverse=True)

    def le(self, other):
        a, b, dtype = Tensor._operands(self, other, "le")
        if dtype.is_floating_point:  # a <= b as (a < b) or (a == b): false when either is NaN, like PyTorch
            return Tensor._make(N.binary(Op.MAX, N.binary(Op.CMPLT, a, b), N.binary(Op.CMPEQ, a, b)))
        return _logical_not(Tensor._make(N.binary(Op.CMPLT, b, a)))

    def ge(self, other):
        a, b, dtype = Tensor._operands(self, other, "ge")
        if dtype.is_floating_point:
            return Tensor._make(N.binary(Op.MAX, N.binary(Op.CMPLT, b, a), N.binary(Op.CMPEQ, a, b)))
        return _logical_not(Tensor._make(N.binary(Op.CMPLT, a, b)))

    def eq(self, other):
        return self._binary(other, Op.CMPEQ, "eq")

    def ne(self, other):
        return _logical_not(self.eq(other))

    __lt__, __gt__, __le__, __ge__ = lt, gt, le, ge

    def __eq__(self, other):
        return self.eq(other)

    def __ne__(self, other):
        return self.ne(other)

    def isnan(self):
        if not self.dtype.is_floating_point:
            return self._const_like(False, dtypes.bool_)
        return self != self

    def isinf(self):
        if not self.dtype.is_floating_point:
            return self._const_like(False, dtypes.bool_)
        return self.abs() == float("inf")

    def isfinite(self):
        if not self.dtype.is_floating_point:
            return self._const_like(True, dtypes.bool_)
        return (self.abs() < float("inf"))

    def logical_not(self):
        return _logical_not(self if self.dtype.is_bool else self.bool())

    def logical_and(self, other):
        return _as_bool(self).mul(_as_bool(other))

    def logical_or(self, other):
        return _as_bool(self).maximum(_as_bool(other))

    def logical_xor(self, other):
        return _as_bool(self).ne(_as_bool(other))

    def __invert__(self):
        if self.dtype.is_bool:
            return _logical_not(self)
        if self.dtype.is_floating_point:
            raise TypeError("bitwise_not(): ~ is only supported for integer and bool tensors")
        return -self - 1

    def __and__(self, other):
        _require_bool("bitwise_and", self, other)
        return self.logical_and(other)

    def __or__(self, other):
        _require_bool("bitwise_or", self, other)
        return self.logical_or(other)

    def __xor__(self, other):
        _require_bool("bitwise_xor", self, other)
        return self.logical_xor(other)

    __rand__, __ror__, __rxor__ = __and__, __or__, __xor__

    def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
        return bool(isclose(self, other, rtol, atol, equal_nan).all().item())

    def equal(self, other) -> bool:
        return self.shape == other.shape and bool((self == other).all().item())


# ---- helpers (also used by the math and reduction methods) ----

def _as_bool(x) -> Tensor:
    if not isinstance(x, Tensor):
        x = tensor(x)
    return x if x.dtype.is_bool else x.bool()


def _require_bool(name, a, b):
    for x in (a, b):
        dt = x.dtype if isinstance(x, Tensor) else dtypes.scalar_dtype(x)
        if dt.is_floating_point:
            raise RuntimeError(f'"{name}_cpu" not implemented for \'Float\'')
        if not dt.is_bool:
            raise NotImplementedError(f"{name} on integer tensors is not implemented in lazygrad (bool only)")


def _logical_not(x: Tensor) -> Tensor:
    return Tensor._make(N.binary(Op.CMPEQ, x._node, N.const(False, dtypes.bool_, x._node.shape)), x)


def _negate_order(x: Tensor) -> Tensor:
    """An order-reversing map used to build min from max: -x for floats, ~x for ints, not x for bools."""
    if x.dtype.is_bool:
        return _logical_not(x)
    if x.dtype.is_floating_point:
        return -x
    return -x - 1  # bitwise not: never overflows, unlike -x on the smallest integer


def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False) -> Tensor:
    a = a if isinstance(a, Tensor) else tensor(a)
    diff = (a - b).abs()
    b_abs = b.abs() if isinstance(b, Tensor) else abs(b)
    close = (diff <= atol + rtol * b_abs) | (a == b)
    if equal_nan:
        close = close | (a.isnan() & (b.isnan() if isinstance(b, Tensor) else (b != b)))
    return close
