"""Guard bytes around, and poison inside, every buffer the CPU runtime hands to a kernel.

A kernel that writes past the end (or before the start) of its output or
scratch buffer corrupts the heap; the process then dies much later, inside
whatever happens to call malloc next (often LLVM), far from the culprit.
`install()` (called in the fuzz worker) makes `cpu.pool.take` return arrays
with 64 guard bytes on each side and checks every live guarded array after
each kernel launch: an overwritten guard raises `OutOfBoundsWrite` naming the
kernel, at the launch that did it.

Every buffer handed out (fresh or reused from the pool) is also filled with
0x7F bytes (3.4e38 as float32, 2139062143 as int32), so a kernel that leaves
part of its output unwritten, or reads its output before writing it, shows
up as a wrong value instead of passing on lucky zeros. The pool's reuse is
kept: freed guarded arrays go back to it and come out again.
"""
from __future__ import annotations

import weakref

import numpy as np

GUARD = 64
PATTERN = 0xA5
POISON = 0x7F


class OutOfBoundsWrite(AssertionError):
    pass


_live: list = []      # (weakref to the user view, base array, nbytes)
_installed = False


def _guarded_empty(np_dtype, numel: int) -> np.ndarray:
    itemsize = np.dtype(np_dtype).itemsize
    base = np.empty(numel * itemsize + 2 * GUARD, dtype=np.uint8)
    base[:GUARD] = PATTERN
    base[GUARD + numel * itemsize:] = PATTERN
    view = base[GUARD:GUARD + numel * itemsize].view(np_dtype)
    _live.append((weakref.ref(view), base, numel * itemsize))
    return view


def _poison(arr: np.ndarray) -> np.ndarray:
    if arr.size:
        arr.view(np.uint8).reshape(-1)[:] = POISON
    return arr


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
        try:  # reuse a freed (guarded) array as the pool would; any change of the pool's layout: fresh
            arrays = pool.free.get((np.dtype(np_dtype), numel))
            if arrays:
                arr = arrays.pop()
                pool.bytes -= arr.nbytes
                return _poison(arr)
        except Exception:  # noqa: BLE001
            pass
        return _poison(_guarded_empty(np_dtype, numel))

    pool.take = take
    original_launch = cpu.launch

    def launch(kernel, arrays, *args, **kwargs):
        try:
            return original_launch(kernel, arrays, *args, **kwargs)
        finally:
            check(f"(kernel {getattr(kernel, 'name', kernel)})")

    cpu.launch = launch
    _installed = True
