"""Factory functions: zeros, ones, full, arange, eye, rand, randn, ...

Constant-filled tensors are lazy CONST nodes (no memory until used). Tensors
holding data (arange, eye, random numbers) get a fresh buffer filled on the
host: that is input data, not a computation on tensors.
"""
from __future__ import annotations

import math

import numpy as np

from . import devices as _device
from . import random as _random
from .ir import dtypes
from .ir import node as N
from .ir.dtypes import DType
from .ir.node import Buffer


def _size(args) -> tuple:
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = tuple(args[0])
    shape = tuple(int(a) for a in args)
    for s in shape:
        if s < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {s}: {list(shape)}")
    return shape


def _from_array(arr: np.ndarray, requires_grad: bool = False, device=None):
    from .tensor import Tensor
    t = object.__new__(Tensor)
    t._init_from_array(arr, requires_grad and device is None)
    if device is not None:  # host data copied to the device (before autograd registers the leaf)
        _device.place(t, device, requires_grad)
    return t


def full(size, fill_value, dtype: DType | None = None, device=None, requires_grad: bool = False):
    from .tensor import Tensor
    _device.normalize(device)
    shape = _size((size,) if isinstance(size, int) else (tuple(size),))
    dtype = dtype or dtypes.scalar_dtype(fill_value)
    t = Tensor._from_node(N.const(fill_value, dtype, shape))
    if requires_grad:
        t = _from_array(np.full(shape, fill_value, dtype=dtype.np), True, device)
    elif device is not None:
        _device.place(t, device)  # on a GPU: filled there by a kernel
    return t


def zeros(*size, dtype: DType | None = None, device=None, requires_grad: bool = False):
    return full(_size(size), 0, dtype or dtypes.default_float, device, requires_grad)


def ones(*size, dtype: DType | None = None, device=None, requires_grad: bool = False):
    return full(_size(size), 1, dtype or dtypes.default_float, device, requires_grad)


def empty(*size, dtype: DType | None = None, device=None, requires_grad: bool = False):
    return zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)


def zeros_like(t, dtype: DType | None = None, device=None, requires_grad: bool = False):
    return full(tuple(t.shape), 0, dtype or t.dtype, device if device is not None else _like_device(t),
                requires_grad)


def ones_like(t, dtype: DType | None = None, device=None, requires_grad: bool = False):
    return full(tuple(t.shape), 1, dtype or t.dtype, device if device is not None else _like_device(t),
                requires_grad)


def full_like(t, fill_value, dtype: DType | None = None, device=None, requires_grad: bool = False):
    return full(tuple(t.shape), fill_value, dtype or t.dtype, device if device is not None else _like_device(t),
                requires_grad)


def empty_like(t, dtype: DType | None = None, device=None, requires_grad: bool = False):
    return zeros_like(t, dtype, device, requires_grad)


def _like_device(t):
    """The device of `t` for the *_like factories (None: the CPU, without looking)."""
    return t.device if _device.state.cuda_used else None


def arange(start, end=None, step=1, dtype: DType | None = None, device=None, requires_grad: bool = False):
    _device.normalize(device)
    if end is None:
        start, end = 0, start
    if step == 0:
        raise RuntimeError("step must be nonzero")
    values = (start, end, step)
    if dtype is None:
        dtype = dtypes.default_float if any(isinstance(v, float) for v in values) else dtypes.int64
    count = max(0, math.ceil((end - start) / step))
    arr = (start + step * np.arange(count, dtype=np.float64 if dtype.is_floating_point else np.int64))
    return _from_array(arr.astype(dtype.np), requires_grad, device)


def linspace(start, end, steps: int, dtype: DType | None = None, device=None, requires_grad: bool = False):
    _device.normalize(device)
    dtype = dtype or dtypes.default_float
    return _from_array(np.linspace(start, end, int(steps)).astype(dtype.np), requires_grad, device)


def eye(n: int, m: int | None = None, dtype: DType | None = None, device=None, requires_grad: bool = False):
    _device.normalize(device)
    dtype = dtype or dtypes.default_float
    return _from_array(np.eye(n, m if m is not None else n, dtype=dtype.np), requires_grad, device)


def rand(*size, dtype: DType | None = None, device=None, requires_grad: bool = False, generator=None):
    _device.normalize(device)
    dtype = dtype or dtypes.default_float
    return _from_array(_random.uniform_array(_size(size), 0.0, 1.0, dtype), requires_grad, device)


def randn(*size, dtype: DType | None = None, device=None, requires_grad: bool = False, generator=None):
    _device.normalize(device)
    dtype = dtype or dtypes.default_float
    return _from_array(_random.normal_array(_size(size), 0.0, 1.0, dtype), requires_grad, device)


def randint(low, high=None, size=(), dtype: DType | None = None, device=None, generator=None):
    _device.normalize(device)
    if high is None:
        low, high = 0, low
    return _from_array(_random.integers_array(_size((size,)), low, high, dtype or dtypes.int64), False, device)


def randperm(n: int, dtype: DType | None = None, device=None):
    _device.normalize(device)
    return _from_array(_random.permutation_array(n).astype((dtype or dtypes.int64).np), False, device)


def rand_like(t, dtype: DType | None = None, device=None):
    return rand(tuple(t.shape), dtype=dtype or t.dtype, device=device if device is not None else _like_device(t))


def randn_like(t, dtype: DType | None = None, device=None):
    return randn(tuple(t.shape), dtype=dtype or t.dtype, device=device if device is not None else _like_device(t))


def from_numpy(arr: np.ndarray):
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(arr).__name__})")
    return _from_array(np.array(arr, dtype=dtypes.from_numpy(arr.dtype).np, order="C", copy=True))


def as_tensor(data, dtype: DType | None = None, device=None):
    from .tensor import Tensor, tensor
    if isinstance(data, Tensor):
        return data if dtype is None else data.to(dtype)
    return tensor(data, dtype=dtype, device=device)


def FloatTensor(*args):
    from .tensor import Tensor
    return Tensor(*args, dtype=dtypes.float32)


def DoubleTensor(*args):
    from .tensor import Tensor
    return Tensor(*args, dtype=dtypes.float64)


def LongTensor(*args):
    from .tensor import Tensor
    return Tensor(*args, dtype=dtypes.int64)


def IntTensor(*args):
    from .tensor import Tensor
    return Tensor(*args, dtype=dtypes.int32)


def BoolTensor(*args):
    from .tensor import Tensor
    return Tensor(*args, dtype=dtypes.bool_)
