"""The simplify pass: constant folding and algebraic identities.

`simplify(roots)` rebuilds the graph bottom-up, applying local rules. Nodes
are interned, so a rebuilt node that matches an existing one *is* that node.
Rules only fire where they are exact in floating point (x*1 -> x, but not
x+0 -> x for floats, which would turn -0.0 + 0 into -0.0).
"""
from __future__ import annotations

import numpy as np

from . import node as N
from .node import Node
from .ops import Op, MOVEMENT


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
