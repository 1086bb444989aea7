"""Indexing with integer tensors, lists and boolean masks, and item assignment.

Reading (`t[idx]`) follows PyTorch:

1. ints, slices and None are applied first, as basic indexing (pure views);
2. every remaining index tensor (an integer tensor, a list, or the positions
   of a boolean mask) picks elements along one dim; the index tensors
   broadcast together to a shape B;
3. the result has B in place of the indexed dims when those were adjacent,
   else B comes first.

Step 2 is a chain of GATHERs, one per indexed dim, which all fuse into one
kernel. A boolean mask has a data-dependent number of True elements, so it is
turned into positions first, with kernels: the count (`mask.sum().item()`),
then a running count (a blocked prefix sum, `running_count`) that tells each
True element its slot, then a scatter of the element positions into those slots.

Writing (`t[idx] = v`) is an in-place op: t's node is rebound to a new graph.
  * ints/slices: `where(region_mask, v placed by padding, t)` (one fused kernel);
  * a mask with a broadcastable value: `where(mask, v, t)`;
  * anything else: a SCATTER of v at the flat positions the index selects.
"""
from __future__ import annotations

import math

import numpy as np

from .indexing import _expand_ellipsis, _is_int, as_tensor, basic_bounds, getitem, is_basic
from .ir import dtypes
from .ir import node as N
from .ir.ops import Op


def _shape_list(shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


# ---- turning index items into tensors ----

def _as_index_item(item):
    """Lists and arrays become tensors; tensors, ints, slices, None, Ellipsis and bools stay."""
    from .tensor import Tensor, tensor
    if isinstance(item, (list, tuple, np.ndarray)):
        item = tensor(item)
        if item.numel() == 0 and not item.dtype.is_bool:
            item = item.long()  # [] indexes nothing: an empty int64 index
    if isinstance(item, Tensor):
        if item.dtype.is_floating_point:
            raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
    return item


def _dims_consumed(item) -> int:
    from .tensor import Tensor
    if item is None or item is Ellipsis or isinstance(item, (bool, np.bool_)):
        return 0
    if isinstance(item, Tensor) and item.dtype.is_bool:
        return item.ndim
    return 1


def _expand_ellipsis_advanced(index: tuple, ndim: int) -> tuple:
    if sum(1 for i in index if i is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    consumed = sum(_dims_consumed(i) for i in index)
    if consumed > ndim:
        raise IndexError(f"too many indices for tensor of dimension {ndim}")
    out = []
    for item in index:
        if item is Ellipsis:
            out.extend([slice(None)] * (ndim - consumed))
        else:
            out.append(item)
    if not any(i is Ellipsis for i in index):
        out.extend([slice(None)] * (ndim - consumed))
    return tuple(out)


def mask_positions(mask):
    """The flat positions of the True elements of a bool tensor, in order, as an int64 tensor.

    The count is data-dependent, so it is computed first (one kernel, realised);
    the positions are then a scatter of arange(n) into slots given by the running
    count of True elements: slot = count so far - 1 for a True element, and a
    spare last slot, cut off afterwards, for every False one.
    """
    from .creation import arange, zeros
    from .tensor import where
    flat = mask.reshape(-1)
    n = flat.numel()
    count = int(flat.sum().item())
    if count == 0 or n == 0:
        return zeros(0, dtype=dtypes.int64, device=mask.device)
    slots = where(flat, running_count(flat) - 1, count)       # int64, in [0, count]
    positions = zeros(count + 1, dtype=dtypes.int64, device=mask.device).scatter(0, slots,
                                                                                arange(n, device=mask.device))
    return positions[:count]


BLOCK = 64  # running_count's block size


def running_count(flat):
    """Inclusive prefix sum of a 1-D bool/int tensor, as int64, in O(n) work instead of cumsum's O(n^2).

    A prefix sum is not a primitive, and the direct formula (out[i] = sum over
    j <= i, a masked sum) costs n*n. Blocking brings that down: cut the n values
    into blocks of BLOCK, take the masked-sum prefix inside each block (BLOCK
    work per element), and add to each block the total of the blocks before it,
    which is the same problem on n / BLOCK block totals (recursively).
    """
    x = flat.long()
    n = x.shape[0]
    if n <= BLOCK:
        return x.cumsum(0)
    blocks = -(-n // BLOCK)
    padded = x.pad((0, blocks * BLOCK - n)).reshape(blocks, BLOCK)
    inside = padded.cumsum(1)                                   # prefix within each block
    totals = inside[:, BLOCK - 1]
    before = running_count(totals) - totals                     # total of the blocks before each block
    out = (inside + before.unsqueeze(1)).reshape(blocks * BLOCK)
    return out[:n] if blocks * BLOCK != n else out


def nonzero(input, as_tuple: bool = False):
    """torch.nonzero: the coordinates of the nonzero elements, one row per element (or one tensor per dim)."""
    mask = input if input.dtype.is_bool else input != 0
    flat = mask_positions(mask)
    coords = []
    rest = flat
    for size in reversed(tuple(input.shape)):
        coords.append(rest % size if size > 0 else rest)
        rest = rest // max(size, 1)
    coords = list(reversed(coords))
    if as_tuple:
        return tuple(coords) if coords else (flat,)
    from .shape_ops import stack
    if not coords:
        return flat.reshape(-1, 0)
    return stack(coords, 1)


def masked_select(input, mask):
    """torch.masked_select: the elements where mask (broadcast) is True, as a 1-D tensor."""
    from .tensor import broadcast_shapes
    mask = as_tensor(mask)
    if not mask.dtype.is_bool:
        raise RuntimeError("masked_select: expected BoolTensor for mask")
    shape = broadcast_shapes(tuple(input.shape), tuple(mask.shape))
    return input.expand(shape)[mask.expand(shape)]


# ---- reading ----

def advanced_getitem(t, index: tuple):
    from .tensor import Tensor, broadcast_shapes
    index = tuple(_as_index_item(i) for i in index)
    index = _expand_ellipsis_advanced(index, t.ndim)
    basic, advanced = [], []  # advanced: (dim in the basic result, int64 tensor or ("mask", tensor))
    in_dim = out_dim = 0      # the dim of t, and of the basic result, the next item applies to
    for item in index:
        if isinstance(item, Tensor) and item.ndim == 0 and item.dtype.is_bool:
            item = bool(item.item())
        if item is None:
            basic.append(None)
            out_dim += 1
        elif isinstance(item, (bool, np.bool_)):
            # t[True] adds a dim of size 1; t[False] adds an empty one
            basic.append(None)
            advanced.append((out_dim, Tensor._from_node(N.const(0, dtypes.int64, (1 if item else 0,)))))
            out_dim += 1
        elif isinstance(item, slice) or _is_int(item):
            basic.append(item)
            out_dim += 0 if _is_int(item) else 1
            in_dim += 1
        elif isinstance(item, Tensor) and item.dtype.is_bool:
            k = item.ndim
            covered = tuple(t.shape[in_dim:in_dim + k])
            if tuple(item.shape) != covered:
                raise IndexError(f"The shape of the mask {_shape_list(item.shape)} at index {in_dim} does not match "
                                 f"the shape of the indexed tensor {_shape_list(t.shape)} at index {in_dim}")
            basic.extend([slice(None)] * k)
            advanced.append((out_dim, ("mask", item)))
            out_dim += k
            in_dim += k
        elif isinstance(item, Tensor):
            basic.append(slice(None))
            advanced.append((out_dim, item if item.dtype is dtypes.int64 else item.long()))
            out_dim += 1
            in_dim += 1
        else:
            raise IndexError("only integers, slices (`:`), ellipsis (`...`), None and long or byte Variables "
                             f"are valid indices (got {type(item).__name__})")
    y = getitem(t, tuple(basic))
    # a k-dim mask indexes its k dims flattened into one, by the True elements' flat positions
    entries, shift = [], 0
    for dim, idx in advanced:
        dim -= shift
        if isinstance(idx, tuple):
            mask = idx[1]
            k = max(mask.ndim, 1)
            if mask.ndim == 0:
                raise AssertionError("0-d masks are handled as Python bools")
            y = y.flatten(dim, dim + k - 1) if k > 1 else y
            idx = mask_positions(mask)
            shift += k - 1
        entries.append((dim, idx))
    shapes = [tuple(i.shape) for _, i in entries]
    try:
        b_shape = ()
        for s in shapes:
            b_shape = broadcast_shapes(b_shape, s)
    except RuntimeError:
        raise IndexError("shape mismatch: indexing tensors could not be broadcast together with shapes "
                         + ", ".join(_shape_list(s) for s in shapes)) from None
    return _gather_chain(y, entries, b_shape)


def _gather_chain(y, entries, b_shape):
    """y indexed by several int64 tensors, one per dim (entries: [(dim, index)]), broadcast to b_shape.

    Flatten the broadcast index shape into P positions. The first gather, along
    the first indexed dim d1, turns that dim into P; each later gather, along
    its dim d, reads at [.., p (at d1), .., index[p] (at d), ..] and leaves a
    dim of size 1 behind. One fused kernel, each gather bounds-checked.
    """
    from .tensor import where
    P = math.prod(b_shape)
    dims = [d for d, _ in entries]
    d1 = dims[0]
    cur = y
    for k, (d, idx) in enumerate(entries):
        size = y.shape[d]
        flat = idx.expand(b_shape).reshape(P) if b_shape else idx.reshape(1)
        flat = where(flat < 0, flat + size, flat)                 # negative indices count from the end
        shape = [1] * cur.ndim
        shape[d1] = P
        target = list(cur.shape)
        target[d1] = P
        if k > 0:
            target[d] = 1
        index = flat.reshape(tuple(shape)).expand(tuple(target))
        cur = _gather_node(cur, d, index)
    # drop the size-1 dims left by the later gathers
    keep = [i for i in range(cur.ndim) if i == d1 or i not in dims]
    cur = cur.reshape(tuple(cur.shape[i] for i in keep))
    adjacent = sorted(dims) == list(range(min(dims), min(dims) + len(dims)))
    pos = keep.index(d1)
    if not adjacent:  # PyTorch (and NumPy): the broadcast index dims go first
        cur = cur.movedim(pos, 0)
        pos = 0
    return cur.reshape(tuple(cur.shape[:pos]) + tuple(b_shape) + tuple(cur.shape[pos + 1:]))


def _gather_node(src, axis, index):
    from .tensor import Tensor
    return Tensor._make(N.gather(src._node, index._node, axis), src, index)


# ---- writing ----

def check_view_inplace(view) -> None:
    """PyTorch refuses in-place ops on a view of a leaf that requires grad."""
    from .autograd_state import is_grad_enabled
    if not view.requires_grad:
        return   # a detached view (w.data, w.detach()): PyTorch lets it write into the leaf
    base = view._view_of[0]
    while base._view_of is not None:
        base = base._view_of[0]
    if base.requires_grad and base.is_leaf and is_grad_enabled():
        raise RuntimeError("a view of a leaf Variable that requires grad is being used in an in-place operation.")


def advanced_setitem(t, index, value):
    """t[index] = value: t's node is rebound to a graph holding the new values (PyTorch's in-place semantics)."""
    from .tensor import Tensor
    if not isinstance(index, tuple):
        index = (index,)
    value = value if isinstance(value, Tensor) else as_tensor(value)
    value = value.to(t.dtype)
    # (no overlap check on t itself: PyTorch writes into the indexed part of an expanded tensor)
    if is_basic(index):
        return t._inplace(_set_basic(t, index, value), check_overlap=False)
    items = tuple(_as_index_item(i) for i in index)
    if len(items) == 1 and isinstance(items[0], Tensor) and items[0].dtype.is_bool and items[0].ndim > 0:
        result = _set_mask(t, items[0], value)
        if result is not None:
            return t._inplace(result, check_overlap=False)
    return t._inplace(_set_scatter(t, items, value), check_overlap=False)


def _broadcast_value(value, shape):
    try:
        return value.expand(shape) if tuple(value.shape) != tuple(shape) else value
    except RuntimeError:
        raise RuntimeError(f"shape mismatch: value tensor of shape {_shape_list(value.shape)} cannot be broadcast "
                           f"to indexing result of shape {_shape_list(shape)}") from None


def _set_basic(t, index, value):
    """where(region, value placed into t's shape, t) for an index of ints, slices, None and Ellipsis."""
    from .tensor import Tensor
    index = _expand_ellipsis(index, t.ndim)
    bounds, region_shape, _ = basic_bounds(t.shape, index)
    if math.prod(region_shape) == 0:   # nothing written; requires grad when value does, as in PyTorch
        out = Tensor._make(t._node, t, value)
        out._strides = t._strides
        return out
    value = value.expand(region_shape)  # PyTorch copies into the view: expand's error on a mismatch
    # one entry per dim of t: the number of elements the index selects there
    counts = tuple(len(range(start, stop, step)) for start, stop, step in bounds)
    return place_into(t, value.reshape(counts), bounds)


def place_into(t, x, bounds):
    """where(region, x placed at the positions `bounds` select, t): t with x written into that region.

    x has one element per selected position (its shape is the count per dim).
    Also how a write into a sliced view reaches its base (lazygrad/views.py).
    """
    from .tensor import Tensor, where
    shape = tuple(t.shape)
    placed = _place(x, bounds, shape)
    region = _place(Tensor._from_node(N.const(True, dtypes.bool_, tuple(x.shape))), bounds, shape)
    return where(region, placed, t)


def _place(x, bounds, shape):
    """Put x (one element per selected position) where `bounds` selected them in a tensor of `shape`.

    Movement only: a step k is undone by padding each element with k-1 zeros
    (unsqueeze, pad, reshape, shrink); then a PAD moves the block to its start.
    """
    for d, (start, stop, step) in enumerate(bounds):
        m = x.shape[d]
        if step > 1 and m > 1:
            shp = list(x.shape)
            x = x.reshape(tuple(shp[:d + 1]) + (1,) + tuple(shp[d + 1:]))
            pad = [(0, 0)] * x.ndim
            pad[d + 1] = (0, step - 1)
            x = x._movement(Op.PAD, tuple(pad))
            x = x.reshape(tuple(shp[:d]) + (m * step,) + tuple(shp[d + 1:]))
            x = x._shrink(tuple((0, (m - 1) * step + 1, 1) if i == d else (0, s, 1) for i, s in enumerate(x.shape)))
        length = x.shape[d]
        pad = [(0, 0)] * x.ndim
        pad[d] = (start, shape[d] - start - length)
        if pad[d] != (0, 0):
            x = x._movement(Op.PAD, tuple(pad))
    return x


def _set_mask(t, mask, value):
    """t[mask] = value as where(mask, value, t) when value broadcasts over the selected elements; else None."""
    from .tensor import where
    k = mask.ndim
    if tuple(mask.shape) != tuple(t.shape[:k]):
        raise IndexError(f"The shape of the mask {_shape_list(mask.shape)} at index 0 does not match the shape of "
                         f"the indexed tensor {_shape_list(t.shape)} at index 0")
    rest = tuple(t.shape[k:])
    # the value must broadcast to (count, *rest); when its count dim is absent or 1, it is the same everywhere
    if value.ndim > len(rest) + 1 or (value.ndim == len(rest) + 1 and value.shape[0] != 1):
        return None
    v = value.reshape(tuple(value.shape[1:])) if value.ndim == len(rest) + 1 else value
    try:
        v = v.expand(rest) if rest else v.reshape(())
    except RuntimeError:
        raise RuntimeError(f"shape mismatch: value tensor of shape {_shape_list(value.shape)} cannot be broadcast "
                           f"to indexing result of shape {_shape_list(('N',) + rest)}") from None
    m = mask.reshape(tuple(mask.shape) + (1,) * len(rest))
    return where(m, v, t)


def _set_scatter(t, items, value):
    """The general case: scatter value into t's flat positions, found by indexing arange(numel)."""
    from .creation import arange
    positions = arange(t.numel()).reshape(tuple(t.shape))[items]
    value = _broadcast_value(value, tuple(positions.shape))
    flat = t.reshape(-1)
    if positions.numel() == 0:   # (as in _set_basic)
        from .tensor import Tensor
        out = Tensor._make(t._node, t, value)
        out._strides = t._strides
        return out
    out = flat.scatter(0, positions.reshape(-1), value.reshape(-1))
    return out.reshape(tuple(t.shape))
