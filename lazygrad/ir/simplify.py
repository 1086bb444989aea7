"""The simplify pass: constant folding and algebraic identities.

`simplify(roots)` rebuilds the graph bottom-up, applying local rules. Nodes
are interned, so a rebuilt node that matches an existing one *is* that node.
Rules only fire where they are exact in floating point (x*1 -> x, but not
x+0 -> x for floats, which would turn -0.0 + 0 into -0.0).

Reductions of values that are constant along the reduced axes (a CONST, an
EXPAND from size 1, elementwise ops of those) are not loops: `SUM` becomes the
value times the count, `REDUCE_MAX` the value. So `ones(1 << 40).sum()` costs
nothing, as does `x.expand(n, m).sum(0)`. See `_reduce_uniform`.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from . import dtypes
from . import node as N
from .node import Node
from .ops import Op, MOVEMENT, ELEMENTWISE, REDUCE


def _is_const(n: Node, value=None) -> bool:
    return n.op is Op.CONST and n.realized is None and (value is None or n.arg == value)


def _fold(op: Op, node: Node, srcs: list[Node]):
    """Evaluate an elementwise op on constants with the node's own precision (NumPy scalars)."""
    vals = [np.array(s.arg, dtype=s.dtype.np) for s in srcs]
    with np.errstate(all="ignore"):
        if op is Op.ADD:
            r = vals[0] + vals[1] if not node.dtype.is_bool else vals[0] | vals[1]
        elif op is Op.MUL:
            r = vals[0] * vals[1] if not node.dtype.is_bool else vals[0] & vals[1]
        elif op is Op.NEG and not node.dtype.is_bool:
            r = -vals[0]
        elif op is Op.CAST:
            r = vals[0].astype(node.dtype.np)
        elif op is Op.CMPLT:
            r = vals[0] < vals[1]
        elif op is Op.CMPEQ:
            r = vals[0] == vals[1]
        elif op is Op.WHERE:
            r = vals[1] if bool(vals[0]) else vals[2]
        else:
            return None
    return N.const(r.item(), node.dtype, node.shape)


# ---- reductions of values that do not vary along the reduced axes ----

def _uniform_axes(node: Node, memo: dict) -> frozenset:
    """The axes along which `node`'s value provably does not change (size-1 axes aside).

    A CONST is constant along every axis, EXPAND(x) along the axes it broadcasts and x's, an
    elementwise op along the axes all its sources share. Anything else (a leaf buffer, a realised
    node, movement that is not an EXPAND, a reduction, gather) along none. Iterative: elementwise
    chains can be deeper than Python's recursion limit.
    """
    stack = [node]
    while stack:
        n = stack[-1]
        if id(n) in memo:
            stack.pop()
            continue
        if n.realized is not None:
            axes = frozenset()
        elif n.op is Op.CONST:
            axes = frozenset(range(len(n.shape)))
        elif n.op is Op.EXPAND or n.op in ELEMENTWISE:
            pending = [s for s in n.src if id(s) not in memo]
            if pending:
                stack.extend(pending)
                continue
            if n.op is Op.EXPAND:
                x = n.src[0]
                axes = memo[id(x)][1] | {i for i, (a, b) in enumerate(zip(x.shape, n.shape)) if a == 1 != b}
            else:
                axes = frozenset.intersection(*[memo[id(s)][1] for s in n.src])
        else:
            axes = frozenset()
        memo[id(n)] = (n, axes)   # (the node is kept alive with its entry: ids are not reused meanwhile)
        stack.pop()
    return memo[id(node)][1]


_memo: dict | None = None   # _uniform_axes' memo for the simplify() run in progress (one walk per node)


class _Abort(Exception):
    """A rewrite would build a node that is realised elsewhere: keep the graph as it is."""


def _fresh(n: Node) -> Node:
    if n.realized is not None and n.op is not Op.CONST:
        raise _Abort   # (see simplify(): a realised node is a leaf the plan does not list)
    return n


def _collapse(node: Node, axes: frozenset, memo: dict) -> Node:
    """`node` with size 1 along `axes` (along each of which it is constant or already of size 1)."""
    key = (id(node), axes)
    hit = memo.get(key)
    if hit is not None:
        return hit[1]
    shape = tuple(1 if i in axes else s for i, s in enumerate(node.shape))
    if shape == node.shape:
        out = node
    elif node.op is Op.CONST:
        out = N.const(node.arg, node.dtype, shape)
    elif node.op is Op.EXPAND:
        x = node.src[0]
        inner = frozenset(i for i in axes if x.shape[i] != 1)
        x = _collapse(x, inner, memo)
        out = x if x.shape == shape else _fresh(N.movement(Op.EXPAND, x, shape))
    else:   # elementwise
        srcs = [_collapse(s, axes, memo) for s in node.src]
        out = _fresh(_rewrite(Node(node.op, tuple(srcs), node.arg, node.dtype, shape), srcs))
    memo[key] = (node, out)
    return out


def _wrap_int(value: int, dtype) -> int:
    bits = 8 * np.dtype(dtype.np).itemsize
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _round_to(exact: Fraction, dtype) -> float:
    """`exact` correctly rounded (to nearest, ties to even) to a float dtype's precision."""
    try:
        x64 = float(exact)   # correctly rounded to float64
    except OverflowError:
        return math.copysign(math.inf, exact)
    if np.dtype(dtype.np) == np.float64 or not math.isfinite(x64):
        return x64
    with np.errstate(all="ignore"):
        f = np.array(x64, dtype=dtype.np)
        if not np.isfinite(f):
            return float(f)
        # float64 -> float32 can round twice (a float64 on a float32 tie): pick the nearest neighbour exactly
        best = None
        for c in (np.nextafter(f, -np.inf), f, np.nextafter(f, np.inf)):
            if not np.isfinite(c):
                continue
            d = abs(Fraction(float(c)) - exact)
            even = not (int(np.array(c).view(np.uint32)) & 1)
            if best is None or d < best[0] or (d == best[0] and even):
                best = (d, c)
    return float(best[1])


def _fold_sum(value, count: int, dtype):
    """The sum of `count` copies of `value`, as the node's dtype would hold it (one correct rounding for floats;
    integers wrap like the loop would; +0.0 for a zero sum, as a sum starting at 0 gives)."""
    if dtype.is_int:
        return _wrap_int(int(value) * count, dtype)
    value = float(np.array(value, dtype=dtype.np))   # (a float32 CONST holds a Python float: round it first)
    if math.isnan(value) or math.isinf(value):
        return value if count else 0.0
    result = _round_to(Fraction(value) * count, dtype)
    return result if result != 0 else 0.0


def _fold_prod(value, count: int, dtype):
    if dtype.is_int:
        return _wrap_int(pow(int(value), count, 1 << 64), dtype)
    with np.errstate(all="ignore"):
        value = np.array(value, dtype=dtype.np).astype(np.float64)
        return float(np.power(value, count).astype(dtype.np)) if count else 1.0


def _reduce_uniform(node: Node, x: Node):
    """The reduction `node` (its source now `x`) without the loop over the axes along which `x` is
    constant; None: no rewrite.

    SUM(x) = x' * count (floats: multiplied in float64, then + 0.0: a sum of -0.0 is +0.0, as in
    PyTorch), REDUCE_MAX(x) = x', where x' is x collapsed to size 1 along those axes; the other
    reduced axes are still reduced.
    A CONST is folded exactly: sum(full((n,), c)) is c * n rounded once to the dtype (PyTorch's
    cascade sum of a float32 constant can be a few ulps off that: sum(full((10**8 + 7,), 0.1)) is
    9999993.0 there, 10000001.0 here, exactly 10000000.85...).
    """
    if x.dtype.is_bool:
        return None
    axes = node.arg
    memo = _memo if _memo is not None else {}
    uniform = _uniform_axes(x, memo)
    collapse = frozenset(i for i in axes if i in uniform and x.shape[i] != 1)
    if not collapse:
        return None
    count = math.prod(x.shape[i] for i in collapse)
    if count == 0 and node.op is not Op.SUM:
        return None   # max / prod of nothing: left to the reduction (the tensor layer refuses it or knows it)
    if count == 0:
        return N.const(0, node.dtype, node.shape)
    rest = tuple(i for i in axes if i not in collapse and x.shape[i] != 1)
    try:
        small = _collapse(x, collapse, {})
        if rest:
            small = _fresh(_rewrite(N.reduce(node.op, small, rest), [small]))
        if node.op is Op.REDUCE_MAX:
            return small
        if _is_const(small):
            fold = _fold_sum if node.op is Op.SUM else _fold_prod
            return N.const(fold(small.arg, count, node.dtype), node.dtype, node.shape)
        if node.op is not Op.SUM:
            return None   # (a product of copies is a power: no op for it)
        dtype = node.dtype
        if dtype.is_int:
            return _fresh(N.binary(Op.MUL, small, N.const(_wrap_int(count, dtype), dtype, node.shape)))
        # float: the product in float64 (exact count, one rounding there) then rounded to the dtype: a
        # float32 count above 2**24 would be rounded itself first
        wide = _fresh(N.cast(small, dtypes.float64))
        out = _fresh(N.binary(Op.MUL, wide, N.const(float(count), dtypes.float64, node.shape)))
        out = _fresh(N.cast(out, dtype))
        return _fresh(N.binary(Op.ADD, out, N.const(0.0, dtype, node.shape)))
    except (_Abort, RecursionError):
        return None


def _rewrite(node: Node, srcs: list[Node]) -> Node:
    op = node.op
    if op in MOVEMENT:
        x = srcs[0]
        if node.shape == x.shape and op in (Op.RESHAPE, Op.EXPAND):
            return x
        if op is Op.PERMUTE and tuple(node.arg) == tuple(range(len(node.arg))):
            return x
        if _is_const(x) and op is not Op.PAD:
            return N.const(x.arg, node.dtype, node.shape)
        if op is Op.RESHAPE and x.op is Op.RESHAPE and x.realized is None:
            return N.movement(Op.RESHAPE, x.src[0], node.arg)
        if op is Op.EXPAND and x.op is Op.EXPAND and x.realized is None:
            return N.movement(Op.EXPAND, x.src[0], node.arg)
        if op is Op.PERMUTE and x.op is Op.PERMUTE and x.realized is None:
            inner = x.arg
            return _rewrite(N.movement(Op.PERMUTE, x.src[0], tuple(inner[i] for i in node.arg)),
                            [x.src[0]])
        return N.movement(op, x, node.arg)
    if op in REDUCE:
        reduced = _reduce_uniform(node, srcs[0])
        if reduced is not None:
            return reduced
    if all(_is_const(s) for s in srcs) and srcs:
        folded = _fold(op, node, srcs)
        if folded is not None:
            return folded
    if op is Op.MUL:
        a, b = srcs
        if _is_const(b, 1) and not b.dtype.is_bool:
            return a
        if _is_const(a, 1) and not a.dtype.is_bool:
            return b
    if op is Op.ADD and not node.dtype.is_floating_point:
        a, b = srcs
        if _is_const(b, 0):
            return a
        if _is_const(a, 0):
            return b
    if op is Op.NEG and srcs[0].op is Op.NEG and srcs[0].realized is None:
        return srcs[0].src[0]
    if op is Op.CAST and srcs[0].dtype is node.dtype:
        return srcs[0]
    if op is Op.WHERE and _is_const(srcs[0]):
        return srcs[1] if srcs[0].arg else srcs[2]
    if all(s is o for s, o in zip(srcs, node.src)):
        return node
    return Node(op, tuple(srcs), node.arg, node.dtype, node.shape)


def simplify(roots: list[Node]) -> list[Node]:
    """The simplified roots. Leaves and realized nodes are kept as they are."""
    global _memo
    _memo = {}
    try:
        return _simplify(roots)
    finally:
        _memo = None


def _simplify(roots: list[Node]) -> list[Node]:
    done: dict[int, Node] = {}
    for node in N.toposort(roots):
        if node.is_leaf:
            done[id(node)] = node
            continue
        new = _rewrite(node, [done[id(s)] for s in node.src])
        if new is not node and new.realized is not None and new.op is not Op.CONST:
            # The rewrite landed on an (interned) node that another realisation computed, e.g.
            # x.reshape(6).reshape(3, 2) -> x.reshape(3, 2) after y = x.reshape(3, 2) was realised.
            # As a leaf it would be an input the plan does not have (plans are keyed by the graph as
            # built, whose leaves do not include it): keep the node as built.
            new = node
        done[id(node)] = new
    return [done[id(r)] for r in roots]
