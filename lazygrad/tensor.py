"""The Tensor: PyTorch's API over a lazy IR graph.

A Tensor holds one IR node. Operations build new nodes and return new
Tensors; nothing is computed until a value is needed (`numpy()`, `item()`,
`tolist()`, `print`, `realize()`, `backward()`). Every composite operation
(sigmoid, mean, softmax, ...) is written here as a composition of the IR's
primitives, so its gradient, fusion and code generation come for free.
"""
from __future__ import annotations

import math
import numbers
from collections import namedtuple

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
from .ir.autodiff import stop_gradient

LOG2E = math.log2(math.e)
_KEEP_CONTIGUOUS = frozenset({Op.RESHAPE, Op.PAD})   # movement ops whose result is contiguous when their input is
# The ops that nearly every tensor operation names, read once here: on Python 3.11 reading an Enum
# member through its class (`Op.ADD`) takes EnumType's slow attribute path (about as long as
# building a small IR node). Elsewhere `Op.X` reads better and is fast enough.
_ADD, _MUL, _NEG, _SUM, _CONST, _BUFFER = Op.ADD, Op.MUL, Op.NEG, Op.SUM, Op.CONST, Op.BUFFER
_RESHAPE, _EXPAND, _PERMUTE = Op.RESHAPE, Op.EXPAND, Op.PERMUTE
LN2 = math.log(2.0)

_ValuesIndices = namedtuple("_ValuesIndices", ["values", "indices"])


class return_types:
    """Named tuples returned by max(dim)/min(dim), like torch.return_types."""
    class max(_ValuesIndices):
        pass

    class min(_ValuesIndices):
        pass


def _is_scalar(x) -> bool:
    return isinstance(x, (numbers.Number, np.bool_, np.number)) and not isinstance(x, np.ndarray)


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


def broadcast_shapes(a: tuple, b: tuple) -> tuple:
    if a == b or not b:   # (the common cases: equal shapes, or a 0-d operand)
        return tuple(a)
    if not a:
        return tuple(b)
    n = max(len(a), len(b))
    a1 = (1,) * (n - len(a)) + tuple(a)
    b1 = (1,) * (n - len(b)) + tuple(b)
    out = []
    for i, (x, y) in enumerate(zip(a1, b1)):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            raise RuntimeError(f"The size of tensor a ({x}) must match the size of tensor b ({y}) "
                               f"at non-singleton dimension {i}")
    return tuple(out)


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


class Tensor:
    """A lazily evaluated n-dimensional array with PyTorch's interface."""

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
            raise RuntimeError(f"Boolean value of Tensor with more than one value is ambiguous")
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
            suffixes.append(f"grad_fn=<{self._node.op.name.capitalize()}Backward>")
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

    def _priority(self) -> int:
        return 2 if self.ndim > 0 else 1

    @staticmethod
    def _operands(a, b, op_name: str):
        """Both operands as nodes of a common dtype and shape (PyTorch promotion and broadcasting)."""
        # Fast paths for the most common cases, with the same results as the general rules below:
        # two tensors of one dtype and shape, or a floating-point tensor and a Python number
        # (which takes the tensor's dtype).
        if isinstance(a, Tensor):
            na = a._node
            if isinstance(b, Tensor):
                nb = b._node
                if na.dtype is nb.dtype:   # (one dtype: nothing to promote)
                    if na.shape == nb.shape:
                        return na, nb, na.dtype
                    try:
                        shape = broadcast_shapes(na.shape, nb.shape)
                    except RuntimeError as e:
                        raise RuntimeError(f"{op_name}: {e}") from None
                    return _broadcast_node(na, shape), _broadcast_node(nb, shape), na.dtype
            elif (b.__class__ is float or b.__class__ is int) and na.dtype.category == 2:
                return na, N.const(b, na.dtype, na.shape), na.dtype
        elif isinstance(b, Tensor) and (a.__class__ is float or a.__class__ is int) and b._node.dtype.category == 2:
            nb = b._node
            return N.const(a, nb.dtype, nb.shape), nb, nb.dtype
        ta = a if isinstance(a, Tensor) else None
        tb = b if isinstance(b, Tensor) else None
        if ta is None and tb is None:
            raise TypeError(f"{op_name}: expected at least one Tensor")
        ops = []
        for x in (a, b):
            if isinstance(x, Tensor):
                ops.append((x.dtype, x._priority()))
            elif _is_scalar(x):
                ops.append((dtypes.scalar_dtype(x), 0))
            elif isinstance(x, (list, tuple, np.ndarray)):
                x = tensor(x)
                ops.append((x.dtype, x._priority()))
            else:
                raise TypeError(f"{op_name}(): unsupported operand type {type(x).__name__}")
        dtype = dtypes.result_type(*ops)
        try:
            shape = broadcast_shapes(_shape_of(a), _shape_of(b))
        except RuntimeError as e:
            raise RuntimeError(f"{op_name}: {e}") from None
        return _lift(a, dtype, shape), _lift(b, dtype, shape), dtype

    def _binary(self, other, op: Op, name: str, reverse: bool = False) -> "Tensor":
        a, b = (other, self) if reverse else (self, other)
        na, nb, _ = Tensor._operands(a, b, name)
        return Tensor._make(N.binary(op, na, nb), a, b)

    def _unary(self, op: Op) -> "Tensor":
        return Tensor._make(N.unary(op, self._node), self)

    def _float_input(self) -> "Tensor":
        """Integer and bool inputs of float functions (exp, sqrt, ...) become float32, as in PyTorch."""
        return self if self.dtype.is_floating_point else self._cast(dtypes.default_float)

    def _const_like(self, value, dtype: DType | None = None) -> "Tensor":
        return Tensor._from_node(N.const(value, dtype or self.dtype, self._node.shape))

    # ---- elementwise arithmetic ----
    def add(self, other, alpha=1):
        if alpha != 1:
            other = other * alpha
        if self.dtype.is_bool and isinstance(other, Tensor) and other.dtype.is_bool:
            return self._binary(other, Op.MAX, "add")
        return self._binary(other, _ADD, "add")

    def __add__(self, other):
        return self.add(other)

    def __radd__(self, other):
        return self._binary(other, Op.ADD, "add", reverse=True)

    def neg(self):
        if self.dtype.is_bool:
            raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. "
                               "If you are trying to invert a mask, use the `~` or `logical_not()` operator instead.")
        return self._unary(Op.NEG)

    __neg__ = neg
    negative = neg

    def sub(self, other, alpha=1):
        if self.dtype.is_bool and isinstance(other, Tensor) and other.dtype.is_bool:
            raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not supported. "
                               "Use the `^` or `logical_xor()` operator instead.")
        if alpha != 1:
            other = other * alpha
        if isinstance(other, Tensor):
            a, b = self._node, other._node
            if (a.shape == b.shape and a.dtype is b.dtype and a.dtype.category == 2 and self._strides is None
                    and other._strides is None and (not other._requires_grad or is_grad_enabled())):
                # the common case, built in one step: the same graph as self + (-other) below
                return Tensor._make(N.binary(_ADD, a, N.unary(_NEG, b)), self, other)
            return self + (-other)
        return self + (-other)

    def __sub__(self, other):
        return self.sub(other)

    def __rsub__(self, other):
        return (-self) + other

    def mul(self, other):
        return self._binary(other, _MUL, "mul")

    __mul__ = mul

    def __rmul__(self, other):
        return self._binary(other, Op.MUL, "mul", reverse=True)

    def reciprocal(self):
        return self._float_input()._unary(Op.RECIP)

    def div(self, other, rounding_mode=None):
        if rounding_mode == "floor":
            return self.floor_divide(other)
        if rounding_mode == "trunc":
            if _both_int(self, other):  # integer division rounding toward zero: exact, integer-typed, and
                na, nb, dtype = Tensor._operands(self, other, "div")  # raises ZeroDivisionError like torch
                if not dtype.is_bool:
                    return Tensor._make(N.binary(Op.IDIV, na, nb), *(x for x in (self, other) if isinstance(x, Tensor)))
            q = self._true_div(other)
            return q.trunc() if q.dtype.is_floating_point and not _both_int(self, other) else \
                _int_result(q.trunc(), self, other)
        return self._true_div(other)

    def _true_div(self, other, reverse=False):
        a, b = (other, self) if reverse else (self, other)
        na, nb, dtype = Tensor._operands(a, b, "div")
        if not dtype.is_floating_point:
            na, nb = N.cast(na, dtypes.default_float), N.cast(nb, dtypes.default_float)
        node = N.binary(Op.MUL, na, N.unary(Op.RECIP, nb))
        return Tensor._make(node, *(x for x in (a, b) if isinstance(x, Tensor)))

    __truediv__ = div
    true_divide = div
    divide = div

    def __rtruediv__(self, other):
        return self._true_div(other, reverse=True)

    def floor_divide(self, other):
        return _floor_div(self, other)

    def __floordiv__(self, other):
        return _floor_div(self, other)

    def __rfloordiv__(self, other):
        return _floor_div(other, self)

    def fmod(self, other):
        return self._binary(other, Op.MOD, "fmod")

    def remainder(self, other):
        return _remainder(self, other)

    def __mod__(self, other):
        return _remainder(self, other)

    def __rmod__(self, other):
        return _remainder(other, self)

    def pow(self, exponent):
        return _pow(self, exponent)

    __pow__ = pow

    def __rpow__(self, base):
        return _pow(base, self)

    def square(self):
        x = self.long() if self.dtype.is_bool else self  # PyTorch: square of a bool tensor is int64
        return x * x

    def maximum(self, other):
        return self._binary(other, Op.MAX, "maximum")

    def minimum(self, other):
        a, b, dtype = Tensor._operands(self, other, "minimum")
        ta = Tensor._make(a, self, other)
        tb = Tensor._make(b, self, other)
        return _negate_order(_negate_order(ta).maximum(_negate_order(tb)))

    def __abs__(self):
        return self.abs()

    def abs(self):
        _no_bool(self, "abs_cpu")
        neg = self < 0
        out = where(neg, -self, self)
        if self.dtype.is_floating_point:
            # abs(-0.0) is +0.0; and at 0 the gradient is 0 (PyTorch's sign(0)), not 1: that element comes
            # from x * 0 (which keeps nan: abs(nan) is nan)
            out = where(self > 0, self, where(neg, -self, self * 0.0)) + 0.0
        return out

    absolute = abs

    def sign(self):
        if self.dtype.is_bool:
            return self
        pos = (self > 0)._cast(self.dtype)
        neg = (self < 0)._cast(self.dtype)
        return pos - neg  # sign(nan) is 0, as in PyTorch

    def exp(self):
        x = self._float_input()
        return Tensor._make(N.unary(Op.EXP2, (x * LOG2E)._node), self)

    def exp2(self):
        return self._float_input()._unary(Op.EXP2)

    def expm1(self):
        x = self._float_input()
        # Kahan's expm1: with u = exp(x), (u - 1) * x / log(u) is accurate where exp(x) - 1 cancels
        u = x.exp()
        um1 = u - 1.0
        # x / log(u) is about 1: no overflow. Where u underflowed to 0 the branch is unused; log(0.5)
        # stands in for log(0) there, so that its gradient is not 0 * inf = nan
        out = um1 * (x / where(um1 == 0, 1.0, where(um1 == -1.0, 0.5, u).log()))
        out = where(um1 == 0, x, out)                   # u rounds to 1: expm1(x) = x (keeps -0.0)
        out = where(u == float("inf"), u, out)          # overflow
        return where(um1 == -1.0, um1, out)             # underflow: -1

    def log2(self):
        return self._float_input()._unary(Op.LOG2)

    def log(self):
        return self.log2() * LN2

    def log10(self):
        return self.log2() * (LN2 / math.log(10.0))

    def log1p(self):
        x = self._float_input()
        # log1p(x) = log(u) * x / (u - 1) with u = 1 + x: exact for tiny x where log(1 + x) would round to 0
        u = x + 1.0
        d = u - 1.0
        out = where(d == 0, x, u.log() * (x / where(d == 0, 1.0, d)))  # x / d ~ 1: no overflow for huge x
        return where(x == float("inf"), x, out)  # log1p(inf) = inf (not inf/inf)

    def sqrt(self):
        return self._float_input()._unary(Op.SQRT)

    def rsqrt(self):
        return self.sqrt().reciprocal()

    def sin(self):
        x = self._float_input()
        return where(x == 0, x, x._unary(Op.SIN))  # sin(-0.0) is -0.0

    def cos(self):
        x = self._float_input()
        # cos(x) = 1 - 2 sin(x/2)^2: x/2 is exact, while x + pi/2 rounds (by 8e-3 at x = 1e14 even in
        # float64). float32 is computed in float64 (SIN computes float32 in float64 anyway).
        xd = x.double() if x.dtype is dtypes.float32 else x
        h = (xd * 0.5)._unary(Op.SIN)
        out = 1.0 - 2.0 * (h * h)
        return out.float() if x.dtype is dtypes.float32 else out

    def tan(self):
        return self.sin() / self.cos()

    def sigmoid(self):
        x = self._float_input()
        # 1 / (1 + exp(-x)) for x >= 0 and exp(x) / (1 + exp(x)) for x < 0, each fed only the inputs of
        # its own side: no exp overflows, so no 0 * inf = nan in the gradient (x < -88 in float32)
        xp = where(x >= 0, x, 0.0)
        xn = where(x < 0, x, 0.0)
        en = xn.exp()
        # PyTorch's 1 / (1 + exp(-x)) is exactly 0 once exp(-x) overflows: so is this
        overflow = -math.log(np.finfo(x.dtype.np).max)
        out = where(x >= 0, (1.0 + (-xp).exp()).reciprocal(), where(x < overflow, 0.0, en / (1.0 + en)))
        return where(x != x, x * x, out)  # sigmoid(nan) is nan (and so is its gradient: 2 * nan)

    def tanh(self):
        x = self._float_input()
        # tanh|x| = -t / (2 + t) with t = expm1(-2|x|): no cancellation for small x (2*sigmoid(2x) - 1 has it)
        t = (x.abs() * -2.0).expm1()
        r = -t / (t + 2.0)
        return where(x == 0, x, where(x < 0, -r, r))  # tanh(-0.0) is -0.0

    def relu(self):
        if self.dtype.is_bool:
            return self
        return self.maximum(self._const_like(0))

    def trunc(self):
        _no_bool(self, "trunc_vml_cpu")
        if not self.dtype.is_floating_point:
            return self
        return self._unary(Op.TRUNC)

    fix = trunc

    def floor(self):
        _no_bool(self, "floor_vml_cpu")
        if not self.dtype.is_floating_point:
            return self
        t = self.trunc()
        return where(self < t, t - 1.0, t)

    def ceil(self):
        _no_bool(self, "ceil_vml_cpu")
        if not self.dtype.is_floating_point:
            return self
        t = self.trunc()
        return where(self > t, t + 1.0, t)  # ceil(-0.5) is -0.0, as trunc(-0.5) is

    def round(self, decimals: int = 0):
        _no_bool(self, "round_vml_cpu")
        if not self.dtype.is_floating_point:
            return self
        if decimals:
            scale = 10.0 ** decimals
            return (self * scale).round() / scale
        # round half to even, as PyTorch does
        f = (self + 0.5).floor()
        tie = (f - self) == 0.5
        odd = (f - (f * 0.5).floor() * 2.0) == 1.0
        out = where(tie & odd, f - 1.0, f)
        out = where(out == 0, self * 0.0, out)  # a zero result keeps x's sign: round(-0.4) is -0.0
        big = self.abs() >= (2.0 ** 52 if self.dtype is dtypes.float64 else 2.0 ** 23)
        return where(big | (self != self), self, out)

    def frac(self):
        if not self.dtype.is_floating_point:
            raise NotImplementedError(f'"frac_cpu" not implemented for \'{_TYPE_NAMES[self.dtype.name]}\'')
        return self - self.trunc()

    def clamp(self, min=None, max=None):
        if min is None and max is None:
            raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
        # PyTorch's clamp: min(max(x, lo), hi) with max(a, b) = a < b ? b : a, so clamp(-0.0, min=0) is -0.0;
        # a NaN input stays NaN, a NaN bound gives NaN
        out = self
        if min is not None:
            lo = min if isinstance(min, Tensor) else _scalar_tensor(min, out)
            out = where(out < lo, lo, out)
            if lo.dtype.is_floating_point and not (_is_scalar(min) and min == min):
                out = where(lo != lo, lo, out)
        if max is not None:
            hi = max if isinstance(max, Tensor) else _scalar_tensor(max, out)
            out = where(hi < out, hi, out)
            if hi.dtype.is_floating_point and not (_is_scalar(max) and max == max):
                out = where(hi != hi, hi, out)
        return out

    clip = clamp

    def clamp_min(self, min):
        return self.clamp(min=min)

    def clamp_max(self, max):
        return self.clamp(max=max)

    def lerp(self, end, weight):
        # PyTorch's two-sided formula: exact at weight 0 and 1, and no inf - inf for infinite end points
        diff = end - self
        if isinstance(weight, Tensor):
            return where(weight.abs() < 0.5, self + weight * diff, end - diff * (1 - weight))
        return self + weight * diff if abs(weight) < 0.5 else end - diff * (1 - weight)

    def where(self, condition, other):
        return where(condition, self, other)

    # ---- comparisons and logic ----
    def lt(self, other):
        return self._binary(other, Op.CMPLT, "lt")

    def gt(self, other):
        return self._binary(other, Op.CMPLT, "gt", reverse=True)

    def le(self, other):
        a, b, dtype = Tensor._operands(self, other, "le")
        if dtype.is_floating_point:  # a <= b as (a < b) or (a == b): false when either is NaN, like PyTorch
            return Tensor._make(N.binary(Op.MAX, N.binary(Op.CMPLT, a, b), N.binary(Op.CMPEQ, a, b)))
        return _logical_not(Tensor._make(N.binary(Op.CMPLT, b, a)))

    def ge(self, other):
        a, b, dtype = Tensor._operands(self, other, "ge")
        if dtype.is_floating_point:
            return Tensor._make(N.binary(Op.MAX, N.binary(Op.CMPLT, b, a), N.binary(Op.CMPEQ, a, b)))
        return _logical_not(Tensor._make(N.binary(Op.CMPLT, a, b)))

    def eq(self, other):
        return self._binary(other, Op.CMPEQ, "eq")

    def ne(self, other):
        return _logical_not(self.eq(other))

    __lt__, __gt__, __le__, __ge__ = lt, gt, le, ge

    def __eq__(self, other):
        return self.eq(other)

    def __ne__(self, other):
        return self.ne(other)

    def isnan(self):
        if not self.dtype.is_floating_point:
            return self._const_like(False, dtypes.bool_)
        return self != self

    def isinf(self):
        if not self.dtype.is_floating_point:
            return self._const_like(False, dtypes.bool_)
        return self.abs() == float("inf")

    def isfinite(self):
        if not self.dtype.is_floating_point:
            return self._const_like(True, dtypes.bool_)
        return (self.abs() < float("inf"))

    def logical_not(self):
        return _logical_not(self if self.dtype.is_bool else self.bool())

    def logical_and(self, other):
        return _as_bool(self).mul(_as_bool(other))

    def logical_or(self, other):
        return _as_bool(self).maximum(_as_bool(other))

    def logical_xor(self, other):
        return _as_bool(self).ne(_as_bool(other))

    def __invert__(self):
        if self.dtype.is_bool:
            return _logical_not(self)
        if self.dtype.is_floating_point:
            raise TypeError("bitwise_not(): ~ is only supported for integer and bool tensors")
        return -self - 1

    def __and__(self, other):
        _require_bool("bitwise_and", self, other)
        return self.logical_and(other)

    def __or__(self, other):
        _require_bool("bitwise_or", self, other)
        return self.logical_or(other)

    def __xor__(self, other):
        _require_bool("bitwise_xor", self, other)
        return self.logical_xor(other)

    __rand__, __ror__, __rxor__ = __and__, __or__, __xor__

    def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
        return bool(isclose(self, other, rtol, atol, equal_nan).all().item())

    def equal(self, other) -> bool:
        return self.shape == other.shape and bool((self == other).all().item())

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
            return self._alias()
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
            return self._alias()
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

    # ---- in-place versions (they rebind this tensor's value) ----
    def _inplace(self, result: "Tensor", check_overlap: bool = True) -> "Tensor":
        if self.requires_grad and self.is_leaf and is_grad_enabled():
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
        if check_overlap and self._strides is not None and \
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

    def scatter_(self, dim, index, src=None, value=None, reduce=None):
        return self._inplace(self.scatter(dim, index, src, value=value, reduce=reduce))

    def scatter_add(self, dim, index, src):
        from .indexing import scatter_add
        return scatter_add(self, dim, index, src)

    def scatter_add_(self, dim, index, src):
        return self._inplace(self.scatter_add(dim, index, src))

    def index_add(self, dim, index, source, alpha=1):
        from .indexing import index_add
        return index_add(self, dim, index, source, alpha=alpha)

    def index_add_(self, dim, index, source, alpha=1):
        return self._inplace(self.index_add(dim, index, source, alpha=alpha))

    def masked_fill(self, mask, value):
        from .indexing import masked_fill
        return masked_fill(self, mask, value)

    def masked_fill_(self, mask, value):
        return self._inplace(self.masked_fill(mask, value))

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


# ---- helpers used by the methods above ----

def _shape_of(x) -> tuple:
    if isinstance(x, Tensor):
        return x._node.shape
    if isinstance(x, (list, tuple, np.ndarray)):
        return np.shape(x)
    return ()


def _lift(x, dtype: DType, shape: tuple) -> Node:
    """x (Tensor, Python number, list) as a node of `dtype` broadcast to `shape`."""
    if isinstance(x, Tensor):
        node = N.cast(x._node, dtype)
    elif _is_scalar(x):
        return N.const(x, dtype, shape)
    else:
        node = N.cast(tensor(x)._node, dtype)
    return _broadcast_node(node, shape)


def _broadcast_node(node: Node, shape: tuple) -> Node:
    if node.shape == shape:
        return node
    lead = len(shape) - len(node.shape)
    if lead:
        node = N.movement(_RESHAPE, node, (1,) * lead + node.shape)
    if node.op is _CONST and node.realized is None:
        return N.const(node.arg, node.dtype, shape)
    return N.movement(_EXPAND, node, shape)


def _scalar_tensor(value, like: Tensor) -> Tensor:
    return Tensor._from_node(N.const(value, dtypes.scalar_dtype(value), ()))


def _both_int(a, b) -> bool:
    da = a.dtype if isinstance(a, Tensor) else dtypes.scalar_dtype(a)
    db = b.dtype if isinstance(b, Tensor) else dtypes.scalar_dtype(b)
    return not da.is_floating_point and not db.is_floating_point


def _int_result(x: Tensor, a, b) -> Tensor:
    return x


def _as_bool(x) -> Tensor:
    if not isinstance(x, Tensor):
        x = tensor(x)
    return x if x.dtype.is_bool else x.bool()


def _require_bool(name, a, b):
    for x in (a, b):
        dt = x.dtype if isinstance(x, Tensor) else dtypes.scalar_dtype(x)
        if dt.is_floating_point:
            raise RuntimeError(f'"{name}_cpu" not implemented for \'Float\'')
        if not dt.is_bool:
            raise NotImplementedError(f"{name} on integer tensors is not implemented in lazygrad (bool only)")


def _logical_not(x: Tensor) -> Tensor:
    return Tensor._make(N.binary(Op.CMPEQ, x._node, N.const(False, dtypes.bool_, x._node.shape)), x)


def _negate_order(x: Tensor) -> Tensor:
    """An order-reversing map used to build min from max: -x for floats, ~x for ints, not x for bools."""
    if x.dtype.is_bool:
        return _logical_not(x)
    if x.dtype.is_floating_point:
        return -x
    return -x - 1  # bitwise not: never overflows, unlike -x on the smallest integer


def _floor_div(a, b) -> Tensor:
    na, nb, dtype = Tensor._operands(a, b, "floor_divide")
    inputs = [x for x in (a, b) if isinstance(x, Tensor)]
    if dtype.is_bool:
        raise RuntimeError("floor_divide(): bool inputs are not supported")
    ta, tb = Tensor._make(na, *inputs), Tensor._make(nb, *inputs)
    if dtype.is_floating_point:
        # PyTorch's div_floor_floating: from fmod, so that e.g. 7.5 // 2.5 is exactly 3 and inf // 1 is nan
        mod = Tensor._make(N.binary(Op.MOD, na, nb), *inputs)
        div = (ta - mod) / tb
        div = where((mod != 0) & ((tb < 0) != (mod < 0)), div - 1.0, div)
        fl = div.floor()
        fl = where(div - fl > 0.5, fl + 1.0, fl)
        out = where(div != 0, fl, (ta / tb) * 0.0)       # a zero quotient has the sign of a / b
        return where(tb == 0, ta / tb, out)               # division by zero: IEEE's inf or nan
    q = Tensor._make(N.binary(Op.IDIV, na, nb), *inputs)
    r = Tensor._make(N.binary(Op.MOD, na, nb), *inputs)
    adjust = (r != 0) & ((r < 0) != (tb < 0))
    return q - adjust._cast(dtype)


_TYPE_NAMES = {"float32": "Float", "float64": "Double", "int64": "Long", "int32": "Int", "bool": "Bool"}


def _no_bool(x: Tensor, kernel_name: str) -> None:
    """PyTorch has no bool kernel for some math ops (abs, floor, ...) and says so."""
    if x.dtype.is_bool:
        raise NotImplementedError(f'"{kernel_name}" not implemented for \'Bool\'')


def _remainder(a, b) -> Tensor:
    """Python's / PyTorch's remainder: the result has the sign of the divisor."""
    na, nb, dtype = Tensor._operands(a, b, "remainder")
    inputs = [x for x in (a, b) if isinstance(x, Tensor)]
    tb = Tensor._make(nb, *inputs)
    r = Tensor._make(N.binary(Op.MOD, na, nb), *inputs)
    adjust = (r != 0) & ((r < 0) != (tb < 0))
    return where(adjust, r + tb, r)


def _pow(base, exponent) -> Tensor:
    if _is_scalar(exponent) and isinstance(base, Tensor):
        e = exponent
        if not isinstance(e, bool) and float(e) == int(e) and abs(e) <= 64 and (
                base.dtype.is_floating_point or e >= 0):
            e = int(e)
            dtype = dtypes.result_type((base.dtype, base._priority()), (dtypes.scalar_dtype(exponent), 0))
            x = base.to(dtype)
            if e == 0:
                return Tensor._make(N.const(1, dtype, x._node.shape), base)
            result, power, n = None, x, abs(e)
            while n:  # exponentiation by squaring: exact for integers, like PyTorch
                if n & 1:
                    result = power if result is None else result * power
                n >>= 1
                if n:
                    power = power * power
            return result.reciprocal() if e < 0 else result
        if isinstance(e, float) and e == 0.5:
            return base._float_input().sqrt()
        if not base.dtype.is_floating_point and isinstance(e, int) and e < 0:
            raise RuntimeError("Integers to negative integer powers are not allowed.")
    na, nb, dtype = Tensor._operands(base, exponent, "pow")
    inputs = [x for x in (base, exponent) if isinstance(x, Tensor)]
    # float64 work: y * log2|x| must be exact to float32 precision (exp2 scales its error by |y * log2|x||)
    work = dtypes.float64
    x = Tensor._make(N.cast(na, work), *inputs)
    y = Tensor._make(N.cast(nb, work), *inputs)
    magnitude = (y * x.abs().log2()).exp2()
    y_is_int = y.trunc() == y
    y_is_odd = y_is_int & ((y * 0.5).trunc() != y * 0.5)
    sign_bit = (x < 0) | ((x == 0) & (x.reciprocal() < 0))      # x < 0 or x is -0.0
    out = where(sign_bit & y_is_odd, -magnitude, magnitude)    # (-2)**3 = -8, (-0.0)**-1 = -inf
    negative_finite = (x < 0) & (x > float("-inf"))
    out = where(negative_finite & ~y_is_int, float("nan"), out)  # (-2)**0.5 is nan; (-inf)**0.5 is inf
    out = where((x.abs() == 1) & (y.abs() == float("inf")), 1.0, out)  # (-1)**inf == 1
    out = where(y == 0, 1.0, out)            # x**0 == 1, even for nan
    out = where(x == 1, 1.0, out)            # 1**y == 1, even for nan
    if not dtype.is_floating_point:
        out = out.round()
    return out.to(dtype)


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


def where(condition, input, other) -> Tensor:
    """torch.where(condition, input, other) with broadcasting and type promotion."""
    if isinstance(condition, Tensor) and not condition.dtype.is_bool:
        names = {"float32": "Float", "float64": "Double", "int64": "Long", "int32": "Int"}
        raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor with dtype "
                           f"{names[condition.dtype.name]}")
    cond = _as_bool(condition) if isinstance(condition, Tensor) else tensor(condition).bool()
    a_is, b_is = isinstance(input, Tensor), isinstance(other, Tensor)
    if not a_is and not b_is:
        dtype = dtypes.result_type((dtypes.scalar_dtype(input), 0), (dtypes.scalar_dtype(other), 0))
    else:
        ops = [((x.dtype, x._priority()) if isinstance(x, Tensor) else (dtypes.scalar_dtype(x), 0))
               for x in (input, other)]
        dtype = dtypes.result_type(*ops)
    try:
        shape = broadcast_shapes(broadcast_shapes(tuple(cond.shape), _shape_of(input)), _shape_of(other))
    except RuntimeError as e:
        raise RuntimeError(f"where: {e}") from None
    node = N.where(_broadcast_node(cond._node, shape), _lift(input, dtype, shape), _lift(other, dtype, shape))
    return Tensor._make(node, *(x for x in (cond, input, other) if isinstance(x, Tensor)))


def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False) -> Tensor:
    a = a if isinstance(a, Tensor) else tensor(a)
    diff = (a - b).abs()
    b_abs = b.abs() if isinstance(b, Tensor) else abs(b)
    close = (diff <= atol + rtol * b_abs) | (a == b)
    if equal_nan:
        close = close | (a.isnan() & (b.isnan() if isinstance(b, Tensor) else (b != b)))
    return close


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


from .creation import arange  # noqa: E402  (creation builds on Tensor)
from . import linalg as _linalg  # noqa: E402  (so does linalg)
