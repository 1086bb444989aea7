"""The plain nest (structures 1 and 2) and the value walk every structure renders with.

Rendering a node's value at an index walks down the graph:

* elementwise ops render their sources at the same index and combine them;
* movement ops do not touch data: they rewrite the index (a permute swaps
  index entries, an expand replaces one by 0, a pad shifts it and adds a
  validity mask, a reshape flattens and unflattens it);
* leaves (buffers, constants, outputs of earlier kernels) are loaded at the
  resulting address;
* a reduction is handed to `reduce.py`, a gather to `indexing.py`.

Values are memoised per loop scope (`render`), so a value read twice at the
same index is computed once.

Chosen when no other structure applies or pays (see `lowerer.py`):

1. The plain nest: one loop per output axis, in order, and for a reduction
   an inner loop over the reduced axes per output element (`reduce.py`).
   Right for elementwise kernels and for reductions over the innermost,
   contiguous axis (`x.sum(-1)`): the inner loop reads memory in order, and
   LLVM vectorises it as a reduction.

2. Reductions broadcast back into the kernel (`x - x.max(1, keepdim=True)`,
   softmax; see `schedule.py`): the output axes that the reductions do not
   depend on (the reduced ones) become the innermost loops. Before entering
   them, at each outer index, every such reduction is computed once, in its
   own loop ("hoisted", `LowererBase.hoist_reductions`); the inner loops
   then read the accumulated value. A row softmax becomes: for each row,
   loop 1 finds the max, loop 2 sums exp(x - max), loop 3 writes
   exp(x - max) / sum.
"""
from __future__ import annotations

from ...ir.node import Node
from ...ir.ops import Op, ELEMENTWISE, MOVEMENT, REDUCE
from .. import symbolic
from ..program import INDEX, zero_of
from .common import LOG2E, expr_vars, flat_index, movement_index


class PlainNest:
    """Mixed into `Lowerer` (lowerer.py) over `LowererBase` (base.py)."""

    # ---- values ----
    def render(self, node: Node, idx: tuple, gate) -> int:
        key = (id(node), idx, gate)
        for memo in reversed(self.value_memo):
            if key in memo:
                return memo[key]
        ref = self._render(node, idx, gate)
        self.value_memo[-1][key] = ref
        return ref

    def _render(self, node: Node, idx: tuple, gate) -> int:
        b = self.b
        if node.op is Op.CONST and id(node) not in self.param_of:
            return b.const(node.arg, node.dtype)
        if id(node) in self.param_of:
            addr = flat_index(idx, node.shape)
            addr_ref = self.render_index(addr)
            if gate is not None:
                addr_ref = b.alu("WHERE", INDEX, gate, addr_ref, b.const(0, INDEX))
            else:
                lo, hi = addr.bounds
                if lo < 0 or hi >= node.numel:
                    # the index arithmetic could not prove the address in range: clamp it, so
                    # that a kernel never reads outside its buffer
                    addr_ref = self.clamp_index(addr_ref, 0, max(node.numel - 1, 0))
            return b.emit("load", node.dtype, (self.param_of[id(node)], addr_ref), dedup=True)
        op = node.op
        if op in ELEMENTWISE:
            self.work += 1
            if op is Op.EXP2:
                x = node.src[0]
                if x.op is Op.MUL and x.src[1].op is Op.CONST and x.src[1].arg == LOG2E:
                    return b.alu("EXP", node.dtype, self.render(x.src[0], idx, gate))
            if op is Op.MUL and node.src[1].op is Op.RECIP and node.dtype.is_floating_point:
                # a * (1/b) is rendered as a true division a / b (exact where it should be)
                return b.alu("DIV", node.dtype, self.render(node.src[0], idx, gate),
                             self.render(node.src[1].src[0], idx, gate))
            srcs = [self.render(s, idx, gate) for s in node.src]
            if op in (Op.IDIV, Op.MOD) and node.dtype.is_int:
                self.check_divisor(node.src[1], srcs[1], gate)
            return b.alu(op.name, node.dtype, *srcs)
        if op is Op.PAD:
            src_shape = node.src[0].shape
            conds, new_idx = [], []
            for e, (before, _), s in zip(idx, node.arg, src_shape):
                conds.append(self.in_range(e, before, before + s))
                new_idx.append(e - before)
            valid = self._and(*conds)
            if valid is None:
                return self.render(node.src[0], tuple(new_idx), gate)
            inner = self.render(node.src[0], tuple(new_idx), self._and(gate, valid))
            return b.alu("WHERE", node.dtype, valid, inner, b.const(zero_of(node.dtype), node.dtype))
        if op in MOVEMENT:
            return self.render(node.src[0], movement_index(node, idx), gate)
        if op in REDUCE:
            return self.render_reduce(node, [idx], gate)[0]
        if op is Op.GATHER:
            return self.render_gather(node, idx, gate)
        raise NotImplementedError(f"lowering of {op.name} is not implemented")

    # ---- structures 1 and 2 ----
    def broadcast_axes(self, out_vars: dict) -> set:
        """The output axes that no reduction read by the output depends on (the reduced ones, for a
        reduction broadcast back into the kernel): they become the innermost loops."""
        out = self.kernel.output
        if not self.reduces or out.op in REDUCE:
            return set()
        full_idx = tuple(out_vars.get(a, symbolic.Expr.of(0)) for a in range(len(out.shape)))
        reads = self.find_reads(out, full_idx, {id(n) for n in self.reduces})
        if not reads:
            return set()
        used = set()
        for ridxs in reads.values():
            for ridx in ridxs:
                for e in ridx:
                    used |= expr_vars(e)
        return {a for a in out_vars if f"i{a}" not in used}

    def lower_plain(self, out_vars: dict) -> None:
        """Structures 1 and 2: loops over the output, broadcast reductions hoisted above the axes they reduce."""
        out = self.kernel.output
        full_idx = tuple(out_vars.get(a, symbolic.Expr.of(0)) for a in range(len(out.shape)))
        inner_axes = self.broadcast_axes(out_vars)
        outer = [a for a in out_vars if a not in inner_axes]
        inner = [a for a in out_vars if a in inner_axes]
        for a in outer:
            self.open_output_loop(f"i{a}", out.shape[a])
        if inner:
            self.hoist_reductions(out, full_idx, {f"i{a}" for a in inner})
        for a in inner:
            self.open_output_loop(f"i{a}", out.shape[a])
        if self.outer_size is None:  # a single element: one iteration of a loop from start to end
            self.open_output_loop("i", 1)
        self.store(full_idx, self.render(out, full_idx, None))
