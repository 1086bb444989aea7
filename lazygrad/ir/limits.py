"""Size limits checked on the scheduled kernels, before anything is compiled or allocated.

Lazy constants make huge shapes free to build: `zeros(1 << 40)` is one CONST
node. Most uses never loop over them (a slice of one, a sum of one, which
simplify folds), but a kernel that would have to visit every element of such
a shape would run for hours, and its output could never be allocated. Such a
kernel raises a RuntimeError naming its op and shape instead (PyTorch raises
when it allocates the tensor).

A kernel's iteration space is at least its output's size and the size of the
source of each reduction it computes. `MAX_ELEMENTS` (2**40: 4 TiB of float32)
bounds outputs, `MAX_ITERATIONS` (2**44: half an hour of loop at 10**10
elements a second) the sources of reductions. That one is higher because a
matmul is a reduction over the M*N*K broadcast product: a 16384**3 one (2**42)
is real work, not a mistake. LAZYGRAD_MAX_ELEMENTS / LAZYGRAD_MAX_ITERATIONS
override them.
"""
from __future__ import annotations

import os

import numpy as np

MAX_ELEMENTS = int(os.environ.get("LAZYGRAD_MAX_ELEMENTS", 1 << 40))
MAX_ITERATIONS = int(os.environ.get("LAZYGRAD_MAX_ITERATIONS", 1 << 44))


class SizeLimitError(MemoryError, RuntimeError):
    """A kernel that would loop over, or write, more elements than any tensor can hold.

    Both a RuntimeError (what PyTorch raises for a tensor too big to allocate) and a MemoryError."""


def _shape(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _size(numel: int, dtype) -> str:
    nbytes = numel * np.dtype(dtype.np).itemsize
    for unit, scale in (("EiB", 60), ("PiB", 50), ("TiB", 40), ("GiB", 30)):
        if nbytes >= 1 << scale:
            return f"{nbytes / 2 ** scale:.2f} {unit}"
    return f"{nbytes} bytes"


def check_kernels(kernels: list) -> list:
    """`kernels`, unchanged; raises SizeLimitError for the first one beyond the limits."""
    limit, loop_limit = MAX_ELEMENTS, MAX_ITERATIONS
    for k in kernels:
        out = k.output
        if out.numel >= limit:
            raise SizeLimitError(
                f"lazygrad: cannot compute {out.op.name} of shape {_shape(out.shape)} ({out.dtype.name}): its "
                f"{out.numel} elements ({_size(out.numel, out.dtype)}) are too many to allocate (limit: "
                f"{limit} elements)")
        for r in k.reduces:
            src = r.src[0]
            if src.numel >= loop_limit:
                raise SizeLimitError(
                    f"lazygrad: cannot compute {r.op.name} over axes {tuple(r.arg)} of a tensor of shape "
                    f"{_shape(src.shape)} ({src.dtype.name}): the kernel would loop over its {src.numel} "
                    f"elements, too many to finish (limit: {loop_limit})")
    return kernels
