"""Views: what a chain of movement ops means for memory. The one place for view arithmetic.

Movement ops (RESHAPE, PERMUTE, EXPAND, PAD, SHRINK, FLIP) never copy. Over a
contiguous buffer, a chain of them composes into one *view*:

    position(i0, ..., ik) = offset + i0 * strides[0] + ... + ik * strides[k]

valid only where `mask` holds (mask[d] = (lo, hi) means lo <= i_d < hi);
outside the mask the value is zero (that is how PAD works without copying).
A stride of 0 repeats data (EXPAND), a negative stride walks backwards (FLIP).

Some reshapes of a non-contiguous view cannot be written as one view (for
example flattening a transposed matrix). Then the chain keeps a short *stack*
of views: the top view's position, read as a row-major index into the shape of
the view below it, is fed through that view, and so on down to memory.

Who uses what:
* `contiguous_strides`, `is_contiguous`: the tensor layer (the strides PyTorch
  reports, `lazygrad/frontend/strides.py`), the lowering and the inspector;
* `flat_index`, `source_index`: the index expression of one movement op, as
  the lowering emits it (`lazygrad/codegen/lower/`), with index expressions
  or plain ints;
* `View`, `apply`, `positions`: the composed view of a chain, for the
  inspector (which shows strides, offset and mask) and the tests.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .ops import Op


def contiguous_strides(shape, as_pytorch_reports: bool = False) -> tuple:
    """Row-major strides in elements: (4, 1) for shape (3, 4).

    Where a dim has size 0 nothing is ever read; index arithmetic then uses
    the plain products, while PyTorch reports a size-0 dim as if it had size
    1 for the dims before it (`torch.zeros(3, 0).stride()` is (1, 1)): ask
    for that with `as_pytorch_reports=True`.
    """
    strides, acc = [], 1
    for s in reversed(shape):
        strides.append(acc)
        acc *= max(s, 1) if as_pytorch_reports else s
    return tuple(reversed(strides))


def is_contiguous(shape, strides) -> bool:
    """PyTorch's rule: size-1 dims do not matter, an empty tensor is contiguous."""
    if math.prod(shape) == 0:
        return True
    expected = 1
    for size, stride in zip(reversed(tuple(shape)), reversed(tuple(strides))):
        if size != 1:
            if stride != expected:
                return False
            expected *= size
    return True


# ---- the index expression of one movement op ----
#
# `idx` is an index into the op's output, one entry per dim: ints, or the
# lowering's symbolic expressions (which support +, * by an int, // and %).
# `zero` is the value to use for an index known to be 0.

def flat_index(idx, shape, zero=0):
    """The row-major offset of `idx` in a contiguous array of `shape`."""
    addr = zero
    for e, stride in zip(idx, contiguous_strides(shape)):
        addr = addr + e * stride
    return addr


def source_index(op: Op, arg, src_shape: tuple, shape: tuple, idx: tuple, zero=0) -> tuple:
    """The index into a movement op's source that element `idx` of its output reads.

    PAD is not handled here: its index is the output's minus the padding
    before, valid only inside the source (the lowering adds that condition).
    """
    if op is Op.RESHAPE:
        if 0 in src_shape:  # an empty tensor is never read (its strides would divide by zero)
            return tuple(zero for _ in src_shape)
        flat = flat_index(idx, shape, zero)
        return tuple((flat // stride) % size if size > 1 else zero
                     for size, stride in zip(src_shape, contiguous_strides(src_shape)))
    if op is Op.PERMUTE:
        src_idx = [None] * len(idx)
        for out_axis, src_axis in enumerate(arg):
            src_idx[src_axis] = idx[out_axis]
        return tuple(src_idx)
    if op is Op.EXPAND:
        return tuple(zero if s == 1 else e for e, s in zip(idx, src_shape))
    if op is Op.SHRINK:
        return tuple(e * step + start for e, (start, _, step) in zip(idx, arg))
    if op is Op.FLIP:
        return tuple((e * -1 + (s - 1)) if axis in arg else e for axis, (e, s) in enumerate(zip(idx, shape)))
    raise ValueError(f"source_index: {op.name}")


# ---- the composed view of a chain of movement ops ----

def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class View:
    shape: tuple
    strides: tuple
    offset: int = 0
    mask: tuple | None = None   # per dim (lo, hi), or None when every index is valid

    @staticmethod
    def contiguous(shape) -> "View":
        return View(tuple(shape), contiguous_strides(shape))

    # ---- properties ----
    @property
    def is_contiguous(self) -> bool:
        """True when the view reads its buffer front to back with nothing skipped, repeated or masked."""
        return self.offset == 0 and self.mask is None and all(
            st == cs for s, st, cs in zip(self.shape, self.strides, contiguous_strides(self.shape)) if s != 1)

    @property
    def is_empty(self) -> bool:
        return self.mask is not None and any(lo >= hi for lo, hi in self.mask)

    def _with_mask(self, shape, strides, offset, mask) -> "View":
        if mask is not None:
            mask = tuple(mask)
            if any(lo >= hi for lo, hi in mask):
                mask = tuple((0, 0) for _ in shape)    # nothing is valid: say so in every dim
            elif all(lo == 0 and hi == s for (lo, hi), s in zip(mask, shape)):
                mask = None                            # everything is valid
        return View(tuple(shape), tuple(strides), offset, mask)

    def _mask_or_full(self) -> list:
        return list(self.mask) if self.mask is not None else [(0, s) for s in self.shape]

    # ---- the movement ops ----
    def permute(self, order) -> "View":
        mask = None if self.mask is None else [self.mask[i] for i in order]
        return self._with_mask([self.shape[i] for i in order], [self.strides[i] for i in order], self.offset, mask)

    def expand(self, shape) -> "View":
        strides, mask = list(self.strides), self._mask_or_full()
        for d, (old, new) in enumerate(zip(self.shape, shape)):
            if old != new:
                assert old == 1, f"cannot expand dim {d} of size {old} to {new}"
                strides[d] = 0
                lo, hi = mask[d]
                mask[d] = (0, new) if hi > lo else (0, 0)
        return self._with_mask(shape, strides, self.offset, mask)

    def pad(self, pads) -> "View":
        shape, offset, mask = [], self.offset, []
        for s, st, (lo, hi), (before, after) in zip(self.shape, self.strides, self._mask_or_full(), pads):
            shape.append(s + before + after)
            offset -= before * st
            mask.append((lo + before, hi + before))
        return self._with_mask(shape, self.strides, offset, mask)

    def shrink(self, bounds) -> "View":
        """bounds: per dim (start, stop, step) with step >= 1."""
        shape, strides, offset, mask = [], [], self.offset, []
        for st, (lo, hi), (start, stop, step) in zip(self.strides, self._mask_or_full(), bounds):
            n = len(range(start, stop, step))
            shape.append(n)
            strides.append(st * step)
            offset += start * st
            # new index i reads old index start + i*step: valid when lo <= start + i*step < hi
            new_lo = min(max(_ceil_div(lo - start, step), 0), n)
            new_hi = min(max(_ceil_div(hi - start, step), 0), n)
            mask.append((new_lo, max(new_lo, new_hi)))
        return self._with_mask(shape, strides, offset, mask)

    def flip(self, axes) -> "View":
        strides, offset, mask = list(self.strides), self.offset, self._mask_or_full()
        for d in axes:
            s = self.shape[d]
            if s == 0:
                continue
            offset += (s - 1) * strides[d]
            strides[d] = -strides[d]
            lo, hi = mask[d]
            mask[d] = (s - hi, s - lo)
        return self._with_mask(self.shape, strides, offset, mask)

    def reshape(self, shape) -> "View | None":
        """The same elements in a new shape, or None when no single view can express it."""
        shape = tuple(shape)
        assert math.prod(shape) == math.prod(self.shape), (self.shape, shape)
        if shape == self.shape:
            return self
        if math.prod(shape) == 0:
            return View.contiguous(shape)
        if self.is_empty:
            if not shape:
                return None   # a 0-d view has no dim to carry an empty mask
            return View(shape, contiguous_strides(shape), 0, tuple((0, 0) for _ in shape))
        # size-1 dims carry no information: drop them, then match groups of dims with equal products
        old = [(s, st, m) for s, st, m in zip(self.shape, self.strides, self._mask_or_full()) if s != 1]
        new_dims = [d for d, s in enumerate(shape) if s != 1]
        strides, mask = [0] * len(shape), [(0, s) for s in shape]
        i = j = 0
        while i < len(old):
            # the smallest run old[i:i2] and new_dims[j:j2] with equal products
            i2, j2 = i + 1, j + 1
            p_old, p_new = old[i][0], shape[new_dims[j]]
            while p_old != p_new:
                if p_old < p_new:
                    p_old *= old[i2][0]
                    i2 += 1
                else:
                    p_new *= shape[new_dims[j2]]
                    j2 += 1
            merged = _merge(old[i:i2])
            if merged is None:
                return None
            split = _split(merged, [shape[d] for d in new_dims[j:j2]])
            if split is None:
                return None
            for d, (st, m) in zip(new_dims[j:j2], split):
                strides[d], mask[d] = st, m
            i, j = i2, j2
        for d in reversed(range(len(shape))):   # size-1 dims: any stride works; use PyTorch's choice
            if shape[d] == 1:
                strides[d] = strides[d + 1] * shape[d + 1] if d + 1 < len(shape) else 1
        return self._with_mask(shape, strides, self.offset, mask)

    # ---- evaluation (for tests and for showing where an element comes from) ----
    def position(self, index) -> int | None:
        """The memory position read at `index`, or None where the mask says the value is zero."""
        if self.mask is not None and not all(lo <= i < hi for i, (lo, hi) in zip(index, self.mask)):
            return None
        return self.offset + sum(i * st for i, st in zip(index, self.strides))

    def to_dict(self) -> dict:
        """JSON-friendly: lists instead of tuples."""
        return {"shape": list(self.shape), "strides": list(self.strides), "offset": self.offset,
                "mask": None if self.mask is None else [list(m) for m in self.mask]}

    def __str__(self) -> str:
        text = f"strides={self.strides} offset={self.offset}"
        if self.mask is not None:
            text += f" mask={self.mask}"
        return text


def _merge(dims):
    """Merge dims [(size, stride, (lo, hi)), ...] into one, or None when memory is not evenly spaced."""
    size, stride, _ = dims[-1]
    for (s0, st0, _), (s1, st1, _) in zip(dims, dims[1:]):
        if st0 != st1 * s1:
            return None
    total = math.prod(s for s, _, _ in dims)
    # the valid region must be one run of the flattened dim: dims before some p pick a single index,
    # dim p any range, dims after p everything
    p = 0
    while p < len(dims) - 1 and dims[p][2][1] - dims[p][2][0] == 1:
        p += 1
    if any(m != (0, s) for s, _, m in dims[p + 1:]):
        return None
    inner = [math.prod(s for s, _, _ in dims[k + 1:]) for k in range(len(dims))]
    lo = sum(dims[k][2][0] * inner[k] for k in range(p + 1))
    hi = lo + (dims[p][2][1] - dims[p][2][0]) * inner[p]
    return total, stride, (lo, hi)


def _split(merged, sizes):
    """Split one dim (size, stride, (lo, hi)) into `sizes`: [(stride, mask), ...] or None."""
    total, stride, (lo, hi) = merged
    out = []
    for k, size in enumerate(sizes):
        inner = math.prod(sizes[k + 1:])
        st = stride * inner
        if lo % inner == 0 and hi % inner == 0:        # whole rows: the inner dims are all valid
            out.append((st, (lo // inner, hi // inner)))
            out.extend((stride * math.prod(sizes[m + 1:]), (0, sizes[m])) for m in range(k + 1, len(sizes)))
            return out
        if lo // inner != (hi - 1) // inner:           # a run across rows that does not fill them
            return None
        row = lo // inner                              # one row: the mask continues in the inner dims
        out.append((st, (row, row + 1)))
        lo, hi = lo - row * inner, hi - row * inner
    return out


# ---- a stack of views (a reshape that one view cannot express) ----

def apply(views: list, op_name: str, arg) -> list:
    """Apply one movement op to a stack of views (bottom first); returns the new stack."""
    top = views[-1]
    if op_name == "RESHAPE":
        new = top.reshape(arg)
        return views[:-1] + [new] if new is not None else views + [View.contiguous(arg)]
    if op_name == "PERMUTE":
        return views[:-1] + [top.permute(arg)]
    if op_name == "EXPAND":
        return views[:-1] + [top.expand(arg)]
    if op_name == "PAD":
        return views[:-1] + [top.pad(arg)]
    if op_name == "SHRINK":
        return views[:-1] + [top.shrink(arg)]
    if op_name == "FLIP":
        return views[:-1] + [top.flip(arg)]
    raise ValueError(f"{op_name} is not a movement op")


def positions(views: list) -> np.ndarray:
    """For every index of the top view's shape, the memory position it reads (-1 where masked)."""
    top = views[-1]
    out = np.empty(top.shape, dtype=np.int64)
    for index in np.ndindex(*top.shape):
        pos = top.position(index)
        for below in reversed(views[:-1]):
            if pos is None:
                break
            pos = below.position(np.unravel_index(pos, below.shape) if below.shape else ())
        out[index] = -1 if pos is None else pos
    return out
