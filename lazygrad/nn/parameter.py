"""`nn.Parameter`: a leaf tensor that a Module registers as one of its weights."""
from __future__ import annotations

import numpy as np

from .. import devices as _device
from ..ir import node as N
from ..ir.node import Buffer
from ..tensor import Tensor
from ..views import value_changed


def _data_of(value) -> np.ndarray:
    """The values of `value` as a host array (computing them first if they are lazy)."""
    if isinstance(value, Tensor):
        return value.detach()._host_array()
    if isinstance(value, np.ndarray):
        return value
    return np.asarray(value, dtype=np.float32)


class Parameter(Tensor):
    """A Tensor that requires grad and is registered by `Module.__setattr__`.

    `nn.Parameter(lazygrad.randn(3, 1))` holds the same values in a buffer of
    its own: gradients are found by IR node, so a parameter never shares its
    node with the tensor it was made from. (Buffers are never written in
    place, so sharing the memory itself is safe and nothing is copied.)
    """

    def __init__(self, data=None, requires_grad: bool = True):
        arr = np.zeros((0,), dtype=np.float32) if data is None else _data_of(data)
        self._init_from_array(arr, requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    __str__ = __repr__   # (print(param) shows the prefix too, as in PyTorch)

    def __reduce_ex__(self, protocol):
        return (Parameter, (self.detach().numpy().copy(), self.requires_grad))


def assign_data(tensor: Tensor, value, dtype=None) -> None:
    """Make `tensor` hold `value`'s data (in `dtype`) in a buffer of its own (load_state_dict, init, to())."""
    arr = _data_of(value)
    if tuple(arr.shape) != tuple(tensor.shape):
        raise RuntimeError(f"cannot assign data of shape {list(arr.shape)} to a tensor of shape {list(tensor.shape)}")
    dtype = dtype or tensor.dtype
    on_gpu = _device.state.cuda_used and tensor.is_cuda
    flat = np.ascontiguousarray(arr, dtype=dtype.np).reshape(-1)
    tensor._node = N.buffer(Buffer("cpu", dtype, flat.size, flat), tuple(arr.shape))
    if on_gpu:
        _device.place(tensor, "cuda")
    value_changed(tensor)   # (w.data given to an init function: w gets the values too; lazygrad/views.py)
