"""One kernel entry point: the program's instructions mapped onto a grid of threads.

`_Entry.render` walks the program once per launch. The output nest becomes
a grid-stride loop (`open_outputs`, or `open_phase` for one nest of a
PHASES program) over a flat index that `decompose` turns back into the loop
variables; hooks at the reduction loops hand over to `reductions.py` (BLOCK,
SPLIT); stores go through `stores.py`, ALU ops through `alu.py` and the
shared `llvm_alu.py`.
"""
from __future__ import annotations

import functools

from llvmlite import ir

from ..llvm_alu import I32, I64, constant, from_memory, memory_type, to_memory, value_type
from ..llvm_alu import close_counted_loop, open_counted_loop
from .alu import GPUAlu
from .analysis import _Analysis, _Nest
from .reductions import BlockReductions
from .stores import Stores
from .target import ALLOWED_INTRINSICS, NVPTX, Target

VOID = ir.VoidType()


class _Entry(GPUAlu, BlockReductions, Stores):
    """Builds one kernel entry point (`phase`: "thread", "block", "partial" or "finish")."""

    def __init__(self, module: ir.Module, name: str, an: _Analysis, phase: str, block: int, split: int,
                 scratch_dtype, target: Target = NVPTX):
        self.m, self.an, self.p = module, an, an.p
        self.target = target
        self.phase, self.block, self.split = phase, block, split
        self.scratch_dtype = scratch_dtype
        space = target.global_space
        params = [ir.PointerType(memory_type(dt), addrspace=space) for dt, _ in self.p.params]
        if scratch_dtype is not None:
            params.append(ir.PointerType(memory_type(scratch_dtype), addrspace=space))
        self.fn = ir.Function(module, ir.FunctionType(VOID, params + [I64, I64]), name=name)
        if target.is_nvptx:
            self.fn.calling_convention = "ptx_kernel"  # a launchable .entry, not a .func
        for arg in self.fn.args[:len(params)]:
            arg.add_attribute("noalias")
        self.n_ptr = len(params)
        self.entry_block = self.fn.append_basic_block("entry")
        self.alloca_builder = ir.IRBuilder(self.entry_block)
        self.b = ir.IRBuilder(self.fn.append_basic_block("body"))
        self.values: dict[int, object] = {}
        self.loops: dict[int, tuple] = {}
        self.tid = self._sreg("tid")
        self.smem_index = 0
        self.smem_arrays = {}
        self.current = -1          # index of the instruction being rendered
        self.shared_loops = {}     # BLOCK: open block-shared loops
        self.store_plan = {}       # PHASES: how each store of the rendered nest is made thread-safe

    # ---- helpers ----
    def _intrinsic(self, name: str, ret, args):
        if name not in ALLOWED_INTRINSICS:
            raise NotImplementedError(f"intrinsic {name} is not on the PTX renderer's allow-list")
        name = dict(self.target.rename).get(name, name)
        fn = self.m.globals.get(name)
        if fn is None:
            fn = ir.Function(self.m, ir.FunctionType(ret, args), name=name)
        return fn

    def _call(self, name: str, ret, args: list, fastmath=()):
        return self.b.call(self._intrinsic(name, ret, [a.type for a in args]), args, fastmath=fastmath)

    def _sreg(self, reg: str):
        """A special register (tid, ntid, ctaid, nctaid) of the x dimension, as i64."""
        b = self.alloca_builder
        fn = self._intrinsic(f"llvm.nvvm.read.ptx.sreg.{reg}.x", I32, [])
        return b.zext(b.call(fn, []), I64)

    def alloca(self, typ):
        return self.alloca_builder.alloca(typ)

    def open_loop(self, start, end, step, name: str):
        """A counted loop; returns (loop variable, handle for close_loop)."""
        counter = self.alloca(I64)
        i, header, exit_ = open_counted_loop(self.fn, self.b, counter, start, end, name)
        return i, (counter, header, exit_, step)

    def close_loop(self, handle) -> None:
        close_counted_loop(self.b, *handle)

    def when(self, cond, emit) -> None:
        """Run `emit()` only where `cond` (i1) is true."""
        b = self.b
        then = self.fn.append_basic_block("then")
        after = self.fn.append_basic_block("after")
        b.cbranch(cond, then, after)
        b.position_at_end(then)
        emit()
        b.branch(after)
        b.position_at_end(after)

    def barrier(self) -> None:
        self._call("llvm.nvvm.barrier0", VOID, [])

    def decompose(self, flat, nest: _Nest, skip_first_low: bool) -> None:
        """Set the loop variables of `nest` from a flat index (row-major over the nest's sizes)."""
        b = self.b
        narrow = nest.size * 2 < 2 ** 31 and len(nest.loops) > 1  # 32-bit division is much cheaper
        rem = b.trunc(flat, I32) if narrow else flat
        t = rem.type
        for k in range(len(nest.loops) - 1, 0, -1):
            size = nest.sizes[k]
            digit = b.urem(rem, ir.Constant(t, size))
            rem = b.udiv(rem, ir.Constant(t, size))
            digit = b.zext(digit, I64) if narrow else digit
            self.values[nest.loops[k]] = b.add(digit, ir.Constant(I64, nest.lows[k])) if nest.lows[k] else digit
        first = b.zext(rem, I64) if narrow else rem
        low = nest.lows[0]
        if low and not skip_first_low:
            first = b.add(first, ir.Constant(I64, low))
        self.values[nest.loops[0]] = first

    # ---- the walk ----
    def render(self, phase_index: int | None = None) -> None:
        an, instrs = self.an, self.p.instrs
        nest, red = an.nest, an.reduction
        skip_ranges = []
        if phase_index is not None:
            # the outermost loop runs once, as written; the chosen nest is the grid-stride loop and
            # the other nests belong to other launches
            nest, plan = an.phases[phase_index]
            self.store_plan = plan or {}
            skip = set(nest.loops[1:]) | set(nest.ends[:-1])
            hooks = {nest.loops[0]: self.open_phase, nest.ends[-1]: self.close_outputs}
            for k, (other, _) in enumerate(an.phases):
                if k != phase_index:
                    skip_ranges.append((other.loops[0], other.ends[0] + 1))
            self.phase_nest = nest
        else:
            skip = set(nest.loops[1:]) | set(nest.ends[:-1])
            hooks = {nest.loops[0]: self.open_outputs, nest.ends[-1]: self.close_outputs}
        if self.phase == "block":
            for loop_nest, accs in an.block_loops:
                skip |= set(loop_nest.loops[1:]) | set(loop_nest.ends[1:])
                hooks[loop_nest.loops[0]] = functools.partial(self.open_shared_loop, loop_nest)
                hooks[loop_nest.ends[0]] = functools.partial(self.close_shared_loop, loop_nest, accs)
        if self.phase in ("partial", "finish"):
            skip |= set(red.nest.loops[1:]) | set(red.nest.ends[1:])
            hooks[red.nest.loops[0]] = self.open_reduction
            hooks[red.nest.ends[0]] = self.close_reduction
        if self.phase == "partial":     # the epilogue runs in the finish launch
            skip_ranges.append((red.nest.ends[0] + 1, nest.ends[-1]))
        if self.phase == "finish":      # the reduction body ran in the partial launch
            skip_ranges.append((red.nest.loops[0] + 1, red.nest.ends[0]))
        for i, ins in enumerate(instrs):
            self.current = i
            if i in hooks:
                hooks[i](i, ins)
                continue
            if i in skip:
                continue
            if any(lo <= i < hi for lo, hi in skip_ranges) and ins.op != "const":
                continue
            self.values[i] = getattr(self, "r_" + ins.op)(ins)
        self.b.ret_void()
        self.alloca_builder.position_at_end(self.entry_block)
        self.alloca_builder.branch(self.fn.blocks[1])

    def open_outputs(self, i, ins) -> None:
        b, nest = self.b, self.an.nest
        start, end = self.fn.args[self.n_ptr], self.fn.args[self.n_ptr + 1]
        inner = ir.Constant(I64, nest.inner)
        lo, hi = b.mul(start, inner), b.mul(end, inner)
        if self.phase == "thread":
            first = b.add(lo, b.add(b.mul(self._sreg("ctaid"), self._sreg("ntid")), self.tid))
            step = b.mul(self._sreg("nctaid"), self._sreg("ntid"))
            flat, self.out_loop = self.open_loop(first, hi, step, "out")
        elif self.phase == "partial":
            split = ir.Constant(I64, self.split)
            g, self.out_loop = self.open_loop(b.add(b.mul(lo, split), self._sreg("ctaid")), b.mul(hi, split),
                                              self._sreg("nctaid"), "out")
            flat = b.udiv(g, split)
            self.slice = b.urem(g, split)
            self.scratch_slot = b.sub(g, b.mul(lo, split))
        else:
            flat, self.out_loop = self.open_loop(b.add(lo, self._sreg("ctaid")), hi, self._sreg("nctaid"), "out")
            self.out_offset = b.sub(flat, lo)
        self.decompose(flat, nest, skip_first_low=True)

    def open_phase(self, i, ins) -> None:
        """PHASES: a grid-stride loop over one nest of constant bounds."""
        b, nest = self.b, self.phase_nest
        first = b.add(b.mul(self._sreg("ctaid"), self._sreg("ntid")), self.tid)
        step = b.mul(self._sreg("nctaid"), self._sreg("ntid"))
        flat, self.out_loop = self.open_loop(first, ir.Constant(I64, nest.size), step, "nest")
        self.decompose(flat, nest, skip_first_low=False)

    def close_outputs(self, i, ins) -> None:
        self.close_loop(self.out_loop)

    # ---- instructions ----
    def r_arg(self, ins):
        return self.fn.args[self.n_ptr + (0 if ins.arg == "start" else 1)]

    def constant(self, value, dtype):
        return constant(value, dtype)

    def r_const(self, ins):
        return self.constant(ins.arg, ins.dtype)

    def r_loop(self, ins):
        i, handle = self.open_loop(self.values[ins.src[0]], self.values[ins.src[1]], ir.Constant(I64, 1),
                                   str(ins.arg))
        self.loops[id(ins)] = handle
        return i

    def r_endloop(self, ins):
        self.close_loop(self.loops[id(self.p.instrs[ins.src[0]])])

    def to_memory(self, v, dtype):
        return to_memory(self.b, v, dtype)

    def from_memory(self, v, dtype):
        return from_memory(self.b, v, dtype)

    def pointer(self, param: int, index):
        return self.b.gep(self.fn.args[param], [self.values[index]], inbounds=True)

    def r_load(self, ins):
        v = self.b.load(self.pointer(ins.src[0], ins.src[1]), align=ins.dtype.itemsize)
        return self.from_memory(v, ins.dtype)

    def r_acc(self, ins):
        slot = self.alloca(value_type(ins.dtype))
        self.b.store(self.r_const(ins), slot)
        return slot

    def r_update(self, ins):
        acc = self.p.instrs[ins.src[0]]
        self.accumulate(ins.src[0], ins.arg, self.values[ins.src[1]], acc.dtype)
        return None

    def accumulate(self, acc_ref: int, op: str, value, dtype=None):
        dtype = dtype or self.p.instrs[acc_ref].dtype
        slot = self.values[acc_ref]
        self.b.store(self.combine(op, dtype, self.b.load(slot), value), slot)

    def r_read(self, ins):
        return self.b.load(self.values[ins.src[0]])
