"""Guard bytes around every buffer lazygrad's CPU runtime hands to a kernel.

A kernel that writes past the end (or before the start) of its output or
scratch buffer corrupts the heap; the process then dies much later, inside
whatever happens to call malloc next (often LLVM), far from the culprit.
`install()` (called in the fuzz worker) makes `cpu.pool.take` return fresh
arrays with 64 guard bytes on each side, and checks every live guarded
array after each kernel launch: an overwritten guard raises
`OutOfBoundsWrite` naming the kernel, at the launch that did it.

Fresh arrays bypass the pool's reuse, which tests/test_memory.py covers.
"""
from __future__ import annotations

import weakref

import numpy as np

GUARD = 64
PATTERN = 0xA5


class OutOfBoundsWrite(AssertionError):
    pass


_live: list = []      # (weakref to the user view, base array)
_installed = False


def _guarded_empty(np_dtype, numel: int) -> np.ndarray:
    itemsize = np.dtype(np_dtype).itemsize
    base = np.empty(numel * itemsize + 2 * GUARD, dtype=np.uint8)
    base[:GUARD] = PATTERN
    base[GUARD + numel * itemsize:] = PATTERN
    view = base[GUARD:GUARD + numel * itemsize].view(np_dtype)
    _live.append((weakref.ref(view), base, numel * itemsize))
    return view


def check(where: str = "") -> None:
    alive = []
    for ref, base, nbytes in _live:
        if ref() is None:
            continue
        head, tail = base[:GUARD], base[GUARD + nbytes:]
        if (head != PATTERN).any() or (tail != PATTERN).any():
            side = "before the start" if (head != PATTERN).any() else "past the end"
            raise OutOfBoundsWrite(f"a kernel wrote {side} of a buffer of {nbytes} bytes {where}")
        alive.append((ref, base, nbytes))
    _live[:] = alive


def install() -> None:
    global _installed
    if _installed:
        return
    from lazygrad.runtime import cpu
    pool = cpu.pool

    def take(np_dtype, numel):
        return _guarded_empty(np_dtype, numel)

    pool.take = take
    pool.give = lambda arr: None  # a guarded array is never reused: its guards stay meaningful
    original_launch = cpu.launch

    def launch(kernel, arrays, *args, **kwargs):
        try:
            return original_launch(kernel, arrays, *args, **kwargs)
        finally:
            check(f"(kernel {getattr(kernel, 'name', kernel)})")

    cpu.launch = launch
    _installed = True
