"""Reduction loops: one loop nest over the reduced axes, accumulating; the cascaded float32 sum.

`render_reduce` is the inner loop of the plain nest (`elementwise.py`,
structure 1), entered wherever a value reads a reduction, and with R*U
indices at once it is the register block of the upcast nest (`upcast.py`).

A long float32 sum is cut into blocks summed in float32 and combined in
float64 (`render_cascade_sum`), which makes it as accurate as NumPy's
pairwise sum. Chosen for plain float32 sums of more than SUM_BLOCK elements,
on the CPU path only (`lower(kernel, scratch=False)` keeps one level: the GPU
renderer already sums in a tree across its threads).
"""
from __future__ import annotations

import math

from ...ir import dtypes
from ...ir.node import Node
from ...ir.ops import Op
from .. import symbolic
from ..program import INDEX, identity_of
from .common import REDUCE_UPDATE

# Plain float32 sums of more than this many elements are summed in two levels
# (see Reductions.render_cascade_sum): blocks of at most SUM_BLOCK elements in
# float32 vector lanes, the block sums added up in float64.
SUM_BLOCK = 2048


class Reductions:
    """Mixed into `Lowerer` (lowerer.py) over `LowererBase` (base.py)."""

    def render_reduce(self, node: Node, idxs: list, gate) -> list:
        """Reduce `node` at several output indices at once: one loop nest, one accumulator per index.

        With one index this is the plain reduction loop; with R*U indices it is
        the register block of the upcast nest. Returns the accumulated values,
        which are also left in the value memo.
        """
        b = self.b
        src = node.src[0]
        update = REDUCE_UPDATE[node.op]
        init = identity_of(update, node.dtype)
        # the reduction loops' variables; axes of size 1 need no loop
        loop_vars, axis_index = [], {}
        for axis in node.arg:
            size = src.shape[axis]
            if size == 1:
                axis_index[axis] = symbolic.Expr.of(0)
            else:
                name, v = self.new_var("r", size)
                loop_vars.append((name, size))
                axis_index[axis] = v
        src_idxs = [tuple(axis_index.get(axis, e) for axis, e in enumerate(idx)) for idx in idxs]
        if gate is None:
            inner = {name for name, _ in loop_vars}
            for src_idx in src_idxs:
                self.hoist_reductions(src, src_idx, inner)
        cut = self.cascade_cut(node, loop_vars) if len(idxs) == 1 else None
        if cut is not None:
            return [self.render_cascade_sum(node, idxs[0], src_idxs[0], loop_vars, cut, gate)]
        accs = [b.emit("acc", node.dtype, (), init, dedup=False) for _ in idxs]
        if len(idxs) > 1:
            for name, _ in loop_vars:
                self.loop_hints[name] = "blocked"
        loops = [self.open_loop(name, b.const(0, INDEX), b.const(size, INDEX)) for name, size in loop_vars]
        if self.block_hook is not None and len(idxs) > 1:
            self.block_hook(src_idxs, loop_vars)
        for acc, src_idx in zip(accs, src_idxs):
            value = self.render(src, src_idx, gate)
            b.emit("update", None, (acc, value), update, dedup=False)
        for loop in reversed(loops):
            self.close_loop(loop)
        refs = []
        for acc, idx in zip(accs, idxs):
            ref = b.emit("read", node.dtype, (acc,), dedup=False)
            self.value_memo[-1][(id(node), idx, gate)] = ref
            refs.append(ref)
        return refs

    def cascade_cut(self, node: Node, loop_vars: list):
        """Where render_cascade_sum cuts a reduction's loops into two levels, or None to keep one level.

        Returns the position in `loop_vars` (outermost first) of the first loop
        that belongs to the inner, float32 level. Only plain float32 sums of
        more than SUM_BLOCK elements are cut, and only on the CPU path
        (`allow_scratch`): the GPU renderer already sums in a tree across its
        threads, and its analysis expects one accumulator per reduction.
        """
        if node.op is not Op.SUM or node.dtype is not dtypes.float32 or not self.allow_scratch:
            return None
        sizes = [size for _, size in loop_vars]
        if math.prod(sizes) <= SUM_BLOCK:
            return None
        cut = len(sizes) - 1  # the innermost loop alone; cut into blocks itself if it is longer than a block
        while cut > 0 and math.prod(sizes[cut - 1:]) <= SUM_BLOCK:
            cut -= 1          # a whole inner nest fits in one block
        return cut

    def render_cascade_sum(self, node: Node, idx: tuple, src_idx: tuple, loop_vars: list, cut: int, gate) -> int:
        """A float32 sum in two levels, accurate like NumPy's pairwise sum at the speed of a plain one.

        One float32 accumulator over n elements loses about n * 2**-24 relative
        to the exact sum in the worst case: 2**24 copies of 0.1 came out 1.5e-4
        off, even with the 64 accumulators the loop vectoriser keeps in vector
        lanes. Here the elements are summed in blocks of at most SUM_BLOCK:

            total = 0.0                                  # float64
            for each block:                              # outer reduction loops / block loop
                part = 0.0f                              # float32, vectorised as before
                for r in block: part += x[r]
                total += (double)part
            result = (float)total

        A block is a nest of inner reduction loops with at most SUM_BLOCK
        elements in all, or, when the innermost loop alone is longer, a slice
        [k*SUM_BLOCK, min((k+1)*SUM_BLOCK, size)) of it. Each float32 block
        sum errs by about SUM_BLOCK / lanes * 2**-24 (a few 1e-6 relative); the
        float64 total adds nothing noticeable. The block's loop is the same
        vectorised reduction as before, and the float64 addition runs once per
        block, so large sums keep their speed.
        """
        b = self.b
        split_innermost = loop_vars[-1][1] > SUM_BLOCK
        total = b.emit("acc", dtypes.float64, (), 0.0, dedup=False)
        outer = [self.open_loop(name, b.const(0, INDEX), b.const(size, INDEX)) for name, size in loop_vars[:cut]]
        inner_vars = loop_vars[cut:]
        if split_innermost:  # the innermost loop runs over one block's slice of its range
            name, size = inner_vars[-1]
            count = -(-size // SUM_BLOCK)
            block_name, _ = self.new_var("rb", count)
            block = self.open_loop(block_name, b.const(0, INDEX), b.const(count, INDEX))
            outer.append(block)
            start = b.alu("MUL", INDEX, block, b.const(SUM_BLOCK, INDEX))
            stop = b.alu("ADD", INDEX, start, b.const(SUM_BLOCK, INDEX))
            stop = self.index_min(stop, size)
            bounds = [(b.const(0, INDEX), b.const(s, INDEX)) for _, s in inner_vars[:-1]] + [(start, stop)]
        else:
            bounds = [(b.const(0, INDEX), b.const(s, INDEX)) for _, s in inner_vars]
        part = b.emit("acc", node.dtype, (), 0.0, dedup=False)
        inner = [self.open_loop(name, lo, hi) for (name, _), (lo, hi) in zip(inner_vars, bounds)]
        b.emit("update", None, (part, self.render(node.src[0], src_idx, gate)), "ADD", dedup=False)
        for loop in reversed(inner):
            self.close_loop(loop)
        part64 = b.alu("CAST", dtypes.float64, b.emit("read", node.dtype, (part,), dedup=False))
        b.emit("update", None, (total, part64), "ADD", dedup=False)
        for loop in reversed(outer):
            self.close_loop(loop)
        ref = b.alu("CAST", node.dtype, b.emit("read", dtypes.float64, (total,), dedup=False))
        self.value_memo[-1][(id(node), idx, gate)] = ref
        return ref
