"""`lazygrad.cuda`: GPU availability. The CUDA runtime is optional; importing lazygrad never needs it."""
from __future__ import annotations

import ctypes
import functools


@functools.lru_cache(maxsize=None)
def _driver_status() -> str | None:
    """None when a CUDA device is usable, else the reason it is not."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return "no NVIDIA driver (libcuda.so.1) was found"
    if lib.cuInit(0) != 0:
        return "cuInit failed: no usable CUDA device"
    count = ctypes.c_int(0)
    if lib.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value == 0:
        return "no CUDA device is present"
    return "the CUDA backend of lazygrad is not built in this version"


def is_available() -> bool:
    return _driver_status() is None


def device_count() -> int:
    return 1 if is_available() else 0


def require(op: str) -> None:
    reason = _driver_status()
    if reason is not None:
        raise RuntimeError(f"{op}(): CUDA is not available: {reason}. "
                           "Use device='cpu' (lazygrad.cuda.is_available() is False).")
