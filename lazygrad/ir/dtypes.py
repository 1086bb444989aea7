"""Data types and PyTorch's type-promotion rules.

A DType is a small immutable record. The five dtypes lazygrad supports are
module-level singletons, so dtypes compare with `is` (and `==`).
"""
from __future__ import annotations

import functools

import numpy as np


class DType:
    """One element type: its name, size in bytes and category.

    `category` orders the three kinds PyTorch promotes between:
    0 = bool, 1 = integer, 2 = floating point.
    """

    __slots__ = ("name", "itemsize", "category", "np")

    def __init__(self, name: str, itemsize: int, category: int, np_dtype):
        self.name = name
        self.itemsize = itemsize
        self.category = category
        self.np = np.dtype(np_dtype)

    @property
    def is_floating_point(self) -> bool:
        return self.category == 2

    @property
    def is_int(self) -> bool:
        return self.category == 1

    @property
    def is_bool(self) -> bool:
        return self.category == 0

    def __repr__(self) -> str:
        return f"lazygrad.{self.name}"

    def __reduce__(self):
        return (from_name, (self.name,))


bool_ = DType("bool", 1, 0, np.bool_)
int32 = DType("int32", 4, 1, np.int32)
int64 = DType("int64", 8, 1, np.int64)
float32 = DType("float32", 4, 2, np.float32)
float64 = DType("float64", 8, 2, np.float64)

ALL = (bool_, int32, int64, float32, float64)
_BY_NAME = {d.name: d for d in ALL}
_BY_NUMPY = {d.np: d for d in ALL}

default_float = float32


def from_name(name: str) -> DType:
    return _BY_NAME[name]


def from_numpy(np_dtype) -> DType:
    """The lazygrad dtype holding a NumPy dtype (smaller ints widen to int32/int64)."""
    np_dtype = np.dtype(np_dtype)
    if np_dtype in _BY_NUMPY:
        return _BY_NUMPY[np_dtype]
    if np_dtype.kind in "iu":
        return int64  # int8/int16/uint*: lazygrad has no narrow integer types, so widen
    if np_dtype.kind == "f":
        return float32 if np_dtype.itemsize <= 4 else float64
    raise TypeError(f"can't convert np.ndarray of type {np_dtype}. The only supported types are: "
                    "float64, float32, int64, int32, and bool.")


def promote(a: DType, b: DType) -> DType:
    """Promotion of two dtypes of the same priority (two tensors with dims)."""
    if a is b:
        return a
    if a.category != b.category:
        return a if a.category > b.category else b
    return a if a.itemsize >= b.itemsize else b


def scalar_dtype(value) -> DType:
    """The dtype PyTorch gives a Python number when it is wrapped into a tensor."""
    if isinstance(value, (bool, np.bool_)):
        return bool_
    if isinstance(value, (int, np.integer)):
        return int64
    if isinstance(value, (float, np.floating)):
        return default_float
    raise TypeError(f"unsupported scalar type {type(value).__name__}")


def _combine_categories(higher: DType | None, lower: DType | None) -> DType | None:
    """PyTorch's rule for letting a lower-priority operand change the result type.

    A lower-priority operand (a 0-d tensor or a Python number) only matters when
    its category is above the higher-priority operand's category.
    """
    if higher is None:
        return lower
    if lower is None:
        return higher
    if higher.is_floating_point:
        return higher
    if higher.is_bool or lower.is_floating_point:
        return promote(higher, lower)
    return higher


@functools.lru_cache(maxsize=None)
def result_type(*operands) -> DType:
    """PyTorch's `torch.result_type` for a mix of operands.

    Each operand is given as a pair (dtype, priority) with priority
    2 = tensor with dims, 1 = 0-d tensor, 0 = Python number.
    (Remembered per combination: there are few, and every binary op asks.)
    """
    by_priority: list[DType | None] = [None, None, None]
    for dtype, priority in operands:
        current = by_priority[priority]
        by_priority[priority] = dtype if current is None else promote(current, dtype)
    wrapped, zero_dim, dimmed = by_priority
    return _combine_categories(dimmed, _combine_categories(zero_dim, wrapped))
