"""Lowering: a scheduled Kernel becomes a loop Program.

The kernel computes one output node. We loop over every element of the
output and render the node's value at that element's index, walking down the
graph:

* elementwise ops render their sources at the same index and combine them;
* movement ops do not touch data: they rewrite the index (a permute swaps
  index entries, an expand replaces one by 0, a pad shifts it and adds a
  validity mask, a reshape flattens and unflattens it);
* leaves (buffers, constants, outputs of earlier kernels) are loaded at the
  resulting address;
* a reduction opens inner loops over the reduced axes and accumulates;
* a gather loads its index and uses it as one entry of the source's index.

Identical instructions are emitted once per loop scope, which is how shared
subexpressions and repeated index arithmetic are computed only once.

Four loop structures are chosen from, per kernel:

1. The plain nest: one loop per output axis, in order, and for a reduction
   an inner loop over the reduced axes per output element. Right for
   elementwise kernels and for reductions over the innermost, contiguous
   axis (`x.sum(-1)`): the inner loop reads memory in order, and LLVM
   vectorises it as a reduction. A long float32 sum is cut into blocks
   summed in float32 and combined in float64 (`render_cascade_sum`), which
   makes it as accurate as NumPy's pairwise sum.

2. Reductions broadcast back into the kernel (`x - x.max(1, keepdim=True)`,
   softmax; see `schedule.py`): the output axes that the reductions do not
   depend on (the reduced ones) become the innermost loops. Before entering
   them, at each outer index, every such reduction is computed once, in its
   own loop ("hoisted"); the inner loops then read the accumulated value.
   A row softmax becomes: for each row, loop 1 finds the max, loop 2 sums
   exp(x - max), loop 3 writes exp(x - max) / sum.

3. The register-blocked ("upcast") nest for reductions whose reduced axis is
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

4. The streaming nest, for the same kind of reduction when the output has a
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

5. The cache-blocked GEMM nest, a variant of 3 for products whose row
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

The loop program stays scalar and target-independent: the blocking is only
unrolled scalar code, which a GPU renderer can take as it is. Structures 3
(its packed panel), 4 and 5 use scratch memory; `lower(kernel, scratch=False)`
avoids it (3 without the panel, 3 instead of 4 and 5).
"""
from __future__ import annotations

import math

from ..ir import dtypes
from ..ir.node import Node
from ..ir.ops import Op, ELEMENTWISE, MOVEMENT, REDUCE
from . import symbolic
from .program import INDEX, Instr, Program, identity_of, zero_of

LOG2E = math.log2(math.e)

# How each reduction primitive updates its accumulator (an ALU op name); the
# accumulator starts at that op's identity (`program.identity_of`).
REDUCE_UPDATE = {Op.SUM: "ADD", Op.REDUCE_MAX: "MAX", Op.PROD: "MUL"}

# Plain float32 sums of more than this many elements are summed in two levels
# (see Lowerer.render_cascade_sum): blocks of at most SUM_BLOCK elements in
# float32 vector lanes, the block sums added up in float64.
SUM_BLOCK = 2048

# Register blocking of the upcast nest (structure 3): U outputs along the
# contiguous axis times R rows. 6 x 16 float32 accumulators are twelve 256-bit
# registers, the classic AVX2 matmul block (16 registers in all).
UPCAST_U = 16
UPCAST_R = 6
# Largest scratch panel (per thread) for the packed operand of the upcast nest.
PACK_LIMIT_BYTES = 8 << 20
# Outputs per chunk of the streaming nest (structure 4): a 2 KB float32 accumulator row.
STREAM_CHUNK = 512
# Cache blocking of the GEMM nest (structure 5). The reduction runs in steps of
# GEMM_KC: a 6 x 256 sliver of the packed A panel (6 KB) and a 256 x 16 sliver
# of the packed B panel (16 KB) are what one register block reads, together in
# L1. An A panel holds GEMM_MB row blocks (96 x 256 floats = 96 KB: L2) and is
# read once per column block; a B panel at most GEMM_NB column blocks (256 x 256
# floats), each sliver read once per row block while it sits in L1.
GEMM_KC = 256
GEMM_MB = 16
GEMM_NB = 16
# Column strips to aim for (each is a piece of the thread split; A is packed once per strip).
GEMM_STRIPS = 4


def contiguous_strides(shape) -> tuple:
    strides, acc = [], 1
    for s in reversed(shape):
        strides.append(acc)
        acc *= s
    return tuple(reversed(strides))


def flat_index(idx, shape) -> symbolic.Expr:
    """The row-major offset of `idx` in a contiguous array of `shape`."""
    addr = symbolic.Expr.of(0)
    for e, stride in zip(idx, contiguous_strides(shape)):
        addr = addr + e * stride
    return addr


def movement_index(node: Node, idx: tuple) -> tuple:
    """The index into node.src[0] that element `idx` of a movement node reads.

    PAD is not handled here: it also needs a validity condition (see `Lowerer._render`).
    """
    op = node.op
    if op is Op.RESHAPE:
        src_shape = node.src[0].shape
        if 0 in src_shape:  # an empty tensor is never read (its strides would divide by zero)
            return tuple(symbolic.Expr.of(0) for _ in src_shape)
        flat = flat_index(idx, node.shape)
        return tuple((flat // stride) % size if size > 1 else symbolic.Expr.of(0)
                     for size, stride in zip(src_shape, contiguous_strides(src_shape)))
    if op is Op.PERMUTE:
        new_idx = [None] * len(idx)
        for out_axis, src_axis in enumerate(node.arg):
            new_idx[src_axis] = idx[out_axis]
        return tuple(new_idx)
    if op is Op.EXPAND:
        return tuple(symbolic.Expr.of(0) if s == 1 else e for e, s in zip(idx, node.src[0].shape))
    if op is Op.SHRINK:
        return tuple(e * step + start for e, (start, _, step) in zip(idx, node.arg))
    if op is Op.FLIP:
        return tuple((e * -1 + (s - 1)) if axis in node.arg else e
                     for axis, (e, s) in enumerate(zip(idx, node.shape)))
    raise ValueError(f"movement_index: {op.name}")


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


class Lowerer:
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

    def _and(self, *conds):
        conds = [c for c in conds if c is not None]
        if not conds:
            return None
        out = conds[0]
        for c in conds[1:]:
            out = self.b.alu("AND", dtypes.bool_, out, c)
        return out

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
        if len(idxs) == 1 and self.cascade_cut(node, loop_vars) is not None:
            return [self.render_cascade_sum(node, idxs[0], src_idxs[0], loop_vars, gate)]
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

    def render_cascade_sum(self, node: Node, idx: tuple, src_idx: tuple, loop_vars: list, gate) -> int:
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
        cut = self.cascade_cut(node, loop_vars)
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
            end = b.const(size, INDEX)
            stop = b.alu("WHERE", INDEX, b.alu("CMPLT", dtypes.bool_, stop, end), stop, end)
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

    def render_gather(self, node: Node, idx: tuple, gate) -> int:
        b = self.b
        src, index = node.src
        axis = node.arg
        size = src.shape[axis]
        iv = self.render(index, idx, gate)
        ok = b.alu("AND", dtypes.bool_,
                   b.alu("CMPLT", dtypes.bool_, b.const(-1, dtypes.int64), iv),
                   b.alu("CMPLT", dtypes.bool_, iv, b.const(size, dtypes.int64)))
        self.flag_error(ok, gate, iv, axis, size)
        safe = b.alu("WHERE", INDEX, ok, iv, b.const(0, INDEX))
        new_idx = list(idx)
        new_idx[axis] = symbolic.value(safe, 0, max(size - 1, 0))
        return self.render(src, tuple(new_idx), gate)

    def check_divisor(self, divisor: Node, ref: int, gate) -> None:
        """Integer division or remainder by zero: PyTorch raises `RuntimeError: ZeroDivisionError`.
        Flag it like an index error (site axis ZERO_DIVISION); the renderer still avoids the trap."""
        if divisor.op is Op.CONST and divisor.arg != 0:
            return
        b = self.b
        zero = b.alu("CMPEQ", dtypes.bool_, ref, b.const(0, divisor.dtype))
        ok = b.alu("CMPEQ", dtypes.bool_, zero, b.const(False, dtypes.bool_))
        self.flag_error(ok, gate, ref, ZERO_DIVISION, 0)

    def flag_error(self, ok: int, gate, value: int, axis: int, size: int) -> None:
        """Record (without branching) that index `value` was out of range; the runtime raises after the launch.

        The int64 error flag keeps the max of `encode_index_error(value, site)` over the bad
        elements (0: no error), so the error message can name an offending index and the
        dimension and size it was checked against (`self.error_sites[site]`).
        """
        b = self.b
        if self.error_acc is None:
            self.error_param = len(self.params)
            self.params.append((dtypes.int64, True))
            # the accumulator must be defined before every loop: insert it at the top
            self.error_acc = _ERROR_ACC
        bad = b.alu("CMPEQ", dtypes.bool_, ok, b.const(False, dtypes.bool_))
        if gate is not None:
            bad = b.alu("AND", dtypes.bool_, bad, gate)
        site = len(self.error_sites) % ERROR_SITES
        self.error_sites.append((axis, size))
        code = self.encode_index_error(value, site)
        b.emit("update", None, (self.error_acc, b.alu("WHERE", dtypes.int64, bad, code, b.const(0, dtypes.int64))),
               "MAX", dedup=False)

    def encode_index_error(self, value: int, site: int) -> int:
        """A positive int64 naming an index value and its check site (see `decode_index_error`)."""
        b, i64 = self.b, dtypes.int64
        c = lambda v: b.const(v, i64)  # noqa: E731
        lt = lambda x, y: b.alu("CMPLT", dtypes.bool_, x, y)  # noqa: E731
        v = b.alu("CAST", i64, value) if self.b.instrs[value].dtype is not i64 else value
        v = b.alu("WHERE", i64, lt(v, c(-ERROR_VALUE_LIMIT)), c(-ERROR_VALUE_LIMIT), v)
        v = b.alu("WHERE", i64, lt(c(ERROR_VALUE_LIMIT), v), c(ERROR_VALUE_LIMIT), v)
        # v >= 0 -> 2v + 2 (even), v < 0 -> -2v + 1 (odd): always >= 1
        magnitude = b.alu("WHERE", i64, lt(v, c(0)), b.alu("ADD", i64, b.alu("MUL", i64, v, c(-2)), c(1)),
                          b.alu("ADD", i64, b.alu("MUL", i64, v, c(2)), c(2)))
        return b.alu("ADD", i64, b.alu("MUL", i64, magnitude, c(ERROR_SITES)), c(site))

    # ---- loop structures ----
    def store(self, idx: tuple, value: int) -> None:
        addr = self.render_index(flat_index(idx, self.kernel.output.shape))
        self.b.emit("store", None, (0, addr, value), dedup=False)

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

    def lower(self) -> Program:
        kernel, b = self.kernel, self.b
        out = kernel.output
        shape = out.shape
        if out.op is Op.SCATTER:
            return self.lower_scatter()
        self.start_arg = b.emit("arg", INDEX, (), "start", dedup=False)
        self.end_arg = b.emit("arg", INDEX, (), "end", dedup=False)
        self.outer_size = None
        self.loops: list[int] = []
        # plan with placeholder variables named after the output axes
        # (an axis of size 0 gets a loop too: it runs no iteration, so nothing is written)
        out_vars = {a: symbolic.var(f"i{a}", s) for a, s in enumerate(shape) if s != 1}
        upcast = self.plan_upcast(out_vars)
        # reductions with no rows to block (or several reductions) stream when scratch memory is allowed
        stream = self.plan_stream(out_vars) if upcast is None or upcast[2] is None else None
        if out.numel == 0:  # nothing to compute: one empty loop, so that nothing is read or written
            self.open_output_loop("i", 0)
        elif stream is not None:
            self.lower_stream(*stream)
        elif upcast is not None:
            gemm = self.plan_gemm(*upcast)
            if gemm is not None:
                self.lower_gemm(*upcast, gemm)
            else:
                self.lower_upcast(*upcast)
        else:
            self.lower_plain(out_vars)
        for loop in reversed(self.loops):
            self.close_loop(loop)
        instrs = b.instrs
        if self.error_acc is not None:
            instrs = _hoist_error_flag(instrs, self.error_param)
        # work: element operations, to decide whether threads pay (runtime/cpu.py). A register
        # block reads each source element once per R rows.
        ops = sum(1 for n in self.kernel_order() if n.op in ELEMENTWISE)
        rows = upcast[3] if upcast is not None and stream is None else 1
        work = max(1, ops) * max(1, out.numel) + sum(max(1, red.src[0].numel) for red in self.reduces) // rows
        return Program(kernel.name, self.params, instrs, 1 if self.outer_size is None else self.outer_size,
                       self.error_param, work,
                       loop_hints=self.loop_hints, scratch=self.scratch)

    def open_output_loop(self, name: str, size: int) -> int:
        """Open a loop over range(size); the first one opened is bounded by start/end for the thread split."""
        if self.outer_size is None:
            self.outer_size = size
            loop = self.open_loop(name, self.start_arg, self.end_arg)
        else:
            loop = self.open_loop(name, self.b.const(0, INDEX), self.b.const(size, INDEX))
        self.loops.append(loop)
        return loop

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
        b = self.b
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
            if size % width == 0:
                block_starts[axis] = symbolic.var(f"b{axis}", blocks) * width
            else:
                # the last block starts at size - width: it overlaps the one before instead of running short
                first = b.alu("MUL", INDEX, loop, b.const(width, INDEX))
                limit = b.const(size - width, INDEX)
                start = b.alu("WHERE", INDEX, b.alu("CMPLT", dtypes.bool_, first, limit), first, limit)
                block_starts[axis] = symbolic.value(start, 0, size - width)
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

    # ---- structure 5: the cache-blocked GEMM nest ----
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
        a_k_inner = k_contiguous(a_parts)
        if a_k_inner:
            return None
        return {"k_axis": k_axis, "a": [p for p, _ in a_parts], "b": [p for p, _ in b_parts],
                "a_k_inner": a_k_inner, "b_k_inner": k_contiguous(b_parts)}

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

        def minimum(ref, limit: int):
            return b.alu("WHERE", INDEX, lt(ref, c(limit)), ref, c(limit))

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
        if m_size % width == 0:
            strip_start = symbolic.var(f"b{m_axis}", strips) * width
        else:
            first = b.alu("MUL", INDEX, loop_j, c(width))
            strip_start = symbolic.value(minimum(first, m_size - width), 0, m_size - width)
        # k steps
        loop_k0 = self.open_loop(self.new_var("k", steps)[0], c(0), c(steps))
        k_start_ref = b.alu("MUL", INDEX, loop_k0, c(kc))
        k_start = symbolic.value(k_start_ref, 0, (steps - 1) * kc)
        k_len = c(kc) if k_size % kc == 0 else minimum(b.alu("ADD", INDEX, k_start_ref, c(kc)), k_size)
        if k_size % kc:
            k_len = b.alu("ADD", INDEX, k_len, b.alu("MUL", INDEX, k_start_ref, c(-1)))

        def b_index(s, lane, k_expr):
            col = s * u + lane
            if width % u:  # past the strip's end: a copy of its last column (computed, never stored)
                col = symbolic.value(minimum(self.render_index(col), width - 1), 0, width - 1)
            return src_index(symbolic.Expr.of(0), strip_start + col, k_expr)
        pack(plan["b"], b_params, "j", c(per_strip), per_strip, u, b_index, plan["b_k_inner"])
        # row panels
        loop_p = self.open_loop(self.new_var("p", panels)[0], c(0), c(panels))
        if slivers_n % per_panel == 0:
            panel_slivers = c(per_panel)
        else:
            left = b.alu("ADD", INDEX, c(slivers_n), b.alu("MUL", INDEX, loop_p, c(-per_panel)))
            panel_slivers = minimum(left, per_panel)
        panel_row = symbolic.value(b.alu("MUL", INDEX, loop_p, c(per_panel * r)), 0, (panels - 1) * per_panel * r)

        def a_index(s, lane, k_expr):
            start = panel_row + s * r
            if n_size % r:
                # the last sliver holds rows n_size - r .. n_size - 1 (overlapping the one before, in its
                # own rows of C: see the epilogue); one select per sliver keeps the lanes contiguous
                start = symbolic.value(minimum(self.render_index(start), n_size - r), 0, n_size - r)
            return src_index(start + lane, symbolic.Expr.of(0), k_expr)
        pack(plan["a"], a_params, "i", panel_slivers, per_panel, r, a_index, plan["a_k_inner"])
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
        if size % width == 0:
            chunk_start = symbolic.var(f"b{m_axis}", chunks) * width
        else:  # the last chunk starts at size - width, overlapping the one before
            first = b.alu("MUL", INDEX, loop, b.const(width, INDEX))
            limit = b.const(size - width, INDEX)
            start = b.alu("WHERE", INDEX, b.alu("CMPLT", dtypes.bool_, first, limit), first, limit)
            chunk_start = symbolic.value(start, 0, size - width)
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

    def _reduce_source_index(self, red: Node, out_idx: tuple, reduce_vars: dict):
        """The index of the reduction's source for output `out_idx`, reduced axes from `reduce_vars`."""
        reads = self.find_reads(self.kernel.output, out_idx, {id(red)})
        if not reads or len(reads.get(id(red), ())) != 1:
            return None
        src_idx = list(reads[id(red)][0])
        for a in red.arg:
            src_idx[a] = reduce_vars.get(a, symbolic.Expr.of(0))
        return tuple(src_idx)

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

    # ---- SCATTER (written by the indexing work; kept apart from the loop structures above) ----
    def lower_scatter(self) -> Program:
        """A scatter kernel: copy `base` into the output, then write `src` at the indexed places.

            out = base                                    # loop 1, over the output
            for j in index's index space:                 # loop 2, serial
                i = index[j]                              # checked: 0 <= i < size, else flag
                pos = j with pos[axis] = i
                out[pos] = src[j]          (reduce None)
                out[pos] = out[pos] + src[j]  (reduce 'add')

        Loop 2 may hit the same output element several times, so the kernel is
        never split over threads: its outermost loop (from `start` to `end`) has
        exactly one iteration, which the runtime cannot divide. A bad index
        writes nothing (the old value is stored back) and sets the error flag.
        """
        b = self.b
        node = self.kernel.output
        base, index, src = node.src
        axis, reduce = node.arg
        if reduce not in (None, "add"):
            raise NotImplementedError(f"lowering of SCATTER with reduce={reduce!r} is not implemented")
        size = node.shape[axis]
        start_arg = b.emit("arg", INDEX, (), "start", dedup=False)
        end_arg = b.emit("arg", INDEX, (), "end", dedup=False)
        whole = self.open_loop("s", start_arg, end_arg)  # one iteration: start=0, end=1

        def loops_over(shape, prefix):
            idx, loops = [], []
            for s in shape:
                if s == 1:
                    idx.append(symbolic.Expr.of(0))
                    continue
                name, var = self.new_var(prefix, s)
                loops.append(self.open_loop(name, b.const(0, INDEX), b.const(s, INDEX)))
                idx.append(var)
            return tuple(idx), loops

        # 1. out = base
        idx, loops = loops_over(node.shape, "c")
        self.store(idx, self.render(base, idx, None))
        for loop in reversed(loops):
            self.close_loop(loop)
        # 2. out[..., index[j], ...] = src[j]  (or +=)
        idx, loops = loops_over(index.shape, "w")
        iv = self.render(index, idx, None)
        ok = b.alu("AND", dtypes.bool_,
                   b.alu("CMPLT", dtypes.bool_, b.const(-1, dtypes.int64), iv),
                   b.alu("CMPLT", dtypes.bool_, iv, b.const(size, dtypes.int64)))
        self.flag_error(ok, None, iv, axis, size)
        safe = b.alu("WHERE", INDEX, ok, iv, b.const(0, INDEX))
        pos = list(idx)
        pos[axis] = symbolic.value(safe, 0, max(size - 1, 0))
        addr = self.render_index(flat_index(tuple(pos), node.shape))
        value = self.render(src, idx, None)
        old = b.emit("load", node.dtype, (0, addr), dedup=False)  # the output is being written: never reuse
        new = b.alu("ADD", node.dtype, old, value) if reduce == "add" else value
        b.emit("store", None, (0, addr, b.alu("WHERE", node.dtype, ok, new, old)), dedup=False)
        for loop in reversed(loops):
            self.close_loop(loop)
        self.close_loop(whole)
        instrs = b.instrs
        if self.error_acc is not None:
            instrs = _hoist_error_flag(instrs, self.error_param)
        work = max(1, node.numel) + max(1, index.numel) * max(1, self.work)
        return Program(self.kernel.name, self.params, instrs, 1, self.error_param, work)


_ERROR_ACC = -1  # placeholder reference to the error accumulator, fixed up by _hoist_error_flag
ZERO_DIVISION = "ZeroDivisionError"  # the `axis` of an error site that checks an integer divisor
ERROR_SITES = 256              # error codes are magnitude * ERROR_SITES + site
ERROR_VALUE_LIMIT = 1 << 52    # index values reported in errors are clamped to +-2**52


def decode_index_error(code: int) -> tuple[int, int]:
    """(index value, site) from a nonzero error flag written by `Lowerer.flag_error`."""
    magnitude, site = divmod(code, ERROR_SITES)
    value = magnitude // 2 - 1 if magnitude % 2 == 0 else -(magnitude - 1) // 2
    return value, site


def _hoist_error_flag(instrs: list, error_param: int) -> list:
    """Put the error accumulator before everything and store it after everything.

    References are positions, so every instruction is shifted by one.
    """
    def shift(ref):
        return 0 if ref == _ERROR_ACC else ref + 1
    out = [Instr("acc", dtypes.int64, (), 0)]
    for ins in instrs:
        src = tuple(shift(s) for s in ins.src)
        if ins.op in ("load", "store"):  # the first source is a parameter number, not a reference
            src = (ins.src[0],) + src[1:]
        out.append(Instr(ins.op, ins.dtype, src, ins.arg))
    flag = len(out)
    out.append(Instr("read", dtypes.int64, (0,), None))
    out.append(Instr("const", INDEX, (), 0))
    out.append(Instr("store", None, (error_param, flag + 1, flag), None))
    return out


def lower(kernel, scratch: bool = True) -> Program:
    """The loop Program of a scheduled kernel. `scratch=False`: use no scratch parameters
    (for a renderer that cannot give each slice of a launch its own scratch memory)."""
    lowerer = Lowerer(kernel, scratch)
    program = lowerer.lower()
    program.error_sites = tuple(lowerer.error_sites)
    return program
