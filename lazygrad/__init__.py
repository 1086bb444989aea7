"""lazygrad: PyTorch's API over a lazy graph compiler.

    import lazygrad as torch

Operations build an IR graph; when a value is needed the graph is simplified,
fused into as few kernels as possible, compiled to LLVM IR for this CPU and run.
"""
from .ir.dtypes import bool_ as bool  # noqa: A001  (torch.bool)
from .ir.dtypes import float32, float64, int32, int64, DType as dtype
from .ir import dtypes as _dtypes
from .autograd_state import no_grad, enable_grad, is_grad_enabled, set_grad_enabled
from .devices import device
from .tensor import Tensor, Size, tensor, where, isclose, realize, broadcast_shapes, return_types
from .creation import (zeros, ones, full, empty, zeros_like, ones_like, full_like, empty_like, arange, linspace,
                       eye, rand, randn, randint, randperm, rand_like, randn_like, from_numpy, as_tensor,
                       FloatTensor, DoubleTensor, LongTensor, IntTensor, BoolTensor)
from .random import manual_seed, seed
from .linalg import matmul, mm, bmm, mv, dot, outer
from .autograd import backward as _backward, grad
from . import nn, optim
from .stats import stats
from . import cuda

float = float32  # noqa: A001
double = float64
long = int64
int = int32  # noqa: A001
get_default_dtype = lambda: _dtypes.default_float  # noqa: E731

__version__ = "0.1.0"


def _function_from_method(name):
    def fn(input, *args, **kwargs):
        if not isinstance(input, Tensor):
            input = tensor(input)
        return getattr(input, name)(*args, **kwargs)
    fn.__name__ = name
    fn.__doc__ = f"lazygrad.{name}(input, ...) is input.{name}(...)"
    return fn


for _name in ("add", "sub", "mul", "div", "true_divide", "floor_divide", "remainder", "fmod", "pow", "neg",
              "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt", "rsqrt", "sin", "cos", "tan", "tanh",
              "sigmoid", "relu", "abs", "sign", "floor", "ceil", "round", "trunc", "frac", "clamp", "clip",
              "maximum", "minimum", "reciprocal", "square", "lerp", "softmax", "log_softmax",
              "lt", "le", "gt", "ge", "eq", "ne", "isnan", "isinf", "isfinite", "logical_not", "logical_and",
              "logical_or", "logical_xor", "allclose", "equal",
              "sum", "mean", "var", "std", "max", "min", "amax", "amin", "argmax", "argmin", "prod", "all", "any",
              "count_nonzero", "cumsum",
              "reshape", "permute", "transpose", "swapdims", "swapaxes", "t", "movedim", "moveaxis", "flatten",
              "unflatten", "squeeze", "unsqueeze", "flip", "numel", "broadcast_to", "clone"):
    globals()[_name] = _function_from_method(_name)
del _name

# indexing and shape functions (lazygrad/indexing.py, advanced_indexing.py, shape_ops.py)
from .indexing import gather, index_select, scatter, scatter_add, index_add, masked_fill  # noqa: E402
from .advanced_indexing import nonzero, masked_select  # noqa: E402
from .shape_ops import (cat, stack, hstack, vstack, chunk, split, narrow, select, unbind, roll, tile,  # noqa: E402
                        movedim, numel)
from . import shape_ops as _shape_ops  # noqa: E402
concat = concatenate = cat
moveaxis = movedim

# `axis=` works wherever `dim=` does, as in PyTorch (x.sum(axis=0), torch.cat(ts, axis=1))
for _methods_class in Tensor.__mro__[:-1]:   # Tensor and the classes it inherits its methods from (tensor.py)
    _shape_ops.install_axis_alias(_methods_class)
del _methods_class
_shape_ops.install_axis_alias(globals())

# PyTorch's grad_fn names on the results of the common ops (print(loss) shows grad_fn=<MseLossBackward0>)
from . import grad_fn as _grad_fn  # noqa: E402
import sys as _sys  # noqa: E402
_grad_fn.install(Tensor, nn.functional, _sys.modules[__name__])
del _sys
