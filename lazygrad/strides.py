"""The strides PyTorch would give a tensor, so that `view()` fails where PyTorch's does.

lazygrad never copies for a movement op: a transpose or a slice only changes
the index arithmetic of the kernel that reads the data. So the *real* layout
of a lazygrad tensor says nothing about what PyTorch would do. But learners'
code depends on PyTorch's layout rules in one visible place: `view()` raises
"view size is not compatible with input tensor's size and stride" on a
transposed tensor, and `reshape()` must be used instead. To reproduce that,
each Tensor carries the strides PyTorch would give it (`Tensor._strides`,
`None` meaning "contiguous", the common case, which costs nothing):

* fresh results (factories, reductions, matmul, cat, ...) are contiguous;
* view operations derive their strides from their input, as PyTorch's do:
  permute/transpose permute them, expand gives stride 0, slicing multiplies
  them by the step, unsqueeze/squeeze insert/drop a dim, view/reshape
  recompute them (`view_strides`, PyTorch's `computeStride`);
* elementwise results follow PyTorch's TensorIterator, which lays the output
  out like its inputs (`x.t().exp()` is "transposed" too);
* `contiguous()` returns contiguous strides.

These strides are bookkeeping only: they never change what a kernel computes.

They are also computed lazily. Almost nobody looks at them (only `stride()`,
`view()`, `is_contiguous()` and in-place ops on expanded views do), while a
training step makes dozens of tensors. So where strides are not simply
"contiguous", a tensor first records how to compute them (a `Deferred`:
the function below and the shapes and strides of its inputs at the time the
tensor was made), and `resolve()` computes them on first use.
"""
from __future__ import annotations

import math

from .ir import view
from .ir.view import is_contiguous  # noqa: F401  (is_contiguous: used by tensor_shape.py)


class Deferred:
    """Strides not computed yet: `fn(*args)` computes them (None or a tuple), once."""

    __slots__ = ("fn", "args", "result")

    def __init__(self, fn, *args):
        self.fn = fn
        self.args = args      # shapes and strides (each possibly Deferred too), never tensors
        self.result = self    # "not computed yet" (None is a valid result: contiguous)

    def value(self):
        if self.result is self:
            self.result = self.fn(*self.args)
            self.fn = self.args = None   # the inputs' layouts are no longer needed
        return self.result


def resolve(layout):
    """The strides a `Tensor._strides` value stands for: None (contiguous), a tuple, or a Deferred's value."""
    return layout.value() if layout.__class__ is Deferred else layout


def strides_of(t) -> tuple:
    """The PyTorch-visible strides of a Tensor."""
    return _full(tuple(t.shape), t._strides)


def _full(shape, layout) -> tuple:
    """The strides for `layout` (None, a tuple or a Deferred) of a tensor of `shape`."""
    strides = resolve(layout)
    return strides if strides is not None else view.contiguous_strides(shape, as_pytorch_reports=True)


def _normalized(shape, strides):
    """None for contiguous strides (the cheap common representation), else the tuple."""
    strides = tuple(int(s) for s in strides)
    return None if strides == view.contiguous_strides(shape, as_pytorch_reports=True) else strides


def is_non_overlapping_and_dense(shape, strides) -> bool:
    """Every element in its own place and no holes: some permutation of the dims is contiguous."""
    if len(shape) == 1:
        return shape[0] < 2 or strides[0] == 1
    order = sorted(range(len(shape)), key=lambda d: (shape[d] < 2, strides[d] if shape[d] >= 2 else 0))
    expected = 1
    for d in order:
        if shape[d] < 2:
            return True
        if strides[d] != expected:
            return False
        expected *= shape[d]
    return True


# ---- view / reshape -------------------------------------------------------

def view_strides(old_shape, old_strides, new_shape):
    """The strides of `x.view(new_shape)`, or None when PyTorch's view would fail.

    This is PyTorch's `computeStride`: the old dims are cut into chunks that
    are contiguous among themselves ("subspaces"); a view is possible when
    each new dim lies inside one chunk.
    """
    old_shape, old_strides, new_shape = tuple(old_shape), tuple(old_strides), tuple(new_shape)
    if not old_shape:
        return (1,) * len(new_shape)
    numel = math.prod(old_shape)
    if numel == 0 and old_shape == new_shape:
        return old_strides
    new_strides = [0] * len(new_shape)
    if numel == 0:
        for d in range(len(new_shape) - 1, -1, -1):
            new_strides[d] = 1 if d == len(new_shape) - 1 else max(new_shape[d + 1], 1) * new_strides[d + 1]
        return tuple(new_strides)
    view_d = len(new_shape) - 1
    chunk_base_stride = old_strides[-1]
    tensor_numel = 1
    view_numel = 1
    for tensor_d in range(len(old_shape) - 1, -1, -1):
        tensor_numel *= old_shape[tensor_d]
        # the end of a contiguous chunk of old dims: place the new dims inside it
        if tensor_d == 0 or (old_shape[tensor_d - 1] != 1
                             and old_strides[tensor_d - 1] != tensor_numel * chunk_base_stride):
            while view_d >= 0 and (view_numel < tensor_numel or new_shape[view_d] == 1):
                new_strides[view_d] = view_numel * chunk_base_stride
                view_numel *= new_shape[view_d]
                view_d -= 1
            if view_numel != tensor_numel:
                return None
            if tensor_d > 0:
                chunk_base_stride = old_strides[tensor_d - 1]
                tensor_numel = 1
                view_numel = 1
    if view_d != -1:
        return None
    return tuple(new_strides)


VIEW_ERROR = ("view size is not compatible with input tensor's size and stride (at least one dimension spans "
              "across two contiguous subspaces). Use .reshape(...) instead.")


def check_view(t, new_shape) -> None:
    """Raise PyTorch's RuntimeError when `t.view(new_shape)` would need a copy."""
    if view_strides(t.shape, strides_of(t), new_shape) is None:
        raise RuntimeError(VIEW_ERROR)


# ---- results of operations -----------------------------------------------

# The functions below get the input's shape and `layout` (its `Tensor._strides`:
# None for contiguous, a tuple, or a Deferred) rather than the tensor itself,
# so that they can run later, when someone asks (see `Deferred`).

def after_movement(shape, layout, op, arg, out_shape):
    """Strides (or None for contiguous) of a movement op's result, given its input's shape and layout."""
    op_name = op.name   # (the IR's Op: lazygrad/ir/ops.py)
    if layout is None and op_name in ("RESHAPE", "PAD"):
        return None
    old = _full(shape, layout)
    if op_name == "PERMUTE":
        return _normalized(out_shape, [old[a] for a in arg])
    if op_name == "EXPAND":
        return _normalized(out_shape, [0 if (have == 1 and want != 1) else s
                                       for s, have, want in zip(old, shape, out_shape)])
    if op_name == "SHRINK":
        return _normalized(out_shape, [s * step for s, (_, _, step) in zip(old, arg)])
    if op_name == "RESHAPE":
        if resolve(layout) is None:
            return None
        viewed = view_strides(shape, old, out_shape)
        return None if viewed is None else _normalized(out_shape, viewed)  # reshape copies when view can't
    if op_name == "FLIP":  # a new tensor laid out like its input (TensorIterator)
        return elementwise(out_shape, [(tuple(shape), old)])
    return None  # PAD and anything else: a fresh contiguous tensor


def unsqueezed(shape, layout, dim: int):
    """PyTorch's unsqueeze: the new dim's stride is size*stride of the dim it is inserted before."""
    strides = resolve(layout)
    if strides is None:
        return None
    shape, old = list(shape), list(strides)
    new = 1 if dim >= len(shape) else shape[dim] * old[dim]
    shape.insert(dim, 1)
    old.insert(dim, new)
    return _normalized(shape, old)


def squeezed(shape, layout, axes) -> tuple | None:
    """PyTorch's squeeze: drop the listed size-1 dims and their strides."""
    strides = resolve(layout)
    if strides is None:
        return None
    keep = [i for i, s in enumerate(shape) if not (i in axes and s == 1)]
    return _normalized([shape[i] for i in keep], [strides[i] for i in keep])


def expanded(shape, layout, sizes):
    """PyTorch's inferExpandGeometry: new leading dims and broadcast dims get stride 0."""
    if layout is None and tuple(sizes) == tuple(shape):
        return None
    old = _full(shape, layout)
    ndim, tdim = len(sizes), len(shape)
    out = [0] * ndim
    for i in range(ndim - 1, -1, -1):
        d = tdim - ndim + i
        size = shape[d] if d >= 0 else 1
        stride = old[d] if d >= 0 else (sizes[i + 1] * out[i + 1] if i + 1 < ndim else 1)
        if size != sizes[i]:
            stride = 0
        out[i] = stride
    return _normalized(sizes, out)


def preserved(shape, layout):
    """`clone()` / `.to()` keep the layout of a dense input (memory_format=torch.preserve_format)."""
    strides = resolve(layout)
    if strides is None:
        return None
    if is_non_overlapping_and_dense(shape, strides):
        return strides
    return elementwise(tuple(shape), [(tuple(shape), strides)])


def elementwise(out_shape, operands):
    """The output strides PyTorch's TensorIterator picks for an elementwise op.

    `operands` are the (shape, layout) of the tensor inputs in argument order.
    The output copies the layout of its inputs: its dims are ordered by the
    inputs' strides (the first input that can tell two dims apart decides;
    broadcast dims cannot tell), and it is dense in that order.
    """
    out_shape = tuple(out_shape)
    ndim = len(out_shape)
    if ndim == 0:
        return None
    operands = [(shape, _full(shape, layout)) for shape, layout in operands]
    # PyTorch's fast path: inputs of the output's shape, all laid out alike
    if operands and all(tuple(shape) == out_shape for shape, _ in operands):
        if all(is_contiguous(out_shape, st) for _, st in operands):
            return None
        first = tuple(operands[0][1])
        if all(tuple(st) == first for _, st in operands) and is_non_overlapping_and_dense(out_shape, first):
            return _normalized(out_shape, first)
    # broadcast every input's strides to the output's dims (broadcast dims get stride 0)
    bstrides = []
    for shape, st in operands:
        lead = ndim - len(shape)
        if lead < 0:
            continue
        bstrides.append([0] * lead + [0 if (shape[i] == 1 and out_shape[lead + i] != 1) else st[i]
                                      for i in range(len(shape))])

    def should_swap(d0, d1) -> int:
        # 1: d0 should come after d1 (it is slower moving); -1: before; 0: can't tell
        for st in bstrides:
            s0, s1 = st[d0], st[d1]
            if s0 == 0 or s1 == 0:
                continue
            if s0 < s1:
                return -1
            if s0 > s1:
                return 1
            if out_shape[d0] > out_shape[d1]:
                return 1
        return 0

    # perm[0] is the fastest moving dim; start from the row-major order and insertion sort
    perm = list(range(ndim - 1, -1, -1))
    for i in range(1, ndim):
        dim1 = i
        for dim0 in range(i - 1, -1, -1):
            cmp = should_swap(perm[dim0], perm[dim1])
            if cmp > 0:
                perm[dim0], perm[dim1] = perm[dim1], perm[dim0]
                dim1 = dim0
            elif cmp < 0:
                break
    strides = [0] * ndim
    step = 1
    for d in perm:
        strides[d] = step
        step *= out_shape[d]
    return _normalized(out_shape, strides)
