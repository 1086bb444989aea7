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

The package, by concern:

* `analysis.py` reads a program: allow-lists, loop nests, the strategy;
* `target.py`: architectures, the intrinsic allow-list, target machines;
* `entry.py` builds one kernel entry point (the launch mapping, the walk
  over the program's instructions); `reductions.py` the block and split
  reductions, `stores.py` thread-safe stores (error flag, atomics),
  `alu.py` the GPU's own arithmetic on top of the ALU ops and casts it
  shares with the CPU renderer (`lazygrad/codegen/llvm_alu.py`);
* this file: rendering a program to LLVM IR and PTX, with its stages;
* `emulation.py` runs the same kernels on the host for tests.

The CUDA runtime that loads and launches the PTX is `lazygrad/runtime/cuda.py`.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import llvmlite
import llvmlite.binding as llvm
from llvmlite import ir

from ..program import Program
# the analysis half of the renderer (re-exported: Options, Strategy and choose_strategy are public)
from .analysis import ALU_SUPPORT, INSTRUCTION_KINDS, Options, Strategy, _Analysis, _Nest  # noqa: F401
from .analysis import check_supported, choose_strategy
from .entry import _Entry
from .target import ALLOWED_INTRINSICS, ARCHS, DEFAULT_ARCH, FORMAT_VERSION, GLOBAL, NVPTX, SHARED  # noqa: F401
from .target import TRIPLE, WARP, Target, _llvm_lock, arch_for_capability, target_machine  # noqa: F401


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
