"""The Tensor: PyTorch's API over a lazy IR graph.

A Tensor holds one IR node. Operations build new nodes and return new
Tensors; nothing is computed until a value is needed (`numpy()`, `item()`,
`tolist()`, `print`, `realize()`, `backward()`). Every composite operation
(sigmoid, mean, softmax, ...) is written as a composition of the IR's
primitives, so its gradient, fusion and code generation come for free.

This file holds the Tensor itself: construction, attributes, autograd flags,
conversion, printing and realisation, and `_make`, which every operation uses
to wrap its result. The operations are methods that `Tensor` inherits, one
file per concern:

    tensor_math.py     elementwise arithmetic and math (+, *, exp, sigmoid, ...), promotion, broadcasting, where
    tensor_compare.py  comparisons and logic (<, ==, isnan, logical_and, &, allclose, ...)
    tensor_reduce.py   reductions (sum, mean, var, max, argmax, prod, all, cumsum, ...)
    tensor_shape.py    movement and views (reshape, view, permute, expand, pad, ...), indexing
    tensor_inplace.py  in-place ops (add_, fill_, copy_, x += y, ...)
"""
from __future__ import annotations

import math

import numpy as np

from . import devices as _device
from . import printing
from . import strides as _strides_mod
from .autograd_state import is_grad_enabled
from .ir import dtypes
from .ir import node as N
from .ir.dtypes import DType
from .ir.node import Buffer, Node
from .ir.ops import Op, ELEMENTWISE as _ELEMENTWISE
from .runtime import realize as _realize
from . import autograd as _autograd
from . import views as _view_sharing
from . import grad_fn as _grad_fn
from .ir.autodiff import stop_gradient
# the operations, one file per concern: Tensor inherits their methods
from . import tensor_compare, tensor_inplace, tensor_math, tensor_reduce, tensor_shape
from .tensor_compare import ComparisonMethods
from .tensor_inplace import InPlaceMethods
from .tensor_math import MathMethods, _is_scalar
from .tensor_reduce import ReductionMethods
from .tensor_shape import ShapeMethods, _shape_str, normalize_dim
# defined with the methods that use them, and importable from here too (lazygrad/__init__.py, linalg.py, ...)
from .tensor_compare import isclose  # noqa: F401
from .tensor_math import _broadcast_node, broadcast_shapes, where  # noqa: F401
from .tensor_reduce import return_types  # noqa: F401
from .tensor_shape import _shape_args  # noqa: F401

_BUFFER = Op.BUFFER   # (read once: see the note in tensor_math.py)


# ---- host data for new tensors: Tensor(data), tensor(data) ----

def _infer_list(data, depth: int = 0):
    """Shape and element kind of a nested Python list, rejecting ragged or non-numeric ones."""
    if isinstance(data, (list, tuple)):
        if len(data) == 0:
            return (0,), None
        shapes_kinds = [_infer_list(d, depth + 1) for d in data]
        first = shapes_kinds[0][0]
        for s, _ in shapes_kinds:
            if s != first:  # ragged: name the first dim (counted from the outermost list) where lengths differ
                for k, (want, got) in enumerate(zip(first, s)):
                    if want != got:
                        raise ValueError(f"expected sequence of length {want} at dim {depth + k + 1} (got {got})")
                raise ValueError(f"ragged nested sequence: numbers and sequences are mixed at dim "
                                 f"{depth + min(len(s), len(first)) + 1}")
        kinds = {k for _, k in shapes_kinds if k is not None}
        kind = "float" if "float" in kinds else ("int" if "int" in kinds else ("bool" if kinds else None))
        return (len(data),) + first, kind
    if isinstance(data, Tensor):
        if data.ndim != 0:
            return tuple(data.shape), "float" if data.dtype.is_floating_point else "int"
        return (), "float" if data.dtype.is_floating_point else ("bool" if data.dtype.is_bool else "int")
    if isinstance(data, (bool, np.bool_)):
        return (), "bool"
    if isinstance(data, (int, np.integer)):
        return (), "int"
    if isinstance(data, (float, np.floating)):
        return (), "float"
    raise TypeError(f"new(): invalid data type '{type(data).__name__}'")


def _to_numpy_data(data, dtype: DType | None) -> np.ndarray:
    """Host data for a new tensor, with PyTorch's dtype inference."""
    if isinstance(data, Tensor):
        arr = data.numpy()
        return arr.astype((dtype or data.dtype).np, copy=True)
    if isinstance(data, np.ndarray):
        inferred = dtypes.from_numpy(data.dtype)
        return np.array(data, dtype=(dtype or inferred).np, order="C", copy=True)
    if _is_scalar(data):
        inferred = dtypes.scalar_dtype(data)
        return np.array(data, dtype=(dtype or inferred).np)
    if isinstance(data, (list, tuple)):
        shape, kind = _infer_list(data)
        inferred = {"float": dtypes.default_float, "int": dtypes.int64, "bool": dtypes.bool_,
                    None: dtypes.default_float}[kind]
        flat = _flatten_list(data)
        arr = np.array(flat, dtype=(dtype or inferred).np).reshape(shape)
        return arr
    raise TypeError(f"tensor(): could not infer dtype of {type(data).__name__}")


def _flatten_list(data) -> list:
    out = []
    stack = [data]
    while stack:
        d = stack.pop()
        if isinstance(d, (list, tuple)):
            stack.extend(reversed(d))
        elif isinstance(d, Tensor):
            out.extend(np.asarray(d.numpy()).reshape(-1).tolist())
        else:
            out.append(d)
    return out


class Tensor(MathMethods, ComparisonMethods, ReductionMethods, ShapeMethods, InPlaceMethods):
    """A lazily evaluated n-dimensional array with PyTorch's interface.

    This class holds what makes a tensor (its node, attributes, autograd flags, conversion
    and realisation); the operations are inherited, one file per concern (see the module
    docstring).
    """

    __array_priority__ = 1000  # NumPy scalars on the left defer to our operators
    _strides = None  # the strides PyTorch would report; None = contiguous, or a strides.Deferred (lazygrad/strides.py)
    # Views share values with their base, as PyTorch's share memory (lazygrad/views.py):
    _view_of = None  # (base, steps) for a view: in-place ops on it write through to base
    _views = None    # weak references to the views taken from this tensor: refreshed when it changes

    def __init__(self, *args, dtype: DType | None = None, device=None, requires_grad: bool = False):
        # torch.Tensor(data) is float32; torch.Tensor(2, 3) is an uninitialised 2x3 float32 tensor
        _device.normalize(device)
        if len(args) == 1 and not isinstance(args[0], (int, np.integer)):
            arr = _to_numpy_data(args[0], dtype or dtypes.default_float)
        else:
            shape = tuple(int(a) for a in (args[0] if len(args) == 1 and isinstance(args[0], tuple) else args))
            arr = np.zeros(shape, dtype=(dtype or dtypes.default_float).np)
        self._init_from_array(arr, requires_grad and device is None)
        if device is not None:
            _device.place(self, device, requires_grad)

    def _init_from_array(self, arr: np.ndarray, requires_grad: bool) -> None:
        arr = np.array(arr, order="C", copy=False) if arr.flags.c_contiguous else np.array(arr, order="C")
        dtype = dtypes.from_numpy(arr.dtype)
        buf = Buffer("cpu", dtype, arr.size, arr.reshape(-1))
        self._node = N.buffer(buf, arr.shape)
        self.grad = None
        self._requires_grad = False
        self._is_leaf = True
        self._version = 0
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _from_node(cls, node: Node, requires_grad: bool = False) -> "Tensor":
        t = object.__new__(Tensor)
        t._node = node
        t.grad = None
        t._requires_grad = bool(requires_grad)
        t._is_leaf = not requires_grad
        t._version = 0
        return t

    # ---- the node (rebinding it is how in-place ops work) ----
    @property
    def node(self) -> Node:
        return self._node

    def _assign(self, node: Node) -> "Tensor":
        """Make this tensor hold a new value (in-place ops); every holder of the object sees it."""
        if node.shape != self._node.shape:
            raise RuntimeError(f"in-place result of shape {_shape_str(node.shape)} doesn't match "
                               f"the tensor's shape {_shape_str(self.shape)}")
        if node.dtype is not self.dtype:
            node = N.cast(node, self.dtype)
        previous = self._node
        self._node = node
        self._version += 1
        if self._requires_grad and self._is_leaf:   # (under no_grad: e.g. a hand-written SGD step)
            _autograd.keep_leaf_value_its_own(self, previous)
        return self

    # ---- attributes ----
    @property
    def shape(self) -> "Size":
        return Size(self._node.shape)

    def size(self, dim: int | None = None):
        if dim is None:
            return Size(self._node.shape)
        return self._node.shape[normalize_dim(dim, self.ndim)]

    def dim(self) -> int:
        return len(self._node.shape)

    ndimension = dim

    @property
    def ndim(self) -> int:
        return len(self._node.shape)

    @property
    def dtype(self) -> DType:
        return self._node.dtype

    @property
    def device(self):
        return _device.device_of(self._node)

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def numel(self) -> int:
        return self._node.numel

    nelement = numel

    def element_size(self) -> int:
        return self.dtype.itemsize

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._node.shape[0]

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        self.requires_grad_(value)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if not self._is_leaf and not requires_grad:
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If you want to use a "
                               "computed variable in a subgraph that doesn't require differentiation use "
                               "var_no_grad = var.detach().")
        if requires_grad and not (self.dtype.is_floating_point):
            raise RuntimeError("only Tensors of floating point dtype can require gradients")
        if requires_grad and self._is_leaf and not self._requires_grad:
            _autograd.register_leaf(self)  # (gives the leaf a buffer of its own: see autograd.py)
        self._requires_grad = bool(requires_grad)
        return self

    def retain_grad(self) -> None:
        """Keep .grad for this non-leaf tensor on backward()."""
        _autograd.retain_grad(self)

    @property
    def is_leaf(self) -> bool:
        return self._is_leaf

    @property
    def grad_fn(self):
        """PyTorch's name for the backward function of the op that made this tensor (lazygrad/grad_fn.py)."""
        return _grad_fn.grad_fn_of(self)

    @_view_sharing.returns_view
    def detach(self) -> "Tensor":
        """The same value, cut from the gradient graph (a stop_gradient node, see ir/autodiff.py)."""
        out = Tensor._from_node(stop_gradient(self._node))
        out._strides = self._strides
        return out

    def detach_(self) -> "Tensor":
        self._node = stop_gradient(self._node)
        self._requires_grad = False
        self._is_leaf = True
        return self

    @property
    def data(self) -> "Tensor":
        return self.detach()

    @data.setter
    def data(self, value: "Tensor") -> None:
        self._node = value._node if isinstance(value, Tensor) else Tensor(value)._node

    # ---- realisation ----
    def realize(self) -> "Tensor":
        """Compute this tensor's value now (and cut its graph when no gradient can flow through it)."""
        realize(self)
        return self

    def schedule(self) -> list:
        """The kernels realising this tensor would run, without running them."""
        return _realize.schedule_of([self._node])

    def numpy(self) -> np.ndarray:
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        return self._host_array()

    def _host_array(self) -> np.ndarray:
        self.realize()
        buf = self._node.realized if self._node.realized is not None else self._node.arg
        arr = buf.data if buf.device == "cpu" else buf.data.numpy()  # a GPU buffer is copied back
        view = arr.reshape(self._node.shape)
        view.flags.writeable = False
        return view

    def tolist(self):
        return self._host_array().tolist()

    def item(self):
        if self.numel() != 1:
            raise RuntimeError(f"a Tensor with {self.numel()} elements cannot be converted to Scalar")
        return self._host_array().reshape(()).item()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self.numel() != 1:
            raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
        return bool(self.item())

    def __index__(self) -> int:
        if self.dtype.is_floating_point or self.numel() != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __array__(self, dtype=None, copy=None):
        arr = self._host_array()
        return arr.astype(dtype) if dtype is not None else np.array(arr)

    def __repr__(self) -> str:
        suffixes = []
        if _device.state.cuda_used and self.is_cuda:
            suffixes.append("device='cuda:0'")
        if self.requires_grad and self.is_leaf:
            suffixes.append("requires_grad=True")
        elif self.requires_grad:
            suffixes.append(f"grad_fn=<{_grad_fn.name_of(self)}>")
        return printing.tensor_repr(self._host_array(), self.dtype, suffixes)

    __str__ = __repr__

    def __hash__(self):
        return id(self)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    # ---- dtype conversion ----
    def to(self, *args, **kwargs) -> "Tensor":
        dtype = kwargs.get("dtype")
        dev = kwargs.get("device")
        for a in args:
            if isinstance(a, DType):
                dtype = a
            elif isinstance(a, Tensor):
                dtype, dev = a.dtype, a.device
            else:
                dev = a
        out = self
        if dev is not None:
            target = _device.normalize(dev)
            if target.type != self.device.type:
                out = _device.move(self, target)
        return out if dtype is None or dtype is out.dtype else out._cast(dtype)

    def type(self, dtype=None):
        if dtype is None:
            return {"float32": "torch.FloatTensor", "float64": "torch.DoubleTensor", "int64": "torch.LongTensor",
                    "int32": "torch.IntTensor", "bool": "torch.BoolTensor"}[self.dtype.name]
        return self.to(dtype)

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def cuda(self, device=None) -> "Tensor":
        from . import cuda
        cuda.require("cuda")
        return self.to("cuda")

    def _cast(self, dtype: DType) -> "Tensor":
        return self._make(N.cast(self._node, dtype), self)

    def float(self) -> "Tensor":
        return self.to(dtypes.float32)

    def double(self) -> "Tensor":
        return self.to(dtypes.float64)

    def long(self) -> "Tensor":
        return self.to(dtypes.int64)

    def int(self) -> "Tensor":
        return self.to(dtypes.int32)

    def bool(self) -> "Tensor":
        return self.to(dtypes.bool_)

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating_point

    # ---- building results ----
    @staticmethod
    def _make(node: Node, *inputs) -> "Tensor":
        """The Tensor holding `node`, computed from `inputs` (Tensors; other values are skipped).

        It requires grad when an input does (and grad mode is on); its strides
        follow its inputs' as PyTorch's would (lazygrad/strides.py).
        """
        if _device.state.cuda_used:
            _device.graph_device(node)  # raises, like PyTorch, when the op mixes CPU and GPU tensors
        requires_grad = strided = False
        for t in inputs:   # (a plain loop: this runs for every operation a program makes)
            if isinstance(t, Tensor):
                requires_grad = requires_grad or t._requires_grad
                strided = strided or t._strides is not None
        strides = None
        if strided and node.op in _ELEMENTWISE:
            # laid out like its inputs, as PyTorch's TensorIterator does; computed when asked for
            strides = _strides_mod.Deferred(_strides_mod.elementwise, node.shape,
                                            [(t._node.shape, t._strides) for t in inputs if isinstance(t, Tensor)])
        if requires_grad and not node.dtype.is_floating_point:
            requires_grad = False   # integer and bool results never require grad (comparisons, argmax, .long())
        if requires_grad and not is_grad_enabled():
            node = stop_gradient(node)  # built under no_grad: no gradient may flow through it later
            requires_grad = False
        out = object.__new__(Tensor)   # (Tensor._from_node written out: this runs for every operation)
        out._node = node
        out.grad = None
        out._requires_grad = requires_grad
        out._is_leaf = not requires_grad
        out._version = 0
        if strides is not None:
            out._strides = strides
        return out

    # ---- matrix products and more: defined in lazygrad/linalg.py ----
    def __matmul__(self, other):
        if not isinstance(other, Tensor):
            return NotImplemented  # Python raises "unsupported operand type(s) for @", as with torch
        return _linalg.matmul(self, other)

    def __rmatmul__(self, other):
        if not isinstance(other, Tensor):
            return NotImplemented
        return _linalg.matmul(other, self)

    def matmul(self, other):
        return _linalg.matmul(self, other)

    # ---- autograd entry points: defined in lazygrad/autograd.py ----
    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        _autograd.backward(self, gradient, retain_graph, create_graph, inputs=inputs)


class Size(tuple):
    """torch.Size: a tuple of ints that prints as `torch.Size([2, 3])`."""

    def __repr__(self) -> str:
        return f"lazygrad.Size([{', '.join(str(s) for s in self)}])"

    __str__ = __repr__

    def numel(self) -> int:
        return math.prod(self)


def realize(*tensors: Tensor) -> None:
    """Realise several tensors in one schedule (shared work is computed once)."""
    nodes = [t._node for t in tensors if t._node.realized is None and t._node.op is not _BUFFER]
    detached = (_realize.realize(nodes) if nodes else None) or {}  # on a GPU: buffers of constant graphs
    for t in tensors:
        node = t._node
        buf = node.realized if node.realized is not None else detached.get(id(node))
        if buf is not None and (not t._requires_grad or node.realized is None):
            # nothing needs this tensor's history any more: drop the graph, keep the buffer
            t._node = N.buffer(buf, node.shape)


def tensor(data, dtype: DType | None = None, device=None, requires_grad: bool = False) -> Tensor:
    """lazygrad.tensor: int lists give int64, float lists float32, NumPy arrays keep their dtype."""
    _device.normalize(device)
    arr = _to_numpy_data(data, dtype)
    t = object.__new__(Tensor)
    t._init_from_array(arr, requires_grad and device is None)
    if device is not None:
        _device.place(t, device, requires_grad)
    return t


# The method files were imported above, before Tensor, Size and tensor() existed (Tensor inherits
# their methods); their methods use these names when they run, so each file gets them here.
for _methods_module in (tensor_math, tensor_compare, tensor_reduce, tensor_shape, tensor_inplace):
    _methods_module.Tensor, _methods_module.Size, _methods_module.tensor = Tensor, Size, tensor
del _methods_module

from . import linalg as _linalg  # noqa: E402  (linalg builds on Tensor: imported once it exists)
