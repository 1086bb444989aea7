"""`tensor[index]`: basic indexing with ints, slices (with steps), None and Ellipsis.

Basic indexing is pure movement: a SHRINK (start, stop, step per dim)
followed by a RESHAPE that drops the integer-indexed dims and inserts the
None dims. No data is copied.
"""
from __future__ import annotations

import numpy as np


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
    bounds, shape, dim = [], [], 0
    for item in index:
        if item is None:
            shape.append(1)
            continue
        size = t.shape[dim]
        if isinstance(item, slice):
            if item.step is not None and item.step <= 0:
                raise ValueError("step must be greater than zero")
            start, stop, step = item.indices(size)
            bounds.append((start, max(stop, start), step))
            shape.append(len(range(start, stop, step)))
        else:
            i = int(item)
            if i < -size or i >= size:
                raise IndexError(f"index {i} is out of bounds for dimension {dim} with size {size}")
            i %= size
            bounds.append((i, i + 1, 1))
        dim += 1
    return t._shrink(tuple(bounds)).reshape(tuple(shape))


def setitem(t, index, value):
    """t[index] = value, as an in-place op: t becomes where(mask, value, t)."""
    from .advanced_indexing import advanced_setitem
    advanced_setitem(t, index, value)
