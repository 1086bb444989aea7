"""Structure 4: the streaming nest, reduction loops outermost, a scratch row of accumulators.

The streaming nest, for the same kind of reduction when the output has a
single axis to block (`x.sum(0)`: each input element is read once, so no
register reuse is to be had). Accumulators for a chunk of C consecutive
outputs live in a scratch row, and the reduction loop is outermost:

    for m0 in chunks of C:                     # split across threads
      acc[0:C] = 0                             # scratch, stays in L1
      for k:
        for u in range(C): acc[u] += x[k, m0+u]   # contiguous: vectorised
      out[m0:m0+C] = acc

Every pass over k reads one contiguous piece of a row, the pattern memory
and prefetchers serve best; a register block of 16 columns would instead
touch one cache line per row, rows apart.

Chosen (`plan_stream`, needs scratch memory) for reductions whose source
walks memory with a stride along the reduced axis but not along the
output's last axis, when there are no rows to block (otherwise the upcast
nest, `upcast.py`, is used): `x.sum(0)`, and several reductions of the same
shape broadcast back into the kernel (a column softmax). Not for kernels
with a gather.
"""
from __future__ import annotations

from ...ir.ops import Op
from .. import symbolic
from ..program import INDEX, identity_of
from .common import REDUCE_UPDATE, expr_vars, var_stride

# Outputs per chunk of the streaming nest (structure 4): a 2 KB float32 accumulator row.
STREAM_CHUNK = 512


class StreamNest:
    """Mixed into `Lowerer` (lowerer.py) over `LowererBase` (base.py)."""

    def reduction_indices(self, out_idx: tuple, reduce_vars: dict):
        """{id(reduction): the index it is read at} for every reduction of the kernel, or None.

        Follows reads from the output and then through each reduction's source
        (with `reduce_vars` standing for its reduced axes). None unless every
        reduction is read at exactly one index, the same for all its readers
        and not depending on `reduce_vars`: what structure 4 needs to keep one
        accumulator row per reduction.
        """
        by_id = {id(n): n for n in self.reduces}
        targets = set(by_id)
        found: dict[int, tuple] = {}
        frontier = [(self.kernel.output, out_idx)]
        k_names = {name for v in reduce_vars.values() for name in expr_vars(v)}
        while frontier:
            node, i = frontier.pop()
            if id(node) in by_id:
                continue
            reads = self.find_reads(node, i, targets)
            if reads is None:
                return None
            for rid, idxs in reads.items():
                for ridx in idxs:
                    if any(expr_vars(e) & k_names for e in ridx) or found.get(rid, ridx) != ridx:
                        return None
                    if rid not in found:
                        found[rid] = ridx
                        red = by_id[rid]
                        src_idx = tuple(reduce_vars.get(a, symbolic.Expr.of(0)) if a in red.arg else e
                                        for a, e in enumerate(ridx))
                        frontier.append((red.src[0], src_idx))
        return found if len(found) == len(by_id) else None

    def plan_stream(self, out_vars: dict):
        """(m_axis, inner axes) for the streaming nest (structure 4), or None when it does not apply or pay."""
        out = self.kernel.output
        if not self.allow_scratch or not self.reduces or out.numel == 0:
            return None
        if any(n.op is Op.GATHER for n in self.kernel.nodes):
            return None
        first = self.reduces[0]
        sig = (first.src[0].shape, first.arg)
        if any((r.src[0].shape, r.arg) != sig for r in self.reduces):
            return None
        axes = [a for a, s in enumerate(out.shape) if s > 1]
        inner = self.broadcast_axes(out_vars)
        if not axes or axes[-1] in inner or out.shape[axes[-1]] < 8:
            return None
        m_axis = axes[-1]
        src_shape, reduced = sig
        k_vars = {a: symbolic.var(f"?k{a}", src_shape[a]) for a in reduced if src_shape[a] > 1}
        if not k_vars:
            return None
        e = [out_vars.get(a, symbolic.Expr.of(0)) for a in range(len(out.shape))]
        found = self.reduction_indices(tuple(e), k_vars)
        if found is None or any(expr_vars(x) & {f"i{a}" for a in inner} for ridx in found.values() for x in ridx):
            return None
        # pays when the source walks memory with a stride along the reduced axis but not along m
        ridx = found[id(first)]
        plain_idx = tuple(k_vars.get(a, x) if a in reduced else x for a, x in enumerate(ridx))
        width = min(out.shape[m_axis], STREAM_CHUNK)  # as lower_stream places its chunks
        e[m_axis] = symbolic.var("?s", out.shape[m_axis] - width + 1) + symbolic.var("?u", width)
        moved = self.reduction_indices(tuple(e), k_vars)
        if moved is None:
            return None
        stream_idx = tuple(k_vars.get(a, x) if a in reduced else x for a, x in enumerate(moved[id(first)]))
        k_name = f"?k{max(k_vars)}"

        def strided(addr, name):
            s = var_stride(addr, name)
            return s is None or s not in (0, 1)
        bad_plain = sum(strided(a, k_name) for a in self.leaf_addresses(first.src[0], plain_idx))
        bad_stream = sum(strided(a, "?u") for a in self.leaf_addresses(first.src[0], stream_idx))
        if bad_stream >= bad_plain:
            return None
        return m_axis, inner

    def lower_stream(self, m_axis: int, inner: set) -> None:
        """Structure 4: one scratch row of accumulators per reduction, the reduction loops outside.

        Phases, for each chunk of C outputs along m: one per reduction (sources
        first: a max before the sum that reads it), each over all its reduced
        axes with a loop over the chunk innermost; then one writing the output
        (over the broadcast axes too, when the reductions are broadcast back).
        Every innermost loop walks m, contiguous in memory, and vectorises.
        """
        b = self.b
        out = self.kernel.output
        shape = out.shape
        e = [symbolic.Expr.of(0)] * len(shape)
        for a, s in enumerate(shape):
            if s > 1 and a != m_axis and a not in inner:
                self.open_output_loop(f"i{a}", s)
                e[a] = symbolic.var(f"i{a}", s)
        size = shape[m_axis]
        width = min(size, STREAM_CHUNK)
        chunks = -(-size // width)
        loop = self.open_output_loop(f"b{m_axis}", chunks)
        chunk_start = self.block_start(loop, f"b{m_axis}", chunks, width, size)
        # every loop over the chunk has the same variable name: they are siblings, never nested,
        # so the index of each reduction is one expression, found once
        u_name, u = self.new_var("u", width)
        e[m_axis] = chunk_start + u
        for a in inner:
            e[a] = symbolic.var(f"i{a}", shape[a])
        src_shape, reduced = self.reduces[0].src[0].shape, self.reduces[0].arg
        k_vars = {a: self.new_var("r", src_shape[a]) for a in reduced if src_shape[a] > 1}
        found = self.reduction_indices(tuple(e), {a: v for a, (_, v) in k_vars.items()})
        rows = {}  # id(reduction) -> its scratch parameter

        def chunk_loop(read_rows=True):
            """A loop over the chunk; inside it, the reductions done so far read their rows."""
            loop = self.open_loop(u_name, b.const(0, INDEX), b.const(width, INDEX))
            for rid, param in rows.items() if read_rows else ():
                red = next(r for r in self.reduces if id(r) == rid)
                self.value_memo[-1][(rid, found[rid], None)] = b.emit("load", red.dtype, (param, loop), dedup=False)
            return loop

        for red in self.reduces:
            self.params.append((red.dtype, True))
            param = len(self.params) - 1
            self.scratch[param] = width
            init = identity_of(REDUCE_UPDATE[red.op], red.dtype)
            loop = chunk_loop(read_rows=False)
            b.emit("store", None, (param, loop, b.const(init, red.dtype)), dedup=False)
            self.close_loop(loop)
            loops = [self.open_loop(name, b.const(0, INDEX), b.const(src_shape[a], INDEX))
                     for a, (name, _) in k_vars.items()]
            loop = chunk_loop()
            src_idx = tuple(k_vars[a][1] if a in k_vars else (symbolic.Expr.of(0) if a in reduced else x)
                            for a, x in enumerate(found[id(red)]))
            value = self.render(red.src[0], src_idx, None)
            old = b.emit("load", red.dtype, (param, loop), dedup=False)
            b.emit("store", None, (param, loop, b.alu(REDUCE_UPDATE[red.op], red.dtype, old, value)),
                   dedup=False)
            self.close_loop(loop)
            for r in reversed(loops):
                self.close_loop(r)
            rows[id(red)] = param
        # the output: over the broadcast axes (if any), the chunk innermost
        loops = [self.open_loop(f"i{a}", b.const(0, INDEX), b.const(shape[a], INDEX)) for a in sorted(inner)]
        loop = chunk_loop()
        self.store(tuple(e), self.render(out, tuple(e), None))
        self.close_loop(loop)
        for r in reversed(loops):
            self.close_loop(r)
