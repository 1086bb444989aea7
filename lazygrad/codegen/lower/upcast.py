"""Structure 3: the register-blocked ("upcast") nest.

For reductions whose reduced axis is
not the contiguous one, with rows of output to block as well: matmul
`(a[:, :, None] * b[None]).sum(1)` would read b[k, m] with stride M along
k. The output's last axis m (contiguous in the output and, here, in the
data) is cut into blocks of U elements and its second-to-last axis n into
blocks of R rows; the reduction loop runs once per R x U block with R*U
scalar accumulators, and inside it every accumulator is updated:

    for m0 in blocks of U:                       # split across threads
      panel[k][u] = b[k, m0+u] for all k, u      # packed once per column block
      for n0 in blocks of R:
        acc[r][u] = 0                            # R*U accumulators
        for k:
          acc[r][u] += a[n0+r, k] * panel[k][u]  # U consecutive loads
        out[n0+r, m0+u] = acc[r][u]

The U consecutive loads and updates are what LLVM's SLP vectoriser turns
into vector loads and fused multiply-adds, and the accumulators stay in
registers. Each a[n0+r, k] is loaded once and reused U times, each panel
element R times. The panel (a scratch buffer) holds the part of the
reduction's source that does not depend on the row, laid out so that the
block loop walks it with unit stride; without it, a b whose rows are 4 KB
apart maps every b[k, m0:m0+U] to the same cache set. Sizes that are not
multiples of the block are handled without a remainder loop: the last
block starts at size - U, overlapping the one before, and recomputes
(identically) a few outputs.

Chosen (`plan_upcast`) for a kernel with one reduction when the output's
last axis has at least 8 elements and either the reduction is a product
(one operand shared by the rows, another by the columns) or the plain nest
would walk memory with a stride that the blocked one does not. Without
scratch memory (`lower(kernel, scratch=False)`) there is no panel. A
product whose row operand is strided along k as well goes to the GEMM nest
(`gemm.py`) instead; a reduction with no rows to block streams
(`stream.py`).
"""
from __future__ import annotations

import math

from ...ir.node import Node
from ...ir.ops import Op, ELEMENTWISE, MOVEMENT
from .. import symbolic
from ..program import INDEX
from .common import expr_vars, flat_index, movement_index, var_stride

# Register blocking of the upcast nest (structure 3): U outputs along the
# contiguous axis times R rows. 6 x 16 float32 accumulators are twelve 256-bit
# registers, the classic AVX2 matmul block (16 registers in all).
UPCAST_U = 16
UPCAST_R = 6
# Largest scratch panel (per thread) for the packed operand of the upcast nest.
PACK_LIMIT_BYTES = 8 << 20


class UpcastNest:
    """Mixed into `Lowerer` (lowerer.py) over `LowererBase` (base.py)."""

    def plan_upcast(self, out_vars: dict):
        """(m_axis, U, n_axis, R) for the register-blocked nest, or None when the plain nest is better.

        The blocked nest pays off for a product (one operand shared by the
        rows, another by the columns: each loaded value then serves several
        multiply-adds), and otherwise when the kernel's one reduction would
        walk memory with a stride along its innermost reduced axis but
        contiguously (or not at all) along the output's last axis. The
        decision reads the address expressions of the loads (`leaf_addresses`)
        under both loop orders, with placeholder variables ("?u" a column of
        the block, "?n" a row, "?r<axis>" a reduced axis).
        """
        if len(self.reduces) != 1:
            return None
        red = self.reduces[0]
        out = self.kernel.output
        axes = [a for a, s in enumerate(out.shape) if s > 1]
        if out.numel == 0 or not axes or out.shape[axes[-1]] < 8 or any(s.op is Op.GATHER for s in self.kernel.nodes):
            return None
        m_axis = axes[-1]
        size_m = out.shape[m_axis]
        u = UPCAST_U if size_m >= UPCAST_U else 8
        reduced = [a for a in red.arg if red.src[0].shape[a] > 1]
        if not reduced:
            return None
        k_name = f"?r{reduced[-1]}"

        def source_addresses(out_idx):
            """Addresses the reduction's source reads for the output element at `out_idx`."""
            reads = self.find_reads(out, out_idx, {id(red)})
            if not reads or len(reads.get(id(red), ())) != 1:
                return None
            src_idx = list(reads[id(red)][0])
            for a in red.arg:
                size = red.src[0].shape[a]
                src_idx[a] = symbolic.var(f"?r{a}", size) if size > 1 else symbolic.Expr.of(0)
            return self.leaf_addresses(red.src[0], tuple(src_idx))

        def strided(addr, name):
            s = var_stride(addr, name)
            return s is None or s not in (0, 1)
        # the plain nest walks the innermost reduced axis ...
        full_idx = tuple(out_vars.get(a, symbolic.Expr.of(0)) for a in range(len(out.shape)))
        plain = source_addresses(full_idx)
        # ... the blocked nest the U consecutive outputs of a block (placed as lower_upcast places them)
        if size_m % u == 0:
            block_start = symbolic.var("?b", size_m // u) * u
        else:
            block_start = symbolic.var("?s", size_m - u + 1)
        blocked_idx = list(full_idx)
        blocked_idx[m_axis] = block_start + symbolic.var("?u", u)
        blocked = source_addresses(tuple(blocked_idx))
        if plain is None or blocked is None:
            return None
        # rows are blocked too when some operand is shared by the rows (b of a matmul): it is
        # then loaded once for R rows. Without such reuse (a column sum of a 3-d tensor) R = 1.
        n_axis = axes[-2] if len(axes) >= 2 else None
        r, product = 1, False
        if n_axis is not None:
            blocked_idx[n_axis] = symbolic.var("?n", out.shape[n_axis])
            rows = source_addresses(tuple(blocked_idx)) or []
            if any(var_stride(a, "?n") == 0 and expr_vars(a) & {"?u", k_name} for a in rows):
                r = min(UPCAST_R, out.shape[n_axis])
            # a product: one operand shared by the rows, another by the columns (a of a matmul)
            product = r > 1 and any(var_stride(a, "?u") == 0 and "?n" in expr_vars(a) for a in rows)
        # A product always pays (the packed panel fixes the shared operand's layout, and each loaded
        # value serves R or U multiply-adds instead of one, even for `x @ w.T` whose plain nest would
        # read both operands contiguously); otherwise only when the plain nest would walk memory
        # with a stride that the blocked one does not.
        if not (product and self.allow_scratch) and \
                sum(strided(a, "?u") for a in blocked) >= sum(strided(a, k_name) for a in plain):
            return None
        return m_axis, u, (n_axis if r > 1 else None), r

    def lower_upcast(self, m_axis: int, u: int, n_axis, r: int) -> None:
        """Structure 3: R x U output blocks, one reduction loop per block with R*U accumulators.

        With several row blocks, the part of the reduction's source that does
        not depend on the row (b[k, m] in a matmul) is first copied, for the
        current U columns, into a contiguous scratch panel: scratch[k*U + u].
        The block loop then reads it with unit stride, however b is laid out
        (a row of b 4 KB long would otherwise put every b[k, m0:m0+U] in the
        same cache set), and the copy is paid once per column block instead of
        once per row block.
        """
        out = self.kernel.output
        shape = out.shape
        red = self.reduces[0]
        idx = [symbolic.Expr.of(0)] * len(shape)
        for a, s in enumerate(shape):
            if s > 1 and a not in (m_axis, n_axis):
                self.open_output_loop(f"i{a}", s)
                idx[a] = symbolic.var(f"i{a}", s)
        blocks_n = -(-shape[n_axis] // r) if n_axis is not None else 1
        blocks_m = -(-shape[m_axis] // u)
        packed = []
        if self.allow_scratch and blocks_n >= 2 and (blocks_m >= 4 or blocks_m >= blocks_n):
            packed = self.plan_pack(red, idx, m_axis, u, n_axis)
        # with a panel to reuse, the column blocks are the outer loop (and the one split across
        # threads); without, the axis with more blocks is, so that there is work to split
        order = [(m_axis, u), (n_axis, r)] if packed or blocks_m > blocks_n else [(n_axis, r), (m_axis, u)]
        block_starts = {}
        for axis, width in order:
            if axis is None:
                continue
            size = shape[axis]
            blocks = -(-size // width)
            loop = self.open_output_loop(f"b{axis}", blocks)
            block_starts[axis] = self.block_start(loop, f"b{axis}", blocks, width, size)
            if axis == m_axis and packed:
                self.emit_pack(red, packed, idx, m_axis, block_starts[m_axis], u, n_axis)
        rows = range(r) if n_axis is not None else [None]
        block = []
        for i in rows:
            for j in range(u):
                e = list(idx)
                if n_axis is not None:
                    e[n_axis] = block_starts[n_axis] + i
                e[m_axis] = block_starts[m_axis] + j
                block.append(tuple(e))
        red_idxs = []
        for e in block:
            reads = self.find_reads(out, e, {id(red)})
            red_idxs.append(reads[id(red)][0])
        if packed:
            self.block_hook = lambda src_idxs, loop_vars: self.read_pack(red, packed, src_idxs, loop_vars, u)
        self.render_reduce(red, red_idxs, None)
        self.block_hook = None
        for e in block:
            self.store(e, self.render(out, e, None))

    # ---- the packed panel ----
    def plan_pack(self, red: Node, idx: list, m_axis: int, u: int, n_axis: int) -> list:
        """The largest parts of the reduction's source that do not depend on the row: packed per column block."""
        src = red.src[0]
        k_total = math.prod(src.shape[a] for a in red.arg)
        if k_total * u * 8 > PACK_LIMIT_BYTES:
            return []
        e = list(idx)
        e[n_axis] = symbolic.var("?n", self.kernel.output.shape[n_axis])
        e[m_axis] = symbolic.var("?s", self.kernel.output.shape[m_axis]) + symbolic.var("?u", u)
        reduce_vars = {a: symbolic.var(f"?r{a}", src.shape[a]) for a in red.arg if src.shape[a] > 1}
        src_idx = self._reduce_source_index(red, tuple(e), reduce_vars)
        if src_idx is None:
            return []
        moving = {f"?r{a}" for a in reduce_vars} | {"?s", "?u"}
        chosen, seen, stack = [], set(), [(src, src_idx)]
        while stack:
            n, i = stack.pop()
            if (id(n), i) in seen or n.op is Op.CONST:
                continue
            seen.add((id(n), i))
            deps = self.value_deps(n, i)
            if deps is not None and "?n" not in deps and deps & moving:
                chosen.append(n)
            elif n.op in ELEMENTWISE and id(n) not in self.param_of:
                stack.extend((s, i) for s in n.src)
            elif n.op in MOVEMENT and n.op is not Op.PAD and id(n) not in self.param_of:
                stack.append((n.src[0], movement_index(n, i)))
        # each packed part must be read at exactly one place of the source
        reads = self.find_reads(src, src_idx, {id(n) for n in chosen})
        if not reads:
            return []
        packed = []
        for n in dict.fromkeys(chosen):
            if len(reads.get(id(n), ())) == 1:
                self.params.append((n.dtype, True))
                self.scratch[len(self.params) - 1] = k_total * u
                packed.append((n, len(self.params) - 1))
        return packed

    def emit_pack(self, red: Node, packed: list, idx: list, m_axis: int, m_start, u: int, n_axis: int) -> None:
        """scratch[k*U + j] = part(row 0, k, m_start + j) for every k of the reduction and j < U."""
        b = self.b
        src = red.src[0]
        pack_vars, reduce_vars = [], {}
        for a in red.arg:
            if src.shape[a] > 1:
                name, v = self.new_var("p", src.shape[a])
                pack_vars.append((name, src.shape[a]))
                reduce_vars[a] = v
        loops = [self.open_loop(name, b.const(0, INDEX), b.const(size, INDEX)) for name, size in pack_vars]
        k_flat = flat_index(tuple(v for v in reduce_vars.values()), tuple(size for _, size in pack_vars))
        targets = {id(n) for n, _ in packed}
        for j in range(u):
            e = list(idx)
            e[n_axis] = symbolic.Expr.of(0)  # the packed parts are the same for every row: take row 0
            e[m_axis] = m_start + j
            src_idx = self._reduce_source_index(red, tuple(e), reduce_vars)
            reads = self.find_reads(src, src_idx, targets)
            for node, param in packed:
                value = self.render(node, reads[id(node)][0], None)
                addr = self.render_index(k_flat * u + j)
                b.emit("store", None, (param, addr, value), dedup=False)
        for loop in reversed(loops):
            self.close_loop(loop)

    def read_pack(self, red: Node, packed: list, src_idxs: list, loop_vars: list, u: int) -> None:
        """Inside the block's reduction loops: make the packed parts read from their scratch panels."""
        b = self.b
        k_flat = flat_index(tuple(symbolic.var(name, size) for name, size in loop_vars),
                            tuple(size for _, size in loop_vars))
        targets = {id(n) for n, _ in packed}
        for i, src_idx in enumerate(src_idxs):
            reads = self.find_reads(red.src[0], src_idx, targets)
            addr = self.render_index(k_flat * u + i % u)
            for node, param in packed:
                load = b.emit("load", node.dtype, (param, addr), dedup=True)
                self.value_memo[-1][(id(node), reads[id(node)][0], None)] = load
