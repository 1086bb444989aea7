"""The NVIDIA GPU renderer: loop Program -> LLVM IR for `nvptx64-nvidia-cuda` -> PTX text.

The same target-independent loop program the CPU renderer reads (see
`program.py`) is mapped onto a grid of thread blocks:

* **thread per output** (`Strategy.THREAD`, every kernel can use it): the
  perfectly nested loops over the output (the outermost one bounded by the
  `start`/`end` arguments) are collapsed into one flat index, and that index
  runs as a *grid-stride loop*: thread `g` of `n` handles flat indices
  `start*inner + g`, `+ n`, `+ 2n`, ... Anything inside (a reduction loop,
  an imperfectly nested loop) runs sequentially in that thread. Adjacent
  threads handle adjacent outputs, so contiguous outputs are read and
  written coalesced.
* **block per output** (`Strategy.BLOCK`, reductions): when there are few
  outputs or the reduced axis is contiguous in memory, one block of `B`
  threads computes one iteration of the output nest: every loop inside it
  is shared by the block, thread `t` taking iterations `t`, `t+B`, ... A
  reduction loop is followed by the block combining its `B` partial values
  with warp shuffles (`shfl.sync.down`, float32) or a shared-memory tree
  (other dtypes), so every thread holds the result; the code after it (the
  fused epilogue) runs in every thread and only thread 0 stores a value
  computed outside a loop. This covers a plain reduction (`x.sum(1)`) and
  a reduce-then-broadcast kernel (a softmax row: a max loop, a sum loop, then
  a loop writing the row).
* **phases** (`Strategy.PHASES`, scatter): a program whose outermost loop
  runs once and holds several loop nests one after another (scatter: copy
  the base into the output, then write the source at the indexed places)
  becomes one launch per nest, each nest a grid-stride loop; launches on one
  stream run in order, which is the barrier between the nests. A
  read-modify-write of the output (`out[i] = where(ok, out[i] + v, out[i])`)
  becomes an atomic add; `out[i] = where(ok, v, out[i])` a masked store (as on
  PyTorch's GPU path, which of several writes to one place wins is
  unspecified). A nest that writes what it reads in any other way runs in a
  single thread: slow, but with the CPU's meaning.
* **split reduction** (`Strategy.SPLIT`): a reduction with very few outputs
  (a full `sum()` of a large tensor) would keep one multiprocessor busy and
  the others idle. It runs in two launches: `S` blocks per output each reduce
  a slice into a scratch buffer, then a block per output reduces the `S`
  partial values and runs the epilogue.

What LLVM may see is restricted on purpose: an LLVM fatal error (for
instance `llvm.exp.f32`, which NVPTX cannot select) aborts the whole Python
process with no exception. So every instruction kind, every ALU op per dtype
and every intrinsic is on an explicit allow-list; anything else raises
`NotImplementedError` before LLVM is involved, and the finished module's
declarations are checked against `ALLOWED_INTRINSICS` once more.

Math keeps the CPU backend's accuracy, so that a model gives the same numbers
on both: float32 exp2 is the hardware's `ex2.approx` (2 ulp), float32 exp is
`ex2.approx` of an argument reduced with an FMA and scaled by 2**n (a few
ulp, where a plain ex2(x*log2 e) loses up to 5e-6 relative for large x).
log2 and sin (both dtypes) and float64 exp use the pure-arithmetic
polynomials of `llvm_math.py`, which need only `llvm.rint`/`llvm.fabs` (both
lower on NVPTX). The hardware `lg2.approx` has an absolute error of 2**-22,
i.e. a large relative error near 1 (log1p is built on log), and `sin.approx`
is only accurate on [-pi, pi]; neither is used. (Note that NVPTX cannot
select `llvm.exp`/`llvm.log` at all, nor f64 `llvm.exp2`/`llvm.log2`, and
`llvm.sin` only with the `afn` flag: all absent from the allow-list.)

The package: `analysis.py` reads a program (allow-lists, loop nests, the
strategy), this file builds the LLVM IR and PTX, `emulation.py` runs the
same kernels on the host for tests. The CUDA runtime that loads and
launches the PTX is `lazygrad/runtime/cuda.py`.
"""
from __future__ import annotations

import functools
import hashlib
import math
import threading
from dataclasses import dataclass

import llvmlite
import llvmlite.binding as llvm
from llvmlite import ir

from ...ir import dtypes
from .. import llvm_math
from ..program import INDEX, Program
# the analysis half of the renderer (re-exported: Options, Strategy and choose_strategy are public)
from .analysis import ALU_SUPPORT, INSTRUCTION_KINDS, Options, Strategy, _Analysis, _Nest  # noqa: F401
from .analysis import check_supported, choose_strategy

TRIPLE = "nvptx64-nvidia-cuda"
DEFAULT_ARCH = "sm_80"
# Architectures LLVM 22's NVPTX backend and CUDA 13's ptxas were checked with (ptxas 13 dropped sm_70).
ARCHS = ("sm_75", "sm_80", "sm_86", "sm_89", "sm_90", "sm_100")
GLOBAL, SHARED = 1, 3            # NVPTX address spaces
WARP = 32
FORMAT_VERSION = "1"             # bump when the generated code changes meaning (part of cache keys)

I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
F32, F64 = ir.FloatType(), ir.DoubleType()
VOID = ir.VoidType()

# Every function the renderer may declare. Anything else in a finished module is refused.
ALLOWED_INTRINSICS = frozenset({
    "llvm.nvvm.read.ptx.sreg.tid.x", "llvm.nvvm.read.ptx.sreg.ntid.x",
    "llvm.nvvm.read.ptx.sreg.ctaid.x", "llvm.nvvm.read.ptx.sreg.nctaid.x",
    "llvm.nvvm.barrier0", "llvm.nvvm.shfl.sync.down.f32",
    "llvm.exp2.f32",
    "llvm.sqrt.f32", "llvm.sqrt.f64", "llvm.trunc.f32", "llvm.trunc.f64",
    "llvm.rint.f32", "llvm.rint.f64", "llvm.fabs.f32", "llvm.fabs.f64",
    "llvm.fma.f32", "llvm.fma.f64",
})

LOG2E = math.log2(math.e)


@dataclass(frozen=True)
class Stage:
    """One kernel launch of a rendered program.

    `threads_per_block` is fixed at render time (block reductions unroll over it).
    `items` is how many units of parallel work there are: flat output elements
    (THREAD: one thread each), outputs (BLOCK, finish stage: one block each) or
    outputs * split (partial stage). The runtime picks the grid size; every
    kernel is a grid-stride loop, so any grid size is correct.
    """
    entry: str
    threads_per_block: int
    items: int
    per_block: bool


@dataclass(frozen=True)
class PTXKernel:
    """Rendered PTX for one program and how to launch it."""
    name: str
    arch: str
    ptx: str
    llvm_ir: str
    strategy: Strategy
    stages: tuple
    scratch: tuple | None     # (dtype, numel) of the scratch buffer SPLIT needs, else None
    program: Program


# ---- the target ----

_llvm_lock = threading.Lock()


@functools.lru_cache(maxsize=None)
def target_machine(arch: str):
    """An NVPTX target machine for one architecture (one per arch for the process)."""
    if arch not in ARCHS:
        raise NotImplementedError(f"PTX for {arch} is not supported; choose one of {', '.join(ARCHS)}")
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    target = llvm.Target.from_triple(TRIPLE)
    return target.create_target_machine(cpu=arch, opt=3)


def arch_for_capability(major: int, minor: int) -> str:
    """The newest supported architecture a device of compute capability major.minor runs (PTX is forward
    compatible: the driver JIT-compiles it for the actual chip)."""
    cc = major * 10 + minor
    best = None
    for arch in ARCHS:
        if int(arch[3:]) <= cc:
            best = arch
    if best is None:
        raise NotImplementedError(f"compute capability {major}.{minor} is older than the oldest supported "
                                  f"architecture ({ARCHS[0]})")
    return best


# ---- types ----

def value_type(dtype):
    if dtype == INDEX:
        return I64
    return {"bool": I1, "int32": I32, "int64": I64, "float32": F32, "float64": F64}[dtype.name]


def memory_type(dtype):
    """Element type in memory: bool is a byte, as in NumPy and PyTorch."""
    return I8 if dtype != INDEX and dtype.is_bool else value_type(dtype)


def _is_float(dtype) -> bool:
    return dtype != INDEX and dtype.is_floating_point


def _is_bool(dtype) -> bool:
    return dtype != INDEX and dtype.is_bool


# ---- rendering ----

@dataclass(frozen=True)
class Target:
    """What the generated IR is for. `NVPTX` is the real thing; `emulation.py` renders the same kernels
    for the host CPU (address space 0, special registers and barriers as calls into Python) to check
    the launch mapping without a GPU."""
    name: str
    global_space: int
    shared_space: int
    rename: tuple = ()        # (intrinsic, replacement) pairs

    @property
    def is_nvptx(self) -> bool:
        return self.name == "nvptx"


NVPTX = Target("nvptx", GLOBAL, SHARED)

class _Entry:
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
        b = self.b
        counter = self.alloca(I64)
        b.store(start, counter)
        header = self.fn.append_basic_block(f"{name}_head")
        body = self.fn.append_basic_block(f"{name}_body")
        exit_ = self.fn.append_basic_block(f"{name}_exit")
        b.branch(header)
        b.position_at_end(header)
        i = b.load(counter)
        b.cbranch(b.icmp_signed("<", i, end), body, exit_)
        b.position_at_end(body)
        return i, (counter, header, exit_, step)

    def close_loop(self, handle) -> None:
        counter, header, exit_, step = handle
        b = self.b
        b.store(b.add(b.load(counter), step), counter)
        b.branch(header)
        b.position_at_end(exit_)

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

    def open_shared_loop(self, loop_nest: _Nest, i, ins) -> None:
        """BLOCK: the threads of the block share the iterations of a loop inside the output nest."""
        r, handle = self.open_loop(self.tid, ir.Constant(I64, loop_nest.size), ir.Constant(I64, self.block), "shared")
        self.shared_loops[loop_nest.loops[0]] = handle
        self.decompose(r, loop_nest, skip_first_low=False)

    def close_shared_loop(self, loop_nest: _Nest, accs, i, ins) -> None:
        """BLOCK: after a reduction loop, combine every thread's partial values; all threads get the result."""
        self.close_loop(self.shared_loops.pop(loop_nest.loops[0]))
        for acc in accs:
            ref = self.p.instrs[acc]
            op = next(x.arg for x in self.p.instrs if x.op == "update" and x.src[0] == acc)
            slot = self.values[acc]
            combined = self.block_combine(self.b.load(slot), ref.dtype, op, self.constant(ref.arg, ref.dtype))
            self.b.store(combined, slot)

    def open_reduction(self, i, ins) -> None:
        b, red = self.b, self.an.reduction
        block = ir.Constant(I64, self.block)
        if self.phase == "finish":
            # reduce the `split` partial values of this output from the scratch buffer
            r, self.red_loop = self.open_loop(self.tid, ir.Constant(I64, self.split), block, "part")
            base = b.mul(self.out_offset, ir.Constant(I64, self.split))
            ptr = b.gep(self.fn.args[self.n_ptr - 1], [b.add(base, r)], inbounds=True)
            value = self.from_memory(b.load(ptr, align=self.scratch_dtype.itemsize), self.scratch_dtype)
            self.accumulate(red.acc, red.op, value)
            return
        if self.phase == "partial":
            start = b.add(b.mul(self.slice, block), self.tid)
            step = ir.Constant(I64, self.block * self.split)
        else:
            start, step = self.tid, block
        r, self.red_loop = self.open_loop(start, ir.Constant(I64, red.nest.size), step, "red")
        self.decompose(r, red.nest, skip_first_low=False)

    def close_reduction(self, i, ins) -> None:
        red = self.an.reduction
        self.close_loop(self.red_loop)
        dtype = self.p.instrs[red.acc].dtype
        slot = self.values[red.acc]
        identity = self.constant(self.p.instrs[red.acc].arg, dtype)
        combined = self.block_combine(self.b.load(slot), dtype, red.op, identity)
        self.b.store(combined, slot)
        if self.phase == "partial":
            def write():
                ptr = self.b.gep(self.fn.args[self.n_ptr - 1], [self.scratch_slot], inbounds=True)
                self.b.store(self.to_memory(combined, dtype), ptr, align=dtype.itemsize)
            self.when(self.b.icmp_unsigned("==", self.tid, ir.Constant(I64, 0)), write)

    # ---- block-wide combination of per-thread partial values ----
    def shared_array(self, typ, count: int):
        """A shared-memory array of `count` values of `typ`. Combines run one after another and end
        with a barrier after everyone has read the result, so one array per type serves them all
        (a kernel with many accumulators stays within the 48 KiB of static shared memory)."""
        key = (str(typ), count)
        if key in self.smem_arrays:
            return self.smem_arrays[key]
        self.smem_index += 1
        arr_t = ir.ArrayType(typ, count)
        g = ir.GlobalVariable(self.m, arr_t, f"{self.fn.name}_smem{self.smem_index}",
                              addrspace=self.target.shared_space)
        if self.target.is_nvptx:
            g.linkage = "internal"
        g.initializer = ir.Constant(arr_t, None)
        g.align = 8
        self.smem_arrays[key] = g
        return g

    def smem_ptr(self, arr, index):
        return self.b.gep(arr, [ir.Constant(I32, 0), index], inbounds=True)

    def block_combine(self, v, dtype, op: str, identity):
        """The combination of every thread's `v` in the block, returned to every thread."""
        b = self.b
        if dtype != INDEX and dtype.name == "float32" and op in ("ADD", "MAX", "MUL"):
            return self.shuffle_combine(v, dtype, op, identity)
        mem_t = memory_type(dtype)
        arr = self.shared_array(mem_t, self.block)
        tid32 = b.trunc(self.tid, I32)
        b.store(self.to_memory(v, dtype), self.smem_ptr(arr, tid32))
        self.barrier()
        half = self.block // 2
        while half >= 1:  # a tree: the first `half` threads fold in the upper half, until one value is left
            def fold(half=half):
                mine = self.from_memory(b.load(self.smem_ptr(arr, tid32)), dtype)
                other = self.from_memory(b.load(self.smem_ptr(arr, b.add(tid32, ir.Constant(I32, half)))), dtype)
                b.store(self.to_memory(self.combine(op, dtype, mine, other), dtype), self.smem_ptr(arr, tid32))
            self.when(b.icmp_unsigned("<", tid32, ir.Constant(I32, half)), fold)
            self.barrier()
            half //= 2
        result = self.from_memory(b.load(self.smem_ptr(arr, ir.Constant(I32, 0))), dtype)
        self.barrier()  # everyone has read the result before the next output reuses the array
        return result

    def shuffle_combine(self, v, dtype, op: str, identity):
        """float32: combine within each warp with shfl.sync.down, then across warps through shared memory."""
        b = self.b
        warps = self.block // WARP
        arr = self.shared_array(F32, WARP)
        tid32 = b.trunc(self.tid, I32)
        lane = b.and_(tid32, ir.Constant(I32, WARP - 1))
        warp = b.lshr(tid32, ir.Constant(I32, 5))

        def warp_reduce(x):
            offset = WARP // 2
            while offset >= 1:
                other = self._call("llvm.nvvm.shfl.sync.down.f32", F32,
                                   [ir.Constant(I32, -1), x, ir.Constant(I32, offset), ir.Constant(I32, WARP - 1)])
                x = self.combine(op, dtype, x, other)
                offset //= 2
            return x

        v = warp_reduce(v)
        if warps == 1:
            # one warp: lane 0 holds the result; hand it to every lane through shared memory
            self.when(b.icmp_unsigned("==", lane, ir.Constant(I32, 0)),
                      lambda: b.store(v, self.smem_ptr(arr, ir.Constant(I32, 0))))
            self.barrier()
            result = b.load(self.smem_ptr(arr, ir.Constant(I32, 0)))
            self.barrier()
            return result
        self.when(b.icmp_unsigned("==", lane, ir.Constant(I32, 0)), lambda: b.store(v, self.smem_ptr(arr, warp)))
        self.barrier()

        def first_warp():
            x = b.select(b.icmp_unsigned("<", lane, ir.Constant(I32, warps)),
                         b.load(self.smem_ptr(arr, b.select(b.icmp_unsigned("<", lane, ir.Constant(I32, warps)),
                                                            lane, ir.Constant(I32, 0)))), identity)
            x = warp_reduce(x)
            self.when(b.icmp_unsigned("==", lane, ir.Constant(I32, 0)),
                      lambda: b.store(x, self.smem_ptr(arr, ir.Constant(I32, 0))))
        self.when(b.icmp_unsigned("==", warp, ir.Constant(I32, 0)), first_warp)
        self.barrier()
        result = b.load(self.smem_ptr(arr, ir.Constant(I32, 0)))
        self.barrier()
        return result

    # ---- instructions ----
    def r_arg(self, ins):
        return self.fn.args[self.n_ptr + (0 if ins.arg == "start" else 1)]

    def constant(self, value, dtype):
        if _is_bool(dtype):
            return ir.Constant(I1, int(bool(value)))
        return ir.Constant(value_type(dtype), value)

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
        return self.b.zext(v, I8) if _is_bool(dtype) else v

    def from_memory(self, v, dtype):
        return self.b.icmp_unsigned("!=", v, ir.Constant(I8, 0)) if _is_bool(dtype) else v

    def pointer(self, param: int, index):
        return self.b.gep(self.fn.args[param], [self.values[index]], inbounds=True)

    def r_load(self, ins):
        v = self.b.load(self.pointer(ins.src[0], ins.src[1]), align=ins.dtype.itemsize)
        return self.from_memory(v, ins.dtype)

    def r_store(self, ins):
        b = self.b
        param, _, value = ins.src
        dtype = self.p.params[param][0]
        if param == self.p.error_param:
            # many threads report errors: keep the largest code seen (the CPU keeps the max too)
            v = self.values[value]
            v = b.zext(v, I64) if v.type != I64 else v
            self.when(b.icmp_signed("!=", v, ir.Constant(I64, 0)),
                      lambda: b.atomic_rmw("max", self.pointer(param, ins.src[1]), v, "monotonic"))
            return None
        planned = self.store_plan.get(self.current)
        if planned is not None and planned[0] != "plain":
            return self.planned_store(planned, param, ins.src[1], dtype)

        def store():
            b.store(self.to_memory(self.values[value], dtype), self.pointer(param, ins.src[1]), align=dtype.itemsize)
        if self.phase == "finish" or (self.phase == "block" and not self.shared_loops):
            # outside a shared loop every thread of the block holds the same value: thread 0 writes it
            self.when(b.icmp_unsigned("==", self.tid, ir.Constant(I64, 0)), store)
        else:
            store()
        return None

    def planned_store(self, planned, param, index, dtype):
        """A store the PHASES analysis made thread-safe (see _Analysis._store_plan)."""
        b = self.b
        kind = planned[0]
        if kind == "skip":
            return None
        cond = self.values[planned[1]] if planned[1] is not None else None
        value = self.values[planned[2]]
        if kind == "masked":
            self.when(cond, lambda: b.store(self.to_memory(value, dtype), self.pointer(param, index),
                                            align=dtype.itemsize))
            return None
        op = "fadd" if _is_float(dtype) else "add"
        if cond is not None:
            value = b.select(cond, value, ir.Constant(value.type, 0.0 if _is_float(dtype) else 0))
        b.atomic_rmw(op, self.pointer(param, index), value, "monotonic")
        return None

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

    # ---- arithmetic ----
    def combine(self, op: str, dtype, a, c):
        b = self.b
        if op == "ADD":
            if _is_float(dtype):
                return b.fadd(a, c, flags=("contract",))
            return b.or_(a, c) if _is_bool(dtype) else b.add(a, c)
        if op == "MUL":  # a product: integers wrap, bool is AND
            if _is_float(dtype):
                return b.fmul(a, c)
            return b.and_(a, c) if _is_bool(dtype) else b.mul(a, c)
        if op == "OR":
            return b.or_(a, c)
        return self.max(dtype, a, c)

    def max(self, dtype, a, c):
        b = self.b
        if _is_float(dtype):
            # NaN-propagating like torch.maximum: pick a when a > c or a is NaN
            pick_a = b.or_(b.fcmp_ordered(">", a, c), b.fcmp_unordered("uno", a, a))
        elif _is_bool(dtype):
            return b.or_(a, c)
        else:
            pick_a = b.icmp_signed(">", a, c)
        return b.select(pick_a, a, c)

    def r_alu(self, ins):
        b = self.b
        op, dtype = ins.arg, ins.dtype
        srcs = [self.values[s] for s in ins.src]
        src_dtype = self.p.instrs[ins.src[0]].dtype if ins.src else dtype
        if op == "CAST":
            return self.cast(srcs[0], src_dtype, dtype)
        if op == "WHERE":
            return b.select(*srcs)
        if op == "AND":
            return b.and_(*srcs)
        if op == "MAX":
            return self.max(dtype, *srcs)
        if op in ("CMPLT", "CMPEQ"):
            return self.compare(op, src_dtype, *srcs)
        if _is_float(dtype):
            return self.float_op(op, *srcs)
        if _is_bool(dtype):
            return b.or_(*srcs) if op == "ADD" else b.and_(*srcs)
        return self.int_op(op, dtype, *srcs)

    def compare(self, op, dtype, a, c):
        b = self.b
        if _is_float(dtype):
            return b.fcmp_ordered("<" if op == "CMPLT" else "==", a, c)
        if _is_bool(dtype):
            return b.icmp_unsigned("<" if op == "CMPLT" else "==", a, c)
        return b.icmp_signed("<" if op == "CMPLT" else "==", a, c)

    def float_op(self, op, *srcs):
        b = self.b
        x = srcs[0]
        t = x.type
        name = "f32" if t == F32 else "f64"
        if op == "ADD":
            return b.fadd(*srcs)
        if op == "MUL":
            return b.fmul(*srcs)
        if op == "NEG":
            return b.fneg(x)
        if op == "RECIP":
            return b.fdiv(ir.Constant(t, 1.0), x)
        if op == "DIV":
            return b.fdiv(*srcs)
        if op == "MOD":
            return b.frem(*srcs)
        if op == "SQRT":
            return self._call(f"llvm.sqrt.{name}", t, [x])
        if op == "TRUNC":
            return self._call(f"llvm.trunc.{name}", t, [x])
        if op == "LOG2":
            return llvm_math.log2(b, x)
        if op == "SIN":
            return llvm_math.sin(b, x)      # float32 is reduced and evaluated in float64
        if t == F64:
            # pure arithmetic (plus llvm.rint): f64 exp2/log2 intrinsics abort LLVM on NVPTX
            return (llvm_math.exp if op == "EXP" else llvm_math.exp2)(b, x)
        if op == "EXP":
            return self.exp_f32(x)
        if op == "EXP2":
            return self._call("llvm.exp2.f32", F32, [x])
        raise NotImplementedError(f"{op} on floating point")

    def exp_f32(self, x):
        """e**x = 2**n * 2**f with n = round(x*log2 e) and f = x*log2 e - n computed with an FMA and a
        second constant (so f keeps the bits a plain x*log2e would round away), 2**f by ex2.approx
        (|f| <= 1/2), and 2**n assembled in two exponent-field halves so results near the ends of
        the range neither overflow early nor flush early."""
        b = self.b
        m = llvm_math._Math(b, F32)
        hi = float(dtypes.float32.np.type(LOG2E))
        lo = float(dtypes.float32.np.type(LOG2E - hi))
        xc = m.select_cmp("olt", x, m.c(-104.0), m.c(-104.0), m.select_cmp("ogt", x, m.c(89.0), m.c(89.0), x))
        n = self._call("llvm.rint.f32", F32, [b.fmul(xc, m.c(hi))])
        f = self._call("llvm.fma.f32", F32, [xc, m.c(hi), b.fneg(n)])
        f = self._call("llvm.fma.f32", F32, [xc, m.c(lo), f])
        p = self._call("llvm.exp2.f32", F32, [f])
        out = m.scale(p, n)
        return b.select(b.fcmp_unordered("uno", x, x), x, out)

    def int_op(self, op, dtype, *srcs):
        b = self.b
        t = srcs[0].type
        zero, one, minus_one = ir.Constant(t, 0), ir.Constant(t, 1), ir.Constant(t, -1)
        if op == "ADD":
            return b.add(*srcs)
        if op == "MUL":
            return b.mul(*srcs)
        if op == "NEG":
            return b.sub(zero, srcs[0])
        if op in ("IDIV", "MOD"):
            a, d = srcs
            if dtype == INDEX:  # index arithmetic: positive constant divisors, non-negative values
                return b.udiv(a, d) if op == "IDIV" else b.urem(a, d)
            # division by 0 and INT_MIN / -1 are undefined in LLVM: avoid both (results as on the CPU)
            bad = b.or_(b.icmp_signed("==", d, zero), b.icmp_signed("==", d, minus_one))
            safe_d = b.select(bad, one, d)
            if op == "IDIV":
                q = b.sdiv(a, safe_d)
                return b.select(b.icmp_signed("==", d, minus_one), b.sub(zero, a), q)
            return b.select(bad, zero, b.srem(a, safe_d))
        if op == "TRUNC":
            return srcs[0]
        raise NotImplementedError(f"{op} on integers")

    def cast(self, v, src, dst):
        b = self.b
        st, dt = value_type(src), value_type(dst)
        if st == dt:
            return v
        if _is_bool(dst):
            if _is_float(src):
                return b.fcmp_unordered("!=", v, ir.Constant(st, 0.0))
            return b.icmp_unsigned("!=", v, ir.Constant(st, 0))
        if _is_bool(src):
            return b.uitofp(v, dt) if _is_float(dst) else b.zext(v, dt)
        if _is_float(src) and _is_float(dst):
            return b.fpext(v, dt) if dt == F64 else b.fptrunc(v, dt)
        if _is_float(src):
            return b.fptosi(v, dt)
        if _is_float(dst):
            return b.sitofp(v, dt)
        return b.sext(v, dt) if dt.width > st.width else b.trunc(v, dt)


def _check_declarations(module: ir.Module, target: Target) -> None:
    """The last line of defence: nothing outside the allow-list reaches LLVM."""
    allowed = ALLOWED_INTRINSICS | {new for _, new in target.rename}
    for fn in module.functions:
        if fn.is_declaration and fn.name not in allowed:
            raise NotImplementedError(f"the PTX renderer produced a call to {fn.name}, which is not on its "
                                      "allow-list (it might abort LLVM)")


def render_llvm_ir(program: Program, name: str, arch: str = DEFAULT_ARCH, options: Options = Options(),
                   target: Target = NVPTX):
    """(LLVM IR text, strategy, stages, scratch) for a program; raises NotImplementedError for anything
    the renderer does not know."""
    check_supported(program)
    an = _Analysis(program)
    strategy, block, split = choose_strategy(an, options)
    module = ir.Module(name=name)
    if target.is_nvptx:
        module.triple = TRIPLE
        module.data_layout = str(target_machine(arch).target_data)
    outputs = an.nest.size
    scratch = None
    if strategy is Strategy.PHASES:
        stages = []
        for k, (nest, plan) in enumerate(an.phases):
            entry = f"{name}_phase{k}"
            _Entry(module, entry, an, "thread", block, 1, None, target).render(phase_index=k)
            # a nest whose iterations depend on each other runs in one thread
            stages.append(Stage(entry, block, nest.size, per_block=False) if plan is not None
                          else Stage(entry, 1, 1, per_block=True))
        stages = tuple(stages)
    elif strategy is Strategy.THREAD:
        _Entry(module, name, an, "thread", block, 1, None, target).render()
        stages = (Stage(name, block, outputs, per_block=False),)
    elif strategy is Strategy.BLOCK:
        _Entry(module, name, an, "block", block, 1, None, target).render()
        stages = (Stage(name, block, outputs, per_block=True),)
    else:
        acc_dtype = program.instrs[an.reduction.acc].dtype
        _Entry(module, name + "_partial", an, "partial", block, split, acc_dtype, target).render()
        _Entry(module, name + "_finish", an, "finish", block, split, acc_dtype, target).render()
        stages = (Stage(name + "_partial", block, outputs * split, per_block=True),
                  Stage(name + "_finish", block, outputs, per_block=True))
        scratch = (acc_dtype, outputs * split)
    _check_declarations(module, target)
    return str(module), strategy, stages, scratch


def emit_ptx(ir_text: str, arch: str = DEFAULT_ARCH) -> str:
    """Optimise the IR (O3) for the NVPTX target and print PTX. Only call this on renderer output."""
    tm = target_machine(arch)
    with _llvm_lock:
        mod = llvm.parse_assembly(ir_text)
        mod.verify()
        pto = llvm.create_pipeline_tuning_options(speed_level=3)
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(mod, pb)
        return tm.emit_assembly(mod)


_cache: dict = {}


def render(program: Program, arch: str = DEFAULT_ARCH, options: Options = Options()) -> PTXKernel:
    """PTX for a program (cached in memory by program text, architecture and options)."""
    text = program.text()
    key = hashlib.sha256("|".join((text, arch, repr(options), FORMAT_VERSION, llvmlite.__version__))
                         .encode()).hexdigest()
    kernel = _cache.get(key)
    if kernel is not None:
        return kernel
    name = f"lazygrad_{key[:24]}"
    ir_text, strategy, stages, scratch = render_llvm_ir(program, name, arch, options)
    ptx = emit_ptx(ir_text, arch)
    kernel = PTXKernel(name, arch, ptx, ir_text, strategy, stages, scratch, program)
    _cache[key] = kernel
    return kernel
