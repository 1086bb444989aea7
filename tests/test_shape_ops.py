"""Shape handling: chunk, split, cat, stack, narrow, flip, roll, repeat, tile, unbind, movedim, swapdims,
squeeze/unsqueeze, flatten/unflatten, numel; PyTorch-visible strides and view(); the `axis=` alias."""
import numpy as np
import pytest

import lazygrad as lg
from gradcheck import gradcheck
from helpers import assert_close

RNG = np.random.default_rng(5)
DTYPES = ["float32", "float64", "int32", "int64", "bool"]
# every dim (positive and negative) with float32, every dtype with some dim: compiling kernels is the cost here
DTYPE_DIMS = [("float32", 0), ("float32", 1), ("float32", -1), ("float32", -2), ("float64", 1), ("int32", -1),
              ("int64", 0), ("bool", -2)]


def arr(shape, dtype="float32"):
    if dtype == "bool":
        return RNG.random(shape) > 0.5
    if np.dtype(dtype).kind == "f":
        return RNG.standard_normal(shape).astype(dtype)
    return RNG.integers(-9, 10, size=shape).astype(dtype)


def assert_pieces(pieces, expected):
    assert isinstance(pieces, tuple) and len(pieces) == len(expected)
    for p, e in zip(pieces, expected):
        assert_close(p, e)


# ---- chunk / split / narrow / unbind ----

@pytest.mark.parametrize("size,chunks", [(6, 4), (5, 3), (6, 3), (1, 3), (7, 7), (0, 3)])
def test_chunk_follows_pytorchs_rule(size, chunks):
    x = np.arange(size * 2).reshape(size, 2)
    step = -(-size // chunks)
    if size == 0:
        expected = [x[0:0]] * chunks
    else:
        expected = [x[i:i + step] for i in range(0, size, step)]
    assert_pieces(lg.tensor(x).chunk(chunks), expected)
    assert_pieces(lg.chunk(lg.tensor(x.T), chunks, dim=-1), [e.T for e in expected])


def test_chunk_may_give_fewer_chunks():
    assert len(lg.arange(6).chunk(4)) == 3
    assert [tuple(c.shape) for c in lg.zeros(2, 5).chunk(2, dim=1)] == [(2, 3), (2, 2)]


@pytest.mark.parametrize("dtype,dim", DTYPE_DIMS)
def test_split_narrow_unbind(dtype, dim):
    x = arr((5, 4), dtype)
    t = lg.tensor(x)
    n = x.shape[dim]
    assert_pieces(t.split(2, dim), np.split(x, range(2, n, 2), axis=dim))
    assert_pieces(lg.split(t, [1, n - 1], dim), np.split(x, [1], axis=dim))
    assert_pieces(t.split([0, n, 0], dim), np.split(x, [0, n], axis=dim))
    assert_close(t.narrow(dim, 1, 2), np.take(x, [1, 2], axis=dim))
    assert_close(lg.narrow(t, dim, -2, 2), np.take(x, [n - 2, n - 1], axis=dim))
    assert_pieces(t.unbind(dim), [np.take(x, i, axis=dim) for i in range(n)])
    assert_close(t.t().narrow(dim, 0, 1), np.take(x.T, [0], axis=dim))  # non-contiguous input


def test_pieces_are_views():
    x = lg.tensor(arr((6, 4)))
    for piece in x.chunk(3) + x.split([1, 3], dim=1) + (x.narrow(1, 1, 2),) + x.unbind(0):
        assert len((piece * 2).schedule()) == 1
    assert x.narrow(1, 1, 2).stride() == (4, 1) and not x.narrow(1, 1, 2).is_contiguous()
    assert x.chunk(3)[1].is_contiguous()


# ---- cat / stack ----

@pytest.mark.parametrize("dtype,dim", [("float32", 0), ("float32", 1), ("float32", 2), ("float32", -1),
                                       ("float32", -3), ("float64", 2), ("int32", 1), ("int64", -2), ("bool", 0)])
def test_cat_and_stack_match_numpy(dtype, dim):
    a, b, c = arr((2, 3, 4), dtype), arr((2, 3, 4), dtype), arr((2, 3, 4), dtype)
    ta, tb, tc = lg.tensor(a), lg.tensor(b), lg.tensor(c)
    assert_close(lg.cat([ta, tb, tc], dim), np.concatenate([a, b, c], axis=dim))
    assert_close(lg.stack([ta, tb], dim), np.stack([a, b], axis=dim))
    # different sizes along dim, and non-contiguous parts (sliced, permuted, flipped, expanded)
    d = dim % 3
    parts = [np.take(a, [0], axis=d), np.take(b, range(1, b.shape[d]), axis=d)]
    tparts = [lg.tensor(a).narrow(d, 0, 1), lg.tensor(b)[(slice(None),) * d + (slice(1, None),)]]
    assert_close(lg.cat(tparts, dim), np.concatenate(parts, axis=dim))
    assert_close(lg.cat([tb.flip(0), tc.permute(0, 1, 2)], dim), np.concatenate([b[::-1], c], axis=dim))
    expanded = np.broadcast_to(a[:1], a.shape)
    assert_close(lg.cat([ta[:1].expand(2, 3, 4), tc], dim), np.concatenate([expanded, c], axis=dim))


def test_cat_promotes_keeps_negative_zero_and_skips_legacy_empty():
    out = lg.cat([lg.tensor([1, 2]), lg.tensor([0.5])])
    assert out.dtype is lg.float32 and out.tolist() == [1.0, 2.0, 0.5]
    assert lg.cat([lg.tensor([1], dtype=lg.int32), lg.tensor([2])]).dtype is lg.int64
    neg = lg.cat([lg.tensor([-0.0]), lg.tensor([-0.0, float("nan"), float("-inf")])]).numpy()
    assert np.signbit(neg[:2]).all() and np.isnan(neg[2]) and neg[3] == -np.inf
    assert tuple(lg.cat([lg.zeros(2, 3), lg.zeros(0)], 1).shape) == (2, 3)
    assert tuple(lg.concat([lg.zeros(2, 3), lg.zeros(2, 1)], axis=1).shape) == (2, 4)


def test_cat_stack_are_one_kernel():
    a, b = lg.tensor(arr((4, 3))), lg.tensor(arr((4, 3)))
    assert len(lg.cat([a, b]).schedule()) == 1
    assert len((lg.cat([a, b.t().t()], 1) * 2 + 1).schedule()) == 1  # fused with what reads it
    assert len(lg.stack([a, b, a], -1).sum(-1).schedule()) == 1
    assert lg.cat([a, b]).is_contiguous() and lg.cat([a.t(), b.t()]).stride() == (4, 1)


# ---- flip / roll / repeat / tile ----

@pytest.mark.parametrize("dtype", DTYPES)
def test_flip_roll_repeat_tile_match_numpy(dtype):
    x = arr((3, 4), dtype)
    t = lg.tensor(x)
    every = dtype == "float32"  # all the cases for one dtype, a few for the others
    for dims in [(0,), (1,), (-1,), (0, 1), (1, -2)][:None if every else 2]:
        assert_close(t.flip(dims), np.flip(x, dims))
        assert_close(lg.flip(t.t(), dims), np.flip(x.T, dims))
    rolls = [(1, 0), (-1, 1), (5, -1), (2, None), (-13, None), ((1, 2), (0, 1)), ((3, -3), (1, 1))]
    for shifts, dims in rolls[:None if every else 2]:
        assert_close(t.roll(shifts, dims), np.roll(x, shifts, dims))
        assert_close(lg.roll(t.t(), shifts, dims), np.roll(x.T, shifts, dims))
    for sizes in [(2, 1), (1, 3), (2, 2, 3), (1, 1), (0, 2)][:None if every else 2]:
        assert_close(t.repeat(*sizes), np.tile(x, sizes))
        assert_close(t.t().repeat(sizes), np.tile(x.T, sizes))
    assert_close(lg.tensor(x[0]).repeat(3), np.tile(x[0], 3))
    assert_close(t.tile(2), np.tile(x, 2))
    assert_close(lg.tile(t, (2, 1, 1)), np.tile(x, (2, 1, 1)))


def test_repeat_and_roll_do_not_copy_before_the_kernel():
    x = lg.tensor(arr((3, 4)))
    assert len((x.repeat(2, 3) + 1).schedule()) == 1
    assert len((x.roll(1, 0) * x).schedule()) == 1
    assert len((x.flip(0) - x).schedule()) == 1


# ---- movedim / swapdims / transpose / permute / squeeze / unsqueeze / flatten / unflatten ----

def test_permutations_match_numpy():
    x = arr((2, 3, 4, 5))
    t = lg.tensor(x)
    assert_close(t.movedim(0, -1), np.moveaxis(x, 0, -1))
    assert_close(lg.movedim(t, (0, 3), (3, 1)), np.moveaxis(x, (0, 3), (3, 1)))
    assert_close(t.moveaxis(-2, 0), np.moveaxis(x, -2, 0))
    assert_close(t.swapdims(0, 2), np.swapaxes(x, 0, 2))
    assert_close(t.swapaxes(-1, 1), np.swapaxes(x, -1, 1))
    assert_close(lg.transpose(t, 1, -1), np.swapaxes(x, 1, -1))
    assert_close(t.permute(3, 1, 0, 2), np.transpose(x, (3, 1, 0, 2)))
    assert_close(t.permute(-1, 0, 1, 2), np.transpose(x, (3, 0, 1, 2)))
    assert_close(t.permute(1, 0, 2, 3).swapdims(0, 1), x)


def test_squeeze_unsqueeze_flatten_unflatten():
    x = arr((1, 3, 1, 4))
    t = lg.tensor(x)
    assert tuple(t.squeeze().shape) == (3, 4)
    assert tuple(t.squeeze(0).shape) == (3, 1, 4) and tuple(t.squeeze(-2).shape) == (1, 3, 4)
    assert tuple(t.squeeze((0, -2)).shape) == (3, 4) and tuple(t.squeeze(1).shape) == (1, 3, 1, 4)
    two = lg.tensor([[1, 2], [3, 4]])
    assert tuple(two.unsqueeze(0).shape) == (1, 2, 2) and tuple(two.unsqueeze(1).shape) == (2, 1, 2)
    assert tuple(two.unsqueeze(-1).shape) == (2, 2, 1) and tuple(two.unsqueeze(-3).shape) == (1, 2, 2)
    assert_close(two.unsqueeze(1), np.array([[1, 2], [3, 4]])[:, None])
    y = arr((2, 3, 4))
    ty = lg.tensor(y)
    assert_close(ty.flatten(), y.reshape(-1))
    assert_close(ty.flatten(1), y.reshape(2, 12))
    assert_close(lg.flatten(ty, 0, -2), y.reshape(6, 4))
    assert_close(ty.unflatten(-1, (2, -1)), y.reshape(2, 3, 2, 2))
    assert_close(ty.transpose(0, 2).flatten(), y.transpose(2, 1, 0).reshape(-1))
    assert lg.numel(ty) == 24 and ty.numel() == 24 and ty.nelement() == 24


def test_pure_views_schedule_no_extra_kernel():
    x = lg.tensor(arr((4, 6)))
    assert len(x.schedule()) == 0  # a realized tensor
    base = len((x * 2).schedule())
    views = [lambda t: t.view(6, 4), lambda t: t.t(), lambda t: t.unsqueeze(1).squeeze(1), lambda t: t.flatten(),
             lambda t: t.unflatten(1, (2, 3)), lambda t: t.swapdims(0, 1), lambda t: t.movedim(0, 1),
             lambda t: t.permute(1, 0), lambda t: t[1:, ::2], lambda t: t.narrow(0, 1, 2), lambda t: t.expand(2, 4, 6),
             lambda t: t.flip(1), lambda t: t.chunk(2)[1], lambda t: t.reshape(2, 12).t()]
    for view in views:
        assert len((view(x) * 2).schedule()) == base == 1
        assert len(view(x).schedule()) == 1  # a view is computed only when it is realized itself


# ---- strides and view() ----

def test_strides_follow_pytorch():
    x = lg.zeros(3, 4)
    assert x.stride() == (4, 1) and x.is_contiguous()
    assert x.t().stride() == (1, 4) and not x.t().is_contiguous()
    assert x.expand(2, 3, 4).stride() == (0, 4, 1)
    assert x[:, ::2].stride() == (4, 2) and x[1].stride() == (1,) and x[:, 1].stride() == (4,)
    assert x.unsqueeze(1).stride() == (4, 4, 1) and x.t().unsqueeze(1).stride() == (1, 12, 4)
    assert x.t().exp().stride() == (1, 4)          # elementwise results are laid out like their input
    assert (x.t() + lg.zeros(4, 3)).stride() == (1, 4) and (lg.zeros(4, 3) + x.t()).stride() == (3, 1)
    assert x.t().clone().stride() == (1, 4) and x.t().contiguous().stride() == (3, 1)
    assert x.t().sum(0).stride() == (1,) and (x.t() @ x).stride() == (4, 1)
    assert x.stride(0) == 4 and x.t().stride(-1) == 4


def test_view_raises_where_pytorch_does():
    x = lg.arange(20.0).reshape(5, 4)
    message = r"view size is not compatible with input tensor's size and stride \(at least one dimension spans " \
              r"across two contiguous subspaces\). Use .reshape\(...\) instead."
    for bad in [lambda: x.t().view(20), lambda: x.expand(2, 5, 4).view(10, 4),
                lambda: x[:, :2].view(10), lambda: x.t().exp().view(-1)]:
        with pytest.raises(RuntimeError, match=message):
            bad()
    assert x.t().view(4, 5, 1).stride() == (1, 4, 4)
    assert x.expand(2, 5, 4).view(2, 20).stride() == (0, 1)
    assert x[:, ::2].view(10).stride() == (2,)
    assert_close(x.t().contiguous().view(20), np.arange(20.0).reshape(5, 4).T.reshape(-1))
    assert_close(x.t().reshape(20), np.arange(20.0).reshape(5, 4).T.reshape(-1))
    with pytest.raises(RuntimeError, match=r"shape '\[3, 7\]' is invalid for input of size 20"):
        x.view(3, 7)


def test_axis_is_an_alias_of_dim():
    t = lg.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert t.sum(axis=0).tolist() == [4.0, 6.0] and lg.sum(t, axis=1).tolist() == [3.0, 7.0]
    assert tuple(lg.cat([t, t], axis=1).shape) == (2, 4) and t.argmax(axis=0).tolist() == [1, 1]
    assert len(t.chunk(2, axis=1)) == 2 and tuple(t.unsqueeze(axis=0).shape) == (1, 2, 2)
    with pytest.raises(TypeError, match="multiple values"):
        t.sum(dim=0, axis=0)


ERRORS = [
    (lambda: lg.zeros(5, 4).chunk(0), RuntimeError, "chunk expects `chunks` to be greater than 0, got: 0"),
    (lambda: lg.zeros(5, 4).chunk(3, 2), IndexError,
     r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)"),
    (lambda: lg.zeros(5, 4).split(0), RuntimeError,
     "split_size can only be 0 if dimension size is 0, but got dimension size of 5"),
    (lambda: lg.zeros(5, 4).split([2, 2]), RuntimeError,
     r"split_with_sizes expects split_sizes to sum exactly to 5 \(input tensor's size at dimension 0\), but got "
     r"split_sizes=\[2, 2\]"),
    (lambda: lg.zeros(5, 4).split(-1), RuntimeError, "split expects split_size be non-negative, but got split_size=-1"),
    (lambda: lg.cat([lg.zeros(5, 4), lg.zeros(5, 3)]), RuntimeError,
     "Sizes of tensors must match except in dimension 0. Expected size 4 but got size 3 for tensor number 1 in "
     "the list."),
    (lambda: lg.cat([lg.zeros(5, 4), lg.zeros(5)], 1), RuntimeError,
     "Tensors must have same number of dimensions: got 2 and 1"),
    (lambda: lg.cat([]), ValueError, r"torch.cat\(\): expected a non-empty list of Tensors"),
    (lambda: lg.cat(lg.zeros(2)), TypeError, "must be tuple of Tensors, not Tensor"),
    (lambda: lg.stack([lg.zeros(5, 4), lg.zeros(4, 4)]), RuntimeError,
     r"stack expects each tensor to be equal size, but got \[5, 4\] at entry 0 and \[4, 4\] at entry 1"),
    (lambda: lg.stack([]), RuntimeError, "stack expects a non-empty TensorList"),
    (lambda: lg.stack([lg.zeros(2)], 2), IndexError, "Dimension out of range"),
    (lambda: lg.zeros(5, 4).narrow(0, 2, 4), RuntimeError,
     r"start \(2\) \+ length \(4\) exceeds dimension size \(5\)."),
    (lambda: lg.zeros(5, 4).narrow(0, -6, 2), IndexError,
     r"start out of range \(expected to be in range of \[-5, 5\], but got -6\)"),
    (lambda: lg.zeros(5, 4).narrow(0, 2, -1), RuntimeError, r"narrow\(\): length must be non-negative."),
    (lambda: lg.zeros(5, 4).repeat(2), RuntimeError,
     "Number of dimensions of repeat dims can not be smaller than number of dimensions of tensor"),
    (lambda: lg.zeros(5, 4).repeat(-1, 1), RuntimeError,
     r"Trying to create tensor with negative dimension -5: \[-5, 4\]"),
    (lambda: lg.zeros(5, 4).roll((1, 2), 0), RuntimeError, "shifts and dimensions must align. shifts: 2, dims:1"),
    (lambda: lg.zeros(5, 4).flip(0, 0), RuntimeError, "dim 0 appears multiple times in the list of dims"),
    (lambda: lg.zeros(5, 4).flip(), TypeError, "flip\\(\\) missing 1 required positional arguments"),
    (lambda: lg.zeros(1, 3, 1).squeeze((0, 0)), RuntimeError, "dim 0 appears multiple times in the list of dims"),
    (lambda: lg.zeros(5, 4).unsqueeze(3), IndexError,
     r"Dimension out of range \(expected to be in range of \[-3, 2\], but got 3\)"),
    (lambda: lg.zeros(5, 4).movedim((0, 0), (1, 0)), RuntimeError, r"movedim: repeated dim in `source` \(\[0, 0\]\)"),
    (lambda: lg.zeros(5, 4).swapdims(0, 2), IndexError, "Dimension out of range"),
    (lambda: lg.zeros(5, 4).permute(0, 0), RuntimeError, "duplicate dims are not allowed"),
    (lambda: lg.zeros(5, 4).unflatten(1, (3, -1)), RuntimeError,
     r"unflatten: Provided sizes \[3, -1\] don't multiply up to the size of dim 1 \(4\) in the input tensor"),
    (lambda: lg.zeros(5, 4).unflatten(1, ()), RuntimeError, "unflatten: sizes must be non-empty"),
    (lambda: lg.zeros(5, 4).flatten(1, 0), RuntimeError,
     r"flatten\(\) has invalid args: start_dim cannot come after end_dim"),
]


@pytest.mark.parametrize("fn,exc,message", ERRORS)
def test_misuse_raises_pytorchs_error(fn, exc, message):
    with pytest.raises(exc, match=message):
        fn()


def test_gradients():
    x = RNG.standard_normal((3, 4))
    y = RNG.standard_normal((3, 2))
    gradcheck(lambda a, b: lg.cat([a, b, a], 1), x, y)
    gradcheck(lambda a: lg.stack([a, a * 2], -1), x)
    gradcheck(lambda a: a.roll((1, -1), (0, 1)), x)
    gradcheck(lambda a: a.repeat(2, 1, 2), x)
    gradcheck(lambda a: a.flip(0, 1), x)
    gradcheck(lambda a: a.chunk(3, 1)[1] * a.narrow(1, 0, 2), x)
    gradcheck(lambda a: a.t().movedim(0, 1).unsqueeze(1).squeeze(), x)


EXPRESSIONS = [
    "x.chunk(3)", "torch.arange(6).chunk(4)", "torch.zeros(0, 2).chunk(3, 1)", "x.split(2)", "x.split([2, 3])",
    "x.split((1, 3), 1)", "torch.cat([x, y])", "torch.cat([x, x], 1)", "torch.cat([x, y.long()])",
    "torch.cat([y.int(), y])", "torch.cat([x.t(), x.t()])", "torch.cat([x, -x], -1)", "torch.stack([x, x], 2)",
    "torch.stack([y, y, y], 1)", "x.narrow(0, -2, 2)", "x.narrow(1, 1, 2)", "x.repeat(2, 1, 3)",
    "x.repeat(0, 1)", "y.t().repeat(2, 2)", "x.roll(1)", "x.roll((1, 2), (0, 1))", "x.roll(-7, 1)",
    "x.t().roll(1, 0)", "x.flip(-1, 0)", "torch.zeros(1, 3, 1).squeeze((0, -1))", "x.unsqueeze(-1)",
    "torch.zeros(2, 3, 4).movedim((0, 2), (2, 0))", "x.unflatten(1, (2, -1))", "x.tile(2)", "x.unbind(-2)",
    "x.select(1, -1)", "torch.hstack([x, x])", "torch.vstack([y, y])",
    # strides
    "x.t().stride()", "x[:, 1].stride()", "x.expand(3, 5, 4).stride()", "x.unsqueeze(1).stride()",
    "x.t().unsqueeze(1).stride()", "x[::2, 1:].stride()", "x.t().T.stride()", "x.t().clone().stride()",
    "x.t().flip(0).stride()", "(x.t() + 1).stride()", "x.t().to(torch.float64).stride()",
    "x.t().reshape(2, 10).stride()", "x.t().squeeze().stride()", "x[None].stride()", "x[:, None].stride()",
    "x.t().view(4, 5).is_contiguous()", "torch.cat([x.t(), x.t()]).stride()", "x.t().detach().stride()",
    "x.t().sigmoid().stride()", "torch.where(x.t() > 0, x.t(), 0.).stride()", "x.t().abs().stride()",
    "torch.ones(1, 4).expand(3, 4).t().exp().stride()", "torch.zeros(2, 3, 4).permute(2, 0, 1).exp().stride()",
]


def test_against_pytorch():
    torch = pytest.importorskip("torch")
    for expr in EXPRESSIONS:
        results = []
        for mod in (lg, torch):
            x = mod.arange(20).reshape(5, 4).float()
            y = mod.arange(12).reshape(3, 4)
            r = eval(expr, {"x": x, "y": y, "torch": mod})
            if isinstance(r, tuple) and r and isinstance(r[0], mod.Tensor):
                r = [(p.numpy(), str(p.dtype).split(".")[-1]) for p in r]
            elif isinstance(r, mod.Tensor):
                r = [(r.numpy(), str(r.dtype).split(".")[-1])]
            results.append(r)
        ours, theirs = results
        if isinstance(theirs, list):
            assert len(ours) == len(theirs), expr
            for (a, da), (b, db) in zip(ours, theirs):
                assert da == db and a.shape == b.shape and np.array_equal(a, b), expr
        else:
            assert ours == theirs, expr
