"""Shared helpers of the lowering: index arithmetic on shapes and the instruction builder.

Nothing here knows about loop structures. `flat_index` and `movement_index`
are how a movement op rewrites an index without touching data;
`expr_vars` and `var_stride` are what the planners (`upcast.py`,
`gemm.py`, `stream.py`) use to ask how an address moves when a loop steps;
`_Builder` appends instructions to the Program, emitting an identical one
only once per loop scope.
"""
from __future__ import annotations

import math

from ...ir import view
from ...ir.node import Node
from ...ir.ops import Op
from .. import symbolic
from ..program import INDEX, Instr

LOG2E = math.log2(math.e)

# How each reduction primitive updates its accumulator (an ALU op name); the
# accumulator starts at that op's identity (`program.identity_of`).
REDUCE_UPDATE = {Op.SUM: "ADD", Op.REDUCE_MAX: "MAX", Op.PROD: "MUL"}


def flat_index(idx, shape) -> symbolic.Expr:
    """The row-major offset of `idx` in a contiguous array of `shape` (see lazygrad/ir/view.py)."""
    return view.flat_index(idx, shape, symbolic.Expr.of(0))


def movement_index(node: Node, idx: tuple) -> tuple:
    """The index into node.src[0] that element `idx` of a movement node reads (see lazygrad/ir/view.py).

    PAD is not handled here: it also needs a validity condition (see `Lowerer._render`).
    """
    return view.source_index(node.op, node.arg, node.src[0].shape, node.shape, idx, symbolic.Expr.of(0))


def expr_vars(e: symbolic.Expr) -> set:
    """Names of the loop variables an index expression depends on (also inside // and %)."""
    names = set()
    for atom, _ in e.terms:
        if atom.kind == "var":
            names.add(atom.a)
        elif atom.kind in ("div", "mod"):
            names |= expr_vars(atom.a)
    return names


def var_stride(e: symbolic.Expr, name: str):
    """How far `e` moves when loop variable `name` steps by one, or None when not affine in it."""
    coeff = 0
    for atom, c in e.terms:
        if atom.kind == "var" and atom.a == name:
            coeff += c
        elif atom.kind in ("div", "mod") and name in expr_vars(atom.a):
            return None
    return coeff


class _Builder:
    """Appends instructions, reusing an identical one already visible in scope."""

    def __init__(self):
        self.instrs: list[Instr] = []
        self.scopes: list[dict] = [{}]

    def emit(self, op, dtype, src=(), arg=None, dedup=True) -> int:
        ins = Instr(op, dtype, tuple(src), arg)
        if dedup:
            key = (op, dtype, ins.src, _hashable(arg))
            for scope in reversed(self.scopes):
                if key in scope:
                    return scope[key]
        self.instrs.append(ins)
        ref = len(self.instrs) - 1
        if dedup:
            self.scopes[-1][key] = ref
        return ref

    def const(self, value, dtype) -> int:
        return self.emit("const", dtype, (), value)

    def alu(self, name, dtype, *src) -> int:
        return self.emit("alu", dtype, src, name)

    def open_loop(self, name, start, end) -> int:
        ref = self.emit("loop", INDEX, (start, end), name, dedup=False)
        self.scopes.append({})
        return ref

    def close_loop(self, loop) -> None:
        self.emit("endloop", None, (loop,), dedup=False)
        self.scopes.pop()


def _hashable(arg):
    if isinstance(arg, float):
        return ("float", repr(arg))
    return arg
