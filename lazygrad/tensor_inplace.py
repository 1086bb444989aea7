"""Tensor's in-place methods: add_, mul_, fill_, copy_, uniform_, x += y, scatter_, ...

An in-place op computes the new value lazily like any other op, then rebinds
the tensor to it (`Tensor._assign`): every holder of the tensor object sees the
new value, and so do its views and its base (`_view_sharing.value_changed`).
`_inplace` refuses what PyTorch refuses (a leaf requiring grad, writes into an
expanded view, a result that would not fit the tensor's shape or dtype).

`InPlaceMethods` is one of the classes that `Tensor` (lazygrad/tensor.py) inherits.
"""
from __future__ import annotations

from . import devices as _device
from . import strides as _strides_mod
from . import views as _view_sharing
from .autograd_state import is_grad_enabled
from .ir import node as N
from .ir.node import Buffer
from .tensor_shape import _shape_str

# Tensor, Size and the tensor() factory are defined in lazygrad/tensor.py, which imports this
# module before it defines them (class Tensor inherits the methods below). They are used only
# when a method runs, and tensor.py fills them in here as soon as they exist.
Tensor = Size = tensor = None


class InPlaceMethods:
    """Tensor's in-place methods (class Tensor in lazygrad/tensor.py inherits them)."""

    # ---- in-place versions (they rebind this tensor's value) ----
    def _inplace(self, result: "Tensor", check_overlap: bool = True) -> "Tensor":
        if self.requires_grad and self.is_leaf and is_grad_enabled():
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
        if check_overlap and self._strides is not None and self.numel() > 0 and \
                any(st == 0 and sz > 1 for sz, st in zip(self.shape, _strides_mod.strides_of(self))):
            # an expanded view: PyTorch refuses to write where several elements share one location
            raise RuntimeError("unsupported operation: more than one element of the written-to tensor refers to a "
                               "single memory location. Please clone() the tensor before performing the operation.")
        if self._view_of is not None:
            from .advanced_indexing import check_view_inplace
            check_view_inplace(self)
        if tuple(result.shape) != tuple(self.shape):
            raise RuntimeError(f"output with shape {_shape_str(self.shape)} doesn't match the broadcast shape "
                               f"{_shape_str(result.shape)}")
        if not self.dtype.is_floating_point and result.dtype.is_floating_point:
            raise RuntimeError(f"result type Float can't be cast to the desired output type "
                               f"{ {'int64': 'Long', 'int32': 'Int', 'bool': 'Bool'}[self.dtype.name] }")
        self._assign(result._node)
        if result.requires_grad:
            self._requires_grad = True
            self._is_leaf = False
        _view_sharing.value_changed(self)   # x[0] += 1 changes x, x += 1 changes x[0], as in PyTorch
        return self

    def add_(self, other, alpha=1):
        return self._inplace(self.add(other, alpha=alpha))

    def sub_(self, other, alpha=1):
        return self._inplace(self.sub(other, alpha=alpha))

    def mul_(self, other):
        return self._inplace(self.mul(other))

    def div_(self, other):
        return self._inplace(self.div(other))

    def clamp_(self, min=None, max=None):
        return self._inplace(self.clamp(min, max))

    def relu_(self):
        return self._inplace(self.relu())

    def neg_(self):
        return self._inplace(self.neg())

    def pow_(self, e):
        return self._inplace(self.pow(e))

    def exp_(self):
        return self._inplace(self.exp())

    def sqrt_(self):
        return self._inplace(self.sqrt())

    def __iadd__(self, other):
        return self.add_(other)

    def __isub__(self, other):
        return self.sub_(other)

    def __imul__(self, other):
        return self.mul_(other)

    def __itruediv__(self, other):
        return self.div_(other)

    def zero_(self):
        return self.fill_(0)

    def fill_(self, value):  # (allowed on an expanded view, as in PyTorch: every element gets the same value)
        if isinstance(value, Tensor):
            return self._inplace(value.to(self.dtype).expand(self.shape), check_overlap=False)
        return self._inplace(self._const_like(value), check_overlap=False)

    def copy_(self, src):
        if src is self:
            return self   # (PyTorch returns before any check when source and destination are one memory)
        src = src if isinstance(src, Tensor) else tensor(src)
        try:
            value = src.to(self.dtype).expand(self.shape)
        except RuntimeError:
            raise RuntimeError(f"copy_: the src tensor of shape {_shape_str(src.shape)} cannot be broadcast to "
                               f"the destination shape {_shape_str(self.shape)}") from None
        out = self._inplace(Tensor._make(value._node, src))
        return out

    def _host_data(self, arr) -> "Tensor":
        """A tensor holding a host array's data (random fills), on this tensor's device."""
        data = Tensor._from_node(N.buffer(Buffer("cpu", self.dtype, arr.size, arr.reshape(-1)), tuple(self.shape)))
        return _device.place(data, "cuda") if self.is_cuda else data

    def uniform_(self, a: float = 0.0, b: float = 1.0):
        from .random import uniform_array
        arr = uniform_array(tuple(self.shape), a, b, self.dtype)
        return self._inplace(self._host_data(arr))

    def normal_(self, mean: float = 0.0, std: float = 1.0):
        from .random import normal_array
        arr = normal_array(tuple(self.shape), mean, std, self.dtype)
        return self._inplace(self._host_data(arr))

    # ---- in-place indexing ops (the ops themselves: lazygrad/indexing.py) ----
    def scatter_(self, dim, index, src=None, value=None, reduce=None):
        return self._inplace(self.scatter(dim, index, src, value=value, reduce=reduce))

    def scatter_add_(self, dim, index, src):
        return self._inplace(self.scatter_add(dim, index, src))

    def index_add_(self, dim, index, source, alpha=1):
        return self._inplace(self.index_add(dim, index, source, alpha=alpha))

    def masked_fill_(self, mask, value):
        return self._inplace(self.masked_fill(mask, value))
