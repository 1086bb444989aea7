"""Differential fuzzing of views (lazygrad/views.py) against PyTorch.

A random program of a few steps runs on lazygrad and on torch side by side.
It keeps a pool of tensors (lazygrad's, torch's) that starts with one small
float32 tensor; each step either

* takes a view of a pool tensor (reshape/view, permute, transpose, t, T, mT,
  expand, unsqueeze, squeeze, detach, .data, basic indexing with ints, slices
  with steps, None and Ellipsis, narrow, select, split, chunk, unbind),
* takes a copy (clone, flip, contiguous, arithmetic), or
* writes into a pool tensor in place (add_, mul_, fill_, zero_, copy_,
  item assignment with a basic index, +=), with a scalar, a fresh tensor or
  another pool tensor of a broadcastable shape as the value.

Where torch refuses a step, lazygrad must refuse it too (with the same
exception type). At the end every pool tensor must hold exactly torch's values.

Set LAZYGRAD_VIEWS_FUZZ_EXAMPLES=3000 (say) to hunt for bugs with more (and fresh random) programs.
"""
import math
import os
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

import lazygrad  # noqa: E402

MAX_EXAMPLES = int(os.environ.get("LAZYGRAD_VIEWS_FUZZ_EXAMPLES", "200"))
DERANDOMIZE = "LAZYGRAD_VIEWS_FUZZ_EXAMPLES" not in os.environ   # (a bug hunt draws new programs each run)
MAX_POOL = 8


# ---- random arguments ---------------------------------------------------------------------------

def _draw_dim(data, ndim, extra=0):
    """A dim index in [-(ndim+extra), ndim+extra-1]."""
    n = ndim + extra
    return data.draw(st.integers(-n, n - 1))


def _factorizations(n, ndim):
    """All shapes of `ndim` dims with product n."""
    if ndim == 0:
        return [()] if n == 1 else []
    out = []
    for d in range(1, n + 1):
        if n % d == 0:
            out += [(d,) + rest for rest in _factorizations(n // d, ndim - 1)]
    return out


def _draw_shape_with_numel(data, numel):
    if numel == 0:
        shape = data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))
        shape[data.draw(st.integers(0, len(shape) - 1))] = 0
        return tuple(shape)
    ndim = data.draw(st.integers(0 if numel == 1 else 1, 4))
    shape = list(data.draw(st.sampled_from(_factorizations(numel, ndim))))
    if shape and data.draw(st.booleans()):
        shape[data.draw(st.integers(0, len(shape) - 1))] = -1
    return tuple(shape)


def _draw_slice(data, size):
    bound = st.one_of(st.none(), st.integers(-size - 1, size + 1))
    return slice(data.draw(bound), data.draw(bound), data.draw(st.sampled_from([None, 1, 2, 3])))


def _draw_basic_index(data, shape):
    """A basic index (ints, slices, None, Ellipsis) valid for `shape`."""
    ndim = len(shape)
    items = []
    for size in shape[:data.draw(st.integers(0, ndim))]:
        if size and data.draw(st.booleans()):
            items.append(data.draw(st.integers(-size, size - 1)))
        else:
            items.append(_draw_slice(data, size))
    if data.draw(st.booleans()):   # an Ellipsis, then indices for some trailing dims
        tail = []
        for size in shape[len(items):][::-1][:data.draw(st.integers(0, ndim - len(items)))]:
            tail.insert(0, data.draw(st.integers(-size, size - 1)) if size and data.draw(st.booleans())
                        else _draw_slice(data, size))
        items = items + [Ellipsis] + tail
    for _ in range(data.draw(st.integers(0, 2))):
        items.insert(data.draw(st.integers(0, len(items))), None)
    if len(items) == 1 and data.draw(st.booleans()):
        return items[0]
    return tuple(items)


def _draw_broadcastable_shape(data, shape):
    """A shape that broadcasts to `shape` (a suffix of it, some sizes made 1)."""
    k = data.draw(st.integers(0, len(shape)))
    suffix = shape[len(shape) - k:]
    return tuple(1 if data.draw(st.booleans()) else s for s in suffix)


_values = st.sampled_from([0.0, 1.0, -1.0, 2.0, 0.5, 3.0, -4.0])


def _fresh(data, shape):
    numel = math.prod(shape)
    base = data.draw(st.integers(-5, 5))
    arr = (np.arange(numel, dtype=np.float32) * data.draw(st.sampled_from([1.0, -1.0, 0.5])) + base).reshape(shape)
    return lazygrad.tensor(arr), torch.tensor(arr)


def _draw_value(data, pool, target_t, shape):
    """A scalar, a fresh tensor or a pool tensor broadcastable to `shape`: (lazygrad's, torch's, description)."""
    kind = data.draw(st.sampled_from(["scalar", "fresh", "pool"]))
    if kind == "pool":
        candidates = [(a, b) for a, b in pool if _broadcasts(tuple(b.shape), shape)]
        if candidates:
            i = data.draw(st.integers(0, len(candidates) - 1))
            return candidates[i][0], candidates[i][1], f"pool tensor of shape {tuple(candidates[i][1].shape)}"
    if kind == "scalar":
        v = data.draw(_values)
        return v, v, repr(v)
    vshape = _draw_broadcastable_shape(data, shape)
    ours, theirs = _fresh(data, vshape)
    return ours, theirs, f"fresh tensor of shape {vshape}"


def _offsets(t):
    """The storage offsets of t's elements."""
    offsets = np.full(tuple(t.shape), t.storage_offset(), np.int64)
    for d, stride in enumerate(t.stride()):
        shape = [1] * t.ndim
        shape[d] = t.shape[d]
        offsets = offsets + np.arange(t.shape[d]).reshape(shape) * stride
    return set(offsets.reshape(-1).tolist())


def _overlaps_in_part(value, target):
    """Whether a value shares some memory with the target of a write, and is not the target itself.

    torch refuses such writes, or (a broadcast value) reads values the write has changed, in an
    order of its own; lazygrad's writes read the values from before. Neither is compared here.
    """
    if not isinstance(value, torch.Tensor) or \
            value.untyped_storage().data_ptr() != target.untyped_storage().data_ptr() or _same_data(value, target):
        return False
    return bool(_offsets(value) & _offsets(target))


def _same_data(a, b):
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr() and \
        a.storage_offset() == b.storage_offset() and a.stride() == b.stride() and a.shape == b.shape


def _broadcasts(small, big):
    if len(small) > len(big):
        return False
    return all(s == 1 or s == b for s, b in zip(small[::-1], big[::-1]))


# ---- steps --------------------------------------------------------------------------------------

def _draw_view(data, shape):
    """(description, function lib-tensor -> tensor) for a view method with valid-ish random args."""
    ndim = len(shape)
    numel = math.prod(shape)
    names = ["reshape", "view", "permute", "transpose", "unsqueeze", "squeeze", "squeeze_dim", "detach",
             "data", "index", "expand", "expand"]
    if ndim <= 2:
        names.append("t")
    if ndim >= 1:
        names += ["T", "narrow", "select", "split", "chunk", "unbind"]
    if ndim >= 2:
        names.append("mT")
    name = data.draw(st.sampled_from(names))
    if name in ("reshape", "view"):
        target = _draw_shape_with_numel(data, numel)
        return f"{name}{target}", lambda t: getattr(t, name)(target)
    if name == "permute":
        perm = tuple(data.draw(st.permutations(range(ndim))))
        return f"permute{perm}", lambda t: t.permute(perm)
    if name == "transpose":
        if ndim == 0:
            return "transpose(0, -1)", lambda t: t.transpose(0, -1)
        a, b = _draw_dim(data, ndim), _draw_dim(data, ndim)
        return f"transpose({a}, {b})", lambda t: t.transpose(a, b)
    if name == "t":
        return "t()", lambda t: t.t()
    if name == "T":
        return ".T", lambda t: t.T
    if name == "mT":
        return ".mT", lambda t: t.mT
    if name == "unsqueeze":
        d = _draw_dim(data, ndim, extra=1)
        return f"unsqueeze({d})", lambda t: t.unsqueeze(d)
    if name == "squeeze":
        return "squeeze()", lambda t: t.squeeze()
    if name == "squeeze_dim":
        d = _draw_dim(data, max(ndim, 1))
        return f"squeeze({d})", lambda t: t.squeeze(d)
    if name == "detach":
        return "detach()", lambda t: t.detach()
    if name == "data":
        return ".data", lambda t: t.data
    if name == "index":
        index = _draw_basic_index(data, shape)
        return f"[{index!r}]", lambda t: t[index]
    if name == "expand":
        lead = tuple(data.draw(st.integers(1, 3)) for _ in range(data.draw(st.integers(0, 4 - ndim if ndim < 4 else 0))))
        sizes = tuple(data.draw(st.integers(1, 3)) if s == 1 else data.draw(st.sampled_from([s, -1])) for s in shape)
        return f"expand{lead + sizes}", lambda t: t.expand(lead + sizes)
    d = _draw_dim(data, ndim)
    size = shape[d]
    if name == "narrow":
        start = data.draw(st.integers(-size, size))
        length = data.draw(st.integers(0, size - (start + size if start < 0 else start)))
        return f"narrow({d}, {start}, {length})", lambda t: t.narrow(d, start, length)
    if name == "select":
        i = data.draw(st.integers(-size - 1, size))   # (out of range: both must raise IndexError)
        return f"select({d}, {i})", lambda t: t.select(d, i)
    if name == "split":
        s = data.draw(st.integers(1, size + 1))
        k = data.draw(st.integers(0, 3))
        return f"split({s}, {d})[{k}]", lambda t: _pick(t.split(s, d), k)
    if name == "chunk":
        c = data.draw(st.integers(1, size + 1))
        k = data.draw(st.integers(0, 3))
        return f"chunk({c}, {d})[{k}]", lambda t: _pick(t.chunk(c, d), k)
    k = data.draw(st.integers(0, max(size - 1, 0)))
    return f"unbind({d})[{k}]", lambda t: t.unbind(d)[k]


def _pick(parts, k):
    if not parts:
        raise IndexError("no parts")
    return parts[k % len(parts)]


def _draw_copy(data, shape):
    name = data.draw(st.sampled_from(["clone", "flip", "contiguous", "mul1", "add0", "neg"]))
    if name == "flip":
        dims = tuple(sorted(set(data.draw(st.lists(st.integers(0, max(len(shape) - 1, 0)), max_size=3)))))
        if not shape:
            return "clone", lambda t: t.clone()
        return f"flip{dims}", lambda t: t.flip(dims)
    return name, {
        "clone": lambda t: t.clone(), "contiguous": lambda t: t.contiguous(),
        "mul1": lambda t: t * 1, "add0": lambda t: t + 0, "neg": lambda t: -t,
    }[name]


def _draw_inplace(data, pool, t_target):
    """(description, function(lib_index, tensor) -> tensor) for an in-place write into the target."""
    shape = tuple(t_target.shape)
    name = data.draw(st.sampled_from(["add_", "mul_", "fill_", "zero_", "copy_", "setitem", "iadd", "sub_"]))
    if name == "zero_":
        return "zero_()", lambda lib, t: t.zero_()
    if name == "fill_":
        v = data.draw(_values)
        return f"fill_({v})", lambda lib, t: t.fill_(v)
    if name == "setitem":
        index = _draw_basic_index(data, shape)
        region = t_target[index]
        if torch._debug_has_internal_overlap(region) != 0:
            return None   # torch refuses writes into overlapping memory; lazygrad does not model them
        vl, vt, what = _draw_value(data, pool, t_target, tuple(region.shape))
        if _overlaps_in_part(vt, region):
            return None
        values = (vl, vt)

        def setitem(lib, t):
            t[index] = values[lib]
            return t
        return f"[{index!r}] = {what}", setitem
    vl, vt, what = _draw_value(data, pool, t_target, shape)
    if name == "copy_" and isinstance(vt, torch.Tensor) and _same_data(vt, t_target) and \
            torch._debug_has_internal_overlap(t_target) != 0:
        # (known: torch's copy_ from the same memory returns at once, even into an expanded
        # target; lazygrad does so only when source and target are the same tensor object)
        vl = None
    if _overlaps_in_part(vt, t_target):
        return None
    if name == "copy_" and not isinstance(vl, lazygrad.Tensor):
        vl, vt = _fresh(data, ())
        what = "fresh 0-d tensor"
    values = (vl, vt)

    def op(lib, t):
        if name == "iadd":
            t += values[lib]
            return t
        return getattr(t, name)(values[lib])
    return f"{name}({what})", op


def _ours(log, fn, *args):
    """fn(*args) on lazygrad's side, where torch accepted the step."""
    try:
        return fn(*args)
    except Exception as e:
        e.add_note("lazygrad raised where torch did not, in the program\n" + "\n".join(log))
        raise


@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=DERANDOMIZE, print_blob=False)
@given(st.data())
def test_views_match_torch(data):
    shape = tuple(data.draw(st.lists(st.integers(1, 4), max_size=3), label="shape"))
    pool = [_fresh(data, shape)]
    log = [f"x = arange-like tensor of shape {shape}"]
    for _ in range(data.draw(st.integers(3, 8), label="steps")):
        # (half the time the newest tensor: chains of views of views)
        src = len(pool) - 1 if data.draw(st.booleans()) else data.draw(st.integers(0, len(pool) - 1))
        ours, theirs = pool[src]
        kind = data.draw(st.sampled_from(["view", "view", "copy", "inplace", "inplace"]))
        if kind == "inplace":
            step = _draw_inplace(data, pool, theirs)
            if step is None:
                continue
            what, fn = step
            line = f"pool[{src}].{what}"
            try:
                new_theirs = fn(1, theirs)
            except RuntimeError as e:
                log.append(f"{line}  -> torch refuses: {e}")
                if "input tensor and the written-to tensor" in str(e):
                    continue   # (a value overlapping the target in part: lazygrad has no memory to check)
                with pytest.raises(RuntimeError):
                    fn(0, ours)
                continue
            log.append(line)
            new_ours = _ours(log, fn, 0, ours)
            assert new_theirs is theirs
            assert new_ours is ours, "\n".join(log)
            continue
        what, fn = (_draw_view if kind == "view" else _draw_copy)(data, tuple(theirs.shape))
        slot = len(pool) if len(pool) < MAX_POOL else data.draw(st.integers(0, MAX_POOL - 1))
        line = f"pool[{slot}] = pool[{src}].{what}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                new_theirs = fn(theirs)
            except (RuntimeError, IndexError, ValueError) as e:
                log.append(f"{line}  -> torch refuses: {type(e).__name__}: {e}")
                with pytest.raises(type(e)):
                    fn(ours)
                continue
            log.append(line)
            new_ours = _ours(log, fn, ours)
        assert tuple(new_ours.shape) == tuple(new_theirs.shape), "\n".join(log)
        if slot == len(pool):
            pool.append((new_ours, new_theirs))
        else:
            pool[slot] = (new_ours, new_theirs)
    program = "\n".join(log)
    for i, (ours, theirs) in enumerate(pool):
        assert tuple(ours.shape) == tuple(theirs.shape), f"pool[{i}] shape\n{program}"
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=f"pool[{i}]\n{program}")
