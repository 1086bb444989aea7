"""Run GPU kernels on the CPU, one OS thread per GPU thread, to check them without a GPU.

`ptxas` proves that generated PTX is valid; it cannot tell whether a grid-
stride loop covers every output exactly once, whether a block reduction
combines the right partial values, or whether a split reduction's two
launches agree. This module renders the very same kernel structure for the
host (the `Target` hook of the renderer): global and shared memory become
ordinary memory, the special registers (`tid`, `ctaid`, ...) and the
barrier and warp shuffle become calls back into Python, and every block is
run as `threads_per_block` Python threads that really wait for each other at
each barrier. Only `ex2.approx` differs (the host's exp2f stands in), so
results match the CPU backend to a few ulp.

It is slow (a ctypes callback per barrier and shuffle) and meant for small
test inputs. Nothing here is used when running on a real GPU.
"""
from __future__ import annotations

import ctypes
import functools
import math
import threading

import llvmlite.binding as llvm
import numpy as np

from ..program import Program
from . import Options, Strategy, Target, render_llvm_ir

EMULATION = Target("emulation", 0, 0, rename=(
    ("llvm.nvvm.read.ptx.sreg.tid.x", "lazygrad_emu_tid"),
    ("llvm.nvvm.read.ptx.sreg.ntid.x", "lazygrad_emu_ntid"),
    ("llvm.nvvm.read.ptx.sreg.ctaid.x", "lazygrad_emu_ctaid"),
    ("llvm.nvvm.read.ptx.sreg.nctaid.x", "lazygrad_emu_nctaid"),
    ("llvm.nvvm.barrier0", "lazygrad_emu_barrier"),
    ("llvm.nvvm.shfl.sync.down.f32", "lazygrad_emu_shfl_down"),
))

_state = threading.local()   # per emulated GPU thread: tid, ctaid, and its block's shared objects


class _Block:
    """What the threads of one running block share: the sizes, a barrier, and the shuffle mailboxes."""

    def __init__(self, threads: int, blocks: int):
        self.threads, self.blocks = threads, blocks
        self.barrier = threading.Barrier(threads)
        warps = max(1, threads // 32)
        self.warp_barriers = [threading.Barrier(min(32, threads)) for _ in range(warps)]
        self.mailboxes = [[0.0] * 32 for _ in range(warps)]


def _tid():
    return _state.tid


def _ntid():
    return _state.block.threads


def _ctaid():
    return _state.ctaid


def _nctaid():
    return _state.block.blocks


def _barrier():
    _state.block.barrier.wait()


def _shfl_down(mask, value, offset, clamp):
    """shfl.sync.down: lane i receives lane i+offset's value (its own when that lane is past `clamp`)."""
    block, lane = _state.block, _state.tid % 32
    warp = _state.tid // 32
    box = block.mailboxes[warp]
    box[lane] = value
    block.warp_barriers[warp].wait()
    src = lane + offset
    out = box[src] if src <= clamp else value
    block.warp_barriers[warp].wait()
    return out


_I32 = ctypes.CFUNCTYPE(ctypes.c_int32)
_CALLBACKS = {
    "lazygrad_emu_tid": _I32(_tid),
    "lazygrad_emu_ntid": _I32(_ntid),
    "lazygrad_emu_ctaid": _I32(_ctaid),
    "lazygrad_emu_nctaid": _I32(_nctaid),
    "lazygrad_emu_barrier": ctypes.CFUNCTYPE(None)(_barrier),
    "lazygrad_emu_shfl_down": ctypes.CFUNCTYPE(ctypes.c_float, ctypes.c_int32, ctypes.c_float, ctypes.c_int32,
                                               ctypes.c_int32)(_shfl_down),
}


class _Engine:
    """A host JIT of its own (a target machine must not be shared between engines)."""

    def __init__(self):
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        for name, cb in _CALLBACKS.items():
            llvm.add_symbol(name, ctypes.cast(cb, ctypes.c_void_p).value)
        # the large code model: see lazygrad.codegen.llvm.host_target_machine (no 32-bit relocations)
        tm = llvm.Target.from_default_triple().create_target_machine(opt=0, codemodel="large")
        self.triple, self.layout = llvm.get_process_triple(), str(tm.target_data)
        self.engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), tm)
        self.lock = threading.Lock()
        self.count = 0


@functools.lru_cache(maxsize=None)
def _engine() -> _Engine:
    return _Engine()


class EmulatedKernel:
    def __init__(self, program: Program, strategy, stages, scratch, fns):
        self.program, self.strategy, self.stages, self.scratch, self.fns = program, strategy, stages, scratch, fns


def compile_program(program: Program, options: Options = Options()) -> EmulatedKernel:
    """Render `program` exactly as for the GPU, but for the host, and load it."""
    eng = _engine()
    with eng.lock:
        eng.count += 1
        name = f"lazygrad_emu_kernel{eng.count}"
        ir_text, strategy, stages, scratch = render_llvm_ir(program, name, options=options, target=EMULATION)
        # no optimisation passes: the barrier is an opaque call, and a shared-memory load must not be
        # forwarded across it from the thread's own earlier store
        mod = llvm.parse_assembly(ir_text)
        mod.triple, mod.data_layout = eng.triple, eng.layout
        mod.verify()
        eng.engine.add_module(mod)
        eng.engine.finalize_object()
        n_ptr = len(program.params) + (1 if scratch is not None else 0)
        proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * n_ptr + [ctypes.c_int64, ctypes.c_int64]))
        fns = [proto(eng.engine.get_function_address(stage.entry)) for stage in stages]
    return EmulatedKernel(program, strategy, stages, scratch, fns)


def _run_grid(fn, args, threads: int, blocks: int) -> None:
    errors = []

    def thread_main(block, tid, ctaid):
        _state.block, _state.tid, _state.ctaid = block, tid, ctaid
        try:
            fn(*args)
        except BaseException as e:  # pragma: no cover - surfaced below
            errors.append(e)
            block.barrier.abort()

    for ctaid in range(blocks):
        block = _Block(threads, blocks)
        workers = [threading.Thread(target=thread_main, args=(block, t, ctaid)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        if errors:
            raise errors[0]


def launch(kernel: EmulatedKernel, arrays: list, max_blocks: int = 3) -> int:
    """Run a kernel over NumPy arrays (output first, as the runtime passes them). Returns the kernel's
    error code (0: no index was out of range). `max_blocks` caps the grid so that the grid-stride
    loops are exercised."""
    program = kernel.program
    arrays = list(arrays)
    flag = None
    if program.error_param is not None:
        flag = np.zeros(1, dtype=np.int64)
        arrays[program.error_param] = flag
    if kernel.scratch is not None:
        dtype, numel = kernel.scratch
        arrays.append(np.zeros(numel, dtype=dtype.np))
    pointers = [a.ctypes.data for a in arrays]
    for stage, fn in zip(kernel.stages, kernel.fns):
        if stage.items == 0:
            continue
        wanted = stage.items if stage.per_block else math.ceil(stage.items / stage.threads_per_block)
        _run_grid(fn, pointers + [0, program.outer_size], stage.threads_per_block, max(1, min(wanted, max_blocks)))
    return int(flag[0]) if flag is not None else 0


__all__ = ["EMULATION", "EmulatedKernel", "compile_program", "launch", "Strategy"]
