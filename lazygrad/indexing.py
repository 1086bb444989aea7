"""Indexing: `tensor[index]`, gather, index_select, scatter, scatter_add, index_add.

Basic indexing (ints, slices with steps, None, Ellipsis) is pure movement: a
SHRINK (start, stop, step per dim) followed by a RESHAPE that drops the
integer-indexed dims and inserts the None dims. No data is copied.

The index-driven ops are built on two IR primitives, so their gradients come
from the rule table in `lazygrad/ir/autodiff.py`:

* GATHER(src, index, axis): out[i][j] = src[index[i][j]][j] (for axis 0). A
  load at a computed place: it fuses into whatever kernel reads it.
  gather, index_select and indexing with integer tensors are gathers.
* SCATTER(base, index, src, axis, reduce): a copy of `base` with `src` written
  (reduce=None) or added (reduce='add') at the indexed places. A write at a
  computed place: always a kernel of its own. scatter, scatter_add and
  index_add are scatters.

Kernels check every index (a bad one is never read or written) and the
runtime raises after the launch: "index 5 is out of bounds for dimension 0
with size 3", as an error that is both an IndexError and a RuntimeError
(PyTorch raises one or the other depending on the op).
"""
from __future__ import annotations

import numpy as np

from .ir import dtypes
from .ir import node as N
from . import views

_TYPE_NAMES = {"float32": "Float", "float64": "Double", "int64": "Long", "int32": "Int", "bool": "Bool"}


def _expand_ellipsis(index: tuple, ndim: int) -> tuple:
    consumed = sum(1 for i in index if i is not None and i is not Ellipsis)
    if sum(1 for i in index if i is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if consumed > ndim:
        raise IndexError(f"too many indices for tensor of dimension {ndim}")
    out = []
    for item in index:
        if item is Ellipsis:
            out.extend([slice(None)] * (ndim - consumed))
        else:
            out.append(item)
    if Ellipsis not in index:
        out.extend([slice(None)] * (ndim - consumed))
    return tuple(out)


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def is_basic(index: tuple) -> bool:
    """True when every item is an int, a slice, None or Ellipsis (no tensors, lists or bools)."""
    return all(item is None or item is Ellipsis or isinstance(item, slice) or _is_int(item) for item in index)


def basic_bounds(shape, index: tuple):
    """For a basic index: per dim (start, stop, step), the result shape, and which dims were ints.

    `index` must have its ellipsis expanded. Raises PyTorch's errors for bad ints and steps.
    """
    bounds, out_shape, int_dims, dim = [], [], [], 0
    for item in index:
        if item is None:
            out_shape.append(1)
            continue
        size = shape[dim]
        if isinstance(item, slice):
            if item.step is not None and item.step <= 0:
                raise ValueError("step must be greater than zero")
            start, stop, step = item.indices(size)
            bounds.append((start, max(stop, start), step))
            out_shape.append(len(range(start, stop, step)))
        else:
            i = int(item)
            if i < -size or i >= size:
                raise IndexError(f"index {i} is out of bounds for dimension {dim} with size {size}")
            i %= size
            bounds.append((i, i + 1, 1))
            int_dims.append(dim)
        dim += 1
    return tuple(bounds), tuple(out_shape), int_dims


def getitem(t, index):
    from .tensor import Tensor
    if not isinstance(index, tuple):
        index = (index,)
    for item in index:
        if isinstance(item, (Tensor, list, np.ndarray, bool, np.bool_)):
            from .advanced_indexing import advanced_getitem
            return advanced_getitem(t, index)
        if not (item is None or item is Ellipsis or isinstance(item, slice) or _is_int(item)):
            raise IndexError("only integers, slices (`:`), ellipsis (`...`), None and long or byte Variables "
                             f"are valid indices (got {type(item).__name__})")
    index = _expand_ellipsis(index, t.ndim)
    bounds, shape, _ = basic_bounds(t.shape, index)
    out = t._shrink(bounds).reshape(shape)
    return views.link(out, t)  # a view: in-place ops on it write through to t (lazygrad/views.py)


def setitem(t, index, value):
    """t[index] = value, as an in-place op (see advanced_indexing.advanced_setitem)."""
    from .advanced_indexing import advanced_setitem
    advanced_setitem(t, index, value)


# ---- helpers shared by the index-driven ops ----

def as_tensor(x):
    from .tensor import Tensor, tensor
    return x if isinstance(x, Tensor) else tensor(x)


def _normalize_dim(dim, ndim):
    from .tensor import normalize_dim
    return normalize_dim(dim, ndim)


def _index_as_int64(index, op: str, expected: str = "int32/int64"):
    """An index tensor as int64 (the IR's index type); PyTorch's error for other dtypes."""
    index = as_tensor(index)
    if index.dtype not in (dtypes.int64, dtypes.int32):
        raise RuntimeError(f"{op}(): Expected dtype {expected} for index")
    return index if index.dtype is dtypes.int64 else index.long()


def _shape_list(shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _make_gather(input, dim: int, index):
    """Tensor of index's shape: out[..i..] = input[..index[..i..]..] along `dim` (shapes already checked)."""
    from .tensor import Tensor
    return Tensor._make(N.gather(input._node, index._node, dim), input, index)


def _make_scatter(base, dim: int, index, src, reduce):
    """A copy of `base` with `src` written (reduce None) or added (reduce 'add') at `index` along `dim`."""
    from .tensor import Tensor
    if index.numel() == 0:   # nothing written; still computed from src, as in PyTorch (requires grad when src does)
        out = Tensor._make(base._node, base, src)
        out._strides = base._strides
        return out
    return Tensor._make(N.scatter(base._node, index._node, src._node, dim, reduce), base, index, src)


# ---- gather / index_select ----

def gather(input, dim, index, sparse_grad: bool = False):
    """torch.gather: out[i][j] = input[index[i][j]][j] for dim=0 (and likewise for other dims)."""
    index = _index_as_int64(index, "gather")
    d = _normalize_dim(dim, input.ndim)
    if index.ndim != input.ndim and not (input.ndim <= 1 and index.ndim <= 1):
        raise RuntimeError("Index tensor must have the same number of dimensions as input tensor")
    if input.ndim == 0 or index.ndim == 0:  # a 0-d input or index: work on 1-d views
        out = gather(input.reshape(-1), 0, index.reshape(-1))
        return out.reshape(tuple(index.shape))
    for i in range(input.ndim):
        if i != d and index.shape[i] > input.shape[i]:
            raise RuntimeError(f"Size does not match at dimension {i} expected index {_shape_list(index.shape)} to be "
                               f"no larger than self {_shape_list(input.shape)} apart from dimension {d}")
    return _make_gather(input, d, index)


def index_select(input, dim, index):
    """torch.index_select: the slices input[..., index[k], ...] along `dim`, stacked in index order."""
    index = as_tensor(index)
    if index.ndim > 1:
        raise IndexError("index_select(): Index is supposed to be a vector")
    index = _index_as_int64(index, "index_select", "int32 or int64")
    if input.ndim == 0:
        return gather(input.reshape(1), 0, index.reshape(-1)).reshape(tuple(index.shape))
    d = _normalize_dim(dim, input.ndim)
    k = index.numel()
    out_shape = tuple(k if i == d else s for i, s in enumerate(input.shape))
    along = tuple(k if i == d else 1 for i in range(input.ndim))
    return _make_gather(input, d, index.reshape(along).expand(out_shape))


# ---- scatter family ----

def _check_scatter(op: str, input, d: int, index, src) -> None:
    if index.ndim != input.ndim and not (input.ndim <= 1 and index.ndim <= 1):
        raise RuntimeError("Index tensor must have the same number of dimensions as self tensor")
    if src is not None and src.ndim != index.ndim and not (src.ndim <= 1 and index.ndim <= 1):
        raise RuntimeError("Index tensor must have the same number of dimensions as src tensor")
    too_big_self = any(i != d and a > b for i, (a, b) in enumerate(zip(index.shape, input.shape)))
    too_big_src = src is not None and any(a > b for a, b in zip(index.shape, src.shape))
    if too_big_self or too_big_src:
        message = (f"Expected index {_shape_list(index.shape)} to be no larger than self "
                   f"{_shape_list(input.shape)} apart from dimension {d}")
        if src is not None:
            message += f" and to be no larger size than src {_shape_list(src.shape)}"
        raise RuntimeError(message)
    if src is not None and src.dtype is not input.dtype:
        raise RuntimeError(f"{op}(): Expected self.dtype to be equal to src.dtype")


def _scatter(op: str, input, dim, index, src, value, reduce):
    from .tensor import Tensor, _is_scalar
    index = _index_as_int64(index, op, "int64")
    d = _normalize_dim(dim, input.ndim)
    if src is not None and not isinstance(src, Tensor):
        if _is_scalar(src):
            src, value = None, src
        else:
            src = as_tensor(src)
    _check_scatter(op, input, d, index, src)
    if input.ndim == 0 or index.ndim == 0:  # 0-d operands: work on 1-d views
        flat_src = src.reshape(-1) if src is not None else None
        out = _scatter(op, input.reshape(-1), 0, index.reshape(-1), flat_src, value, reduce)
        return out.reshape(())
    if src is None:
        # a scalar value: a constant of the index's shape in the input's dtype (1.5 -> 1 for integers)
        src = Tensor._from_node(N.const(value, input.dtype, tuple(index.shape)))
    elif tuple(src.shape) != tuple(index.shape):
        # only src[:index.shape] is used: make that explicit, so the SCATTER's src has the index's shape
        src = src._shrink(tuple((0, s, 1) for s in index.shape))
    return _make_scatter(input, d, index, src, reduce)


def scatter(input, dim, index, src=None, value=None, reduce=None):
    """torch.scatter: a copy of input with input[index[i][j]][j] = src[i][j] (dim=0); src may be a number."""
    if src is None and value is None:
        raise TypeError("scatter() missing required argument: 'src' or 'value'")
    if reduce is not None:
        if reduce not in ("add", "multiply"):
            raise RuntimeError("reduce argument must be either add or multiply.")
        if reduce == "multiply":
            raise NotImplementedError("scatter(reduce='multiply') is not implemented in lazygrad "
                                      "(reduce='add' and scatter_add are)")
    return _scatter("scatter", input, dim, index, src, value, reduce)


def scatter_add(input, dim, index, src):
    """torch.scatter_add: a copy of input with input[index[i][j]][j] += src[i][j] (dim=0)."""
    from .tensor import Tensor
    if not isinstance(src, Tensor):
        raise TypeError(f"scatter_add(): argument 'src' (position 3) must be Tensor, not {type(src).__name__}")
    return _scatter("scatter_add", input, dim, index, src, None, "add")


def index_add(input, dim, index, source, alpha=1):
    """torch.index_add: a copy of input with input[..., index[k], ...] += alpha * source[..., k, ...]."""
    index = as_tensor(index)
    source = as_tensor(source)
    if index.ndim > 1:
        raise IndexError(f"index_add_(): Index is supposed to be a vector, but got dim: {index.ndim} with type: "
                         f"{_TYPE_NAMES[index.dtype.name]} and size: {_shape_list(index.shape)}")
    if index.dtype not in (dtypes.int64, dtypes.int32):
        raise RuntimeError(f"index_add_(): Expected dtype int32/int64 for index but got: "
                           f"{_TYPE_NAMES[index.dtype.name]}")
    if source.dtype is not input.dtype:
        raise RuntimeError(f"index_add_(): self ({_TYPE_NAMES[input.dtype.name]}) and source "
                           f"({_TYPE_NAMES[source.dtype.name]}) must have the same scalar type")
    if input.ndim == 0:
        return index_add(input.reshape(1), 0, index.reshape(-1), source.reshape(-1), alpha).reshape(())
    d = _normalize_dim(dim, input.ndim)
    src = source if source.ndim > 0 else source.reshape(1)
    if src.ndim != input.ndim or any(i != d and a != b for i, (a, b) in enumerate(zip(src.shape, input.shape))):
        raise RuntimeError(f"source tensor shape must match self tensor shape, excluding the specified dimension. "
                           f"Got self.shape = {_shape_list(input.shape)} source.shape = {_shape_list(source.shape)}")
    if index.numel() != src.shape[d]:
        raise RuntimeError(f"index_add_(): Number of indices ({index.numel()}) should be equal to "
                           f"source.size(dim): ({src.shape[d]}), for dim: {d}")
    index = index.long().reshape(tuple(index.numel() if i == d else 1 for i in range(input.ndim)))
    if alpha != 1:
        src = src * alpha
        if src.dtype is not input.dtype:
            src = src.to(input.dtype)
    return _make_scatter(input, d, index.expand(tuple(src.shape)), src, "add")


def masked_fill(input, mask, value):
    """torch.masked_fill: input where mask is False, value where it is True (mask broadcasts)."""
    from .tensor import Tensor, where
    mask = as_tensor(mask)
    if not mask.dtype.is_bool:
        raise RuntimeError(f"masked_fill_ only supports boolean masks, but got mask with dtype "
                           f"{mask.dtype.name if mask.dtype.name != 'int64' else 'long int'}")
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise RuntimeError(f"masked_fill_ only supports a 0-dimensional value tensor, but got tensor with "
                               f"{value.ndim} dimension(s).")
        value = value.to(input.dtype)
    else:
        value = Tensor._from_node(N.const(value, input.dtype, ()))
    out = where(mask, value, input)
    if tuple(out.shape) != tuple(input.shape):
        raise RuntimeError(f"masked_fill: the mask of shape {_shape_list(mask.shape)} cannot be broadcast to "
                           f"the input of shape {_shape_list(input.shape)}")
    return out
