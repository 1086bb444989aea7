"""`tensor.grad_fn` and the `grad_fn=<...>` a printed tensor shows, with PyTorch's names.

PyTorch records, on each result that requires grad, the backward function of
the op that made it: `print(loss)` shows `tensor(0.52, grad_fn=<MseLossBackward0>)`.
lazygrad has no backward functions: gradients are derived from the graph
(`lazygrad/ir/autodiff.py`). The name is still worth showing, because a learner
reads it to see which op produced a tensor. So:

* the public ops in the tables below record PyTorch's name on their result
  (`_record`, wrapped around them once, when lazygrad is imported);
* the arithmetic operators, which run most often and are not wrapped, get
  their name from the graph: an ADD node is `AddBackward0`, an ADD of a NEG
  `SubBackward0`, a MUL by a reciprocal `DivBackward0`.

A recorded name belongs to the node it was recorded with: once an in-place op
gives the tensor a new node, the name is read from the graph again.
"""
from __future__ import annotations

import functools

from .ir.ops import Op


class GradFn:
    """What `tensor.grad_fn` returns: a name, printed like PyTorch's backward node objects."""

    def __init__(self, name: str):
        self._name = name

    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"<{self._name} object at {hex(id(self))}>"


def grad_fn_of(tensor) -> GradFn | None:
    """`tensor.grad_fn`: None for a leaf or a tensor that does not require grad (as in PyTorch)."""
    if not tensor._requires_grad or tensor._is_leaf:
        return None
    return GradFn(name_of(tensor))


def name_of(tensor) -> str:
    recorded = tensor.__dict__.get("_grad_fn")
    if recorded is not None and recorded[1] is tensor._node:
        return recorded[0]
    return _name_from_graph(tensor._node)


_BY_OP = {
    Op.ADD: "AddBackward0", Op.MUL: "MulBackward0", Op.NEG: "NegBackward0", Op.MAX: "MaximumBackward0",
    Op.WHERE: "WhereBackward0", Op.CAST: "ToCopyBackward0", Op.EXP2: "Exp2Backward0", Op.LOG2: "Log2Backward0",
    Op.SQRT: "SqrtBackward0", Op.SIN: "SinBackward0", Op.RECIP: "ReciprocalBackward0", Op.SUM: "SumBackward1",
    Op.REDUCE_MAX: "AmaxBackward0", Op.RESHAPE: "ViewBackward0", Op.PERMUTE: "PermuteBackward0",
    Op.EXPAND: "ExpandBackward0", Op.PAD: "ConstantPadNdBackward0", Op.SHRINK: "SliceBackward0",
    Op.FLIP: "FlipBackward0", Op.GATHER: "GatherBackward0", Op.SCATTER: "ScatterBackward0",
}


def _name_from_graph(node) -> str:
    if node.op in (Op.ADD, Op.MUL):
        second = node.src[1]
        while second.op in (Op.RESHAPE, Op.EXPAND):   # (through broadcasting)
            second = second.src[0]
        if node.op is Op.ADD and second.op is Op.NEG:
            return "SubBackward0"
        if node.op is Op.MUL and second.op is Op.RECIP:
            return "DivBackward0"
    return _BY_OP.get(node.op) or node.op.name.capitalize() + "Backward0"


def _record(method, name):
    """Wrap a public op so that its result remembers PyTorch's backward name (`name` may be a function of the call)."""
    @functools.wraps(method)
    def recording(*args, **kwargs):
        out = method(*args, **kwargs)
        result = out.values if isinstance(out, tuple) and hasattr(out, "values") else out   # (max(dim), min(dim))
        if getattr(result, "_requires_grad", False):
            label = name(*args, **kwargs) if callable(name) else name
            result._grad_fn = (label, result._node)
        return out
    return recording


def _with_dim(no_dim: str, dim: str):
    """Names that depend on whether a dim was given (sum() is SumBackward0, sum(1) SumBackward1)."""
    def choose(self, *args, **kwargs):
        return dim if args or kwargs.get("dim", kwargs.get("axis")) is not None else no_dim
    return choose


_MATMUL_NAMES = {(2, 2): "MmBackward0", (2, 1): "MvBackward0", (1, 1): "DotBackward0", (3, 3): "BmmBackward0"}


def _matmul_name(a, b, *rest, **kwargs) -> str:
    return _MATMUL_NAMES.get((a.ndim, getattr(b, "ndim", 0)), "UnsafeViewBackward0")


def _index_name(self, index, *rest) -> str:
    items = index if isinstance(index, tuple) else (index,)
    if all(isinstance(i, int) or i is None or i is Ellipsis for i in items):
        return "SelectBackward0"
    if all(isinstance(i, (int, slice)) or i is None or i is Ellipsis for i in items):
        return "SliceBackward0" if not any(isinstance(i, int) for i in items) else "SelectBackward0"
    return "IndexBackward0"


def _linear_name(input, weight, bias=None) -> str:
    return "AddmmBackward0" if bias is not None and input.ndim == 2 else "MmBackward0"


TENSOR_METHODS = {
    "sum": _with_dim("SumBackward0", "SumBackward1"), "mean": _with_dim("MeanBackward0", "MeanBackward1"),
    "prod": _with_dim("ProdBackward0", "ProdBackward1"), "max": _with_dim("MaxBackward1", "MaxBackward0"),
    "min": _with_dim("MinBackward1", "MinBackward0"), "amax": "AmaxBackward0", "amin": "AminBackward0",
    "var": "VarBackward0", "std": "StdBackward0",
    "exp": "ExpBackward0", "log": "LogBackward0", "sqrt": "SqrtBackward0", "sin": "SinBackward0",
    "cos": "CosBackward0", "tanh": "TanhBackward0", "sigmoid": "SigmoidBackward0", "relu": "ReluBackward0",
    "abs": "AbsBackward0", "pow": "PowBackward0", "__pow__": "PowBackward0", "clamp": "ClampBackward1",
    "softmax": "SoftmaxBackward0", "log_softmax": "LogSoftmaxBackward0",
    "matmul": _matmul_name, "__matmul__": _matmul_name, "mm": "MmBackward0",
    "t": "TBackward0", "view": "ViewBackward0", "reshape": "ViewBackward0", "flatten": "ViewBackward0",
    "permute": "PermuteBackward0", "transpose": "TransposeBackward0", "squeeze": "SqueezeBackward0",
    "unsqueeze": "UnsqueezeBackward0", "expand": "ExpandBackward0", "clone": "CloneBackward0",
    "__getitem__": _index_name,
}

FUNCTIONAL = {
    "linear": _linear_name, "mse_loss": "MseLossBackward0", "l1_loss": "MeanBackward0",
    "cross_entropy": "NllLossBackward0", "nll_loss": "NllLossBackward0", "relu": "ReluBackward0",
    "softmax": "SoftmaxBackward0", "log_softmax": "LogSoftmaxBackward0",
}

MODULE_FUNCTIONS = {"cat": "CatBackward0", "stack": "StackBackward0", "where": "WhereBackward0",
                    "matmul": _matmul_name, "mm": "MmBackward0"}


def install(tensor_class, functional_module, package) -> None:
    """Wrap the ops of the tables above (called once, when lazygrad is imported)."""
    for table, owner in ((TENSOR_METHODS, tensor_class), (FUNCTIONAL, functional_module),
                         (MODULE_FUNCTIONS, package)):
        for attr, name in table.items():
            if hasattr(owner, attr):
                setattr(owner, attr, _record(getattr(owner, attr), name))
