"""Symbolic reverse-mode differentiation: gradients are IR graphs.

`gradient(root, wrt, seed)` returns, for each node in `wrt`, a new IR node
computing d(root)/d(node) contracted with `seed` (the gradient flowing into
`root`; a constant 1 for a scalar loss). Nothing runs here: the result is an
ordinary graph that is simplified, fused (with what is left of the forward
pass) and compiled like any other.

How it works, as in every reverse-mode autodiff (micrograd, JAX, PyTorch):

1. Find the nodes on a path from `root` down to some node of `wrt`
   (gradients only flow through those, and only through floating-point
   values).
2. Visit them from the root downwards, in reverse topological order, so that
   a node's gradient is complete (summed over all its consumers) before it is
   passed on to its sources.
3. At each node, look its op up in `RULES`, the one table of derivative
   rules: one function per primitive op, which turns the node's gradient into
   one gradient per source (or None where no gradient flows).

A composite op (sigmoid, softmax, matmul, mse_loss, ...) needs no rule: it is
built from primitives, so its gradient is built from theirs.

Conventions the rules rely on:
* binary and ternary ops have operands of equal shape and dtype (the tensor
  layer broadcasts with RESHAPE + EXPAND, whose rules undo the broadcast);
* reductions keep the reduced axes as size 1, so a reduction's gradient is an
  EXPAND of the incoming gradient and EXPAND's gradient is a SUM;
* realized nodes keep their sources, so the walk goes through them: a value
  computed by an earlier `realize` is read back from its buffer, but the
  gradient still knows how it was computed.
* `stop_gradient(x)` is an identity CAST marked with arg "stop_gradient"
  (what `detach()` and `no_grad()` build): gradients stop there. The simplify
  pass removes it before scheduling, so it costs nothing at run time.
"""
from __future__ import annotations

import math

from . import node as N
from .node import Node
from .ops import Op

STOP_GRADIENT = "stop_gradient"

LN2 = math.log(2.0)


# ---- stopping gradients (detach) ----

def stop_gradient(x: Node) -> Node:
    """The same value as `x`, through which no gradient flows (`Tensor.detach()`)."""
    if is_stop_gradient(x):
        return x
    return Node(Op.CAST, (x,), STOP_GRADIENT, x.dtype, x.shape)


def is_stop_gradient(node: Node) -> bool:
    return node.op is Op.CAST and node.arg == STOP_GRADIENT


# ---- small node builders used by the rules (they keep the rules readable) ----

def _const(value, like: Node) -> Node:
    return N.const(value, like.dtype, like.shape)


def _add(a: Node, b: Node) -> Node:
    return N.binary(Op.ADD, a, b)


def _mul(a: Node, b: Node) -> Node:
    return N.binary(Op.MUL, a, b)


def _scale(a: Node, k: float) -> Node:
    return _mul(a, _const(k, a))


def _neg(a: Node) -> Node:
    return N.unary(Op.NEG, a)


def _recip(a: Node) -> Node:
    return N.unary(Op.RECIP, a)


def _mask(cond: Node, like: Node) -> Node:
    """A bool node as 1.0 / 0.0 in the dtype of `like`."""
    return N.where(cond, _const(1.0, like), _const(0.0, like))


def _select(cond: Node, g: Node) -> Node:
    """g where cond, else 0."""
    return N.where(cond, g, _const(0.0, g))


def _expand_to(g: Node, shape: tuple) -> Node:
    return g if g.shape == tuple(shape) else N.movement(Op.EXPAND, g, tuple(shape))


def _is_constant(node: Node) -> bool:
    return node.op is Op.CONST  # (even if some realize() attached a buffer to it)


# ---- the derivative rules: one per primitive ----
# Each rule gets the node, its incoming gradient `g` (same shape and dtype as
# the node) and returns one gradient (or None) per source, in order.

def _exp2(node, g):            # d 2^x = 2^x ln 2
    return (_mul(g, _scale(node, LN2)),)


def _log2(node, g):            # d log2 x = 1 / (x ln 2)
    (x,) = node.src
    return (_mul(g, _recip(_scale(x, LN2))),)


def _sqrt(node, g):            # d sqrt x = 1 / (2 sqrt x)
    return (_mul(g, _recip(_scale(node, 2.0))),)


def _sin(node, g):             # d sin x = cos x = sin(x + pi/2)
    (x,) = node.src
    return (_mul(g, N.unary(Op.SIN, _add(x, _const(math.pi / 2, x)))),)


def _recip_rule(node, g):      # d 1/x = -1/x^2
    return (_neg(_mul(g, _mul(node, node))),)


def _neg_rule(node, g):
    return (_neg(g),)


def _zero_rule(node, g):
    """Piecewise-constant ops (trunc) and ops on integers: no gradient flows."""
    return (None,) * len(node.src)


def _cast(node, g):
    (x,) = node.src
    if is_stop_gradient(node) or not x.dtype.is_floating_point:
        return (None,)
    return (N.cast(g, x.dtype),)


def _add_rule(node, g):
    return (g, g)


def _mul_rule(node, g):
    a, b = node.src
    return (_mul(g, b), _mul(g, a))


def _max(node, g):
    """maximum(a, b): the gradient goes to the larger operand.

    Ties are split half and half between two tensors, as torch.maximum does.
    Against a constant (relu = maximum(x, 0), clamp) a tie sends nothing to
    the tensor, as torch.relu does.
    """
    a, b = node.src
    a_wins, b_wins, tie = N.binary(Op.CMPLT, b, a), N.binary(Op.CMPLT, a, b), N.binary(Op.CMPEQ, a, b)
    if _is_constant(b):
        return (_select(a_wins, g), None)
    if _is_constant(a):
        return (None, _select(b_wins, g))
    half = _scale(g, 0.5)
    ga = N.where(a_wins, g, _select(tie, half))
    gb = N.where(b_wins, g, _select(tie, half))
    return (ga, gb)


def _mod(node, g):
    """fmod(a, b) = a - trunc(a / b) * b: d/da = 1, d/db = -trunc(a / b) (PyTorch's rule)."""
    a, b = node.src
    if not node.dtype.is_floating_point:
        return (None, None)
    quotient = N.unary(Op.TRUNC, _mul(a, _recip(b)))
    return (g, _neg(_mul(g, quotient)))


def _where(node, g):
    cond, _, _ = node.src
    return (None, _select(cond, g), N.where(cond, _const(0.0, g), g))


def _sum(node, g):             # every summed element gets the sum's gradient
    (x,) = node.src
    return (_expand_to(g, x.shape),)


def _reduce_max(node, g):
    """amax semantics: the gradient is split evenly among the elements equal to the max.

    (PyTorch's amax and max() do the same; max(dim) sends it all to the
    returned index instead, which the tensor layer builds from amax and argmax.)
    """
    (x,) = node.src
    hit = _mask(N.binary(Op.CMPEQ, x, _expand_to(node, x.shape)), x)
    count = N.reduce(Op.SUM, hit, node.arg)
    share = _mul(g, _recip(count))
    return (_mul(hit, _expand_to(share, x.shape)),)


def _prod(node, g):
    """d prod(x) / d x_i is the product of the other elements, computed as PyTorch does around zeros.

    Dividing the product by x_i works only when no element is zero. With the
    zeros counted along the reduced axes and `others` = the product of the
    nonzero elements (each zero replaced by 1):
      * no zero:            others / x_i
      * exactly one zero:   at that zero, `others` (the product of everyone else);
                            elsewhere 0 (their product of the others includes the zero)
      * two or more zeros:  0 everywhere
    The division uses x_i with zeros replaced by 1, so the branch that WHERE
    discards never computes 1/0: a second derivative through it stays finite.
    With exactly one zero, the 0 at the other elements is written as
    (the zero element itself) * others / x_i: the same value, but its derivative
    with respect to the zero element is right, so second derivatives match
    PyTorch there too (with two or more zeros they are left at 0).
    """
    (x,) = node.src
    axes = node.arg
    is_zero = N.binary(Op.CMPEQ, x, _const(0.0, x))
    safe = N.where(is_zero, _const(1.0, x), x)
    others = _expand_to(N.reduce(Op.PROD, safe, axes), x.shape)
    zeros = _expand_to(N.reduce(Op.SUM, _mask(is_zero, x), axes), x.shape)
    the_zero = _expand_to(N.reduce(Op.SUM, _select(is_zero, x), axes), x.shape)  # 0, or a sum of zeros
    one_zero = N.binary(Op.CMPEQ, zeros, _const(1.0, zeros))
    # the factor the zeros contribute to a nonzero element's "product of the others"
    zero_factor = N.where(N.binary(Op.CMPEQ, zeros, _const(0.0, zeros)), _const(1.0, x), _select(one_zero, the_zero))
    at_zero = _select(one_zero, others)
    at_nonzero = _mul(zero_factor, _mul(others, _recip(safe)))
    return (_mul(_expand_to(g, x.shape), N.where(is_zero, at_zero, at_nonzero)),)


def _reshape(node, g):
    (x,) = node.src
    return (N.movement(Op.RESHAPE, g, x.shape),)


def _permute(node, g):
    inverse = [0] * len(node.arg)
    for i, axis in enumerate(node.arg):
        inverse[axis] = i
    return (N.movement(Op.PERMUTE, g, tuple(inverse)),)


def _expand(node, g):
    """A broadcast input was read once per expanded position: sum those reads."""
    (x,) = node.src
    axes = tuple(i for i, (s, t) in enumerate(zip(x.shape, node.shape)) if s != t)
    return (N.reduce(Op.SUM, g, axes) if axes else g,)


def _pad(node, g):             # padding added zeros: their gradient is dropped
    (x,) = node.src
    bounds = tuple((before, before + size, 1) for (before, _), size in zip(node.arg, x.shape))
    return (N.movement(Op.SHRINK, g, bounds),)


def _shrink(node, g):
    """Put the gradient back where the slice came from, zeros elsewhere.

    A slice with step k picked x[start], x[start + k], ... Along such an axis
    the gradient is first spread out: each element followed by k - 1 zeros
    (RESHAPE to add an axis, PAD it to length k, RESHAPE back), then cut to
    end right after the last element. A final PAD places it at `start`.
    No gather or scatter is needed, so it stays a view.
    """
    (x,) = node.src
    if node.numel == 0:
        return (_const(0.0, x),)
    pads = []
    for axis, ((start, _, step), size) in enumerate(zip(node.arg, x.shape)):
        n = g.shape[axis]
        if step > 1:
            shape = g.shape
            spread = N.movement(Op.RESHAPE, g, shape[:axis] + (n, 1) + shape[axis + 1:])
            spread = N.movement(Op.PAD, spread, tuple((0, step - 1) if i == axis + 1 else (0, 0)
                                                      for i in range(len(shape) + 1)))
            spread = N.movement(Op.RESHAPE, spread, shape[:axis] + (n * step,) + shape[axis + 1:])
            used = (n - 1) * step + 1
            g = N.movement(Op.SHRINK, spread, tuple((0, used, 1) if i == axis else (0, s, 1)
                                                    for i, s in enumerate(spread.shape)))
        length = g.shape[axis]
        pads.append((start, size - start - length))
    if any(p != (0, 0) for p in pads):
        g = N.movement(Op.PAD, g, tuple(pads))
    return (g,)


def _flip(node, g):            # flipping is its own inverse
    return (N.movement(Op.FLIP, g, node.arg),)


def _gather(node, g):
    """out[..i..] = src[..index[..i..]..]: each read element gets the gradients of its reads, added up."""
    src, index = node.src
    zeros = _const(0.0, src)
    return (N.scatter(zeros, index, g, node.arg, "add"), None)


def _scatter(node, g):
    """SCATTER(base, index, src): written positions come from src, the others from base."""
    base, index, src = node.src
    axis, reduce = node.arg
    from_src = N.gather(g, index, axis)
    if from_src.shape != src.shape:   # only the index-shaped corner of src was written
        from_src = N.movement(Op.PAD, from_src, tuple((0, s - t) for s, t in zip(src.shape, from_src.shape)))
    if reduce is None:                # overwritten positions of base get no gradient
        zeros = N.const(0.0, g.dtype, index.shape)
        return (N.scatter(g, index, zeros, axis, None), None, from_src)
    if reduce in ("add", "sum"):
        return (g, None, from_src)
    raise NotImplementedError(f"the gradient of scatter with reduce='{reduce}' is not implemented "
                              f"(base shape {list(base.shape)}, index shape {list(index.shape)})")


RULES = {
    Op.EXP2: _exp2,
    Op.LOG2: _log2,
    Op.SQRT: _sqrt,
    Op.SIN: _sin,
    Op.RECIP: _recip_rule,
    Op.NEG: _neg_rule,
    Op.TRUNC: _zero_rule,
    Op.CAST: _cast,
    Op.ADD: _add_rule,
    Op.MUL: _mul_rule,
    Op.MAX: _max,
    Op.CMPLT: _zero_rule,
    Op.CMPEQ: _zero_rule,
    Op.IDIV: _zero_rule,
    Op.MOD: _mod,
    Op.WHERE: _where,
    Op.SUM: _sum,
    Op.REDUCE_MAX: _reduce_max,
    Op.PROD: _prod,
    Op.RESHAPE: _reshape,
    Op.PERMUTE: _permute,
    Op.EXPAND: _expand,
    Op.PAD: _pad,
    Op.SHRINK: _shrink,
    Op.FLIP: _flip,
    Op.GATHER: _gather,
    Op.SCATTER: _scatter,
}


# ---- the walk ----

def _differentiable(node: Node) -> bool:
    return node.dtype.is_floating_point and not is_stop_gradient(node)


def _on_path(roots: list[Node], wrt: set[Node]) -> tuple[list[Node], set[Node]]:
    """Every node below `roots` (through realized nodes too) in topological order,
    and the set of those on a path down to a node of `wrt` along which a
    gradient can flow (floating-point values, no stop_gradient).

    (Nodes hash by identity, so they are used as set and dict keys directly.)
    """
    order: list[Node] = []
    seen: set[Node] = set()
    for root in roots:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(root.src))]
        while stack:            # depth-first; a node is listed after all its sources
            node, pending = stack[-1]
            for s in pending:
                if s not in seen:
                    seen.add(s)
                    stack.append((s, iter(s.src)))
                    break
            else:
                stack.pop()
                order.append(node)
    relevant: set[Node] = set()
    for node in order:      # sources come before their consumers
        if node in wrt:
            relevant.add(node)
        elif node.src and _differentiable(node):
            for s in node.src:
                if s in relevant:
                    relevant.add(node)
                    break
    return order, relevant


def gradients(roots: list[Node], seeds: list[Node], wrt: list[Node]) -> list[Node | None]:
    """d(sum of root * seed over roots)/d(w) for each node w of `wrt`.

    None for a node that no gradient can reach; a zero constant for one that
    is reached only through ops with a zero derivative (trunc, comparisons).
    """
    for root, seed in zip(roots, seeds):
        if seed.shape != root.shape:
            raise RuntimeError(f"gradient: seed of shape {list(seed.shape)} for an output of shape "
                               f"{list(root.shape)}")
    order, relevant = _on_path(roots, set(wrt))
    grads: dict[Node, Node] = {}

    def accumulate(node: Node, g: Node) -> None:
        if g.dtype is not node.dtype:
            g = N.cast(g, node.dtype)
        previous = grads.get(node)
        grads[node] = g if previous is None else _add(previous, g)

    for root, seed in zip(roots, seeds):
        if root in relevant:
            accumulate(root, seed)
    for node in reversed(order):    # consumers before their sources
        g = grads.get(node)
        if g is None or not node.src:
            continue
        rule = RULES.get(node.op)
        if rule is None:
            raise NotImplementedError(f"autodiff: no derivative rule for {node.op.name}")
        for src, src_grad in zip(node.src, rule(node, g)):
            if src_grad is not None and src in relevant:
                accumulate(src, src_grad)
    out: list[Node | None] = []
    for w in wrt:
        if w not in relevant:
            out.append(None)
        else:
            out.append(grads.get(w, N.const(0.0, w.dtype, w.shape)))
    return out


def gradient(root: Node, wrt: list[Node], seed: Node) -> list[Node | None]:
    """d(root)/d(w) contracted with `seed`, for each w in `wrt` (None where unreachable)."""
    return gradients([root], [seed], wrt)

