"""Tensor's reductions: sum, mean, var, max/min, argmax, prod, all/any, cumsum.

The IR's reductions (SUM, REDUCE_MAX, PROD) keep the reduced axes as size 1;
`_reduce` reshapes them away unless `keepdim`. min is built from max by an
order-reversing map (`_negate_order`), argmax from max and a comparison.

`ReductionMethods` is one of the classes that `Tensor` (lazygrad/tensor.py) inherits.
"""
from __future__ import annotations

import math
from collections import namedtuple

from . import devices as _device
from .creation import arange
from .ir import dtypes
from .ir import node as N
from .ir.dtypes import DType
from .ir.ops import Op
from .tensor_compare import _as_bool, _logical_not, _negate_order
from .tensor_math import where
from .tensor_shape import normalize_dim

_SUM, _RESHAPE = Op.SUM, Op.RESHAPE   # (read once: see the note in tensor_math.py)

# Tensor, Size and the tensor() factory are defined in lazygrad/tensor.py, which imports this
# module before it defines them (class Tensor inherits the methods below). They are used only
# when a method runs, and tensor.py fills them in here as soon as they exist.
Tensor = Size = tensor = None


_ValuesIndices = namedtuple("_ValuesIndices", ["values", "indices"])


class return_types:
    """Named tuples returned by max(dim)/min(dim), like torch.return_types."""
    class max(_ValuesIndices):
        pass

    class min(_ValuesIndices):
        pass


class ReductionMethods:
    """Tensor's reductions (class Tensor in lazygrad/tensor.py inherits them)."""

    # ---- reductions ----
    def _axes(self, dim) -> tuple:
        if dim is None:
            return tuple(range(self.ndim))
        if isinstance(dim, (list, tuple)):
            axes = tuple(normalize_dim(d, self.ndim) for d in dim)
            if len(set(axes)) != len(axes):
                raise RuntimeError(f"dim {axes[0]} appears multiple times in the list of dims")
            return axes if self.ndim else ()  # a 0-d tensor accepts dim 0 / -1 and has no axis to reduce
        axis = normalize_dim(dim, self.ndim)
        return (axis,) if self.ndim else ()

    def _reduce(self, op: Op, dim, keepdim: bool) -> "Tensor":
        axes = self._axes(dim)
        node = N.reduce(op, self._node, axes) if axes else self._node
        out = Tensor._make(node, self)
        if not keepdim and axes:
            out = out._movement(_RESHAPE, tuple([s for i, s in enumerate(self._node.shape) if i not in axes]))
        return out

    def sum(self, dim=None, keepdim: bool = False, dtype: DType | None = None):
        x = self
        if dtype is not None:
            if dtype is not x.dtype:
                x = x.to(dtype)
        elif not x.dtype.is_floating_point:
            x = x.to(dtypes.int64)
        return x._reduce(_SUM, dim, keepdim)

    def mean(self, dim=None, keepdim: bool = False, dtype: DType | None = None):
        x = self if dtype is None else self.to(dtype)
        if not x.dtype.is_floating_point:
            name = {"int64": "Long", "int32": "Int", "bool": "Bool"}[x.dtype.name]
            raise RuntimeError("mean(): could not infer output dtype. Input dtype must be either a floating "
                               f"point or complex dtype. Got: {name}")
        axes = x._axes(dim)
        count = math.prod(x._node.shape[a] for a in axes)
        return x._reduce(_SUM, dim, keepdim) * (1.0 / count if count else float("nan"))  # (= x.sum(dim, keepdim))

    def var(self, dim=None, unbiased: bool = True, keepdim: bool = False, correction=None):
        if correction is None:
            correction = 1 if unbiased else 0
        x = self._float_input()
        count = math.prod(x.shape[a] for a in x._axes(dim))
        diff = x - x.mean(dim, keepdim=True)
        return (diff * diff).sum(dim, keepdim) / max(count - correction, 0)

    def std(self, dim=None, unbiased: bool = True, keepdim: bool = False, correction=None):
        return self.var(dim, unbiased, keepdim, correction).sqrt()

    def _check_nonempty(self, name: str, dim) -> None:
        if self.numel() == 0:
            if dim is None:
                raise RuntimeError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0. "
                                   "Specify the reduction dim with the 'dim' argument.")
            for a in self._axes(dim):
                if self.shape[a] == 0:
                    raise IndexError(f"{name}(): Expected reduction dim {a} to have non-zero size.")

    def amax(self, dim=None, keepdim: bool = False):
        self._check_nonempty("amax", dim if dim is not None and dim != () else None)
        return self._reduce(Op.REDUCE_MAX, dim, keepdim)

    def amin(self, dim=None, keepdim: bool = False):
        self._check_nonempty("amin", dim if dim is not None and dim != () else None)
        return _negate_order(_negate_order(self)._reduce(Op.REDUCE_MAX, dim, keepdim))

    def max(self, dim=None, keepdim: bool = False):
        if isinstance(dim, Tensor):
            return self.maximum(dim)
        if dim is None:
            self._check_nonempty("max", None)
            return self._reduce(Op.REDUCE_MAX, None, False)
        values = self.amax(dim, keepdim)
        return return_types.max(values, self.argmax(dim, keepdim))

    def min(self, dim=None, keepdim: bool = False):
        if isinstance(dim, Tensor):
            return self.minimum(dim)
        if dim is None:
            self._check_nonempty("min", None)
            return self.amin(None, False)
        values = self.amin(dim, keepdim)
        return return_types.min(values, self.argmin(dim, keepdim))

    def argmax(self, dim=None, keepdim: bool = False):
        return _arg_extreme(self, dim, keepdim, largest=True)

    def argmin(self, dim=None, keepdim: bool = False):
        return _arg_extreme(self, dim, keepdim, largest=False)

    def prod(self, dim=None, keepdim: bool = False, dtype: DType | None = None):
        """The product along `dim` (all elements when None), with the PROD reduction primitive.

        Like PyTorch, integer and bool inputs multiply in int64 and wrap on overflow; floats
        multiply in their own dtype (so 0 * inf and anything * nan give nan). The gradient,
        zeros included, is the PROD rule in lazygrad/ir/autodiff.py.
        """
        x = self if dtype is None else self.to(dtype)
        if not x.dtype.is_floating_point:
            x = x.to(dtypes.int64)
        return x._reduce(Op.PROD, dim, keepdim)

    def all(self, dim=None, keepdim: bool = False):
        return _logical_not(_as_bool(self).logical_not()._reduce(Op.REDUCE_MAX, dim, keepdim))

    def any(self, dim=None, keepdim: bool = False):
        return _as_bool(self)._reduce(Op.REDUCE_MAX, dim, keepdim)

    def count_nonzero(self, dim=None):
        return (self != 0).sum(dim)

    def cumsum(self, dim: int):
        """Inclusive prefix sum as a masked sum: out[i] = sum_j where(j <= i, x[j], 0)."""
        d = normalize_dim(dim, self.ndim)
        x = self if self.dtype.is_floating_point else self.to(dtypes.int64)
        if x.ndim == 0:
            return x._alias()
        n = x.shape[d]
        moved = x.movedim(d, -1)                                   # (..., n)
        lower = (_arange_node(n, x).reshape(1, n) <= _arange_node(n, x).reshape(n, 1))  # [i, j] = j <= i
        # where, not multiply by the mask: a later inf or nan must not reach earlier sums (inf * 0 = nan)
        out = where(lower, moved.unsqueeze(-2), 0).sum(-1)  # (..., n)
        return out.movedim(-1, d)


# ---- helpers of the methods above ----

def _arg_extreme(x: Tensor, dim, keepdim: bool, largest: bool) -> Tensor:
    name = "argmax" if largest else "argmin"
    if dim is None:
        x._check_nonempty(name, None)
        flat = x.reshape(-1)
        return _arg_extreme(flat, 0, False, largest) if not keepdim else \
            _arg_extreme(flat, 0, False, largest).reshape((1,) * x.ndim)
    d = normalize_dim(dim, x.ndim)
    if x.ndim == 0:  # torch: the argmax of a 0-d tensor along dim 0 / -1 is 0
        return Tensor._make(N.const(0, dtypes.int64, ()))
    x._check_nonempty(name, d)
    key = x if largest else _negate_order(x)
    best = key.amax(d, keepdim=True)
    hit = key == best
    if key.dtype.is_floating_point:
        hit = hit | (key != key)  # NaN wins, like PyTorch
    n = x.shape[d]
    positions = _arange_node(n, x).reshape(tuple(n if i == d else 1 for i in range(x.ndim)))
    candidates = where(hit, positions, n)
    # the first hit: the smallest position, i.e. minus the max of minus positions
    first = -((-candidates).amax(d, keepdim=keepdim))
    return first


def _arange_node(n: int, like: Tensor | None = None) -> Tensor:
    """0, 1, ..., n-1 as int64, on the device of `like` (positions for argmax, masks for cumsum)."""
    if like is not None and _device.state.cuda_used:
        return arange(n, device=like.device)
    return arange(n)
