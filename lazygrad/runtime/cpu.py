"""The CPU runtime: buffers, the in-process JIT, and kernel launches.

Buffers are NumPy arrays (NumPy only holds the memory here; kernels compute).
Kernels are object code loaded into one MCJIT engine per process and called
through ctypes, which releases the GIL, so a thread pool can run slices of one
kernel's outermost loop on every core at once.
"""
from __future__ import annotations

import ctypes
import functools
import itertools
import os
import sys
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor

import llvmlite.binding as llvm
import numpy as np

from .. import stats
from ..codegen import cache, llvm as llvm_backend
from ..codegen.program import Program

# Work (elements x ops) below which a kernel runs on the calling thread: waking
# pool threads costs more than it saves (see TOOLCHAIN.md).
PARALLEL_WORK_THRESHOLD = 1 << 21
# Pieces of the outer loop per worker thread (see `launch`).
PIECES_PER_WORKER = 4


class CompiledKernel:
    """A loaded kernel: the program it came from and a ctypes callable."""

    def __init__(self, program: Program, name: str, fn, ir_text: str):
        self.program = program
        self.name = name
        self.fn = fn
        self.ir_text = ir_text


class _Engine:
    """One MCJIT engine for the whole process (engines must not share a target machine)."""

    def __init__(self):
        llvm_backend.host_target_machine()
        target = llvm.Target.from_default_triple()
        tm = target.create_target_machine(cpu=llvm.get_host_cpu_name(),
                                          features=llvm.get_host_cpu_features().flatten(),
                                          opt=3, codemodel="default", reloc="pic")
        backing = llvm.parse_assembly("")
        self.engine = llvm.create_mcjit_compiler(backing, tm)
        self.lock = threading.Lock()
        self.loaded: dict[str, CompiledKernel] = {}

    def load(self, program: Program) -> CompiledKernel:
        ir_text = llvm_backend.render_ir(program, "kernel")
        key = cache.kernel_key(ir_text)
        with self.lock:
            kernel = self.loaded.get(key)
            if kernel is not None:
                stats.bump("memory_cache_hits")
                return kernel
            # the symbol depends only on the key: the disk cache may hold this object from another program
            name = f"lazygrad_{key[:24]}"
            named_ir = ir_text.replace('@"kernel"', f'@"{name}"', 1)
            obj = cache.object_code(named_ir, key)
            self.engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
            self.engine.finalize_object()
            address = self.engine.get_function_address(name)
            if not address:
                raise RuntimeError(f"kernel {name} was not found after loading its object code")
            argtypes = [ctypes.c_void_p] * len(program.params) + [ctypes.c_int64, ctypes.c_int64]
            fn = ctypes.CFUNCTYPE(None, *argtypes)(address)
            kernel = CompiledKernel(program, name, fn, named_ir)
            self.loaded[key] = kernel
            return kernel


@functools.lru_cache(maxsize=None)
def engine() -> _Engine:
    return _Engine()


@functools.lru_cache(maxsize=None)
def thread_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=num_threads(), thread_name_prefix="lazygrad")


def num_threads() -> int:
    setting = os.environ.get("LAZYGRAD_THREADS")
    if setting:
        return max(1, int(setting))
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def compile_program(program: Program) -> CompiledKernel:
    return engine().load(program)


# ---- buffers ----

class OutOfMemoryError(MemoryError, RuntimeError):
    """A buffer too big to allocate (both a MemoryError and, like torch.OutOfMemoryError, a RuntimeError)."""


class BufferPool:
    """Freed arrays kept by (dtype, size) for reuse: fresh memory costs page faults."""

    def __init__(self, limit_bytes: int = 1 << 30):
        self.free: dict[tuple, list] = {}
        self.bytes = 0
        self.limit = limit_bytes
        self.dying: list = []  # arrays of garbage Buffers, pooled by `take` when no one else uses them
        self.watched: dict = {}  # weak reference to a live Buffer -> its array (see recycle_when_dead)
        # id(array) -> the address of its data, for every live array a kernel was given (or this pool
        # allocated): kernels take raw pointers, and NumPy's `arr.ctypes.data` costs more than a small kernel
        self.addresses: dict[int, int] = {}

    def take(self, np_dtype, numel: int) -> np.ndarray:
        if self.dying:
            self._collect_dying()
        arrays = self.free.get((np_dtype, numel))
        if arrays:
            arr = arrays.pop()
            self.bytes -= arr.nbytes
            return arr
        stats.bump("buffers_allocated")
        try:
            arr = np.empty(numel, dtype=np_dtype)
        except (MemoryError, ValueError) as e:  # ValueError: a size NumPy cannot even represent
            nbytes = numel * np.dtype(np_dtype).itemsize
            raise OutOfMemoryError(f"lazygrad: cannot allocate a buffer of {numel} elements of "
                                   f"{np.dtype(np_dtype).name} ({nbytes} bytes, {nbytes / 2 ** 30:.1f} GiB): "
                                   f"{e}") from None
        self.address(arr)
        return arr

    def address(self, arr: np.ndarray) -> int:
        """The address of an array's data, to pass to a kernel (remembered while the array lives)."""
        address = self.addresses.get(id(arr))
        if address is None:
            address = self.addresses[id(arr)] = arr.ctypes.data
            forget = weakref.finalize(arr, self.addresses.pop, id(arr), None)  # (once freed, its id may be reused)
            forget.atexit = False
        return address

    def give(self, arr: np.ndarray) -> None:
        if self.bytes + arr.nbytes > self.limit:
            return
        self.free.setdefault((arr.dtype, arr.size), []).append(arr)
        self.bytes += arr.nbytes

    def clear(self) -> None:
        self.free.clear()
        self.dying.clear()
        self.bytes = 0

    def recycle_when_dead(self, buffer) -> None:
        """Take `buffer`'s array back once the Buffer is garbage (its tensors and nodes are gone).

        A result the user drops (a training step's activations, a benchmark's
        output) then serves the next realisation of the same size without
        fresh memory. The array is kept out of the pool while anything else
        still refers to it: a NumPy view handed out by `.numpy()`, or another
        Buffer sharing it.
        """
        # (a weak reference with a callback: like weakref.finalize, which costs several times more)
        self.watched[weakref.ref(buffer, self._buffer_died)] = buffer.data

    def _buffer_died(self, ref) -> None:
        arr = self.watched.pop(ref, None)
        if arr is not None:
            self.dying.append(arr)

    def _collect_dying(self) -> None:
        """Pool the arrays of dead Buffers that nothing else refers to any more.

        Checked here rather than in the finalizer: while a finalizer runs, the
        dying Buffer still holds its array.
        """
        while self.dying:
            arr = self.dying.pop()
            # two references: the local `arr` and getrefcount's argument. Any more is another owner.
            if sys.getrefcount(arr) == 2 and arr.base is None:
                self.give(arr)


pool = BufferPool()
_counters = stats.counters


def launch(kernel: CompiledKernel, arrays: list, program: Program | None = None) -> list:
    """Run a kernel over its whole outermost loop. Returns the error flags (one per worker thread).

    `program` must be the caller's own Program: two programs that differ only in the
    trip count of their outermost loop (passed as start/end) share one compiled kernel,
    so `kernel.program` may be the other one.
    """
    program = program or kernel.program
    size = program.outer_size
    addresses = pool.addresses   # (pool.address(a), written out: this runs for every array of every launch)
    pointers = [None if a is None else addresses.get(id(a)) or pool.address(a) for a in arrays]  # None: error flag
    error_param = program.error_param
    workers = 1   # (a small kernel runs on the calling thread: the thread count is not even looked up)
    if program.work >= PARALLEL_WORK_THRESHOLD and size >= 2:
        workers = min(num_threads(), size)
    if workers == 1 and error_param is None and not program.scratch:   # the simplest case: just call it
        _counters["kernels_launched"] += 1   # (stats.bump, written out)
        kernel.fn(*pointers, 0, size)
        return []
    pointers += [None] * (len(program.params) - len(pointers))  # scratch parameters, set below
    flags = []
    scratch = []  # each worker gets its own scratch buffers, back to the pool afterwards
    worker_args = []
    for _ in range(workers):
        args = list(pointers)
        if error_param is not None:
            flag = np.zeros(1, dtype=np.int64)
            flags.append(flag)
            args[error_param] = flag.ctypes.data
        for param, numel in program.scratch.items():
            arr = pool.take(program.params[param][0].np, max(numel, 1))
            scratch.append(arr)
            args[param] = pool.address(arr)
        worker_args.append(args)

    stats.bump("kernels_launched")
    try:
        if workers == 1:
            kernel.fn(*worker_args[0], 0, size)
        else:
            # Cut the outer loop into more pieces than workers, handed out as workers finish: one that was
            # descheduled, or that got the slower rows, is not waited for while the others sit idle.
            pieces = min(size, workers * PIECES_PER_WORKER)
            bounds = [size * k // pieces for k in range(pieces + 1)]
            next_piece = itertools.count()  # its next() is atomic under the GIL

            def work(args):
                while (k := next(next_piece)) < pieces:
                    kernel.fn(*args, bounds[k], bounds[k + 1])

            futures = [thread_pool().submit(work, args) for args in worker_args[1:]]
            work(worker_args[0])
            for f in futures:
                f.result()
    finally:
        for arr in scratch:
            pool.give(arr)
    return flags
