"""Tensor's movement methods (reshape, view, permute, expand, squeeze, pad, ...) and indexing.

Movement ops never copy: each is one RESHAPE / PERMUTE / EXPAND / PAD / SHRINK
node. What PyTorch's strides would be is tracked beside the node (lazygrad/strides.py),
so `view()` and `is_contiguous()` answer as PyTorch's do; views share values
with their base (`@_view_sharing.returns_view`, lazygrad/views.py).
Indexing and the larger shape ops live in lazygrad/indexing.py,
advanced_indexing.py and shape_ops.py; the methods here delegate to them.

`ShapeMethods` is one of the classes that `Tensor` (lazygrad/tensor.py) inherits.
"""
from __future__ import annotations

import math

import numpy as np

from . import strides as _strides_mod
from . import views as _view_sharing
from .ir import dtypes
from .ir import node as N
from .ir.dtypes import DType
from .ir.ops import Op
from .tensor_math import where

_KEEP_CONTIGUOUS = frozenset({Op.RESHAPE, Op.PAD})   # movement ops whose result is contiguous when their input is
_RESHAPE, _PERMUTE = Op.RESHAPE, Op.PERMUTE   # (read once: see the note in tensor_math.py)

# Tensor, Size and the tensor() factory are defined in lazygrad/tensor.py, which imports this
# module before it defines them (class Tensor inherits the methods below). They are used only
# when a method runs, and tensor.py fills them in here as soon as they exist.
Tensor = Size = tensor = None


# ---- dims and shapes given as arguments ----

def _shape_str(shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def normalize_dim(dim: int, ndim: int) -> int:
    """A dim in [-ndim, ndim) as a non-negative axis, with PyTorch's error otherwise."""
    if dim.__class__ is int and -ndim <= dim < ndim:   # the common case (and ndim > 0)
        return dim % ndim
    lo, hi = (-ndim, ndim - 1) if ndim > 0 else (-1, 0)
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    if dim < lo or dim > hi:
        raise IndexError(f"Dimension out of range (expected to be in range of [{lo}, {hi}], but got {dim})")
    return int(dim) % max(ndim, 1)


def _shape_args(args) -> tuple:
    if len(args) == 1 and isinstance(args[0], (tuple, list, Size)):
        args = args[0]
    if all(a.__class__ is int for a in args):   # the common case: nothing to convert or check
        return tuple(args)
    out = []
    for a in args:
        if isinstance(a, Tensor):
            a = int(a.item())
        if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
            raise TypeError(f"expected a sequence of integers, but got {type(a).__name__}")
        out.append(int(a))
    return tuple(out)


class ShapeMethods:
    """Tensor's movement and indexing methods (class Tensor in lazygrad/tensor.py inherits them)."""

    # ---- movement ----
    def _movement(self, op: Op, arg) -> "Tensor":
        out = Tensor._make(N.movement(op, self._node, arg), self)
        if self._strides is not None or op not in _KEEP_CONTIGUOUS:
            # (a reshape or pad of a contiguous tensor is contiguous: nothing to compute)
            out._strides = _strides_mod.Deferred(_strides_mod.after_movement, self._node.shape, self._strides,
                                                 op, arg, out._node.shape)
        return out

    def reshape(self, *shape) -> "Tensor":
        shape = _shape_args(shape)
        numel = math.prod(self._node.shape)
        if shape and min(shape) < 0:   # a -1 to infer (or an invalid size)
            unknown = [i for i, s in enumerate(shape) if s == -1]
            if len(unknown) > 1:
                raise RuntimeError("only one dimension can be inferred")
            for s in shape:
                if s < -1:
                    raise RuntimeError(f"invalid shape dimension {s}")
            known = math.prod(s for s in shape if s != -1)
            if known == 0 or numel % known != 0:
                raise RuntimeError(f"shape '{_shape_str(shape)}' is invalid for input of size {numel}")
            shape = tuple(numel // known if s == -1 else s for s in shape)
        if math.prod(shape) != numel:
            raise RuntimeError(f"shape '{_shape_str(shape)}' is invalid for input of size {numel}")
        out = self._alias() if shape == self._node.shape else self._movement(Op.RESHAPE, shape)
        if self._strides is None or _strides_mod.view_strides(self.shape, _strides_mod.strides_of(self),
                                                               shape) is not None:
            _view_sharing.link(out, self)   # PyTorch's reshape gives a view where it can, a copy elsewhere
        return out

    def view(self, *shape) -> "Tensor":
        if len(shape) == 1 and isinstance(shape[0], DType):
            raise NotImplementedError("view(dtype) is not supported")
        out = self.reshape(*shape)
        _strides_mod.check_view(self, out.shape)  # PyTorch's view never copies: it raises instead
        return out

    def view_as(self, other) -> "Tensor":
        return self.view(other.shape)

    def reshape_as(self, other) -> "Tensor":
        return self.reshape(other.shape)

    def _alias(self) -> "Tensor":
        out = Tensor._make(self._node, self)
        out._strides = self._strides
        return out

    def stride(self, dim: int | None = None):
        """The strides PyTorch would report (lazygrad itself never copies for a view)."""
        strides = _strides_mod.strides_of(self)
        return strides if dim is None else strides[normalize_dim(dim, self.ndim)]

    def is_contiguous(self, memory_format=None) -> bool:
        strides = _strides_mod.resolve(self._strides)
        return strides is None or _strides_mod.is_contiguous(self.shape, strides)

    def contiguous(self, memory_format=None) -> "Tensor":
        if self.is_contiguous():
            return self
        out = Tensor._make(self._node, self)  # same values, now with contiguous strides: no kernel
        out._strides = None
        return out

    def clone(self, memory_format=None) -> "Tensor":
        out = self._alias()
        if self._strides is not None:
            out._strides = _strides_mod.Deferred(_strides_mod.preserved, self._node.shape, self._strides)
        return out

    @_view_sharing.returns_view
    def permute(self, *dims) -> "Tensor":
        dims = _shape_args(dims)
        if len(dims) != self.ndim:
            raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does not match "
                               f"the length of the desired ordering of dimensions i.e. input.dim() = {self.ndim} "
                               f"is not equal to len(dims) = {len(dims)}")
        axes = tuple(normalize_dim(d, self.ndim) for d in dims)
        if len(set(axes)) != len(axes):
            raise RuntimeError("permute(): duplicate dims are not allowed.")
        if axes == tuple(range(self.ndim)):
            return self._alias()
        return self._movement(Op.PERMUTE, axes)

    def transpose(self, dim0: int, dim1: int) -> "Tensor":
        if self.ndim == 0:
            normalize_dim(dim0, 0), normalize_dim(dim1, 0)
            return self.permute(())   # (a view, as in PyTorch)
        a, b = normalize_dim(dim0, self.ndim), normalize_dim(dim1, self.ndim)
        order = list(range(self.ndim))
        order[a], order[b] = order[b], order[a]
        return self.permute(order)

    swapdims = transpose
    swapaxes = transpose

    @_view_sharing.returns_view
    def t(self) -> "Tensor":
        if self.ndim > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {self.ndim}D")
        return self._movement(_PERMUTE, (1, 0)) if self.ndim == 2 else self._alias()  # = transpose(0, 1)

    @property
    def T(self) -> "Tensor":
        return self.permute(tuple(reversed(range(self.ndim))))

    @property
    def mT(self) -> "Tensor":
        return self.transpose(-2, -1)

    def movedim(self, source, destination) -> "Tensor":
        from .shape_ops import movedim
        return movedim(self, source, destination)

    moveaxis = movedim

    @_view_sharing.returns_view
    def expand(self, *sizes) -> "Tensor":
        sizes = _shape_args(sizes)
        if len(sizes) < self.ndim:
            raise RuntimeError(f"expand({self.type()}{{{_shape_str(self.shape)}}}, size={_shape_str(sizes)}): "
                               f"the number of sizes provided ({len(sizes)}) must be greater or equal to the "
                               f"number of dimensions in the tensor ({self.ndim})")
        lead = len(sizes) - self.ndim
        src_shape = (1,) * lead + tuple(self.shape)
        out = []
        for i, (want, have) in enumerate(zip(sizes, src_shape)):
            if want == -1:
                if i < lead:
                    raise RuntimeError(f"expand: -1 is not allowed in a leading, non-existing dimension {i}")
                want = have
            if have != want and have != 1:
                raise RuntimeError(f"The expanded size of the tensor ({want}) must match the existing size ({have}) "
                                   f"at non-singleton dimension {i}.  Target sizes: {_shape_str(sizes)}.  "
                                   f"Tensor sizes: {_shape_str(self.shape)}")
            out.append(want)
        x = self if lead == 0 else self.reshape(src_shape)
        if tuple(out) == tuple(x.shape):
            return x
        result = x._movement(Op.EXPAND, tuple(out))
        result._strides = _strides_mod.Deferred(_strides_mod.expanded, self._node.shape, self._strides, tuple(out))
        return result

    def expand_as(self, other) -> "Tensor":
        return self.expand(other.shape)

    def broadcast_to(self, *shape) -> "Tensor":
        return self.expand(*shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> "Tensor":
        if self.ndim == 0:
            return self.reshape(1)
        s, e = normalize_dim(start_dim, self.ndim), normalize_dim(end_dim, self.ndim)
        if s > e:
            raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
        shape = tuple(self.shape[:s]) + (math.prod(self.shape[s:e + 1]),) + tuple(self.shape[e + 1:])
        return self.reshape(shape)

    def unflatten(self, dim: int, sizes) -> "Tensor":
        d = normalize_dim(dim, self.ndim)
        sizes = given = tuple(sizes)
        if not sizes:
            raise RuntimeError("unflatten: sizes must be non-empty")
        if -1 in sizes:
            known = math.prod(s for s in sizes if s != -1)
            sizes = tuple(self.shape[d] // known if s == -1 else s for s in sizes)
        if math.prod(sizes) != self.shape[d]:
            raise RuntimeError(f"unflatten: Provided sizes {_shape_str(given)} don't multiply up to the size of "
                               f"dim {dim} ({self.shape[d]}) in the input tensor")
        return self.reshape(tuple(self.shape[:d]) + sizes + tuple(self.shape[d + 1:]))

    def squeeze(self, dim=None) -> "Tensor":
        if dim is None:
            return self.reshape(tuple(s for s in self.shape if s != 1))
        axes = self._axes(dim) if self.ndim > 0 else ()
        if self.ndim == 0:
            normalize_dim(dim, 0)
            return self.reshape(())   # (a view, as in PyTorch)
        out = self.reshape(tuple(s for i, s in enumerate(self.shape) if not (i in axes and s == 1)))
        out._strides = None if self._strides is None else \
            _strides_mod.Deferred(_strides_mod.squeezed, self._node.shape, self._strides, axes)
        return out

    @_view_sharing.returns_view
    def unsqueeze(self, dim: int) -> "Tensor":
        d = normalize_dim(dim, self.ndim + 1)
        shape = self._node.shape
        out = self._movement(_RESHAPE, shape[:d] + (1,) + shape[d:])
        out._strides = None if self._strides is None else \
            _strides_mod.Deferred(_strides_mod.unsqueezed, self._node.shape, self._strides, d)
        return out

    def flip(self, *dims) -> "Tensor":
        from .shape_ops import flip
        return flip(self, *dims)

    def pad(self, padding, value=0.0) -> "Tensor":
        """Constant padding; `padding` is PyTorch's (last_before, last_after, prev_before, ...)."""
        if len(padding) % 2 or len(padding) // 2 > self.ndim:
            raise RuntimeError(f"Padding length must be divisible by 2 and at most twice the number of dims "
                               f"(got {len(padding)} for a {self.ndim}-d input)")
        pairs = [(0, 0)] * self.ndim
        for k in range(len(padding) // 2):
            pairs[self.ndim - 1 - k] = (int(padding[2 * k]), int(padding[2 * k + 1]))
        x = self
        # negative padding crops
        if any(b < 0 or a < 0 for b, a in pairs):
            crop = tuple((max(-b, 0), s - max(-a, 0), 1) for (b, a), s in zip(pairs, x.shape))
            x = x._movement(Op.SHRINK, crop)
            pairs = [(max(b, 0), max(a, 0)) for b, a in pairs]
        if all(p == (0, 0) for p in pairs):
            return x
        out = x._movement(Op.PAD, tuple(pairs))
        if value != 0:
            mask = Tensor._from_node(N.movement(Op.PAD, N.const(True, dtypes.bool_, x._node.shape), tuple(pairs)))
            out = where(mask, out, value)
        return out

    def _shrink(self, bounds) -> "Tensor":
        """bounds: per dim (start, stop, step) with step >= 1."""
        if all(b == (0, s, 1) for b, s in zip(bounds, self.shape)):
            return self
        return self._movement(Op.SHRINK, tuple(bounds))

    def __getitem__(self, index):
        from .indexing import getitem
        return getitem(self, index)

    def __setitem__(self, index, value):
        from .indexing import setitem
        setitem(self, index, value)

    # ---- indexing and shape ops: defined in lazygrad/indexing.py, advanced_indexing.py, shape_ops.py ----
    def gather(self, dim, index, sparse_grad=False):
        from .indexing import gather
        return gather(self, dim, index)

    def index_select(self, dim, index):
        from .indexing import index_select
        return index_select(self, dim, index)

    def scatter(self, dim, index, src=None, value=None, reduce=None):
        from .indexing import scatter
        return scatter(self, dim, index, src, value=value, reduce=reduce)

    def scatter_add(self, dim, index, src):
        from .indexing import scatter_add
        return scatter_add(self, dim, index, src)

    def index_add(self, dim, index, source, alpha=1):
        from .indexing import index_add
        return index_add(self, dim, index, source, alpha=alpha)

    def masked_fill(self, mask, value):
        from .indexing import masked_fill
        return masked_fill(self, mask, value)

    def masked_select(self, mask):
        from .advanced_indexing import masked_select
        return masked_select(self, mask)

    def nonzero(self, as_tuple=False):
        from .advanced_indexing import nonzero
        return nonzero(self, as_tuple=as_tuple)

    def chunk(self, chunks, dim=0):
        from .shape_ops import chunk
        return chunk(self, chunks, dim)

    def split(self, split_size, dim=0):
        from .shape_ops import split
        return split(self, split_size, dim)

    def narrow(self, dim, start, length):
        from .shape_ops import narrow
        return narrow(self, dim, start, length)

    def select(self, dim, index):
        from .shape_ops import select
        return select(self, dim, index)

    def unbind(self, dim=0):
        from .shape_ops import unbind
        return unbind(self, dim)

    def roll(self, shifts, dims=None):
        from .shape_ops import roll
        return roll(self, shifts, dims)

    def repeat(self, *sizes):
        from .shape_ops import repeat
        return repeat(self, *sizes)

    def tile(self, *dims):
        from .shape_ops import tile
        return tile(self, *dims)
