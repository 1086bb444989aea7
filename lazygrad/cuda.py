"""`lazygrad.cuda`: the GPU as `torch.cuda` presents it (availability, device facts, synchronisation,
events for timing).

Everything here is optional: importing lazygrad never loads the CUDA driver. The first question
(`is_available()`, or a tensor sent to "cuda") opens `libcuda.so.1`, creates the context and checks
that a small host -> device -> host copy works; the answer is remembered for the process.
The runtime itself is `lazygrad/runtime/cuda.py`, the code generator `lazygrad/codegen/ptx`.
"""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=None)
def _driver_status() -> str | None:
    """None when a CUDA device is usable, else the reason it is not."""
    from .runtime import cuda as runtime
    return runtime.probe()


def is_available() -> bool:
    """True when a CUDA device is present and works (not merely when a driver is installed)."""
    return _driver_status() is None


def device_count() -> int:
    """lazygrad uses one GPU (device 0); this is 1 when it works, else 0."""
    return 1 if is_available() else 0


def require(op: str) -> None:
    """Raise a clear RuntimeError when `op` needs a GPU and there is none."""
    reason = _driver_status()
    if reason is not None:
        raise RuntimeError(f"{op}(): CUDA is not available: {reason}. "
                           "Use device='cpu' (lazygrad.cuda.is_available() is False).")


def _device():
    require("cuda")
    from .runtime import cuda as runtime
    return runtime.current()


def current_device() -> int:
    _device()
    return 0


def get_device_name(device=None) -> str:
    return _device().name


def get_device_capability(device=None) -> tuple:
    """(major, minor) compute capability, e.g. (9, 0) for an H100."""
    return _device().capability


def get_arch() -> str:
    """The PTX target lazygrad generates code for on this device (e.g. "sm_90")."""
    return _device().arch


def synchronize(device=None) -> None:
    """Wait until every kernel launched so far has finished."""
    _device().synchronize()


def empty_cache() -> None:
    """Return the device memory lazygrad keeps for reuse to the driver."""
    if is_available():
        from .runtime import cuda as runtime
        runtime.pool.trim()


class Event:
    """torch.cuda.Event: `record()` on the GPU's timeline, `elapsed_time(end)` in milliseconds."""

    def __init__(self, enable_timing: bool = True):
        _device()
        from .runtime import cuda as runtime
        self._event = runtime.Event()

    def record(self, stream=None) -> None:
        self._event.record()

    def synchronize(self) -> None:
        self._event.synchronize()

    def elapsed_time(self, end: "Event") -> float:
        return self._event.elapsed_time(end._event)
