"""Hypothesis strategies that build random `Graph`s.

`graphs()` builds forward graphs over every op lazygrad has (checked at
run time, so ops landing later are fuzzed without editing this file);
`grad_graphs()` builds smooth float64 graphs for the backward fuzzer.

A builder keeps, for every value, its shape, dtype and two facts that decide
which ops may follow:

* exact: every correct implementation computes this value bit for bit
  (inputs, movement, neg/abs/max/min, floor of an exact value, ...). Only
  exact values feed discontinuous ops (floor, comparisons, argmax, casts to
  int), so a rounding difference can never flip a result;
* finite: the value is finite and moderate (no inf/nan/huge numbers), which
  casts to int and int-bounded ops need.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from hypothesis import strategies as st

from .graph import FLOAT, Graph, Input, Op

MAX_NUMEL = 2048
DIM_SIZES = [1, 2, 3, 4, 1, 2, 3, 5, 6, 0]


@dataclass
class Val:
    shape: tuple
    dtype: str          # FLOAT | int32 | int64 | bool
    exact: bool
    finite: bool
    bound: float = 0.0  # integers: a bound on |value| (inf when unknown)

    @property
    def is_float(self) -> bool:
        return self.dtype == FLOAT

    @property
    def is_int(self) -> bool:
        return self.dtype in ("int32", "int64")

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def features() -> frozenset:
    """The optional ops lazygrad has right now."""
    import lazygrad
    T = lazygrad.Tensor
    names = set()
    for name in ("softmax", "log_softmax", "logsumexp", "gather", "index_select", "scatter_add", "masked_fill",
                 "cumsum", "var", "std", "prod", "argmax", "count_nonzero"):
        if hasattr(T, name):
            names.add(name)
    for name in ("cat", "stack"):
        if hasattr(lazygrad, name):
            names.add(name)
    try:  # softmax / log_softmax through nn.functional when Tensor has no method for them
        from lazygrad.nn import functional as F
        names |= {n for n in ("softmax", "log_softmax", "leaky_relu", "linear", "mse_loss", "l1_loss",
                              "cross_entropy", "nll_loss") if hasattr(F, n)}
    except ImportError:
        pass
    try:  # advanced indexing exists when building x[index_tensor] does not raise NotImplementedError
        lazygrad.zeros(3)[lazygrad.tensor([0, 2])]
        names.add("index_tensor")
    except NotImplementedError:
        pass
    except Exception:
        names.add("index_tensor")
    return frozenset(names)


def broadcast(a: tuple, b: tuple):
    n = max(len(a), len(b))
    a1, b1 = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    out = []
    for x, y in zip(a1, b1):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            return None
    return tuple(out)


class Builder:
    def __init__(self, draw, float_dtype: str, feats: frozenset, grad: bool = False):
        self.draw = draw
        self.float_dtype = float_dtype
        self.feats = feats
        self.grad = grad
        self.inputs: list[Input] = []
        self.ops: list[Op] = []
        self.vals: list[Val] = []
        self.nodes: list = []   # inputs and ops in creation order: a value's number is its position
        self.specials = False

    # ---- adding values ----
    def add_input(self, shape, dtype=FLOAT, kind=None) -> int:
        d = self.draw
        if kind is None:
            if dtype == FLOAT:
                kinds = ["normal", "normal", "small", "wide", "positive"] if self.grad else \
                    ["normal", "small", "special", "normal", "wide", "positive"]
                kind = d(st.sampled_from(kinds))
            elif dtype in ("int32", "int64"):
                kind = d(st.sampled_from(["normal", "normal", "positive", "extreme"]))
            else:
                kind = "normal"
        seed = d(st.integers(0, 2 ** 32 - 1))
        grad = self.grad and dtype == FLOAT
        self.inputs.append(Input(tuple(shape), dtype, seed, kind, grad))
        if dtype == FLOAT:
            val = Val(tuple(shape), FLOAT, True, kind != "special")
            self.specials |= kind == "special"
        elif dtype == "bool":
            val = Val(tuple(shape), "bool", True, True, 1)
        elif dtype == "index":
            val = Val(tuple(shape), "int64", True, True, 1e6)
        else:
            bound = {"normal": 12, "positive": 12, "extreme": float("inf")}.get(kind, float("inf"))
            val = Val(tuple(shape), dtype, True, True, bound)
        self.nodes.append(self.inputs[-1])
        self.vals.append(val)
        return len(self.vals) - 1

    def add_op(self, name, srcs, args, val: Val) -> int:
        self.ops.append(Op(name, tuple(srcs), tuple(args)))
        self.nodes.append(self.ops[-1])
        self.vals.append(val)
        return len(self.vals) - 1

    # ---- picking operands ----
    def pick(self, pred=None):
        """A value satisfying pred, preferring recent ones; None when there is none."""
        cands = [i for i, v in enumerate(self.vals) if pred is None or pred(v)]
        if not cands:
            return None
        k = self.draw(st.integers(0, len(cands) - 1))
        return cands[len(cands) - 1 - k]

    def shape_like(self, shape, allow_fewer=True) -> tuple:
        """A shape that broadcasts with `shape` without changing the result shape."""
        d = self.draw
        dims = list(shape)
        if allow_fewer and dims:
            drop = d(st.integers(0, len(dims)))
            dims = dims[drop:]
        return tuple(1 if d(st.integers(0, 3)) == 0 else s for s in dims)

    def operand_for(self, i: int, dtype: str, exact=None, finite=None) -> int:
        """A second operand broadcasting with value i (an existing value or a fresh input)."""
        v = self.vals[i]
        if self.draw(st.integers(0, 2)) > 0:
            def ok(w):
                out = broadcast(v.shape, w.shape)
                return (w.dtype == dtype and out is not None and math.prod(out) <= MAX_NUMEL
                        and (exact is None or w.exact or not exact) and (finite is None or w.finite or not finite))
            j = self.pick(ok)
            if j is not None:
                return j
        shape = self.shape_like(v.shape)
        if self.draw(st.integers(0, 5)) == 0 and len(v.shape) < 4:  # a larger operand broadcasting v up
            shape = (self.draw(st.sampled_from([2, 3])),) + tuple(v.shape)
        kind = None
        if finite and dtype == FLOAT:
            kind = self.draw(st.sampled_from(["normal", "small", "positive"]))
        return self.add_input(shape, dtype, kind)


# ---------------------------------------------------------------- op generators
# Each takes the builder, returns the new value's number or None when it does not apply.

FLOAT_UNARY = {
    # name: (needs exact src, keeps exact, keeps finite)
    "neg": (False, True, True), "abs": (False, True, True), "relu": (False, True, True),
    "exp": (False, False, False), "exp2": (False, False, False), "expm1": (False, False, False),
    "log": (False, False, False), "log2": (False, False, False), "log10": (False, False, False),
    "log1p": (False, False, False), "sqrt": (False, False, False), "rsqrt": (False, False, False),
    "sin": (False, False, True), "cos": (False, False, True), "tan": (False, False, False),
    "tanh": (False, False, True), "sigmoid": (False, False, True), "square": (False, False, False),
    "reciprocal": (False, False, False), "sign": (True, True, True), "floor": (True, True, True),
    "ceil": (True, True, True), "round": (True, True, True), "trunc": (True, True, True),
    "frac": (True, True, True),
}
# sin/cos/tan of a huge *computed* value are chaotic: tan(exp(exp(x))) at x = 2.894 (exp(exp(x)) = 7.0e7,
# one float32 ulp = 8) is -0.90 at numpy's float32 argument and 3.94 at the neighbour one ulp below, which
# an exp within 1 ulp may give; the float64/float32 reference spread need not cover that (fuzz.explore
# --seed 11111, graph #482: a false alarm). They take exact values (inputs: any size) or moderate ones.
PERIODIC = frozenset({"sin", "cos", "tan"})
GRAD_UNARY = ["neg", "exp", "sin", "cos", "tanh", "sigmoid", "square", "relu", "abs"]


def g_float_unary(b: Builder):
    i = b.pick(lambda v: v.is_float)
    if i is None:
        return None
    v = b.vals[i]
    names = GRAD_UNARY if b.grad else [n for n, (ne, _, _) in FLOAT_UNARY.items() if v.exact or not ne]
    name = b.draw(st.sampled_from(names))
    if b.grad and name == "exp" and not v.finite:
        return None
    if name in PERIODIC and not (v.exact or v.finite):
        return None   # a computed, unbounded argument: one ulp of it can move sin/cos/tan anywhere (see below)
    _, keep_exact, keep_finite = FLOAT_UNARY[name]
    out = Val(v.shape, FLOAT, v.exact and keep_exact, v.finite and keep_finite)
    if b.grad and name == "exp":
        # keep exp's argument moderate: exp(tanh(x) * 3)
        j = b.add_op("tanh", [i], [], Val(v.shape, FLOAT, False, True))
        j = b.add_op("scalar", [j], ["mul", 3.0, False], Val(v.shape, FLOAT, False, True))
        return b.add_op("exp", [j], [], Val(v.shape, FLOAT, False, True))
    return b.add_op(name, [i], [], out)


def g_positive_unary(b: Builder):
    """log / sqrt / reciprocal / rsqrt of x*x + c: smooth everywhere (backward graphs)."""
    i = b.pick(lambda v: v.is_float)
    if i is None:
        return None
    v = b.vals[i]
    name = b.draw(st.sampled_from(["log", "sqrt", "reciprocal", "rsqrt", "log1p"]))
    j = b.add_op("mul", [i, i], [], Val(v.shape, FLOAT, False, v.finite))
    j = b.add_op("scalar", [j], ["add", 0.5, False], Val(v.shape, FLOAT, False, v.finite))
    return b.add_op(name, [j], [], Val(v.shape, FLOAT, False, v.finite))


SCALARS = [2.0, -1.5, 0.5, 3.0, 1e-3, -4.0, 0.0, 1.0]


def g_float_scalar(b: Builder):
    i = b.pick(lambda v: v.is_float)
    if i is None:
        return None
    v = b.vals[i]
    opname = b.draw(st.sampled_from(["add", "sub", "mul", "div", "pow"] + ([] if b.grad else ["floordiv", "mod"])))
    rev = b.draw(st.booleans())
    if opname == "pow":
        c = b.draw(st.sampled_from([2, 3, 0.5, -1, 1.5, -2, 0, 2.0] if not b.grad else [2, 3, 2.0, 1]))
        if rev:
            c = b.draw(st.sampled_from([2.0, 0.5, 3.0] + ([] if b.grad else [-2.0, 0.0, 1.0])))
    else:
        c = b.draw(st.sampled_from(SCALARS))
    if opname in ("floordiv", "mod") and not v.exact:
        return None
    if b.grad and ((opname == "div" and rev) or (opname == "pow" and rev and not v.finite)):
        return None
    if b.grad and opname == "div" and c == 0.0:
        c = 2.0
    if b.grad and opname == "pow" and rev:
        # keep the exponent moderate: c ** tanh(x)
        i = b.add_op("tanh", [i], [], Val(v.shape, FLOAT, False, True))
    finite = v.finite and opname in ("add", "sub", "mul") and not (opname == "pow")
    exact = v.exact and opname == "mul" and c in (1.0, -1.0)
    return b.add_op("scalar", [i], [opname, c, rev], Val(v.shape, FLOAT, exact, finite))


def g_float_binary(b: Builder):
    i = b.pick(lambda v: v.is_float)
    if i is None:
        return None
    v = b.vals[i]
    names = ["add", "sub", "mul", "div", "maximum", "minimum"] if b.grad else \
        ["add", "sub", "mul", "div", "maximum", "minimum", "pow", "fmod", "remainder", "floordiv"]
    name = b.draw(st.sampled_from(names))
    needs_exact = name in ("fmod", "remainder", "floordiv")
    if needs_exact and not v.exact:
        return None
    j = b.operand_for(i, FLOAT, exact=needs_exact or None, finite=True if b.grad else None)
    w = b.vals[j]
    if needs_exact and not w.exact:
        return None
    shape = broadcast(b.vals[i].shape, w.shape)
    if shape is None or math.prod(shape) > MAX_NUMEL:
        return None
    if b.grad and name == "div":
        # a / (w*w + 0.5)
        j = b.add_op("mul", [j, j], [], Val(w.shape, FLOAT, False, True))
        j = b.add_op("scalar", [j], ["add", 0.5, False], Val(w.shape, FLOAT, False, True))
    v = b.vals[i]
    exact = v.exact and w.exact and name in ("maximum", "minimum", "fmod")
    finite = v.finite and w.finite and name in ("add", "sub", "mul", "maximum", "minimum")
    return b.add_op(name, [i, j], [], Val(shape, FLOAT, exact, finite))


def g_int_binary(b: Builder):
    i = b.pick(lambda v: v.is_int)
    if i is None:
        return None
    v = b.vals[i]
    name = b.draw(st.sampled_from(["add", "sub", "mul", "maximum", "minimum", "floordiv", "mod", "fmod", "div"]))
    if name in ("floordiv", "mod", "fmod"):
        # a divisor that is never zero: a fresh input of positive values, maybe negated
        shape = b.shape_like(v.shape)
        j = b.add_input(shape, v.dtype, "positive")
        if b.draw(st.booleans()):
            j = b.add_op("neg", [j], [], Val(shape, v.dtype, True, True, 12))
    else:
        j = b.operand_for(i, v.dtype)
    w = b.vals[j]
    shape = broadcast(v.shape, w.shape)
    if shape is None or math.prod(shape) > MAX_NUMEL:
        return None
    if name == "div":
        if b.float_dtype != "float32":
            return None
        return b.add_op("div", [i, j], [], Val(shape, FLOAT, False, False))
    bound = {"add": v.bound + w.bound, "sub": v.bound + w.bound, "mul": v.bound * w.bound}.get(
        name, max(v.bound, w.bound))
    return b.add_op(name, [i, j], [], Val(shape, v.dtype, True, True, bound))


def g_int_unary(b: Builder):
    i = b.pick(lambda v: v.is_int)
    if i is None:
        return None
    v = b.vals[i]
    kind = b.draw(st.sampled_from(["neg", "abs", "scalar", "sign", "square", "relu"]))
    if kind == "scalar":
        opname = b.draw(st.sampled_from(["add", "mul", "floordiv", "mod", "sub"]))
        c = b.draw(st.sampled_from([3, -2, 1, 7] if opname in ("floordiv", "mod") else [3, -2, 0, 1, 7, 100]))
        rev = opname in ("add", "mul", "sub") and b.draw(st.booleans())
        bound = v.bound * abs(c) if opname == "mul" else v.bound + abs(c)
        return b.add_op("scalar", [i], [opname, c, rev], Val(v.shape, v.dtype, True, True, bound))
    bound = v.bound * v.bound if kind == "square" else v.bound
    return b.add_op(kind, [i], [], Val(v.shape, v.dtype, True, True, bound))


def g_compare(b: Builder):
    i = b.pick(lambda v: v.exact and v.dtype != "bool")
    if i is None:
        return None
    v = b.vals[i]
    name = b.draw(st.sampled_from(["lt", "le", "gt", "ge", "eq", "ne"]))
    if b.draw(st.booleans()):
        c = b.draw(st.sampled_from([0.0, 0.5, -1.0, 1.0] if v.is_float else [0, 1, -3]))
        return b.add_op(name, [i], [c], Val(v.shape, "bool", True, True, 1))
    j = b.operand_for(i, v.dtype, exact=True)
    w = b.vals[j]
    shape = broadcast(v.shape, w.shape)
    if not w.exact or shape is None or math.prod(shape) > MAX_NUMEL:
        return None
    return b.add_op(name, [i, j], [], Val(shape, "bool", True, True, 1))


def g_float_predicate(b: Builder):
    i = b.pick(lambda v: v.is_float and v.exact)
    if i is None:
        return None
    v = b.vals[i]
    name = b.draw(st.sampled_from(["isnan", "isinf", "isfinite"]))
    return b.add_op(name, [i], [], Val(v.shape, "bool", True, True, 1))


def g_logical(b: Builder):
    i = b.pick(lambda v: v.dtype == "bool")
    if i is None:
        return None
    v = b.vals[i]
    name = b.draw(st.sampled_from(["logical_not", "logical_and", "logical_or", "logical_xor", "add", "mul"]))
    if name == "logical_not":
        return b.add_op(name, [i], [], Val(v.shape, "bool", True, True, 1))
    j = b.operand_for(i, "bool")
    shape = broadcast(v.shape, b.vals[j].shape)
    if shape is None or math.prod(shape) > MAX_NUMEL:
        return None
    return b.add_op(name, [i, j], [], Val(shape, "bool", True, True, 1))


def g_where(b: Builder):
    c = b.pick(lambda v: v.dtype == "bool")
    if c is None:
        return None
    cv = b.vals[c]
    i = b.pick(lambda v: v.dtype != "bool" and broadcast(v.shape, cv.shape) is not None)
    if i is None:
        return None
    v = b.vals[i]
    j = b.operand_for(i, v.dtype)
    w = b.vals[j]
    shape = broadcast(broadcast(cv.shape, v.shape) or (), w.shape) if broadcast(cv.shape, v.shape) else None
    if shape is None or math.prod(shape) > MAX_NUMEL:
        return None
    return b.add_op("where", [c, i, j], [], Val(shape, v.dtype, v.exact and w.exact, v.finite and w.finite,
                                                 max(v.bound, w.bound)))


def g_cast(b: Builder):
    i = b.pick()
    v = b.vals[i]
    if v.is_float:
        if not (v.exact and v.finite):
            return None
        target = b.draw(st.sampled_from(["int64", "int32", "bool"]))
        return b.add_op("to", [i], [target, b.float_dtype], Val(v.shape, target, True, True, 1e9))
    if v.is_int:
        target = b.draw(st.sampled_from([FLOAT, "int32", "int64", "bool"]))
        if target == v.dtype:
            return None
        exact = target != FLOAT or v.bound < 2 ** 24
        bound = v.bound if target != "int32" or v.bound < 2 ** 31 else float("inf")
        return b.add_op("to", [i], [target, b.float_dtype], Val(v.shape, target, exact, True, bound))
    target = b.draw(st.sampled_from([FLOAT, "int64", "int32"]))
    return b.add_op("to", [i], [target, b.float_dtype], Val(v.shape, target, True, True, 1))


def _dims_arg(b: Builder, ndim: int, single=False, allow_none=True):
    """A dim argument: None, an int (maybe negative) or a tuple of distinct ints."""
    d = b.draw
    if ndim == 0:
        return d(st.sampled_from([None, 0, -1] if allow_none else [0, -1]))
    choices = ["int"] + ([] if single else ["tuple"]) + (["none"] if allow_none else [])
    kind = d(st.sampled_from(choices))
    if kind == "none":
        return None
    if kind == "int":
        k = d(st.integers(0, ndim - 1))
        return k - ndim if d(st.booleans()) else k
    axes = d(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    return tuple(a - ndim if d(st.booleans()) else a for a in axes)


def _reduced_shape(shape, dim, keepdim):
    ndim = len(shape)
    if ndim == 0:
        return ()
    axes = set(range(ndim)) if dim is None else {x % ndim for x in (dim if isinstance(dim, tuple) else (dim,))}
    if keepdim:
        return tuple(1 if k in axes else s for k, s in enumerate(shape))
    return tuple(s for k, s in enumerate(shape) if k not in axes)


def _reduced_count(shape, dim):
    ndim = len(shape)
    if ndim == 0:
        return 1
    axes = set(range(ndim)) if dim is None else {x % ndim for x in (dim if isinstance(dim, tuple) else (dim,))}
    return math.prod(shape[k] for k in axes)


def g_reduce(b: Builder):
    i = b.pick(lambda v: v.dtype != "bool" or not b.grad)
    if i is None:
        return None
    v = b.vals[i]
    if v.is_float:
        names = ["sum", "mean", "amax", "amin", "max_dim", "var", "std", "prod", "logsumexp", "cumsum"] if b.grad \
            else ["sum", "mean", "amax", "amin", "max_dim", "min_dim", "var", "std", "prod", "argmax", "argmin",
                  "cumsum", "logsumexp", "count_nonzero"]
    elif v.is_int:
        names = ["sum", "amax", "amin", "max_dim", "min_dim", "prod", "argmax", "argmin", "cumsum", "count_nonzero"]
    else:
        names = ["all", "any", "sum", "count_nonzero"]
    name = b.draw(st.sampled_from(names))
    if name in ("var", "std", "prod", "cumsum", "logsumexp", "count_nonzero", "argmax") and name not in b.feats:
        return None
    if name in ("argmax", "argmin") and "argmax" not in b.feats:
        return None
    single = name in ("max_dim", "min_dim", "argmax", "argmin", "cumsum", "prod")
    dim = _dims_arg(b, len(v.shape), single=single, allow_none=name not in ("max_dim", "min_dim", "cumsum",
                                                                            "logsumexp"))
    keepdim = b.draw(st.booleans())
    if name == "prod" and dim is None:
        keepdim = False  # torch.prod has no (dim=None, keepdim=True) form
    count = _reduced_count(v.shape, dim)
    needs_nonempty = name in ("amax", "amin", "max_dim", "min_dim", "argmax", "argmin")
    if needs_nonempty and (count == 0 or (dim is None and v.numel == 0)):
        return None
    if name in ("argmax", "argmin", "count_nonzero") and not v.exact:
        return None  # a rounding difference could move the answer (max_dim/min_dim: values only, below)
    if b.grad and name == "prod" and count > 6:
        return None
    shape = _reduced_shape(v.shape, dim, keepdim)
    if name == "cumsum":
        dtype = v.dtype if v.is_float else "int64"
        return b.add_op(name, [i], [dim], Val(v.shape, dtype, v.exact and not v.is_float, v.finite,
                                               v.bound * max(1, v.numel)))
    if name == "count_nonzero":
        shape = _reduced_shape(v.shape, dim, False)
        return b.add_op(name, [i], [dim], Val(shape, "int64", True, True, 1e6))
    if name in ("max_dim", "min_dim"):
        which = "values" if not v.exact else b.draw(st.sampled_from(["values", "indices"]))
        if b.grad:
            which = "values"
        if which == "indices":
            return b.add_op(name, [i], [dim, keepdim, which], Val(shape, "int64", True, True, 1e6))
        return b.add_op(name, [i], [dim, keepdim, which], Val(shape, v.dtype, v.exact, v.finite, v.bound))
    if name in ("argmax", "argmin"):
        if dim is None and keepdim:
            keepdim = False
            shape = ()
        return b.add_op(name, [i], [dim, keepdim], Val(shape, "int64", True, True, 1e6))
    if name in ("var", "std"):
        correction = b.draw(st.sampled_from([0, 1]))
        if b.grad and (count - correction < 1 or name == "std"):
            return None
        return b.add_op(name, [i], [dim, correction, keepdim], Val(shape, FLOAT, False, False))
    if name in ("all", "any"):
        return b.add_op(name, [i], [dim, keepdim], Val(shape, "bool", True, True, 1))
    if name == "sum":
        dtype = v.dtype if v.is_float else "int64"
        exact = not v.is_float
        return b.add_op(name, [i], [dim, keepdim], Val(shape, dtype, exact, v.finite, v.bound * max(1, count)))
    if name == "mean":
        return b.add_op(name, [i], [dim, keepdim], Val(shape, FLOAT, False, v.finite))
    if name == "prod":
        dtype = v.dtype if v.is_float else "int64"
        return b.add_op(name, [i], [dim, keepdim], Val(shape, dtype, not v.is_float, False, float("inf")))
    if name == "logsumexp":
        return b.add_op(name, [i], [dim, keepdim], Val(shape, FLOAT, False, False))
    return b.add_op(name, [i], [dim, keepdim], Val(shape, v.dtype, v.exact, v.finite, v.bound))


def g_softmax(b: Builder):
    i = b.pick(lambda v: v.is_float and len(v.shape) > 0 and (v.finite or not b.grad))
    if i is None:
        return None
    v = b.vals[i]
    name = b.draw(st.sampled_from(["softmax", "log_softmax"]))
    if name not in b.feats:
        return None
    dim = b.draw(st.integers(-len(v.shape), len(v.shape) - 1))
    return b.add_op(name, [i], [dim], Val(v.shape, FLOAT, False, False))


def _factor_shape(b: Builder, numel: int, shape: tuple) -> tuple:
    d = b.draw
    if numel == 0:
        n = d(st.integers(1, 3))
        dims = [d(st.sampled_from([1, 2, 3])) for _ in range(n)]
        dims[d(st.integers(0, n - 1))] = 0
        return tuple(dims)
    factors = []
    m, p = numel, 2
    while m > 1:
        while m % p == 0:
            factors.append(p)
            m //= p
        p += 1
    ndim = d(st.integers(0 if numel == 1 else 1, 4))
    dims = [1] * max(ndim, 1)
    for f in factors:
        dims[d(st.integers(0, len(dims) - 1))] *= f
    if ndim == 0:
        return ()
    return tuple(dims)


def g_movement(b: Builder):
    i = b.pick()
    v = b.vals[i]
    d = b.draw
    nd = len(v.shape)
    kind = d(st.sampled_from(["permute", "transpose", "reshape", "expand", "slice", "flip", "pad", "squeeze",
                              "unsqueeze", "flatten", "movedim", "realize"]))
    keep = dict(exact=v.exact, finite=v.finite, bound=v.bound)
    if kind == "permute":
        if nd < 2:
            return None
        perm = tuple(d(st.permutations(range(nd))))
        if d(st.booleans()):
            perm = tuple(p - nd if d(st.booleans()) else p for p in perm)
        shape = tuple(v.shape[p] for p in perm)
        return b.add_op("permute", [i], [perm], Val(shape, v.dtype, **keep))
    if kind == "transpose":
        if nd < 1:
            return None
        a0, a1 = d(st.integers(-nd, nd - 1)), d(st.integers(-nd, nd - 1))
        shape = list(v.shape)
        shape[a0], shape[a1] = shape[a1], shape[a0]
        return b.add_op("transpose", [i], [a0, a1], Val(tuple(shape), v.dtype, **keep))
    if kind == "movedim":
        if nd < 1:
            return None
        s, t = d(st.integers(-nd, nd - 1)), d(st.integers(-nd, nd - 1))
        order = [k for k in range(nd) if k != s % nd]
        order.insert(t % nd, s % nd)
        return b.add_op("movedim", [i], [s, t], Val(tuple(v.shape[k] for k in order), v.dtype, **keep))
    if kind == "reshape":
        shape = _factor_shape(b, v.numel, v.shape)
        arg = shape
        if shape and v.numel > 0 and d(st.booleans()):
            k = d(st.integers(0, len(shape) - 1))
            arg = tuple(-1 if j == k else s for j, s in enumerate(shape))
        return b.add_op("reshape", [i], [arg], Val(shape, v.dtype, **keep))
    if kind == "expand":
        lead = d(st.integers(0, 2)) if nd < 4 else 0
        new = [d(st.sampled_from([1, 2, 3])) for _ in range(lead)]
        for s in v.shape:
            if s == 1:
                new.append(d(st.sampled_from([1, 2, 3, 4, 0] if not b.grad else [1, 2, 3, 4])))
            else:
                new.append(-1 if d(st.booleans()) else s)
        real = tuple(v.shape[k - lead] if s == -1 else s for k, s in enumerate(new))
        if math.prod(real) > MAX_NUMEL:
            return None
        return b.add_op("expand", [i], [tuple(new)], Val(real, v.dtype, **keep))
    if kind == "slice":
        items, shape = [], []
        ellipsis_used = False
        dim = 0
        while dim < nd:
            size = v.shape[dim]
            choice = d(st.sampled_from(["full", "range", "range", "int", "none", "ellipsis"]))
            if choice == "none":
                items.append(("n",))
                shape.append(1)
                continue
            if choice == "ellipsis" and not ellipsis_used:
                ellipsis_used = True
                rest = d(st.integers(0, nd - dim))
                items.append(("e",))
                shape.extend(v.shape[dim:dim + rest])
                dim += rest
                continue
            if choice == "int" and size > 0:
                k = d(st.integers(-size, size - 1))
                items.append(("i", k))
                dim += 1
                continue
            if choice == "range":
                start = d(st.one_of(st.none(), st.integers(-size - 2, size + 2)))
                stop = d(st.one_of(st.none(), st.integers(-size - 2, size + 2)))
                step = d(st.sampled_from([None, 1, 2, 3]))
                items.append(("s", start, stop, step))
                shape.append(len(range(*slice(start, stop, step).indices(size))))
            else:
                items.append(("s", None, None, None))
                shape.append(size)
            dim += 1
        if not items:
            items.append(("e",))
        return b.add_op("slice", [i], [tuple(items)], Val(tuple(shape), v.dtype, **keep))
    if kind == "flip":
        if nd == 0:
            return None
        dims = tuple(d(st.lists(st.integers(-nd, nd - 1), min_size=1, max_size=nd,
                                unique_by=lambda x: x % nd)))
        return b.add_op("flip", [i], [dims], Val(v.shape, v.dtype, **keep))
    if kind == "pad":
        if nd == 0:
            return None
        k = d(st.integers(1, nd))
        pads, shape = [], list(v.shape)
        for j in range(k):
            axis = nd - 1 - j
            lo = d(st.integers(-shape[axis], 3))
            hi = d(st.integers(-(shape[axis] + lo) if lo < 0 else -shape[axis], 3))
            if shape[axis] + min(lo, 0) + min(hi, 0) < 0 or shape[axis] + lo + hi < 0:
                return None
            pads += [lo, hi]
            shape[axis] += lo + hi
        if v.dtype == "bool":
            value = False
        elif v.is_int:
            value = d(st.sampled_from([0, 7, -1]))
        else:
            value = d(st.sampled_from([0.0, 1.5, -2.0]))
        if math.prod(shape) > MAX_NUMEL:
            return None
        return b.add_op("pad", [i], [tuple(pads), value], Val(tuple(shape), v.dtype, **keep))
    if kind == "squeeze":
        if d(st.booleans()) or nd == 0:
            return b.add_op("squeeze", [i], [], Val(tuple(s for s in v.shape if s != 1), v.dtype, **keep))
        k = d(st.integers(-nd, nd - 1))
        shape = tuple(s for j, s in enumerate(v.shape) if not (j == k % nd and s == 1))
        return b.add_op("squeeze", [i], [k], Val(shape, v.dtype, **keep))
    if kind == "unsqueeze":
        if nd >= 5:
            return None
        k = d(st.integers(-nd - 1, nd))
        shape = list(v.shape)
        shape.insert(k % (nd + 1), 1)
        return b.add_op("unsqueeze", [i], [k], Val(tuple(shape), v.dtype, **keep))
    if kind == "flatten":
        if nd == 0:
            return b.add_op("flatten", [i], [0, -1], Val((1,), v.dtype, **keep))
        s = d(st.integers(0, nd - 1))
        e = d(st.integers(s, nd - 1))
        shape = v.shape[:s] + (math.prod(v.shape[s:e + 1]),) + v.shape[e + 1:]
        return b.add_op("flatten", [i], [s - nd if d(st.booleans()) else s, e], Val(tuple(shape), v.dtype, **keep))
    if kind == "realize":
        return b.add_op("realize", [i], [], Val(v.shape, v.dtype, **keep))
    return None


def g_matmul(b: Builder):
    i = b.pick(lambda v: v.dtype != "bool" and 1 <= len(v.shape) <= 3 and v.numel <= 256)
    if i is None:
        return None
    v = b.vals[i]
    d = b.draw
    k = v.shape[-1]
    nd = len(v.shape)
    m = d(st.sampled_from([1, 2, 3, 5, 0] if not b.grad else [1, 2, 3]))
    variant = d(st.sampled_from(["vec", "mat", "batch"]))
    if variant == "vec":
        other = (k,)
    elif variant == "mat":
        other = (k, m)
    else:
        batch = v.shape[:-2] if nd == 3 else (d(st.sampled_from([1, 2])),)
        if batch and d(st.booleans()):
            batch = (1,)
        other = tuple(batch) + (k, m)
    j = b.add_input(other, v.dtype, "normal" if v.is_int else None)
    # the result shape, by torch.matmul's rules
    a_shape, b_shape = v.shape, other
    a2 = (1,) + a_shape if len(a_shape) == 1 else a_shape
    b2 = b_shape + (1,) if len(b_shape) == 1 else b_shape
    batch = broadcast(a2[:-2], b2[:-2])
    if batch is None:
        return None
    shape = batch + (a2[-2], b2[-1])
    if len(a_shape) == 1:
        shape = shape[:-2] + shape[-1:]
    if len(b_shape) == 1:
        shape = shape[:-1]
    if math.prod(shape) > MAX_NUMEL:
        return None
    name = "matmul"
    if len(a_shape) == 2 and len(b_shape) == 2 and d(st.booleans()):
        name = "mm"
    elif len(a_shape) == 2 and len(b_shape) == 1 and d(st.booleans()):
        name = "mv"
    elif len(a_shape) == 1 and len(b_shape) == 1 and d(st.booleans()):
        name = "dot"
    bound = v.bound * 12 * max(k, 1)
    return b.add_op(name, [i, j], [], Val(shape, v.dtype, not v.is_float, False, bound))


def g_inplace(b: Builder):
    i = b.pick(lambda v: v.dtype != "bool")
    if i is None:
        return None
    v = b.vals[i]
    method = b.draw(st.sampled_from(["add", "sub", "mul"]))
    shape = b.shape_like(v.shape)
    j = b.add_input(shape, v.dtype, "normal")
    return b.add_op("inplace", [i, j], [method], Val(v.shape, v.dtype, False if v.is_float else True,
                                                     v.finite, v.bound * 12 + 12))


def g_index(b: Builder):
    """gather / index_select / scatter_add / masked_fill / x[index] when lazygrad has them."""
    i = b.pick(lambda v: len(v.shape) >= 1 and v.dtype != "bool")
    if i is None:
        return None
    v = b.vals[i]
    d = b.draw
    name = d(st.sampled_from(["gather", "index_select", "scatter_add", "masked_fill", "index_tensor"]))
    if name not in b.feats:
        return None
    nd = len(v.shape)
    dim = d(st.integers(-nd, nd - 1))
    size = v.shape[dim % nd]
    keep = dict(exact=v.exact, finite=v.finite, bound=v.bound)
    if name == "gather":
        if size == 0:
            return None
        shape = tuple(d(st.integers(0 if k != dim % nd else 1, s)) if s > 0 else 0 for k, s in enumerate(v.shape))
        shape = tuple(d(st.integers(1, 4)) if k == dim % nd else s for k, s in enumerate(shape))
        j = b.add_input(shape, "index", f"index:{size}")
        return b.add_op("gather", [i, j], [dim], Val(shape, v.dtype, **keep))
    if name == "index_select":
        if size == 0:
            return None
        n = d(st.integers(0, 5))
        j = b.add_input((n,), "index", f"index:{size}")
        shape = tuple(n if k == dim % nd else s for k, s in enumerate(v.shape))
        return b.add_op("index_select", [i, j], [dim], Val(shape, v.dtype, **keep))
    if name == "index_tensor":
        if v.shape[0] == 0:
            return None
        n = d(st.integers(0, 5))
        j = b.add_input((n,), "index", f"index:{v.shape[0]}")
        return b.add_op("index_tensor", [i, j], [], Val((n,) + v.shape[1:], v.dtype, **keep))
    if name == "masked_fill":
        shape = b.shape_like(v.shape)
        j = b.add_input(shape, "bool")
        value = 2.5 if v.is_float else 3
        return b.add_op("masked_fill", [i, j], [value], Val(v.shape, v.dtype, **keep))
    if name == "scatter_add":
        if size == 0:
            return None
        shape = tuple(d(st.integers(0, s)) if k != dim % nd else d(st.integers(0, 4)) for k, s in enumerate(v.shape))
        j = b.add_input(shape, "index", f"index:{size}")
        src = b.add_input(shape, v.dtype, "normal")
        return b.add_op("scatter_add", [i, j, src], [dim], Val(v.shape, v.dtype, not v.is_float, v.finite,
                                                                 v.bound * 12))
    return None


def g_cat(b: Builder):
    i = b.pick(lambda v: len(v.shape) >= 1)
    if i is None:
        return None
    v = b.vals[i]
    name = b.draw(st.sampled_from(["cat", "stack"]))
    if name not in b.feats:
        return None
    nd = len(v.shape)
    if name == "cat":
        dim = b.draw(st.integers(-nd, nd - 1))
        extra = b.draw(st.sampled_from([0, 1, 2]))
        shape = tuple(extra if k == dim % nd else s for k, s in enumerate(v.shape))
        out = tuple(s + extra if k == dim % nd else s for k, s in enumerate(v.shape))
    else:
        dim = b.draw(st.integers(-nd - 1, nd))
        shape = v.shape
        out = list(v.shape)
        out.insert(dim % (nd + 1), 2)
        out = tuple(out)
    j = b.add_input(shape, v.dtype, "normal" if v.dtype != FLOAT else None)
    w = b.vals[j]
    return b.add_op(name, [i, j], [dim], Val(out, v.dtype, v.exact and w.exact, v.finite and w.finite,
                                             max(v.bound, w.bound)))


def g_nn(b: Builder):
    """torch.nn.functional ops that lazygrad has: leaky_relu, linear, mse/l1 loss, cross_entropy, nll_loss."""
    d = b.draw
    name = d(st.sampled_from(["F.leaky_relu", "F.linear", "F.mse_loss", "F.l1_loss", "F.cross_entropy",
                              "F.nll_loss"]))
    if name[2:] not in b.feats:
        return None
    if name == "F.leaky_relu":
        i = b.pick(lambda v: v.is_float)
        if i is None:
            return None
        v = b.vals[i]
        return b.add_op(name, [i], [d(st.sampled_from([0.01, 0.2]))], Val(v.shape, FLOAT, v.exact, v.finite))
    if name == "F.linear":
        i = b.pick(lambda v: v.is_float and 1 <= len(v.shape) <= 3 and v.numel <= 256)
        if i is None:
            return None
        v = b.vals[i]
        n_out = d(st.sampled_from([1, 2, 3, 0] if not b.grad else [1, 2, 3]))
        w = b.add_input((n_out, v.shape[-1]), FLOAT, "normal")
        srcs = [i, w]
        if d(st.booleans()):
            srcs.append(b.add_input((n_out,), FLOAT, "normal"))
        return b.add_op(name, srcs, [], Val(v.shape[:-1] + (n_out,), FLOAT, False, v.finite))
    reduction = d(st.sampled_from(["mean", "sum", "none"]))
    if name in ("F.mse_loss", "F.l1_loss"):
        i = b.pick(lambda v: v.is_float)
        if i is None:
            return None
        v = b.vals[i]
        j = b.add_input(v.shape, FLOAT, "normal")
        shape = v.shape if reduction == "none" else ()
        return b.add_op(name, [i, j], [reduction], Val(shape, FLOAT, False, False))
    i = b.pick(lambda v: v.is_float and len(v.shape) == 2 and v.shape[1] > 0)
    if i is None:
        return None
    v = b.vals[i]
    t = b.add_input((v.shape[0],), "index", f"index:{v.shape[1]}")
    shape = (v.shape[0],) if reduction == "none" else ()
    return b.add_op(name, [i, t], [reduction], Val(shape, FLOAT, False, False))


FULL_FLOATS = [0.0, -0.0, 1.0, -1.5, 0.5, 2.0, 3.0, 0.1]
FULL_SPECIALS = [float("nan"), float("inf"), float("-inf")]
FULL_INTS = [0, 1, 2, -3, 7]


def g_full(b: Builder):
    """A lazy constant (lazygrad.full: a CONST node, never a buffer) of a shape that broadcasts with an
    existing value, sometimes with a leading dim more: reductions and broadcasts of constants are
    rewritten by simplify (folded sums, max of a constant), which buffers never reach."""
    i = b.pick()
    if i is None:
        return None
    v = b.vals[i]
    d = b.draw
    shape = b.shape_like(v.shape) if d(st.booleans()) else tuple(v.shape)
    if d(st.integers(0, 3)) == 0 and len(shape) < 4:
        shape = (d(st.sampled_from([1, 2, 3, 5])),) + tuple(shape)
    if math.prod(shape) > MAX_NUMEL:
        shape = shape[1:]
    dtype = FLOAT if b.grad else d(st.sampled_from([FLOAT, FLOAT, v.dtype, "int64", "int32", "bool"]))
    if dtype == FLOAT:
        value = d(st.sampled_from(FULL_FLOATS + ([] if b.grad else FULL_SPECIALS)))
        val = Val(shape, FLOAT, True, math.isfinite(value))
        concrete = b.float_dtype
        b.specials |= not math.isfinite(value)
    elif dtype == "bool":
        value = d(st.booleans())
        val, concrete = Val(shape, "bool", True, True, 1), "bool"
    else:
        value = d(st.sampled_from(FULL_INTS))
        val, concrete = Val(shape, dtype, True, True, 7), dtype
    return b.add_op("full", [], [shape, value, concrete], val)


FORWARD_GENERATORS = [g_float_unary, g_float_unary, g_float_scalar, g_float_binary, g_float_binary, g_int_binary,
                      g_reduce, g_int_unary, g_compare, g_float_predicate, g_logical, g_where, g_cast, g_reduce, g_reduce,
                      g_softmax, g_movement, g_movement, g_movement, g_matmul, g_inplace, g_index, g_cat, g_nn, g_full]
GRAD_GENERATORS = [g_float_unary, g_positive_unary, g_float_scalar, g_float_binary, g_float_binary, g_where,
                   g_reduce, g_softmax, g_movement, g_movement, g_matmul, g_inplace, g_index, g_cat, g_nn, g_full]


def _input_dtype(draw, grad: bool) -> str:
    if grad:
        return FLOAT
    return draw(st.sampled_from([FLOAT, FLOAT, FLOAT, FLOAT, "int64", "int32", "bool"]))


@st.composite
def graphs(draw, feats: frozenset | None = None, max_ops: int = 8, grad: bool = False):
    """A random graph. `grad=True`: float64, smooth ops, every input requires grad."""
    feats = features() if feats is None else feats
    float_dtype = "float64" if grad else draw(st.sampled_from(["float32", "float32", "float32", "float64"]))
    b = Builder(draw, float_dtype, feats, grad)
    # a base shape; the first inputs broadcast against it
    ndim = draw(st.integers(0, 4))
    sizes = DIM_SIZES if not grad else [1, 2, 3, 4, 1, 2, 3]
    base = tuple(draw(st.sampled_from(sizes)) for _ in range(ndim))
    n_inputs = draw(st.integers(1, 3))
    for k in range(n_inputs):
        shape = base if k == 0 else b.shape_like(base)
        b.add_input(shape, FLOAT if k == 0 and grad else _input_dtype(draw, grad))
    n_ops = draw(st.integers(1, max_ops))
    gens = GRAD_GENERATORS if grad else FORWARD_GENERATORS
    attempts = 0
    while len(b.ops) < n_ops and attempts < 4 * n_ops:
        attempts += 1
        gen = draw(st.sampled_from(gens))
        gen(b)
    if not b.ops:
        b.add_op("realize", [0], [], b.vals[0])
    op_values = [k for k, n in enumerate(b.nodes) if isinstance(n, Op)]
    if grad:
        # the output: the last float value computed from an input (not from constants alone: backward()
        # of a value no input reaches raises "does not require grad", in PyTorch too)
        reached = set()
        for k, n in enumerate(b.nodes):
            if (n.grad if isinstance(n, Input) else any(s in reached for s in n.srcs)):   # (index inputs: no)
                reached.add(k)
        floats = [k for k in op_values if b.vals[k].is_float and k in reached]
        if not floats:
            b.add_op("scalar", [0], ["mul", 2.0, False], Val(b.vals[0].shape, FLOAT, False, True))
            floats = [len(b.vals) - 1]
        outputs = (floats[-1],)
    else:
        last = op_values[-1]
        extra = draw(st.lists(st.sampled_from(op_values), max_size=2, unique=True))
        outputs = tuple(dict.fromkeys([last] + [e for e in extra if e != last]))
    out_dtypes = tuple(b.vals[o].dtype for o in outputs)
    joint = draw(st.booleans()) if len(outputs) > 1 else False
    wseed = draw(st.integers(0, 2 ** 32 - 1)) if grad else None
    return Graph(float_dtype, tuple(b.nodes), outputs, out_dtypes, joint, wseed)
