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
* the kernel's reduction (if any) opens inner loops over the reduced axes
  and accumulates;
* a gather loads its index and uses it as one entry of the source's index.

Identical instructions are emitted once per loop scope, which is how shared
subexpressions and repeated index arithmetic are computed only once.
"""
from __future__ import annotations

import math

from ..ir import dtypes
from ..ir.node import Node
from ..ir.ops import Op, ELEMENTWISE, REDUCE
from . import symbolic
from .program import INDEX, Instr, Program, lowest_of, zero_of

LOG2E = math.log2(math.e)


def contiguous_strides(shape) -> tuple:
    strides, acc = [], 1
    for s in reversed(shape):
        strides.append(acc)
        acc *= s
    return tuple(reversed(strides))


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
    def __init__(self, kernel):
        self.kernel = kernel
        self.b = _Builder()
        # parameter 0 is the output, then the inputs in the kernel's order
        self.param_of: dict[int, int] = {}
        self.params = [(kernel.output.dtype, True)]
        for node in kernel.inputs:
            self.param_of[id(node)] = len(self.params)
            self.params.append((node.dtype, False))
        self.error_param = None
        self.error_acc = None
        self.value_memo: list[dict] = [{}]
        self.loop_vars: dict[str, int] = {}
        self.work = 0

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

    def _and(self, *conds):
        conds = [c for c in conds if c is not None]
        if not conds:
            return None
        out = conds[0]
        for c in conds[1:]:
            out = self.b.alu("AND", dtypes.bool_, out, c)
        return out

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
            addr = symbolic.Expr.of(0)
            for e, stride in zip(idx, contiguous_strides(node.shape)):
                addr = addr + e * stride
            addr_ref = self.render_index(addr)
            if gate is not None:
                addr_ref = b.alu("WHERE", INDEX, gate, addr_ref, b.const(0, INDEX))
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
            return b.alu(op.name, node.dtype, *srcs)
        if op is Op.RESHAPE:
            src_shape = node.src[0].shape
            flat = symbolic.Expr.of(0)
            for e, stride in zip(idx, contiguous_strides(node.shape)):
                flat = flat + e * stride
            new_idx = tuple((flat // stride) % size if size > 1 else symbolic.Expr.of(0)
                            for size, stride in zip(src_shape, contiguous_strides(src_shape)))
            return self.render(node.src[0], new_idx, gate)
        if op is Op.PERMUTE:
            new_idx = [None] * len(idx)
            for out_axis, src_axis in enumerate(node.arg):
                new_idx[src_axis] = idx[out_axis]
            return self.render(node.src[0], tuple(new_idx), gate)
        if op is Op.EXPAND:
            src_shape = node.src[0].shape
            new_idx = tuple(symbolic.Expr.of(0) if s == 1 else e for e, s in zip(idx, src_shape))
            return self.render(node.src[0], new_idx, gate)
        if op is Op.SHRINK:
            new_idx = tuple(e * step + start for e, (start, _, step) in zip(idx, node.arg))
            return self.render(node.src[0], new_idx, gate)
        if op is Op.FLIP:
            new_idx = tuple((e * -1 + (s - 1)) if axis in node.arg else e
                            for axis, (e, s) in enumerate(zip(idx, node.shape)))
            return self.render(node.src[0], new_idx, gate)
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
        if op in REDUCE:
            return self.render_reduce(node, idx, gate)
        if op is Op.GATHER:
            return self.render_gather(node, idx, gate)
        raise NotImplementedError(f"lowering of {op.name} is not implemented")

    def render_reduce(self, node: Node, idx: tuple, gate) -> int:
        b = self.b
        src = node.src[0]
        init = 0 if node.op is Op.SUM else lowest_of(node.dtype)
        if node.op is Op.SUM:
            init = zero_of(node.dtype)
        acc = b.emit("acc", node.dtype, (), init, dedup=False)
        loops = []
        new_idx = list(idx)
        for axis in node.arg:
            size = src.shape[axis]
            if size == 1:
                new_idx[axis] = symbolic.Expr.of(0)
                continue
            name = f"r{axis}_{len(b.instrs)}"
            start, end = b.const(0, INDEX), b.const(size, INDEX)
            loop = b.open_loop(name, start, end)
            self.value_memo.append({})
            self.loop_vars[name] = loop
            loops.append(loop)
            new_idx[axis] = symbolic.var(name, size)
        value = self.render(src, tuple(new_idx), gate)
        b.emit("update", None, (acc, value), "ADD" if node.op is Op.SUM else "MAX", dedup=False)
        for loop in reversed(loops):
            b.close_loop(loop)
            self.value_memo.pop()
        return b.emit("read", node.dtype, (acc,), dedup=False)

    def render_gather(self, node: Node, idx: tuple, gate) -> int:
        b = self.b
        src, index = node.src
        axis = node.arg
        size = src.shape[axis]
        iv = self.render(index, idx, gate)
        ok = b.alu("AND", dtypes.bool_,
                   b.alu("CMPLT", dtypes.bool_, b.const(-1, dtypes.int64), iv),
                   b.alu("CMPLT", dtypes.bool_, iv, b.const(size, dtypes.int64)))
        self.flag_error(ok, gate)
        safe = b.alu("WHERE", INDEX, ok, iv, b.const(0, INDEX))
        new_idx = list(idx)
        new_idx[axis] = symbolic.value(safe, 0, max(size - 1, 0))
        return self.render(src, tuple(new_idx), gate)

    def flag_error(self, ok: int, gate) -> None:
        """Record (without branching) that an index was out of range; the runtime raises after the launch."""
        b = self.b
        if self.error_acc is None:
            self.error_param = len(self.params)
            self.params.append((dtypes.int64, True))
            # the accumulator must be defined before every loop: insert it at the top
            self.error_acc = _ERROR_ACC
        bad = b.alu("CMPEQ", dtypes.bool_, ok, b.const(False, dtypes.bool_))
        if gate is not None:
            bad = b.alu("AND", dtypes.bool_, bad, gate)
        b.emit("update", None, (self.error_acc, bad), "OR", dedup=False)

    def lower(self) -> Program:
        kernel, b = self.kernel, self.b
        out = kernel.output
        shape = out.shape
        # loops over the output's dims of size > 1; the outermost is bounded by start/end
        idx = []
        loops = []
        outer_size = 1
        start_arg = b.emit("arg", INDEX, (), "start", dedup=False)
        end_arg = b.emit("arg", INDEX, (), "end", dedup=False)
        for axis, size in enumerate(shape):
            if size == 1:
                idx.append(symbolic.Expr.of(0))
                continue
            name = f"i{axis}"
            if not loops:
                outer_size = size
                loop = b.open_loop(name, start_arg, end_arg)
            else:
                loop = b.open_loop(name, b.const(0, INDEX), b.const(size, INDEX))
            self.value_memo.append({})
            self.loop_vars[name] = loop
            loops.append(loop)
            idx.append(symbolic.var(name, size))
        if not loops:  # a single element: one iteration of a loop from start to end
            loop = b.open_loop("i", start_arg, end_arg)
            loops.append(loop)
            self.value_memo.append({})
        idx = tuple(idx)
        value = self.render(out, idx, None)
        addr = symbolic.Expr.of(0)
        for e, stride in zip(idx, contiguous_strides(shape)):
            addr = addr + e * stride
        b.emit("store", None, (0, self.render_index(addr), value), dedup=False)
        for loop in reversed(loops):
            b.close_loop(loop)
            self.value_memo.pop()
        instrs = b.instrs
        if self.error_acc is not None:
            instrs = _hoist_error_flag(instrs, self.error_param)
        work = max(1, self.work) * max(1, out.numel)
        if kernel.reduce is not None:
            work *= max(1, kernel.reduce.src[0].numel // max(1, kernel.reduce.numel))
        return Program(kernel.name, self.params, instrs, outer_size, self.error_param, work)


_ERROR_ACC = -1  # placeholder reference to the error accumulator, fixed up by _hoist_error_flag


def _hoist_error_flag(instrs: list, error_param: int) -> list:
    """Put the error accumulator before everything and store it after everything.

    References are positions, so every instruction is shifted by one.
    """
    def shift(ref):
        return 0 if ref == _ERROR_ACC else ref + 1
    out = [Instr("acc", dtypes.bool_, (), False)]
    for ins in instrs:
        src = tuple(shift(s) for s in ins.src)
        if ins.op in ("load", "store"):  # the first source is a parameter number, not a reference
            src = (ins.src[0],) + src[1:]
        out.append(Instr(ins.op, ins.dtype, src, ins.arg))
    flag = len(out)
    out.append(Instr("read", dtypes.bool_, (0,), None))
    out.append(Instr("alu", dtypes.int64, (flag,), "CAST"))
    out.append(Instr("const", INDEX, (), 0))
    out.append(Instr("store", None, (error_param, flag + 2, flag + 1), None))
    return out


def lower(kernel) -> Program:
    return Lowerer(kernel).lower()
