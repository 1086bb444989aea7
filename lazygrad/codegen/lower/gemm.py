"""Structure 5: the cache-blocked GEMM nest.

The cache-blocked GEMM nest, a variant of structure 3 (`upcast.py`) for products whose row
operand A is strided along k too: `g.T @ x` with g, x of shape
(batch, features), the weight gradient of a Linear layer, where both
operands have the reduced axis as their outer axis (and g is often an
elementwise chain fused into the kernel). As BLIS and OpenBLAS do, k is cut
into steps of KC, and both operands are packed per step into contiguous
panels (B: KC x NC per column strip, A: MC x KC per row panel) that stay in
L1/L2; the same R x U register block runs on the panels, adding into a
scratch C of partial sums; the kernel's output ops run on C at the end of
each strip. A is computed once per strip, not once per U columns. See
`lower_gemm`.

Chosen (`plan_gemm`, needs scratch memory) instead of the upcast nest for a
register-blocked product whose one reduced axis is a floating-point sum and
whose row operand A reads memory with a stride along k. When A's rows are
contiguous along k (`x @ w.T`, `a @ b`) the upcast nest streams them as they
are, measured as fast.
"""
from __future__ import annotations

from ...ir import dtypes
from ...ir.node import Node
from ...ir.ops import Op, ELEMENTWISE, MOVEMENT
from .. import symbolic
from ..program import INDEX, zero_of
from .common import movement_index, var_stride

# Cache blocking of the GEMM nest (structure 5). The reduction runs in steps of
# GEMM_KC: a 6 x 128 sliver of the packed A panel (3 KB) and a 128 x 16 sliver
# of the packed B panel (8 KB) are what one register block reads, together in
# L1. An A panel holds GEMM_MB row blocks (96 x 128 floats = 48 KB: L2) and is
# read once per column block; a B panel at most GEMM_NB column blocks (128 x 256
# floats), each sliver read once per row block while it sits in L1.
# (GEMM_KC = 256 measured the same for Linear(1024, 1024) and 7% slower for
# Linear(256, 256) on x(4096, 256), whose K = 4096 makes more k steps either way.)
GEMM_KC = 128
GEMM_MB = 16
GEMM_NB = 16
# Column strips to aim for (each is a piece of the thread split; A is packed, and the
# elementwise code producing it computed, once per strip). Measured on the 2-core
# development machine, a Linear(256, 256) step on x(4096, 256): 12.2 ms with 2, 14-16 ms
# with 4; Linear(1024, 1024) is capped at GEMM_NB slivers a strip (4 strips) either way.
GEMM_STRIPS = 2


class GemmNest:
    """Mixed into `Lowerer` (lowerer.py) over `LowererBase` (base.py)."""

    def plan_gemm(self, m_axis: int, u: int, n_axis, r: int):
        """The operands and sizes for the GEMM nest (structure 5), or None when the upcast nest stays.

        Applies to a register-blocked product (rows and columns both blocked)
        whose one reduced axis k is a sum, when the row operand A reads memory
        with a stride along k: `g.T @ x` for g, x of shape (batch, features),
        the weight gradient of a Linear layer, where both operands have k as
        their outer axis. The upcast nest would then load A one cache line per
        k, 4 KB apart (and recompute it, when it is an elementwise chain, once
        per column block), and its K x U panel would not fit L2 for a long k.

        Returns a dict with the A parts (values that depend on the row, not the
        column) and B parts (the column, not the row) of the reduction's source,
        each with the placeholder index it is read at.
        """
        if not self.allow_scratch or n_axis is None or r < 2:
            return None
        red = self.reduces[0]
        src = red.src[0]
        reduced = [a for a in red.arg if src.shape[a] > 1]
        if red.op is not Op.SUM or not red.dtype.is_floating_point or len(reduced) != 1:
            return None
        out = self.kernel.output
        k_axis = reduced[0]
        e = [symbolic.var(f"?o{a}", s) if s > 1 else symbolic.Expr.of(0) for a, s in enumerate(out.shape)]
        e[n_axis] = symbolic.var("?n", out.shape[n_axis])
        e[m_axis] = symbolic.var("?m", out.shape[m_axis])
        reads = self.find_reads(out, tuple(e), {id(red)})
        if not reads or len(reads.get(id(red), ())) != 1:
            return None  # each output element must read the reduction at exactly one place
        src_idx = self._reduce_source_index(red, tuple(e), {k_axis: symbolic.var("?k", src.shape[k_axis])})
        operands = self.gemm_operands(src, src_idx)
        if operands is None:
            return None
        a_parts, b_parts = operands
        if not a_parts or not b_parts:
            return None

        def k_contiguous(parts):
            """Every buffer the parts read is walked with stride 0 or 1 along k."""
            return all(var_stride(addr, "?k") in (0, 1) for part, i in parts for addr in self.leaf_addresses(part, i))
        # Pays when A walks memory with a stride along k. When its rows are contiguous along k
        # (`x @ w.T`, `a @ b`) the upcast nest streams them as they are, measured as fast.
        if k_contiguous(a_parts):
            return None
        return {"k_axis": k_axis, "a": [p for p, _ in a_parts], "b": [p for p, _ in b_parts],
                "b_k_inner": k_contiguous(b_parts)}

    def gemm_operands(self, src: Node, src_idx: tuple):
        """Split the reduction's source (at placeholder index `src_idx`) into A parts and B parts.

        Walks down from the source through elementwise and movement ops while a
        value depends on both the row ("?n") and the column ("?m"). A value that
        depends on the row only is an A part, on the column only a B part (each
        packed into its panel); one that depends on neither (a per-k scale, a
        constant) is rendered in place. None when some buffer is read at an
        index that depends on both, or a part is read at several places.
        """
        a_parts, b_parts, seen, stack = {}, {}, set(), [(src, src_idx)]
        while stack:
            n, i = stack.pop()
            if (id(n), i) in seen or n.op is Op.CONST:
                continue
            seen.add((id(n), i))
            deps = self.value_deps(n, i)
            if deps is None:
                return None
            if "?n" in deps and "?m" in deps:
                if n.op in ELEMENTWISE and id(n) not in self.param_of:
                    stack.extend((s, i) for s in n.src)
                elif n.op in MOVEMENT and n.op is not Op.PAD and id(n) not in self.param_of:
                    stack.append((n.src[0], movement_index(n, i)))
                else:
                    return None
            elif "?n" in deps:
                a_parts.setdefault(id(n), []).append((n, i))
            elif "?m" in deps:
                b_parts.setdefault(id(n), []).append((n, i))
        if any(len(reads) != 1 for reads in (*a_parts.values(), *b_parts.values())):
            return None
        return [v[0] for v in a_parts.values()], [v[0] for v in b_parts.values()]

    def lower_gemm(self, m_axis: int, u: int, n_axis: int, r: int, plan: dict) -> None:
        """Structure 5: the classic cache-blocked GEMM (as in BLIS/OpenBLAS) around the R x U block.

            for m0 in column strips of NC (<= GEMM_NB*U):     # split across threads
              for k0 in steps of KC:
                Bp = B[k0:k0+KC, m0:m0+NC]    # packed: U-wide slivers, k-major
                for n0 in row panels of MC (GEMM_MB*R):
                  Ap = A[n0:n0+MC, k0:k0+KC]  # packed: R-tall slivers, k-major (A computed here)
                  for each U-column sliver j, each R-row sliver i:
                    acc[R][U] = sum over KC of Ap[i][k][r] * Bp[j][k][u]     # registers
                    C[rows, cols] = acc + (C[rows, cols] if k0 > 0 else 0)   # scratch
              out[:, m0:m0+NC] = epilogue(C)  # the kernel's output ops, on the finished sums

        Every load in the inner loop is from a contiguous panel in L1/L2, and A
        (an elementwise chain fused into the product, such as the loss
        gradient of a Linear layer) is computed once per column strip instead
        of once per U columns. Partial sums live in a scratch C (rows padded to
        a multiple of R, columns to whole slivers) so that no element of C is
        updated twice within a k step: when R does not divide the rows, the
        last row sliver packs the last R rows (overlapping the sliver before)
        into its own rows of C, and the epilogue reads the last R rows from
        there; columns past the end are packed as copies of the last one and
        never copied out.
        """
        b = self.b
        out = self.kernel.output
        shape = out.shape
        red = self.reduces[0]
        src = red.src[0]
        k_axis = plan["k_axis"]
        n_size, m_size, k_size = shape[n_axis], shape[m_axis], src.shape[k_axis]
        idx = [symbolic.Expr.of(0)] * len(shape)
        for a, s in enumerate(shape):
            if s > 1 and a not in (m_axis, n_axis):
                self.open_output_loop(f"i{a}", s)
                idx[a] = symbolic.var(f"i{a}", s)
        c = lambda v: b.const(v, INDEX)  # noqa: E731

        def lt(x, y):
            return b.alu("CMPLT", dtypes.bool_, x, y)

        # sizes: column strips, row panels, k steps
        slivers_m = -(-m_size // u)
        per_strip = min(GEMM_NB, max(1, -(-slivers_m // GEMM_STRIPS)))
        if per_strip >= slivers_m:
            per_strip, strips, width = slivers_m, 1, m_size
        else:
            width = per_strip * u
            strips = -(-m_size // width)  # the last strip starts at m_size - width, overlapping
        nc = per_strip * u                 # columns of C and of the B panel (>= width)
        slivers_n = -(-n_size // r)
        per_panel = min(GEMM_MB, slivers_n)
        panels = -(-slivers_n // per_panel)
        kc = min(GEMM_KC, k_size)
        steps = -(-k_size // kc)
        a_params, b_params = [], []
        for parts, params, numel in ((plan["a"], a_params, per_panel * r * kc), (plan["b"], b_params, nc * kc)):
            for part in parts:
                self.params.append((part.dtype, True))
                self.scratch[len(self.params) - 1] = numel
                params.append(len(self.params) - 1)
        self.params.append((red.dtype, True))
        c_param = len(self.params) - 1
        self.scratch[c_param] = slivers_n * r * nc

        def src_index(n_expr, m_expr, k_expr):
            e = list(idx)
            e[n_axis], e[m_axis] = n_expr, m_expr
            return self._reduce_source_index(red, tuple(e), {k_axis: k_expr})

        def pack(parts, params, sliver, count_ref, count_max, lanes, index_of, k_inner):
            """panel[s*KC*lanes + k*lanes + l] = part(index_of(s, l), k0 + k) for k < kc, s < count, l < lanes.

            The loop that walks the parts' memory contiguously is the inner one: k when
            `k_inner` (rows of x in `x @ w.T`), the slivers otherwise (rows of g in `g.T @ x`).
            """
            k_name, kk = self.new_var("k", kc)
            s_name, s = self.new_var(sliver, count_max)
            loops = [(s_name, count_ref), (k_name, k_len)] if k_inner else [(k_name, k_len), (s_name, count_ref)]
            opened = [self.open_loop(name, c(0), end) for name, end in loops]
            targets = {id(p) for p in parts}
            for lane in range(lanes):
                reads = self.find_reads(src, index_of(s, lane, k_start + kk), targets)
                addr = self.render_index(s * (kc * lanes) + kk * lanes + lane)
                for part, param in zip(parts, params):
                    b.emit("store", None, (param, addr, self.render(part, reads[id(part)][0], None)), dedup=False)
            for loop in reversed(opened):
                self.close_loop(loop)

        # column strip (the thread split, unless outer axes came first)
        loop_j = self.open_output_loop(f"b{m_axis}", strips)
        strip_start = self.block_start(loop_j, f"b{m_axis}", strips, width, m_size)
        # k steps
        loop_k0 = self.open_loop(self.new_var("k", steps)[0], c(0), c(steps))
        k_start_ref = b.alu("MUL", INDEX, loop_k0, c(kc))
        k_start = symbolic.value(k_start_ref, 0, (steps - 1) * kc)
        k_len = c(kc) if k_size % kc == 0 else self.index_min(b.alu("ADD", INDEX, k_start_ref, c(kc)), k_size)
        if k_size % kc:
            k_len = b.alu("ADD", INDEX, k_len, b.alu("MUL", INDEX, k_start_ref, c(-1)))

        def b_index(s, lane, k_expr):
            col = s * u + lane
            if width % u:  # past the strip's end: a copy of its last column (computed, never stored)
                col = symbolic.value(self.index_min(self.render_index(col), width - 1), 0, width - 1)
            return src_index(symbolic.Expr.of(0), strip_start + col, k_expr)
        pack(plan["b"], b_params, "j", c(per_strip), per_strip, u, b_index, plan["b_k_inner"])
        # row panels
        loop_p = self.open_loop(self.new_var("p", panels)[0], c(0), c(panels))
        if slivers_n % per_panel == 0:
            panel_slivers = c(per_panel)
        else:
            left = b.alu("ADD", INDEX, c(slivers_n), b.alu("MUL", INDEX, loop_p, c(-per_panel)))
            panel_slivers = self.index_min(left, per_panel)
        panel_row = symbolic.value(b.alu("MUL", INDEX, loop_p, c(per_panel * r)), 0, (panels - 1) * per_panel * r)

        def a_index(s, lane, k_expr):
            start = panel_row + s * r
            if n_size % r:
                # the last sliver holds rows n_size - r .. n_size - 1 (overlapping the one before, in its
                # own rows of C: see the epilogue); one select per sliver keeps the lanes contiguous
                start = symbolic.value(self.index_min(self.render_index(start), n_size - r), 0, n_size - r)
            return src_index(start + lane, symbolic.Expr.of(0), k_expr)
        pack(plan["a"], a_params, "i", panel_slivers, per_panel, r, a_index, False)  # A is strided along k
        # the register blocks: column slivers outside (a B sliver stays in L1), row slivers inside
        j_name, j = self.new_var("j", per_strip)
        loop_js = self.open_loop(j_name, c(0), c(per_strip))
        i_name, i = self.new_var("i", per_panel)
        loop_is = self.open_loop(i_name, c(0), panel_slivers)
        accs = [b.emit("acc", red.dtype, (), zero_of(red.dtype), dedup=False) for _ in range(r * u)]
        k_name, kk = self.new_var("k", kc)
        self.loop_hints[k_name] = "blocked"
        loop_kk = self.open_loop(k_name, c(0), k_len)
        targets = {id(p) for p in plan["a"] + plan["b"]}
        a_addr = [self.render_index(i * (kc * r) + kk * r + lane) for lane in range(r)]
        b_addr = [self.render_index(j * (kc * u) + kk * u + lane) for lane in range(u)]
        for row in range(r):
            for col in range(u):
                # the block's rows and columns as placeholders: only the packed parts depend on them
                src_idx = src_index(panel_row + i * r + row, strip_start + j * u + col, k_start + kk)
                reads = self.find_reads(src, src_idx, targets)
                for parts, params, addr in ((plan["a"], a_params, a_addr[row]), (plan["b"], b_params, b_addr[col])):
                    for part, param in zip(parts, params):
                        load = b.emit("load", part.dtype, (param, addr), dedup=True)
                        self.value_memo[-1][(id(part), reads[id(part)][0], None)] = load
                value = self.render(src, src_idx, None)
                b.emit("update", None, (accs[row * u + col], value), "ADD", dedup=False)
        self.close_loop(loop_kk)
        not_first = lt(c(0), loop_k0)
        zero = b.const(zero_of(red.dtype), red.dtype)
        for row in range(r):
            for col in range(u):
                addr = self.render_index((panel_row + i * r + row) * nc + j * u + col)
                before = b.emit("load", red.dtype, (c_param, addr), dedup=False)
                total = b.alu("ADD", red.dtype, b.emit("read", red.dtype, (accs[row * u + col],), dedup=False),
                              b.alu("WHERE", red.dtype, not_first, before, zero))
                b.emit("store", None, (c_param, addr, total), dedup=False)
        self.close_loop(loop_is)
        self.close_loop(loop_js)
        self.close_loop(loop_p)
        self.close_loop(loop_k0)
        # the epilogue: the output's own ops on the finished sums, the strip's columns innermost
        row_name, row_var = self.new_var("n", n_size)
        loop_row = self.open_loop(row_name, c(0), c(n_size))
        c_row = row_var
        if n_size % r:  # the last r rows are read from the last sliver's rows of C
            shift = b.alu("WHERE", INDEX, lt(loop_row, c(n_size - r)), c(0), c(slivers_n * r - n_size))
            c_row = symbolic.value(b.alu("ADD", INDEX, loop_row, shift), 0, slivers_n * r - 1)
        col_name, col_var = self.new_var("m", width)
        loop_col = self.open_loop(col_name, c(0), c(width))
        e = list(idx)
        e[n_axis], e[m_axis] = row_var, strip_start + col_var
        e = tuple(e)
        red_idx = self.find_reads(out, e, {id(red)})[id(red)][0]
        total = b.emit("load", red.dtype, (c_param, self.render_index(c_row * nc + col_var)), dedup=False)
        self.value_memo[-1][(id(red), red_idx, None)] = total
        self.store(e, self.render(out, e, None))
        self.close_loop(loop_col)
        self.close_loop(loop_row)
