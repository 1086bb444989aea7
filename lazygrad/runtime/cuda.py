"""The CUDA runtime: device memory, PTX modules and kernel launches through the driver API.

The driver library (`libcuda.so.1`, installed with the NVIDIA driver) is
opened with ctypes the first time something here is used, never at import:
importing lazygrad must work on machines without a GPU, and must not pay for
CUDA initialisation when only the CPU is used.

Why the driver API and not the runtime API (libcudart)? The driver API loads
PTX text directly (`cuModuleLoadDataEx` JIT-compiles it for the actual chip,
with an error log when it fails) and ships with every driver; libcudart
would be one more library to find. About twenty functions are needed.

Memory model:
* `DeviceArray` is what a cuda `Buffer` holds in `Buffer.data`: a device
  pointer with its NumPy dtype and element count. `numpy()` copies it back.
* Freed arrays go back to a `DevicePool` keyed by size and are reused:
  `cuMemAlloc` is slow and `cuMemFree` synchronises the whole device.
* All work goes to the legacy default stream, so launches run in the order
  they were issued and a buffer freed after its last reader was *launched*
  can be handed to the next kernel at once. Copies to the host
  (`cuMemcpyDtoH`) wait for the kernels before them.
"""
from __future__ import annotations

import ctypes
import functools
import math
import threading

import numpy as np

from ..stats import bump as _bump_stat
from ..codegen.program import Program

DEVICE = "cuda"   # the Buffer.device of what this runtime computes

# CUresult codes worth naming in messages (the rest come from cuGetErrorName)
CUDA_SUCCESS = 0
CUDA_ERROR_OUT_OF_MEMORY = 2
# CUdevice_attribute
ATTR_MULTIPROCESSOR_COUNT = 16
ATTR_COMPUTE_CAPABILITY_MAJOR = 75
ATTR_COMPUTE_CAPABILITY_MINOR = 76
# CUjit_option
JIT_INFO_LOG_BUFFER = 3
JIT_INFO_LOG_BUFFER_SIZE_BYTES = 4
JIT_ERROR_LOG_BUFFER = 5
JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6

_P = ctypes.c_void_p
_SIZE = ctypes.c_size_t
_INT = ctypes.c_int
_U64 = ctypes.c_uint64

# name -> argument types; every function returns a CUresult (int)
_SIGNATURES = {
    "cuInit": [ctypes.c_uint],
    "cuDriverGetVersion": [ctypes.POINTER(_INT)],
    "cuDeviceGetCount": [ctypes.POINTER(_INT)],
    "cuDeviceGet": [ctypes.POINTER(_INT), _INT],
    "cuDeviceGetName": [ctypes.c_char_p, _INT, _INT],
    "cuDeviceGetAttribute": [ctypes.POINTER(_INT), _INT, _INT],
    "cuDeviceTotalMem_v2": [ctypes.POINTER(_SIZE), _INT],
    "cuDevicePrimaryCtxRetain": [ctypes.POINTER(_P), _INT],
    "cuCtxSetCurrent": [_P],
    "cuCtxSynchronize": [],
    "cuMemAlloc_v2": [ctypes.POINTER(_U64), _SIZE],
    "cuMemFree_v2": [_U64],
    "cuMemGetInfo_v2": [ctypes.POINTER(_SIZE), ctypes.POINTER(_SIZE)],
    "cuMemcpyHtoD_v2": [_U64, _P, _SIZE],
    "cuMemcpyDtoH_v2": [_P, _U64, _SIZE],
    "cuMemcpyDtoD_v2": [_U64, _U64, _SIZE],
    "cuMemsetD8_v2": [_U64, ctypes.c_ubyte, _SIZE],
    "cuModuleLoadDataEx": [ctypes.POINTER(_P), ctypes.c_char_p, ctypes.c_uint, ctypes.POINTER(_INT),
                           ctypes.POINTER(_P)],
    "cuModuleGetFunction": [ctypes.POINTER(_P), _P, ctypes.c_char_p],
    "cuLaunchKernel": [_P, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint,
                       ctypes.c_uint, ctypes.c_uint, _P, ctypes.POINTER(_P), ctypes.POINTER(_P)],
    "cuEventCreate": [ctypes.POINTER(_P), ctypes.c_uint],
    "cuEventRecord": [_P, _P],
    "cuEventSynchronize": [_P],
    "cuEventElapsedTime": [ctypes.POINTER(ctypes.c_float), _P, _P],
    "cuEventDestroy_v2": [_P],
    "cuGetErrorName": [_INT, ctypes.POINTER(ctypes.c_char_p)],
    "cuGetErrorString": [_INT, ctypes.POINTER(ctypes.c_char_p)],
}


class CudaError(RuntimeError):
    """A CUDA driver call failed (the message names the call and the driver's error)."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


class Driver:
    """The driver library with typed bindings; `call(name, *args)` raises CudaError on failure."""

    def __init__(self):
        try:
            self.lib = ctypes.CDLL("libcuda.so.1")
        except OSError as e:
            raise CudaError(f"no NVIDIA driver: libcuda.so.1 could not be loaded ({e})") from None
        self.fns = {}
        for name, argtypes in _SIGNATURES.items():
            try:
                fn = getattr(self.lib, name)
            except AttributeError:
                raise CudaError(f"the NVIDIA driver is too old: it has no {name}") from None
            fn.argtypes = argtypes
            fn.restype = _INT
            self.fns[name] = fn

    def error_text(self, code: int) -> str:
        name, text = ctypes.c_char_p(), ctypes.c_char_p()
        self.fns["cuGetErrorName"](code, ctypes.byref(name))
        self.fns["cuGetErrorString"](code, ctypes.byref(text))
        n = name.value.decode() if name.value else f"CUresult {code}"
        t = text.value.decode() if text.value else "unknown error"
        return f"{n}: {t}"

    def call(self, name: str, *args) -> None:
        code = self.fns[name](*args)
        if code != CUDA_SUCCESS:
            raise CudaError(f"{name} failed: {self.error_text(code)}", code)


@functools.lru_cache(maxsize=None)
def driver() -> Driver:
    return Driver()


class Device:
    """One GPU and its primary context (shared with every other library in the process, e.g. PyTorch)."""

    def __init__(self, ordinal: int = 0):
        d = driver()
        d.call("cuInit", 0)
        count = _INT(0)
        d.call("cuDeviceGetCount", ctypes.byref(count))
        if ordinal >= count.value:
            raise CudaError(f"CUDA device {ordinal} does not exist ({count.value} device(s) found)")
        handle = _INT(0)
        d.call("cuDeviceGet", ctypes.byref(handle), ordinal)
        self.ordinal, self.handle = ordinal, handle.value
        self.context = _P()
        d.call("cuDevicePrimaryCtxRetain", ctypes.byref(self.context), self.handle)
        self._current = threading.local()
        self.make_current()
        name = ctypes.create_string_buffer(256)
        d.call("cuDeviceGetName", name, 256, self.handle)
        self.name = name.value.decode(errors="replace")
        self.capability = (self.attribute(ATTR_COMPUTE_CAPABILITY_MAJOR), self.attribute(ATTR_COMPUTE_CAPABILITY_MINOR))
        self.sm_count = self.attribute(ATTR_MULTIPROCESSOR_COUNT)
        total = _SIZE(0)
        d.call("cuDeviceTotalMem_v2", ctypes.byref(total), self.handle)
        self.total_memory = total.value
        from ..codegen import ptx
        self.arch = ptx.arch_for_capability(*self.capability)

    def attribute(self, attr: int) -> int:
        value = _INT(0)
        driver().call("cuDeviceGetAttribute", ctypes.byref(value), attr, self.handle)
        return value.value

    def make_current(self) -> None:
        """The context is current per thread: bind it in every thread that talks to the driver."""
        if not getattr(self._current, "bound", False):
            driver().call("cuCtxSetCurrent", self.context)
            self._current.bound = True

    def synchronize(self) -> None:
        self.make_current()
        driver().call("cuCtxSynchronize")


@functools.lru_cache(maxsize=None)
def device(ordinal: int = 0) -> Device:
    return Device(ordinal)


def current() -> Device:
    """The device lazygrad runs on, bound to the calling thread."""
    dev = device(0)
    dev.make_current()
    return dev


# ---- memory ----

class DevicePool:
    """Freed device allocations, kept by size for reuse (allocation is slow, freeing synchronises)."""

    GRANULE = 512

    def __init__(self, limit_bytes: int = 8 << 30):
        self.free: dict[int, list] = {}
        self.bytes = 0
        self.limit = limit_bytes
        self.lock = threading.Lock()

    def _size(self, nbytes: int) -> int:
        return max(self.GRANULE, -(-nbytes // self.GRANULE) * self.GRANULE)

    def alloc(self, nbytes: int) -> tuple[int, int]:
        """(pointer, capacity) of at least `nbytes` bytes of device memory."""
        size = self._size(nbytes)
        with self.lock:
            ptrs = self.free.get(size)
            if ptrs:
                self.bytes -= size
                return ptrs.pop(), size
        current()
        ptr = _U64(0)
        try:
            driver().call("cuMemAlloc_v2", ctypes.byref(ptr), size)
        except CudaError as e:
            if e.code != CUDA_ERROR_OUT_OF_MEMORY:
                raise
            self.trim()  # give the cached memory back and try once more
            driver().call("cuMemAlloc_v2", ctypes.byref(ptr), size)
        _bump_stat("buffers_allocated")
        return ptr.value, size

    def release(self, ptr: int, size: int) -> None:
        with self.lock:
            if self.bytes + size <= self.limit:
                self.free.setdefault(size, []).append(ptr)
                self.bytes += size
                return
        try:
            driver().call("cuMemFree_v2", ptr)
        except Exception:  # noqa: BLE001 - freeing during interpreter shutdown may fail; nothing to do
            pass

    def trim(self) -> None:
        """Free every cached allocation."""
        with self.lock:
            ptrs = [p for lst in self.free.values() for p in lst]
            self.free.clear()
            self.bytes = 0
        for p in ptrs:
            driver().call("cuMemFree_v2", p)

    # the interface the realiser uses for every backend (see runtime/cpu.py's BufferPool)
    def take(self, np_dtype, numel: int) -> "DeviceArray":
        return DeviceArray.empty(numel, np_dtype)

    def give(self, arr: "DeviceArray") -> None:
        arr.release()

    def clear(self) -> None:
        self.trim()


pool = DevicePool()


class DeviceArray:
    """A flat array in device memory: what `Buffer.data` holds for a tensor on "cuda"."""

    __slots__ = ("ptr", "capacity", "dtype", "size", "__weakref__")

    def __init__(self, ptr: int, capacity: int, dtype, size: int):
        self.ptr, self.capacity, self.dtype, self.size = ptr, capacity, np.dtype(dtype), size

    @classmethod
    def empty(cls, size: int, dtype) -> "DeviceArray":
        dtype = np.dtype(dtype)
        ptr, capacity = pool.alloc(max(1, size) * dtype.itemsize)
        return cls(ptr, capacity, dtype, size)

    @classmethod
    def from_host(cls, arr: np.ndarray) -> "DeviceArray":
        arr = np.ascontiguousarray(arr)
        out = cls.empty(arr.size, arr.dtype)
        if arr.nbytes:
            current()
            driver().call("cuMemcpyHtoD_v2", out.ptr, arr.ctypes.data, arr.nbytes)
        return out

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def numpy(self) -> np.ndarray:
        """A host copy (waits for the kernels writing this array)."""
        out = np.empty(self.size, dtype=self.dtype)
        if self.nbytes:
            current()
            driver().call("cuMemcpyDtoH_v2", out.ctypes.data, self.ptr, self.nbytes)
        return out

    def copy_from(self, other: "DeviceArray") -> None:
        current()
        driver().call("cuMemcpyDtoD_v2", self.ptr, other.ptr, min(self.nbytes, other.nbytes))

    def zero(self) -> None:
        current()
        driver().call("cuMemsetD8_v2", self.ptr, 0, self.nbytes)

    def release(self) -> None:
        """Hand the memory back to the pool now (the realiser does this for dead intermediates)."""
        ptr, self.ptr = self.ptr, 0
        if ptr:
            pool.release(ptr, self.capacity)

    def __del__(self):
        try:
            self.release()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __repr__(self) -> str:
        return f"DeviceArray({self.dtype}, size={self.size}, ptr=0x{self.ptr:x})"


# ---- kernels ----

class CudaKernel:
    """A program compiled to PTX and loaded into the context: one function per launch stage."""

    def __init__(self, program: Program, rendered, module, functions):
        self.program = program
        self.rendered = rendered            # ptx.PTXKernel: PTX text, strategy, stages
        self.name = rendered.name
        self.ir_text = rendered.llvm_ir     # what inspection tools show as "the code"
        self.ptx = rendered.ptx
        self.module = module
        self.functions = functions          # CUfunction per stage

    def __repr__(self) -> str:
        return f"<CudaKernel {self.name} {self.rendered.strategy.value} {self.rendered.arch}>"


def load_module(ptx_text: str) -> ctypes.c_void_p:
    """JIT-compile PTX into the current context; a failure carries the JIT's error log."""
    current()
    log_size = 1 << 14
    error_log = ctypes.create_string_buffer(log_size)
    info_log = ctypes.create_string_buffer(log_size)
    options = (_INT * 4)(JIT_ERROR_LOG_BUFFER, JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
                         JIT_INFO_LOG_BUFFER, JIT_INFO_LOG_BUFFER_SIZE_BYTES)
    values = (_P * 4)(ctypes.cast(error_log, _P), _P(log_size), ctypes.cast(info_log, _P), _P(log_size))
    module = _P()
    try:
        driver().call("cuModuleLoadDataEx", ctypes.byref(module), ptx_text.encode() + b"\0", 4, options, values)
    except CudaError as e:
        log = error_log.value.decode(errors="replace").strip()
        raise CudaError(f"{e}\nPTX JIT error log:\n{log or '(empty)'}", e.code) from None
    return module


_kernels: dict = {}
_kernel_lock = threading.Lock()


def compile_program(program: Program) -> CudaKernel:
    """Render `program` to PTX for the current device and load it (cached by the PTX kernel's name)."""
    from ..codegen import ptx
    dev = current()
    rendered = ptx.render(program, dev.arch, ptx.Options(sm_count=dev.sm_count))
    with _kernel_lock:
        kernel = _kernels.get(rendered.name)
        if kernel is not None:
            _bump_stat("memory_cache_hits")
            return kernel
        module = load_module(rendered.ptx)
        functions = []
        for stage in rendered.stages:
            fn = _P()
            driver().call("cuModuleGetFunction", ctypes.byref(fn), module, stage.entry.encode())
            functions.append(fn)
        _bump_stat("kernels_compiled")
        kernel = CudaKernel(program, rendered, module, functions)
        _kernels[rendered.name] = kernel
        return kernel


def grid_size(stage, sm_count: int) -> int:
    """Blocks for one stage. Every kernel is a grid-stride loop, so this only tunes occupancy:
    enough blocks to fill every multiprocessor many times over, not one per element."""
    if stage.items <= 0:
        return 0
    if stage.per_block:
        return min(stage.items, sm_count * 64, 2 ** 31 - 1)
    return min(math.ceil(stage.items / stage.threads_per_block), sm_count * 16)


def launch_function(function, grid: int, block: int, values: list) -> None:
    """cuLaunchKernel with `values` as (ctypes scalar) arguments, on the default stream."""
    params = (_P * len(values))(*[ctypes.cast(ctypes.pointer(v), _P) for v in values])
    driver().call("cuLaunchKernel", function, grid, 1, 1, block, 1, 1, 0, None, params, None)


def launch(kernel: CudaKernel, arrays: list, program: Program | None = None) -> list:
    """Run every stage of a kernel over DeviceArrays (output first; None where the error flag goes).

    Returns the error flags as host arrays (one, or none when the program has no error flag), the
    same shape of result as `cpu.launch`; reading the flag waits for the kernel."""
    program = kernel.program
    dev = current()
    arrays = list(arrays)
    flag = None
    if program.error_param is not None:
        flag = DeviceArray.empty(1, np.int64)
        flag.zero()
        arrays[program.error_param] = flag
    scratch = None
    if kernel.rendered.scratch is not None:
        dtype, numel = kernel.rendered.scratch
        scratch = DeviceArray.empty(numel, dtype.np)
        arrays.append(scratch)
    values = [_U64(a.ptr) for a in arrays] + [ctypes.c_int64(0), ctypes.c_int64(program.outer_size)]
    _bump_stat("kernels_launched")
    for stage, function in zip(kernel.rendered.stages, kernel.functions):
        grid = grid_size(stage, dev.sm_count)
        if grid:
            launch_function(function, grid, stage.threads_per_block, values)
    if scratch is not None:
        scratch.release()  # stream order: the next kernel to get this memory runs after this one
    if flag is None:
        return []
    host = flag.numpy()
    flag.release()
    return [host]


def synchronize() -> None:
    current().synchronize()


class Event:
    """A CUDA event (for timing GPU work, like torch.cuda.Event(enable_timing=True))."""

    def __init__(self):
        current()
        self.handle = _P()
        driver().call("cuEventCreate", ctypes.byref(self.handle), 0)

    def record(self) -> None:
        current()
        driver().call("cuEventRecord", self.handle, None)

    def synchronize(self) -> None:
        driver().call("cuEventSynchronize", self.handle)

    def elapsed_time(self, end: "Event") -> float:
        """Milliseconds from this event to `end` (both recorded and completed)."""
        ms = ctypes.c_float(0.0)
        end.synchronize()
        driver().call("cuEventElapsedTime", ctypes.byref(ms), self.handle, end.handle)
        return ms.value

    def __del__(self):
        try:
            driver().call("cuEventDestroy_v2", self.handle)
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def probe() -> str | None:
    """None when a CUDA device works (driver, context, memory round trip), else the reason it does not."""
    try:
        current()
        probe_data = np.arange(4, dtype=np.int32)
        back = DeviceArray.from_host(probe_data).numpy()
        if not np.array_equal(back, probe_data):
            return "a host -> device -> host copy came back different"
    except CudaError as e:
        return str(e)
    except Exception as e:  # noqa: BLE001 - any failure means "not usable", with its reason
        return f"{type(e).__name__}: {e}"
    return None
