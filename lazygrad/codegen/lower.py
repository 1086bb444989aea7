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
   vectorises it as a reduction.

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

The loop program stays scalar and target-independent: the blocking is only
unrolled scalar code, which a GPU renderer can take as it is. Structures 3
(its packed panel) and 4 use scratch memory; `lower(kernel, scratch=False)`
avoids it (3 without the panel, 3 instead of 4).
"""
from __future__ import annotations

import math

from ..ir import dtypes
from ..ir.node import Node
from ..ir.ops import Op, ELEMENTWISE, MOVEMENT, REDUCE
from . import symbolic
from .program import INDEX, Instr, Program, lowest_of, zero_of

LOG2E = math.log2(math.e)

# Register blocking of the upcast nest (structure 3): U outputs along the
# contiguous axis times R rows. 6 x 16 float32 accumulators are twelve 256-bit
# registers, the classic AVX2 matmul block (16 registers in all).
UPCAST_U = 16
UPCAST_R = 6
# Largest scratch panel (per thread) for the packed operand of the upcast nest.
PACK_LIMIT_BYTES = 8 << 20
# Outputs per chunk of the streaming nest (structure 4): a 2 KB float32 accumulator row.
STREAM_CHUNK = 512


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
        init = zero_of(node.dtype) if node.op is Op.SUM else lowest_of(node.dtype)
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
        accs = [b.emit("acc", node.dtype, (), init, dedup=False) for _ in idxs]
        if len(idxs) > 1:
            for name, _ in loop_vars:
                self.loop_hints[name] = "blocked"
        loops = [self.open_loop(name, b.const(0, INDEX), b.const(size, INDEX)) for name, size in loop_vars]
        if self.block_hook is not None and len(idxs) > 1:
            self.block_hook(src_idxs, loop_vars)
        for acc, src_idx in zip(accs, src_idxs):
            value = self.render(src, src_idx, gate)
            b.emit("update", None, (acc, value), "ADD" if node.op is Op.SUM else "MAX", dedup=False)
        for loop in reversed(loops):
            self.close_loop(loop)
        refs = []
        for acc, idx in zip(accs, idxs):
            ref = b.emit("read", node.dtype, (acc,), dedup=False)
            self.value_memo[-1][(id(node), idx, gate)] = ref
            refs.append(ref)
        return refs

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
            init = zero_of(red.dtype) if red.op is Op.SUM else lowest_of(red.dtype)
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
            b.emit("store", None, (param, loop, b.alu("ADD" if red.op is Op.SUM else "MAX", red.dtype, old, value)),
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
