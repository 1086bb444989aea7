"""What every loop structure shares: the lowering's state, loops, index expressions and look-ahead.

`LowererBase` holds one kernel's lowering in progress: the builder with the
instructions emitted so far, the parameters (output first, then inputs,
then any scratch buffers and the error flag), the open loops and the memo
of values already rendered in each loop scope. The loop structures
(`elementwise.py`, `reduce.py`, `upcast.py`, `gemm.py`, `stream.py`,
`indexing.py`) are mixins on top of it, combined into `Lowerer` in
`lowerer.py`.

The look-ahead methods (`find_reads`, `leaf_addresses`, `value_deps`)
walk the graph at placeholder indices without emitting anything: that is
how a structure is planned (which loop walks memory contiguously, which
operand a panel can hold) before any loop is opened.
"""
from __future__ import annotations

from ...ir import dtypes
from ...ir.node import Node
from ...ir.ops import Op, ELEMENTWISE, MOVEMENT, REDUCE
from .. import symbolic
from ..program import INDEX
from .common import _Builder, expr_vars, flat_index, movement_index


class LowererBase:
    """One kernel's lowering in progress (see the module docstring); `Lowerer` adds the loop structures."""

    def __init__(self, kernel, scratch: bool = True):
        self.kernel = kernel
        self.allow_scratch = scratch
        self.b = _Builder()
        # parameter 0 is the output, then the inputs in the kernel's order
        self.param_of: dict[int, int] = {}
        self.params = [(kernel.output.dtype, True)]
        for node in kernel.inputs:
            self.param_of[id(node)] = len(self.params)
            self.params.append((node.dtype, False))
        self.error_param = None
        self.error_acc = None
        self.error_sites: list = []  # (axis, size) of each index check, see flag_error
        self.value_memo: list[dict] = [{}]
        self.loop_vars: dict[str, int] = {}
        self.loop_count = 0
        self.loop_hints: dict[str, str] = {}
        self.scratch: dict[int, int] = {}  # scratch parameter -> element count (see lower_upcast)
        self.block_hook = None             # called inside a register block's loops (see lower_upcast)
        self.work = 0
        # the reductions computed inside this kernel, sources before consumers
        self.reduces = [n for n in self.kernel_order() if n.op in REDUCE]

    def kernel_order(self) -> list:
        """The nodes computed in this kernel, each after its sources (the walk stops at inputs)."""
        order, seen, stack = [], set(), [(self.kernel.output, False)]
        while stack:
            n, done = stack.pop()
            if done:
                order.append(n)
                continue
            if id(n) in seen or id(n) in self.param_of:
                continue
            seen.add(id(n))
            stack.append((n, True))
            stack.extend((s, False) for s in reversed(n.src))
        return order

    # ---- loops ----
    def new_var(self, prefix: str, size: int) -> tuple[str, symbolic.Expr]:
        name = f"{prefix}{self.loop_count}"
        self.loop_count += 1
        return name, symbolic.var(name, size)

    def open_loop(self, name: str, start: int, end: int) -> int:
        loop = self.b.open_loop(name, start, end)
        self.value_memo.append({})
        self.loop_vars[name] = loop
        return loop

    def close_loop(self, loop: int) -> None:
        self.b.close_loop(loop)
        self.value_memo.pop()

    def open_output_loop(self, name: str, size: int) -> int:
        """Open a loop over range(size); the first one opened is bounded by start/end for the thread split."""
        if self.outer_size is None:
            self.outer_size = size
            loop = self.open_loop(name, self.start_arg, self.end_arg)
        else:
            loop = self.open_loop(name, self.b.const(0, INDEX), self.b.const(size, INDEX))
        self.loops.append(loop)
        return loop

    # ---- index expressions ----
    def render_index(self, e: symbolic.Expr) -> int:
        b = self.b
        total = None
        for atom, coeff in e.terms:
            if atom.kind == "var":
                ref = self.loop_vars[atom.a]
            elif atom.kind == "value":
                ref = atom.a
            else:
                inner = self.render_index(atom.a)
                ref = b.alu("IDIV" if atom.kind == "div" else "MOD", INDEX, inner, b.const(atom.b, INDEX))
            if coeff != 1:
                ref = b.alu("MUL", INDEX, ref, b.const(coeff, INDEX))
            total = ref if total is None else b.alu("ADD", INDEX, total, ref)
        if total is None:
            return b.const(e.const, INDEX)
        if e.const:
            total = b.alu("ADD", INDEX, total, b.const(e.const, INDEX))
        return total

    def in_range(self, e: symbolic.Expr, lo: int, hi: int):
        """An instruction testing lo <= e < hi, or None when the bounds already prove it."""
        elo, ehi = e.bounds
        conds = []
        if elo < lo:
            conds.append(self.b.alu("CMPLT", dtypes.bool_, self.b.const(lo - 1, INDEX), self.render_index(e)))
        if ehi >= hi:
            conds.append(self.b.alu("CMPLT", dtypes.bool_, self.render_index(e), self.b.const(hi, INDEX)))
        return self._and(*conds)

    def clamp_index(self, ref: int, lo: int, hi: int) -> int:
        """min(max(ref, lo), hi) on index values."""
        b = self.b
        lo_ref, hi_ref = b.const(lo, INDEX), b.const(hi, INDEX)
        ref = b.alu("WHERE", INDEX, b.alu("CMPLT", dtypes.bool_, ref, lo_ref), lo_ref, ref)
        return b.alu("WHERE", INDEX, b.alu("CMPLT", dtypes.bool_, hi_ref, ref), hi_ref, ref)

    def index_min(self, ref: int, limit: int) -> int:
        """min(ref, limit) on index values."""
        limit_ref = self.b.const(limit, INDEX)
        return self.b.alu("WHERE", INDEX, self.b.alu("CMPLT", dtypes.bool_, ref, limit_ref), ref, limit_ref)

    def block_start(self, loop: int, name: str, count: int, width: int, size: int) -> symbolic.Expr:
        """Where block `loop` (variable `name`, `count` blocks of `width`) starts along an axis of `size`.

        When width does not divide size, the last block starts at size - width: it overlaps the one
        before instead of running short."""
        if size % width == 0:
            return symbolic.var(name, count) * width
        first = self.b.alu("MUL", INDEX, loop, self.b.const(width, INDEX))
        return symbolic.value(self.index_min(first, size - width), 0, size - width)

    def _and(self, *conds):
        conds = [c for c in conds if c is not None]
        if not conds:
            return None
        out = conds[0]
        for c in conds[1:]:
            out = self.b.alu("AND", dtypes.bool_, out, c)
        return out

    def store(self, idx: tuple, value: int) -> None:
        addr = self.render_index(flat_index(idx, self.kernel.output.shape))
        self.b.emit("store", None, (0, addr, value), dedup=False)

    # ---- looking ahead without emitting ----
    def find_reads(self, root: Node, idx: tuple, targets: set) -> dict | None:
        """At which indices rendering `root` at `idx` would read each node in `targets`.

        Returns {id(target): [idx, ...]}, or None when a target sits below an op
        whose index this walk does not follow (a pad, a gather, another reduction).
        Nothing is emitted: this is how the lowering plans its loops ahead.
        """
        reaches: dict[int, bool] = {}

        def reaching(n: Node) -> bool:
            if id(n) not in reaches:
                if id(n) in targets:
                    reaches[id(n)] = True
                elif id(n) in self.param_of or n.op is Op.CONST:
                    reaches[id(n)] = False
                else:
                    reaches[id(n)] = any(reaching(s) for s in n.src)
            return reaches[id(n)]

        found: dict[int, list] = {}
        seen = set()
        stack = [(root, idx)]
        while stack:
            n, i = stack.pop()
            if (id(n), i) in seen or not reaching(n):
                continue
            seen.add((id(n), i))
            if id(n) in targets:
                found.setdefault(id(n), []).append(i)
            elif n.op in ELEMENTWISE:
                stack.extend((s, i) for s in n.src)
            elif n.op in MOVEMENT and n.op is not Op.PAD:
                stack.append((n.src[0], movement_index(n, i)))
            else:
                return None
        return found

    def leaf_addresses(self, root: Node, idx: tuple) -> list:
        """The address expression of every buffer element read when rendering `root` at `idx`.

        Used to decide which loop should be innermost: the one that walks memory
        with stride 0 or 1. A pad's shifted index is followed (its mask does not
        move the address); a gather's loaded index is unknown and not followed.
        """
        out, seen, stack = [], set(), [(root, idx)]
        while stack:
            n, i = stack.pop()
            if (id(n), i) in seen:
                continue
            seen.add((id(n), i))
            if id(n) in self.param_of:
                out.append(flat_index(i, n.shape))
            elif n.op is Op.CONST:
                continue
            elif n.op in ELEMENTWISE:
                stack.extend((s, i) for s in n.src)
            elif n.op is Op.PAD:
                stack.append((n.src[0], tuple(e - before for e, (before, _) in zip(i, n.arg))))
            elif n.op in MOVEMENT:
                stack.append((n.src[0], movement_index(n, i)))
            elif n.op in REDUCE:
                new_idx = list(i)
                for axis in n.arg:
                    new_idx[axis] = symbolic.var(f"?{axis}", n.src[0].shape[axis])
                stack.append((n.src[0], tuple(new_idx)))
        return out

    def value_deps(self, node: Node, idx: tuple):
        """Names of the loop variables `node`'s value at `idx` depends on, or None when unknown (a gather)."""
        names, seen, stack = set(), set(), [(node, idx)]
        while stack:
            n, i = stack.pop()
            if (id(n), i) in seen:
                continue
            seen.add((id(n), i))
            if id(n) in self.param_of:
                names |= expr_vars(flat_index(i, n.shape))
            elif n.op is Op.CONST:
                continue
            elif n.op in ELEMENTWISE:
                stack.extend((s, i) for s in n.src)
            elif n.op is Op.PAD:
                for e in i:
                    names |= expr_vars(e)
                stack.append((n.src[0], tuple(e - before for e, (before, _) in zip(i, n.arg))))
            elif n.op in MOVEMENT:
                stack.append((n.src[0], movement_index(n, i)))
            else:
                return None
        return names

    def _reduce_source_index(self, red: Node, out_idx: tuple, reduce_vars: dict):
        """The index of the reduction's source for output `out_idx`, reduced axes from `reduce_vars`."""
        reads = self.find_reads(self.kernel.output, out_idx, {id(red)})
        if not reads or len(reads.get(id(red), ())) != 1:
            return None
        src_idx = list(reads[id(red)][0])
        for a in red.arg:
            src_idx[a] = reduce_vars.get(a, symbolic.Expr.of(0))
        return tuple(src_idx)

    def hoist_reductions(self, root: Node, idx: tuple, inner: set) -> None:
        """Compute, here and now, every reduction that `root` reads at an index independent of `inner`.

        `inner` names the loop variables of loops about to be opened. A reduction
        whose index does not mention them has one value for all their iterations:
        computing it before the loops (instead of lazily, inside them) is what
        makes a broadcast reduction cost one pass per row rather than one per
        element. The result lands in the value memo, where the later render finds it.
        """
        targets = {id(n) for n in self.reduces if n is not root}
        if not targets:
            return
        reads = self.find_reads(root, idx, targets)
        if not reads:
            return
        for node in self.reduces:  # sources first: a max is ready before the sum that reads it
            for ridx in reads.get(id(node), ()):
                if not any(expr_vars(e) & inner for e in ridx):
                    self.render(node, ridx, None)
