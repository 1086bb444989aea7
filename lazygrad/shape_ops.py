"""Shape handling: chunk, split, narrow, unbind, cat, stack, flip, roll, repeat, tile, movedim.

Everything here is movement in the IR, so nothing is copied until a kernel
reads the result:

* chunk, split, narrow and unbind are slices (SHRINK): views of the input.
* cat places each input in its part of the output with a PAD and picks, per
  element, the input whose part it is (WHERE on the padded region masks):
  the concatenation is computed by the one kernel that reads it.
* stack is cat of unsqueezed inputs; roll is cat of two slices.
* repeat is reshape + expand + reshape: (a, b) repeated (r, s) reads element
  (i % a, j % b) at output (i, j), through index arithmetic.

The Tensor methods of the same names delegate here (`lazygrad/tensor_shape.py`).
"""
from __future__ import annotations

import functools
import inspect
import math

from .ir import dtypes
from .ir import node as N
from .ir.ops import Op


def _normalize_dim(dim, ndim):
    from .tensor import normalize_dim
    return normalize_dim(dim, ndim)


def _shape_list(shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _int(x, what: str) -> int:
    from .tensor import Tensor
    if isinstance(x, Tensor):
        x = x.item()
    if isinstance(x, bool) or not isinstance(x, int) and not hasattr(x, "__index__"):
        raise TypeError(f"{what} must be an int, got {type(x).__name__}")
    return int(x)


# ---- slicing a tensor into pieces (views) ----

def narrow(input, dim, start, length):
    """torch.narrow: the view input[..., start:start+length, ...] along `dim` (start may be negative)."""
    if input.ndim == 0:
        raise RuntimeError("narrow() cannot be applied to a 0-dim tensor.")
    d = _normalize_dim(dim, input.ndim)
    size = input.shape[d]
    start, length = _int(start, "start"), _int(length, "length")
    if start < -size or start > size:
        raise IndexError(f"start out of range (expected to be in range of [{-size}, {size}], but got {start})")
    if start < 0:
        start += size
    if length < 0:
        raise RuntimeError("narrow(): length must be non-negative.")
    if start + length > size:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({size}).")
    return _slice(input, d, start, start + length)


def _slice(x, d: int, start: int, stop: int):
    """x[..., start:stop, ...] along d: a view (in-place ops on it write through to x)."""
    return x[(slice(None),) * d + (slice(start, stop),)]


def split(input, split_size_or_sections, dim=0):
    """torch.split: pieces of `split_size` along dim (the last may be smaller), or of the listed sizes."""
    if input.ndim == 0:
        raise RuntimeError("split expects at least a 1-dimensional tensor")
    d = _normalize_dim(dim, input.ndim)
    size = input.shape[d]
    if isinstance(split_size_or_sections, (list, tuple)):
        sizes = [_int(s, "split_size") for s in split_size_or_sections]
        if any(s < 0 for s in sizes):
            raise RuntimeError(f"split_with_sizes expects split_sizes have only non-negative entries, but got "
                               f"split_sizes={_shape_list(sizes)}")
        if sum(sizes) != size:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {size} (input tensor's size "
                               f"at dimension {d}), but got split_sizes={_shape_list(sizes)}")
    else:
        step = _int(split_size_or_sections, "split_size")
        if step < 0:
            raise RuntimeError(f"split expects split_size be non-negative, but got split_size={step}")
        if step == 0 and size != 0:
            raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got dimension size of {size}")
        count = max(-(-size // step), 1) if step else 1
        sizes = [step] * (count - 1) + [size - step * (count - 1)]
    pieces, start = [], 0
    for s in sizes:
        pieces.append(_slice(input, d, start, start + s))
        start += s
    return tuple(pieces)


def chunk(input, chunks, dim=0):
    """torch.chunk: split into pieces of ceil(size / chunks); this may give fewer than `chunks` pieces."""
    chunks = _int(chunks, "chunks")
    if input.ndim == 0:
        raise RuntimeError("chunk expects at least a 1-dimensional tensor")
    if chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    d = _normalize_dim(dim, input.ndim)
    size = input.shape[d]
    step = -(-size // chunks)
    if step == 0 and size == 0:  # PyTorch keeps the number of chunks for an empty dim
        return split(input, [0] * chunks, d)
    return split(input, step, d)


def unbind(input, dim=0):
    """torch.unbind: the slices along `dim`, with that dim removed."""
    d = _normalize_dim(dim, input.ndim)
    return tuple(input.select(d, i) for i in range(input.shape[d]))


def select(input, dim, index):
    """torch.select: input[..., index, ...] with `dim` removed (a view)."""
    if input.ndim == 0:
        raise IndexError("select() cannot be applied to a 0-dim tensor.")
    d = _normalize_dim(dim, input.ndim)
    size = input.shape[d]
    i = _int(index, "index")
    if i < -size or i >= size:
        raise IndexError(f"select(): index {i} out of range for tensor of size {_shape_list(input.shape)} at "
                         f"dimension {d}")
    return input[(slice(None),) * d + (i % size,)]


# ---- joining tensors ----

def _tensor_list(tensors, op: str) -> list:
    from .tensor import Tensor
    if isinstance(tensors, Tensor):
        raise TypeError(f"{op}(): argument 'tensors' (position 1) must be tuple of Tensors, not Tensor")
    tensors = list(tensors)
    for t in tensors:
        if not isinstance(t, Tensor):
            raise TypeError(f"expected Tensor as element {tensors.index(t)} in argument 0, but got "
                            f"{type(t).__name__}")
    return tensors


def cat(tensors, dim=0):
    """torch.cat: join tensors along an existing dim (the others must match); dtypes promote."""
    from .tensor import Tensor, where
    tensors = _tensor_list(tensors, "cat")
    if not tensors:
        raise ValueError("torch.cat(): expected a non-empty list of Tensors")
    dtype = dtypes.result_type(*((t.dtype, 2) for t in tensors))
    # PyTorch's legacy rule: 1-D empty tensors are skipped whatever the other shapes
    parts = [t for t in tensors if not (t.ndim == 1 and t.shape[0] == 0)]
    if not parts:
        return tensors[0].to(dtype)
    ref = parts[0]
    if ref.ndim == 0:
        raise RuntimeError("zero-dimensional tensor (at position 0) cannot be concatenated")
    d = _normalize_dim(dim, ref.ndim)
    for number, t in enumerate(tensors):
        if t.ndim == 1 and t.shape[0] == 0:
            continue
        if t.ndim == 0:
            raise RuntimeError(f"zero-dimensional tensor (at position {number}) cannot be concatenated")
        if t.ndim != ref.ndim:
            raise RuntimeError(f"Tensors must have same number of dimensions: got {ref.ndim} and {t.ndim}")
        for i in range(ref.ndim):
            if i != d and t.shape[i] != ref.shape[i]:
                raise RuntimeError(f"Sizes of tensors must match except in dimension {d}. Expected size "
                                   f"{ref.shape[i]} but got size {t.shape[i]} for tensor number {number} in the list.")
    parts = [t.to(dtype) for t in parts]
    total = sum(t.shape[d] for t in parts)
    if len(parts) == 1:
        out = Tensor._make(parts[0]._node, *tensors)   # (requires grad when any part does, empty ones too)
        return out
    out, offset = None, 0
    for t in parts:
        k = t.shape[d]
        if k == 0:
            continue
        pad = tuple((offset, total - offset - k) if i == d else (0, 0) for i in range(t.ndim))
        placed = t._movement(Op.PAD, pad)
        if out is None:
            out = placed
        else:
            region = Tensor._from_node(N.movement(Op.PAD, N.const(True, dtypes.bool_, tuple(t.shape)), pad))
            out = where(region, placed, out)
        offset += k
    if out is None:  # every part empty along dim
        shape = tuple(total if i == d else s for i, s in enumerate(ref.shape))
        return Tensor._make(N.const(0, dtype, shape), *tensors)
    if any(t.requires_grad and t.numel() == 0 for t in tensors):   # (skipped above; PyTorch's result requires grad)
        out = Tensor._make(out._node, out, *tensors)
    out._strides = None
    return out


def stack(tensors, dim=0):
    """torch.stack: join equally shaped tensors along a new dim."""
    tensors = _tensor_list(tensors, "stack")
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    for i, t in enumerate(tensors):
        if tuple(t.shape) != tuple(tensors[0].shape):
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {_shape_list(tensors[0].shape)} "
                               f"at entry 0 and {_shape_list(t.shape)} at entry {i}")
    d = _normalize_dim(dim, tensors[0].ndim + 1)
    return cat([t.unsqueeze(d) for t in tensors], d)


def hstack(tensors):
    tensors = _tensor_list(tensors, "hstack")
    tensors = [t.reshape(1) if t.ndim == 0 else t for t in tensors]
    return cat(tensors, 0 if tensors and tensors[0].ndim == 1 else 1)


def vstack(tensors):
    tensors = _tensor_list(tensors, "vstack")
    return cat([t.reshape(1, -1) if t.ndim < 2 else t for t in tensors], 0)


# ---- rearranging ----

def flip(input, *dims):
    """torch.flip: reverse the order of elements along the given dims (FLIP, no copy)."""
    if not dims and input.ndim > 0:   # (flip() with no argument; flip(()) is a plain copy, as in PyTorch)
        raise TypeError('flip() missing 1 required positional arguments: "dims"')
    if len(dims) == 1 and isinstance(dims[0], (list, tuple)):
        dims = tuple(dims[0])
    axes = [_normalize_dim(_int(d, "dim"), input.ndim) for d in dims]
    for a in axes:
        if axes.count(a) > 1:
            raise RuntimeError(f"dim {a} appears multiple times in the list of dims")
    if not axes or input.ndim == 0:
        return input.clone()
    return input._movement(Op.FLIP, tuple(sorted(axes)))


def roll(input, shifts, dims=None):
    """torch.roll: shift elements along dims, wrapping around (a cat of two slices per dim)."""
    shifts = [shifts] if not isinstance(shifts, (list, tuple)) else list(shifts)
    if dims is None:
        if len(shifts) != 1:
            raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:0")
        return roll(input.flatten(), shifts[0], 0).reshape(tuple(input.shape))
    dims = [dims] if not isinstance(dims, (list, tuple)) else list(dims)
    if len(shifts) != len(dims):
        raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:{len(dims)}")
    out = input
    for shift, dim in zip(shifts, dims):
        d = _normalize_dim(dim, input.ndim)
        n = input.shape[d]
        s = _int(shift, "shift") % n if n else 0
        if s:
            out = cat([_slice(out, d, n - s, n), _slice(out, d, 0, n - s)], d)
    if out is input:
        out = input.clone()
    out._strides = None
    return out


def repeat(input, *sizes):
    """Tensor.repeat: tile the tensor `sizes[i]` times along dim i (extra leading sizes add dims)."""
    from .tensor import _shape_args
    sizes = _shape_args(sizes)
    if len(sizes) < input.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number of dimensions "
                           "of tensor")
    shape = (1,) * (len(sizes) - input.ndim) + tuple(input.shape)
    result_shape = tuple(r * s for r, s in zip(sizes, shape))
    if any(r < 0 for r in sizes):
        raise RuntimeError(f"Trying to create tensor with negative dimension {min(result_shape)}: "
                           f"{_shape_list(result_shape)}")
    if math.prod(result_shape) == 0:
        from .tensor import Tensor
        return Tensor._make(N.const(0, input.dtype, result_shape), input)
    # (a, b) -> (1, a, 1, b) -> expand (r, a, s, b) -> reshape (r*a, s*b)
    interleaved = tuple(x for s in shape for x in (1, s))
    expanded = tuple(x for r, s in zip(sizes, shape) for x in (r, s))
    out = input.reshape(interleaved).expand(expanded).reshape(result_shape)
    out._strides = None
    return out


def tile(input, *dims):
    """torch.tile: repeat, with missing leading dims of `dims` taken as 1."""
    from .tensor import _shape_args
    dims = _shape_args(dims)
    dims = (1,) * (input.ndim - len(dims)) + tuple(dims)
    return repeat(input, dims)


def movedim(input, source, destination):
    """torch.movedim: move dims from `source` positions to `destination` positions (a PERMUTE)."""
    src = [source] if isinstance(source, int) else list(source)
    dst = [destination] if isinstance(destination, int) else list(destination)
    if len(src) != len(dst):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source ({_shape_list(src)} dims) should "
                           f"contain the same number of dims as destination ({_shape_list(dst)} dims)")
    src = [_normalize_dim(d, input.ndim) for d in src]
    dst = [_normalize_dim(d, input.ndim) for d in dst]
    if len(set(src)) != len(src):
        raise RuntimeError(f"movedim: repeated dim in `source` ({_shape_list(list(source))})")
    if len(set(dst)) != len(dst):
        raise RuntimeError(f"movedim: repeated dim in `destination` ({_shape_list(list(destination))})")
    order = [None] * input.ndim
    for s, d in zip(src, dst):
        order[d] = s
    rest = iter(a for a in range(input.ndim) if a not in src)
    order = [o if o is not None else next(rest) for o in order]
    return input.permute(order)


def numel(input) -> int:
    """torch.numel: the number of elements."""
    return input.numel()


# ---- `axis=` as an alias of `dim=` (NumPy's name, which PyTorch accepts too) ----

def accept_axis(fn):
    """Wrap a function or method taking `dim` so that `axis=` works as well (`x.sum(axis=0)`)."""
    if getattr(fn, "_accepts_axis", False):
        return fn

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if "axis" in kwargs:
            if "dim" in kwargs:
                raise TypeError(f"{fn.__name__}() got multiple values for argument 'dim' (also given as 'axis')")
            kwargs["dim"] = kwargs.pop("axis")
        return fn(*args, **kwargs)
    wrapper._accepts_axis = True
    return wrapper


def install_axis_alias(namespace) -> None:
    """Give every callable in `namespace` (a class or a module dict) with a `dim` parameter an `axis` alias."""
    items = vars(namespace).items() if isinstance(namespace, type) else list(namespace.items())
    for name, fn in list(items):
        if name.startswith("_") or not inspect.isfunction(fn):
            continue
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            continue
        if "dim" in params and "axis" not in params:
            wrapped = accept_axis(fn)
            if isinstance(namespace, type):
                setattr(namespace, name, wrapped)
            else:
                namespace[name] = wrapped
