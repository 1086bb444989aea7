"""Random test graphs: their description, and three ways to evaluate one.

A `Graph` is plain data (it pickles, prints and compares): a list of inputs
(shape, dtype, a seed for the values) and a list of operations, each naming
its operands by position (inputs first, then operations in order). It is
evaluated

* through the PyTorch API (`run_api`), with `lib` either lazygrad or torch:
  lazygrad copies torch's method names, so one interpreter serves both;
* with NumPy (`run_numpy`), in float64 and in float32: the float64 result is
  the reference and the difference between the two estimates how much
  rounding error an honest float32 computation of this graph has.

Input values are drawn from a seed, so a failing graph prints in a few lines
and reproduces exactly: `print(graph)` is a small program.

Integer, boolean and "exact" values: an operation whose result would change
when its inputs change by one rounding error (floor, comparisons, casts to
int, argmax, ...) is only applied to *exact* values, i.e. values that every
correct implementation computes bit for bit (inputs, movement of inputs,
neg/abs/max/min of exact values, ...). That keeps the fuzzer free of false
alarms without leaving those ops out.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# ---------------------------------------------------------------- the description

FLOAT = "float"  # the graph's float dtype (float32 or float64, per graph)


@dataclass(frozen=True)
class Input:
    shape: tuple
    dtype: str            # "float" | "int32" | "int64" | "bool" | "index"
    seed: int
    kind: str = "normal"  # normal | special | wide | positive | small | extreme | index:<bound>
    grad: bool = False    # requires_grad (backward graphs)


@dataclass(frozen=True)
class Op:
    name: str
    srcs: tuple
    args: tuple = ()


@dataclass(frozen=True)
class Graph:
    float_dtype: str                   # "float32" | "float64"
    nodes: tuple                       # Inputs and Ops; a value's number is its position here
    outputs: tuple                     # value numbers
    out_dtypes: tuple = ()             # expected dtype name of each output
    joint_realize: bool = False        # realise all outputs in one schedule
    loss_weights_seed: int | None = None  # backward graphs: loss = sum(out * w)

    @property
    def inputs(self) -> tuple:
        return tuple(n for n in self.nodes if isinstance(n, Input))

    @property
    def ops(self) -> tuple:
        return tuple(n for n in self.nodes if isinstance(n, Op))

    def _repr_pretty_(self, p, cycle) -> None:  # how hypothesis prints a falsifying example
        p.text(repr(self))

    def __repr__(self) -> str:
        lines = [f"Graph({self.float_dtype}, {len(self.inputs)} inputs, {len(self.ops)} ops"
                 f"{', joint realize' if self.joint_realize else ''}):"]
        for i, node in enumerate(self.nodes):
            if isinstance(node, Input):
                dt = self.float_dtype if node.dtype == FLOAT else node.dtype
                grad = ", requires_grad=True" if node.grad else ""
                lines.append(f"  v{i} = input({node.shape}, {dt}, seed={node.seed}, kind={node.kind!r}{grad})")
            else:
                lines.append(f"  v{i} = {format_op(node)}")
        lines.append("  outputs: " + ", ".join(f"v{o}" for o in self.outputs))
        if self.loss_weights_seed is not None:
            lines.append(f"  loss = sum(v{self.outputs[0]} * weights(seed={self.loss_weights_seed})); backward()")
        return "\n".join(lines)

    __str__ = __repr__


def format_op(op: Op) -> str:
    s = [f"v{i}" for i in op.srcs]
    a = op.args
    name = op.name
    infix = {"add": "+", "sub": "-", "mul": "*", "div": "/", "floordiv": "//", "mod": "%", "matmul": "@"}
    if name in infix:
        return f"{s[0]} {infix[name]} {s[1]}"
    if name == "scalar":
        opname, c, rev = a
        sym = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**", "floordiv": "//", "mod": "%"}[opname]
        return f"{c!r} {sym} {s[0]}" if rev else f"{s[0]} {sym} {c!r}"
    if name == "slice":
        return f"{s[0]}[{', '.join(_index_text(i) for i in a[0])}]"
    if name == "full":
        return f"full({a[0]}, {a[1]!r}, dtype={a[2]})"
    if name == "where":
        return f"where({s[0]}, {s[1]}, {s[2]})"
    if name == "inplace":
        return f"{s[0]}.clone().{a[0]}_({s[1]})"
    if name == "pad":
        return f"pad({s[0]}, {a[0]}, value={a[1]!r})"
    if name in ("cat", "stack"):
        return f"{name}([{', '.join(s)}], dim={a[0]})"
    if name.startswith("F."):
        return f"{name}({', '.join(s + [repr(x) for x in a])})"
    if name in ("gather", "index_select", "scatter_add"):
        return f"{s[0]}.{name}({a[0]}, {', '.join(s[1:])})"
    rest = ", ".join(s[1:] + [repr(x) for x in a])
    return f"{s[0]}.{name}({rest})"


def _index_text(item) -> str:
    kind = item[0]
    if kind == "i":
        return str(item[1])
    if kind == "n":
        return "None"
    if kind == "e":
        return "..."
    _, start, stop, step = item
    text = f"{'' if start is None else start}:{'' if stop is None else stop}"
    return text + (f":{step}" if step not in (None, 1) else "")


def _index_obj(items) -> tuple:
    out = []
    for item in items:
        kind = item[0]
        if kind == "i":
            out.append(item[1])
        elif kind == "n":
            out.append(None)
        elif kind == "e":
            out.append(Ellipsis)
        else:
            out.append(slice(item[1], item[2], item[3]))
    return tuple(out)


# ---------------------------------------------------------------- input values

SPECIALS = np.array([0.0, -0.0, 1.0, -1.0, 0.5, 2.0, np.inf, -np.inf, np.nan, 1e30, -1e30, 1e-40, -3e-39,
                     88.0, -88.0, 3.0e38, 1e-7], dtype=np.float64)


def input_array(inp: Input, float_dtype: str) -> np.ndarray:
    """The values of one input, exactly representable in its dtype."""
    rng = np.random.default_rng(inp.seed)
    shape = tuple(inp.shape)
    n = int(np.prod(shape)) if shape else 1
    kind = inp.kind
    if inp.dtype in (FLOAT,):
        if kind == "positive":
            v = rng.uniform(0.25, 3.0, n)
        elif kind == "wide":
            v = rng.standard_normal(n) * 10.0
        elif kind == "special":
            v = rng.standard_normal(n) * 2.0
            pick = rng.random(n) < 0.4
            v[pick] = rng.choice(SPECIALS, pick.sum())
        elif kind == "small":  # halves and integers: floor/round ties and exact sums
            v = rng.integers(-8, 9, n) * 0.5
        else:
            v = rng.standard_normal(n) * 1.5
        # values of the graph's float dtype; float64 graphs still get float32-representable inputs so
        # that the float32 and float64 NumPy references see the same numbers
        return v.astype(np.float32).astype(float_dtype).reshape(shape)
    if inp.dtype == "bool":
        return (rng.random(n) < 0.5).reshape(shape)
    if inp.dtype.startswith("int") or inp.dtype == "index":
        dt = np.int64 if inp.dtype in ("int64", "index") else np.int32
        if kind.startswith("index:"):
            bound = int(kind.split(":")[1])
            v = rng.integers(0, max(bound, 1), n) if bound > 0 else np.zeros(n, dtype=np.int64)
        elif kind == "extreme":
            info = np.iinfo(dt)
            v = rng.integers(-20, 21, n).astype(np.int64)
            pick = rng.random(n) < 0.3
            v[pick] = rng.choice(np.array([info.min, info.max, info.min + 1, info.max - 1, -1, 0, 1],
                                          dtype=np.int64), pick.sum())
        elif kind == "positive":
            v = rng.integers(1, 12, n)
        else:
            v = rng.integers(-12, 13, n)
        return v.astype(dt).reshape(shape)
    raise ValueError(inp.dtype)


def loss_weights(graph: Graph, shape: tuple) -> np.ndarray:
    rng = np.random.default_rng(graph.loss_weights_seed)
    return rng.uniform(-1.0, 1.0, shape).astype(np.float32).astype(np.float64).reshape(shape)


# ---------------------------------------------------------------- evaluation through the torch API

class Lib:
    """lazygrad or torch, with the few places where their APIs differ."""

    def __init__(self, module):
        self.m = module
        self.name = module.__name__
        self.is_lazygrad = self.name == "lazygrad"

    def dtype(self, name: str, float_dtype: str):
        name = float_dtype if name == FLOAT else ("int64" if name == "index" else name)
        return {"float32": self.m.float32, "float64": self.m.float64, "int32": self.m.int32,
                "int64": self.m.int64, "bool": self.m.bool}[name]

    def functional(self):
        try:
            import importlib
            return importlib.import_module(self.name + ".nn.functional")
        except ImportError:
            return None

    def pad(self, x, pads, value):
        if not self.is_lazygrad:
            return self.m.nn.functional.pad(x, pads, value=value)
        if hasattr(x, "pad"):
            return x.pad(pads, value)
        return self.functional().pad(x, pads, value=value)


def api_apply(L: Lib, op: Op, xs: list):
    """One operation through the PyTorch API (lazygrad or torch)."""
    m, a, name = L.m, op.args, op.name
    x = xs[0] if xs else None
    if name == "add":
        return xs[0] + xs[1]
    if name == "sub":
        return xs[0] - xs[1]
    if name == "mul":
        return xs[0] * xs[1]
    if name == "div":
        return xs[0] / xs[1]
    if name == "floordiv":
        return xs[0] // xs[1]
    if name == "mod":
        return xs[0] % xs[1]
    if name == "matmul":
        return xs[0] @ xs[1]
    if name == "scalar":
        opname, c, rev = a
        fn = {"add": lambda p, q: p + q, "sub": lambda p, q: p - q, "mul": lambda p, q: p * q,
              "div": lambda p, q: p / q, "pow": lambda p, q: p ** q, "floordiv": lambda p, q: p // q,
              "mod": lambda p, q: p % q}[opname]
        return fn(c, x) if rev else fn(x, c)
    if name == "where":
        return m.where(xs[0], xs[1], xs[2])
    if name == "full":
        return m.full(a[0], a[1], dtype=L.dtype(a[2], a[2]))
    if name == "slice":
        return x[_index_obj(a[0])]
    if name == "pad":
        return L.pad(x, a[0], a[1])
    if name == "inplace":
        y = x.clone()
        getattr(y, a[0] + "_")(xs[1])
        return y
    if name == "realize":
        return x.realize() if L.is_lazygrad else x
    if name == "to":
        return x.to(L.dtype(a[0], a[1]))
    if name in ("cat", "stack"):
        return getattr(m, name)(list(xs), a[0])
    if name in ("max_dim", "min_dim"):
        r = getattr(x, name[:3])(a[0], keepdim=a[1])
        return r[0] if a[2] == "values" else r[1]
    if name in ("softmax", "log_softmax"):
        if hasattr(x, name):
            return getattr(x, name)(a[0])
        return getattr(L.functional(), name)(x, dim=a[0])
    if name == "scatter_add":
        return x.scatter_add(a[0], xs[1], xs[2])
    if name == "gather":
        return x.gather(a[0], xs[1])
    if name == "index_select":
        return x.index_select(a[0], xs[1])
    if name == "masked_fill":
        return x.masked_fill(xs[1], a[0])
    if name == "index_tensor":
        return x[xs[1]]
    if name in ("mm", "bmm", "mv", "dot", "outer"):
        return getattr(m, name)(xs[0], xs[1])
    if name.startswith("F."):  # torch.nn.functional / lazygrad.nn.functional
        fn = getattr(L.functional(), name[2:])
        if name == "F.leaky_relu":
            return fn(x, a[0])
        if name in ("F.mse_loss", "F.l1_loss", "F.cross_entropy", "F.nll_loss"):
            return fn(xs[0], xs[1], reduction=a[0])
        return fn(*xs, *a)
    if name in ("sum", "mean", "amax", "amin", "prod", "all", "any", "argmax", "argmin", "logsumexp"):
        dim, keepdim = a
        if dim is None and not keepdim:
            return getattr(x, name)()
        return getattr(x, name)(dim=dim, keepdim=keepdim)
    if name in ("var", "std"):
        dim, correction, keepdim = a
        return getattr(x, name)(dim=dim, unbiased=bool(correction), keepdim=keepdim)
    # a plain method call: x.name(*other tensors, *args)
    return getattr(x, name)(*xs[1:], *a)


def run_api(graph: Graph, module, requires_grad: bool = False):
    """Build the graph with `module` (lazygrad or torch). Returns (inputs, values)."""
    L = Lib(module)
    values, inputs = [], []
    for node in graph.nodes:
        if isinstance(node, Input):
            t = module.tensor(input_array(node, graph.float_dtype))
            if requires_grad and node.grad:
                t.requires_grad_(True)
            inputs.append(t)
            values.append(t)
        else:
            values.append(api_apply(L, node, [values[i] for i in node.srcs]))
    return inputs, values


def evaluate_lazygrad(graph: Graph) -> list:
    """The graph's outputs computed by lazygrad, as NumPy arrays (runs in the worker)."""
    import lazygrad
    from .guard import install
    install()
    _, values = run_api(graph, lazygrad)
    outs = [values[o] for o in graph.outputs]
    if graph.joint_realize:
        lazygrad.realize(*outs)
    return [np.array(t.numpy(), copy=True) for t in outs]


def evaluate_lazygrad_sliced(graph: Graph) -> list:
    """evaluate_lazygrad with every kernel split into slices of its outer loop run on a thread pool:
    the split is normally kept for big kernels only, which the fuzzer's small graphs never are."""
    import os
    from lazygrad.runtime import cpu
    cpu.PARALLEL_WORK_THRESHOLD = 0
    os.environ["LAZYGRAD_THREADS"] = "3"
    return evaluate_lazygrad(graph)


def evaluate_torch(graph: Graph) -> list:
    import torch
    _, values = run_api(graph, torch)
    return [values[o].detach().numpy().copy() for o in graph.outputs]


def gradients_via(module, graph: Graph) -> list:
    """d loss / d input for each input with grad=True, computed by `module`'s backward()."""
    inputs, values = run_api(graph, module, requires_grad=True)
    out = values[graph.outputs[0]]
    w = module.tensor(loss_weights(graph, tuple(out.shape)))
    loss = (out * w).sum()
    loss.backward()
    grads = []
    for inp, t in zip(graph.inputs, inputs):
        if not inp.grad:
            continue
        g = t.grad
        grads.append(np.zeros(tuple(t.shape)) if g is None else np.array(g.detach().numpy(), dtype=np.float64))
    return grads


def gradients_lazygrad(graph: Graph) -> list:
    import lazygrad
    from .guard import install
    install()
    return gradients_via(lazygrad, graph)


def gradients_torch(graph: Graph) -> list:
    import torch
    return gradients_via(torch, graph)


# ---------------------------------------------------------------- the NumPy reference

def _np_dtype(name: str, float_dtype) -> np.dtype:
    if name == FLOAT:
        return np.dtype(float_dtype)
    return np.dtype({"int32": np.int32, "int64": np.int64, "bool": np.bool_, "index": np.int64,
                     "float32": np.float32, "float64": np.float64}[name])


def _axes(ndim: int, dim):
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, (tuple, list)):
        return tuple(d % ndim for d in dim)
    return (dim % max(ndim, 1),) if ndim else ()


def _reduce(fn, x, dim, keepdim, **kw):
    axes = _axes(x.ndim, dim)
    if x.ndim == 0:
        return fn(x, **kw) if not kw.get("dtype") else fn(x, **kw)
    return fn(x, axis=axes, keepdims=keepdim, **kw)


def _ref_pad(x, pads, value):
    pairs = [(0, 0)] * x.ndim
    for k in range(len(pads) // 2):
        pairs[x.ndim - 1 - k] = (pads[2 * k], pads[2 * k + 1])
    crop = tuple(slice(max(-b, 0), s - max(-e, 0)) for (b, e), s in zip(pairs, x.shape))
    x = x[crop]
    widths = [(max(b, 0), max(e, 0)) for b, e in pairs]
    return np.pad(x, widths, mode="constant", constant_values=np.array(value).astype(x.dtype))


def _remainder(a, b):
    """PyTorch's remainder: fmod, then + b where the signs differ.

    Not np.remainder: where the result is zero, NumPy gives it the divisor's
    sign (remainder(-0.5, 0.5) = +0.0), PyTorch keeps fmod's (-0.0), which
    1/x turns into -inf. (Found by CI's fuzz run.)
    """
    with np.errstate(all="ignore"):
        m = np.fmod(a, b)
        if np.asarray(m).dtype.kind != "f":
            return np.remainder(a, b)
        return np.where((m != 0) & ((m < 0) != (np.asarray(b) < 0)), m + b, m).astype(np.asarray(m).dtype)


def _floordiv(a, b):
    if a.dtype.kind == "f":
        return np.floor_divide(a, b)
    return np.floor_divide(a, b)


def _sign(x):
    if x.dtype.kind == "f":
        return np.where(np.isnan(x), np.zeros_like(x), np.sign(x))  # torch.sign(nan) == 0
    return np.sign(x)


def _softmax(x, dim):
    if x.ndim and x.shape[dim] == 0:
        return x.copy()
    m = np.max(x, axis=dim, keepdims=True) if x.ndim else x
    e = np.exp(x - m)
    return e / np.sum(e, axis=dim, keepdims=True) if x.ndim else e / e


def _log_softmax(x, dim):
    if x.ndim and x.shape[dim] == 0:
        return x.copy()
    m = np.max(x, axis=dim, keepdims=True) if x.ndim else x
    return x - m - np.log(np.sum(np.exp(x - m), axis=dim, keepdims=True) if x.ndim else np.exp(x - m))


def _logsumexp(x, dim, keepdim):
    axes = _axes(x.ndim, dim)
    if x.ndim == 0:
        return x.copy()
    m = np.max(x, axis=axes, keepdims=True) if x.size else np.zeros([1] * x.ndim, x.dtype)
    m = np.where(np.isinf(m), np.zeros_like(m), m)
    out = np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True)) + m
    return out if keepdim else np.squeeze(out, axis=axes)


def _arg(fn, x, dim, keepdim):
    if dim is None:
        return np.array(fn(x.reshape(-1)), dtype=np.int64)
    r = fn(x, axis=dim % max(x.ndim, 1)) if x.ndim else np.array(0)
    r = np.asarray(r, dtype=np.int64)
    return np.expand_dims(r, dim % max(x.ndim, 1)) if keepdim and x.ndim else r


def _scatter_add(x, dim, index, src):
    out = x.copy()
    dim = dim % x.ndim
    for pos in np.ndindex(*index.shape):
        target = list(pos)
        target[dim] = index[pos]
        out[tuple(target)] += src[pos]
    return out


def _gather(x, dim, index):
    if x.ndim == 0:
        return x.copy()
    dim = dim % x.ndim
    grid = list(np.indices(index.shape, sparse=True)) if index.ndim else []
    grid[dim] = index
    return x[tuple(grid)]


def _cast(x, dtype):
    return x.astype(dtype)


def _round(x):
    return np.round(x) if x.dtype.kind == "f" else x


def ref_apply(op: Op, xs: list, fdt):
    """One operation in NumPy with PyTorch's semantics; `fdt` is the float dtype (float32/float64)."""
    a, name = op.args, op.name
    x = xs[0] if xs else None
    F = lambda v: np.asarray(v, dtype=x.dtype)  # noqa: E731  a constant in x's dtype
    if name == "full":
        return np.full(a[0], a[1], dtype=fdt if a[2] in ("float32", "float64") else np.dtype(a[2]))
    if name == "add":
        return np.logical_or(*xs) if xs[0].dtype == np.bool_ else xs[0] + xs[1]
    if name == "sub":
        return xs[0] - xs[1]
    if name == "mul":
        return np.logical_and(*xs) if xs[0].dtype == np.bool_ else xs[0] * xs[1]
    if name == "div":
        return (xs[0].astype(fdt) if xs[0].dtype.kind != "f" else xs[0]) / (
            xs[1].astype(fdt) if xs[1].dtype.kind != "f" else xs[1])
    if name == "floordiv":
        return _floordiv(xs[0], xs[1])
    if name == "mod":
        return _remainder(xs[0], xs[1])
    if name == "fmod":
        return np.fmod(xs[0], xs[1])
    if name == "matmul":
        return np.matmul(xs[0], xs[1])
    if name in ("mm", "bmm", "mv"):
        return np.matmul(xs[0], xs[1])
    if name == "dot":
        return np.asarray(np.dot(xs[0], xs[1]))
    if name == "outer":
        return np.outer(xs[0], xs[1])
    if name == "scalar":
        opname, c, rev = a
        cc = F(c) if (x.dtype.kind == "f" or isinstance(c, int)) else np.asarray(c, dtype=fdt)
        p, q = (cc, x) if rev else (x, cc)
        if opname == "add":
            return p + q
        if opname == "sub":
            return p - q
        if opname == "mul":
            return p * q
        if opname == "div":
            return p.astype(fdt) / q.astype(fdt) if x.dtype.kind != "f" else p / q
        if opname == "pow":
            return np.power(p, q)
        if opname == "floordiv":
            return np.floor_divide(p, q)
        if opname == "mod":
            return _remainder(p, q)
    if name == "where":
        return np.where(xs[0], xs[1], xs[2])
    if name == "slice":
        return np.asarray(x[_index_obj(a[0])])
    if name == "pad":
        return _ref_pad(x, a[0], a[1])
    if name == "inplace":
        fn = {"add": np.add, "sub": np.subtract, "mul": np.multiply}[a[0]]
        return fn(x, np.broadcast_to(xs[1], x.shape)).astype(x.dtype)
    if name in ("realize", "clone", "contiguous", "detach"):
        return x.copy()
    if name == "to":
        return _cast(x, _np_dtype(a[0], fdt))
    if name in ("cat", "stack"):
        return (np.concatenate if name == "cat" else np.stack)(xs, axis=a[0])
    # unary
    unary = {
        "neg": np.negative, "abs": np.abs, "exp": np.exp, "exp2": np.exp2, "expm1": np.expm1, "log": np.log,
        "log2": np.log2, "log10": np.log10, "log1p": np.log1p, "sqrt": np.sqrt, "sin": np.sin, "cos": np.cos,
        "tan": np.tan, "tanh": np.tanh, "floor": np.floor, "ceil": np.ceil, "trunc": np.trunc, "round": _round,
        "sign": _sign, "square": np.square, "isnan": np.isnan, "isinf": np.isinf, "isfinite": np.isfinite,
        "logical_not": np.logical_not,
    }
    if name in unary:
        return unary[name](x)
    if name == "relu":
        return np.where(x > 0, x, np.where(np.isnan(x), x, F(0))) if x.dtype.kind == "f" else np.maximum(x, 0)
    if name == "sigmoid":
        return F(1) / (F(1) + np.exp(-x))
    if name == "reciprocal":
        return F(1) / x
    if name == "rsqrt":
        return F(1) / np.sqrt(x)
    if name == "frac":
        return x - np.trunc(x)
    if name == "clamp":
        lo, hi = a
        out = x
        if lo is not None:
            out = np.maximum(out, F(lo))
        if hi is not None:
            out = np.minimum(out, F(hi))
        return out
    if len(xs) == 1 and len(a) == 1:  # x.op(scalar)
        xs = [x, F(a[0]) if x.dtype.kind == "f" or isinstance(a[0], (int, bool)) else np.asarray(a[0], fdt)]
    binary = {"maximum": np.maximum, "minimum": np.minimum, "lt": np.less, "le": np.less_equal,
              "gt": np.greater, "ge": np.greater_equal, "eq": np.equal, "ne": np.not_equal,
              "logical_and": np.logical_and, "logical_or": np.logical_or, "logical_xor": np.logical_xor,
              "pow": np.power, "remainder": _remainder, "fmod": np.fmod}
    if name in binary:
        return binary[name](xs[0], xs[1])
    # reductions
    if name == "sum":
        dim, keepdim = a
        dt = x.dtype if x.dtype.kind == "f" else np.int64
        return np.asarray(_reduce(np.sum, x, dim, keepdim, dtype=dt))
    if name == "mean":
        dim, keepdim = a
        with np.errstate(all="ignore"):
            return np.asarray(_reduce(np.mean, x, dim, keepdim, dtype=x.dtype))
    if name == "prod":
        dim, keepdim = a
        dt = x.dtype if x.dtype.kind == "f" else np.int64
        return np.asarray(_reduce(np.prod, x, dim, keepdim, dtype=dt))
    if name in ("amax", "amin"):
        dim, keepdim = a
        return np.asarray(_reduce(np.max if name == "amax" else np.min, x, dim, keepdim))
    if name in ("var", "std"):
        dim, correction, keepdim = a
        out = np.asarray(_reduce(np.var, x, dim, keepdim, ddof=correction))
        return np.sqrt(out) if name == "std" else out
    if name in ("all", "any"):
        dim, keepdim = a
        return np.asarray(_reduce(np.all if name == "all" else np.any, x, dim, keepdim))
    if name in ("argmax", "argmin"):
        dim, keepdim = a
        return _arg(np.argmax if name == "argmax" else np.argmin, x, dim, keepdim)
    if name in ("max_dim", "min_dim"):
        dim, keepdim, which = a
        if which == "values":
            fn = np.max if name == "max_dim" else np.min
            return np.asarray(fn(x, axis=dim % max(x.ndim, 1), keepdims=keepdim) if x.ndim else x.copy())
        return _arg(np.argmax if name == "max_dim" else np.argmin, x, dim, keepdim)
    if name == "cumsum":
        dt = x.dtype if x.dtype.kind == "f" else np.int64
        return np.cumsum(x, axis=a[0] % max(x.ndim, 1), dtype=dt) if x.ndim else x.astype(dt)
    if name == "logsumexp":
        return _logsumexp(x, a[0], a[1])
    if name == "softmax":
        return _softmax(x, a[0] % max(x.ndim, 1))
    if name == "log_softmax":
        return _log_softmax(x, a[0] % max(x.ndim, 1))
    if name == "count_nonzero":
        return np.asarray(np.count_nonzero(x, axis=_axes(x.ndim, a[0]) if a[0] is not None else None),
                          dtype=np.int64)
    # nn.functional
    if name == "F.leaky_relu":
        return np.where(x > 0, x, x * F(a[0]))
    if name == "F.linear":
        out = np.matmul(x, xs[1].T)
        return out + xs[2] if len(xs) > 2 else out
    if name in ("F.mse_loss", "F.l1_loss", "F.cross_entropy", "F.nll_loss"):
        if name == "F.mse_loss":
            per = (xs[0] - xs[1]) ** 2
        elif name == "F.l1_loss":
            per = np.abs(xs[0] - xs[1])
        else:
            scores = _log_softmax(x, 1) if name == "F.cross_entropy" else x
            per = -scores[np.arange(x.shape[0]), xs[1]] if x.shape[0] else np.zeros(0, x.dtype)
        if a[0] == "none":
            return per
        with np.errstate(all="ignore"):
            return np.asarray(np.sum(per) if a[0] == "sum" else np.mean(per), dtype=x.dtype)
    # movement
    if name == "permute":
        return np.transpose(x, a[0])
    if name == "transpose":
        return np.swapaxes(x, a[0], a[1]) if x.ndim else x
    if name == "reshape":
        return np.reshape(x, a[0])
    if name == "expand":
        shape = list(a[0])
        lead = len(shape) - x.ndim
        shape = [x.shape[i - lead] if s == -1 else s for i, s in enumerate(shape)]
        return np.broadcast_to(x, shape).copy()
    if name == "flip":
        return np.flip(x, a[0]).copy() if x.ndim else x.copy()
    if name == "squeeze":
        if not a:
            return np.squeeze(x)
        d = a[0] % max(x.ndim, 1)
        return np.squeeze(x, d) if x.ndim and x.shape[d] == 1 else x
    if name == "unsqueeze":
        return np.expand_dims(x, a[0] % (x.ndim + 1))
    if name == "flatten":
        s, e = a
        if x.ndim == 0:
            return x.reshape(1)
        s, e = s % x.ndim, e % x.ndim
        return x.reshape(x.shape[:s] + (int(np.prod(x.shape[s:e + 1])),) + x.shape[e + 1:])
    if name == "movedim":
        return np.moveaxis(x, a[0], a[1])
    # indexing
    if name == "gather":
        return _gather(x, a[0], xs[1])
    if name == "index_select":
        return np.take(x, xs[1], axis=a[0] % max(x.ndim, 1))
    if name == "scatter_add":
        return _scatter_add(x, a[0], xs[1], xs[2])
    if name == "masked_fill":
        return np.where(xs[1], F(a[0]), x)
    if name == "index_tensor":
        return x[xs[1]]
    raise NotImplementedError(f"no NumPy reference for {name}")


def run_numpy(graph: Graph, float_dtype, inputs: list | None = None) -> list:
    """All values of the graph in NumPy; floats in `float_dtype`. Returns the outputs."""
    fdt = np.dtype(float_dtype)
    values = []
    k = 0
    with np.errstate(all="ignore"):
        for node in graph.nodes:
            if isinstance(node, Input):
                given = inputs[k] if inputs is not None else None
                arr = given if given is not None else input_array(node, graph.float_dtype)
                k += 1
                out = arr.astype(fdt) if arr.dtype.kind == "f" else arr
            else:
                out = np.asarray(ref_apply(node, [values[i] for i in node.srcs], fdt))
                if out.dtype.kind == "f" and out.dtype != fdt:
                    out = out.astype(fdt)
            values.append(out)
    return [values[o] for o in graph.outputs]


# ---------------------------------------------------------------- comparing

@dataclass
class Tolerance:
    factor: float   # allowed multiple of |ref64 - ref32|
    rtol: float
    atol: float


TOLERANCES = {"float32": Tolerance(8.0, 3e-5, 1e-5), "float64": Tolerance(8.0 * 2.0 ** -29, 1e-11, 1e-12)}


def compare_outputs(graph: Graph, got: list, ref64: list, ref32: list) -> None:
    """Raise AssertionError (naming the graph) unless lazygrad's outputs match the reference."""
    tol = TOLERANCES[graph.float_dtype]
    problems = []
    for k, (g, r64, r32) in enumerate(zip(got, ref64, ref32)):
        want_dtype = graph.out_dtypes[k] if graph.out_dtypes else None
        if want_dtype is not None:
            want = graph.float_dtype if want_dtype == FLOAT else want_dtype
            if g.dtype != np.dtype(want):
                problems.append(f"output {k} (v{graph.outputs[k]}): dtype {g.dtype}, expected {want}")
                continue
        if g.shape != r64.shape:
            problems.append(f"output {k} (v{graph.outputs[k]}): shape {g.shape}, expected {r64.shape}")
            continue
        if r64.dtype.kind != "f":
            if not np.array_equal(g, r64):
                bad = np.argwhere(g != r64)[:5]
                problems.append(f"output {k} (v{graph.outputs[k]}): {int((g != r64).sum())} of {g.size} "
                                f"elements differ, e.g. at {bad.tolist()}: got {g[tuple(bad.T)].tolist()}, "
                                f"expected {r64[tuple(bad.T)].tolist()}")
            continue
        msg = _compare_float(g.astype(np.float64), r64.astype(np.float64), r32.astype(np.float64), tol)
        if msg:
            problems.append(f"output {k} (v{graph.outputs[k]}): {msg}")
    if problems:
        raise AssertionError("lazygrad disagrees with the NumPy reference\n" + "\n".join(problems) +
                             f"\n{graph}")


def _compare_float(g, r64, r32, tol: Tolerance) -> str:
    with np.errstate(all="ignore"):
        nan64, nan32 = np.isnan(r64), np.isnan(r32)
        fin64, fin32 = np.isfinite(r64), np.isfinite(r32)
        # where float64 and float32 disagree on what kind of number this is, any answer is fine
        must_nan = nan64 & nan32
        must_inf = np.isinf(r64) & np.isinf(r32) & (r64 == r32)
        finite = fin64 & fin32
        bound = tol.factor * np.abs(r64 - r32) + tol.atol + tol.rtol * np.abs(r64)
        ok = np.ones(g.shape, dtype=bool)
        ok &= ~must_nan | np.isnan(g)
        ok &= ~must_inf | (g == r64)
        ok &= ~finite | (np.abs(g - r64) <= bound)
    if ok.all():
        return ""
    bad = np.argwhere(~ok)
    idx = tuple(bad[:5].T)
    return (f"{int((~ok).sum())} of {g.size} elements out of tolerance, e.g. at {bad[:5].tolist()}: "
            f"got {g[idx].tolist()}, float64 reference {r64[idx].tolist()}, float32 reference {r32[idx].tolist()}")


# ---------------------------------------------------------------- finite differences (backward graphs)

def _loss64(graph: Graph, inputs: list, w: np.ndarray) -> float:
    out = run_numpy(graph, np.float64, inputs)[0]
    return float(np.sum(out.astype(np.float64) * w))


def _stencil(graph, inputs, w, k, direction, h, base: float):
    """d loss / d t of inputs[k] + t * direction at t = 0, by the 4-point central difference, and
    the forward minus the backward one-sided difference: ~ h * f'' where the loss is smooth, a
    jump that does not shrink with h at a kink (relu at 0, a tie in max)."""
    def at(t):
        moved = list(inputs)
        moved[k] = inputs[k] + t * direction
        return _loss64(graph, moved, w)
    p1, m1, p2, m2 = at(h), at(-h), at(2 * h), at(-2 * h)
    return (-p2 + 8 * p1 - 8 * m1 + m2) / (12 * h), ((p1 - base) - (base - m1)) / h


def finite_difference_check(graph: Graph, grads: list, max_elements: int = 160, directions: int = 6,
                            seed: int = 0):
    """Compare gradients with float64 finite differences of the NumPy reference.

    Every element is checked when the inputs are small, else `directions` random
    directions (as gradcheck's fast mode). An element or direction where two
    step sizes disagree is a point where the graph is not smooth (relu at 0, a
    tie in max): it is skipped. Returns (checked, skipped); raises AssertionError.
    """
    inputs = [input_array(inp, "float64") for inp in graph.inputs]
    base = run_numpy(graph, np.float64, inputs)[0]
    w = loss_weights(graph, base.shape)
    loss0 = _loss64(graph, inputs, w)
    scale_out = float(np.sum(np.abs(base * w))) if base.size else 0.0
    grad_inputs = [k for k, inp in enumerate(graph.inputs) if inp.grad]
    assert len(grads) == len(grad_inputs), f"{len(grads)} gradients for {len(grad_inputs)} inputs\n{graph}"
    for k, g in zip(grad_inputs, grads):
        assert g.shape == inputs[k].shape, f"grad of v{k}: shape {g.shape}, expected {inputs[k].shape}\n{graph}"
    total = sum(inputs[k].size for k in grad_inputs)
    checks = []  # (description, analytic, fd_coarse, fd_fine)
    if total <= max_elements:
        for k, g in zip(grad_inputs, grads):
            for idx in np.ndindex(*inputs[k].shape):
                e = np.zeros_like(inputs[k])
                e[idx] = 1.0
                scale = max(1.0, abs(float(inputs[k][idx])))
                checks.append((f"d loss / d input {k}{list(idx)}", float(g[idx]),
                               _stencil(graph, inputs, w, k, e, 1e-3 * scale, loss0),
                               _stencil(graph, inputs, w, k, e, 1e-4 * scale, loss0)))
    else:
        rng = np.random.default_rng(seed)
        for r in range(directions):
            for k, g in zip(grad_inputs, grads):
                v = rng.standard_normal(inputs[k].shape)
                checks.append((f"direction {r} of input {k}", float(np.sum(g * v)),
                               _stencil(graph, inputs, w, k, v, 1e-3, loss0),
                               _stencil(graph, inputs, w, k, v, 1e-4, loss0)))
    fds = [c[3][0] for c in checks if np.isfinite(c[3][0])]
    scale = max([1.0, scale_out] + [abs(x) for x in fds])
    bad, skipped = [], 0
    for what, analytic, (coarse, jump_coarse), (fine, jump_fine) in checks:
        kink = abs(jump_fine) > 0.3 * abs(jump_coarse) and abs(jump_fine) > 1e-6 * scale
        if kink or not (np.isfinite(coarse) and np.isfinite(fine)) or \
                abs(coarse - fine) > 1e-6 * scale + 1e-4 * abs(fine):
            skipped += 1  # not smooth here (or overflow): finite differences say nothing
            continue
        if not abs(analytic - fine) <= 1e-6 * scale + 1e-5 * abs(fine):
            bad.append(f"{what}: backward() gives {analytic!r}, finite differences {fine!r}")
    if bad:
        raise AssertionError(f"{len(bad)} of {len(checks)} gradient checks failed:\n" + "\n".join(bad[:8]) +
                             f"\n{graph}")
    return len(checks) - skipped, skipped


def probe_backward() -> str:
    """'ok' when lazygrad's backward() works on a tiny graph, else the reason (runs in the worker)."""
    import lazygrad
    x = lazygrad.tensor([1.0, 2.0], requires_grad=True)
    try:
        (x * x).sum().backward()
    except NotImplementedError as e:
        return f"NotImplementedError: {e}"
    g = x.grad
    if g is None or not np.allclose(g.numpy(), [2.0, 4.0]):
        return f"backward() of sum(x*x) gave {None if g is None else g.numpy()}"
    return "ok"
