"""Reductions against NumPy: every axis, keepdim, non-contiguous inputs, and the loop nests
the code generator picks for them (plain, broadcast-hoisted, register-blocked "upcast").

Shapes are chosen so that the blocked nest's edge cases run: sizes that are not
multiples of its 6 x 16 block (the last block overlaps the one before), several
row and column blocks (the packed-panel path), and single blocks.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import lazygrad as lg
from lazygrad.codegen.lower import lower

from helpers import assert_close

RNG = np.random.default_rng(1234)


def rand(*shape, dtype=np.float32):
    if np.issubdtype(dtype, np.integer):
        return RNG.integers(-5, 6, size=shape).astype(dtype)
    return RNG.uniform(-2.0, 2.0, size=shape).astype(dtype)


def axis_choices(ndim):
    """Every single axis (positive and negative) and every pair of axes."""
    out = [a for a in range(ndim)] + [-1]
    out += [pair for pair in itertools.combinations(range(ndim), 2)]
    return out


# ---- every axis, keepdim, sum / max / mean ----

@pytest.mark.parametrize("shape", [(7,), (5, 33), (40, 17), (3, 20, 18), (2, 1, 19)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_sum_max_mean_every_axis(shape, keepdim):
    a = rand(*shape)
    t = lg.from_numpy(a)
    for axis in axis_choices(len(shape)):
        assert_close(t.sum(axis, keepdim=keepdim), a.sum(axis, keepdims=keepdim), rtol=1e-5, atol=1e-5)
        assert_close(t.amax(axis, keepdim=keepdim), a.max(axis, keepdims=keepdim))
        assert_close(t.mean(axis, keepdim=keepdim), a.mean(axis, keepdims=keepdim), rtol=1e-5, atol=1e-5)
    assert_close(t.sum(), a.sum(), rtol=1e-5, atol=1e-4)
    assert_close(t.max(), a.max())


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float64])
def test_other_dtypes(dtype):
    a = rand(24, 37, dtype=dtype)
    t = lg.from_numpy(a)
    for axis in (0, 1, (0, 1)):
        assert_close(t.sum(axis), a.sum(axis, dtype=np.int64 if np.issubdtype(dtype, np.integer) else dtype))
        assert_close(t.amax(axis), a.max(axis))


def test_bool_sum_counts():
    a = RNG.random((20, 33)) > 0.5
    t = lg.from_numpy(a)
    assert_close(t.sum(0), a.sum(0))
    assert_close(t.sum(1), a.sum(1))


# ---- non-contiguous inputs ----

VIEWS = {
    "permuted": (lambda t: t.permute(1, 0, 2), lambda a: a.transpose(1, 0, 2)),
    "sliced": (lambda t: t[1:, ::2, 3:], lambda a: a[1:, ::2, 3:]),
    "flipped": (lambda t: t.flip(1), lambda a: a[:, ::-1]),
    "expanded": (lambda t: t[:, :1].expand(6, 20, 35), lambda a: np.broadcast_to(a[:, :1], (6, 20, 35))),
    "transposed-last": (lambda t: t.transpose(1, 2), lambda a: a.transpose(0, 2, 1)),
}


@pytest.mark.parametrize("view", sorted(VIEWS))
def test_reductions_of_views(view):
    make_t, make_a = VIEWS[view]
    a = rand(6, 20, 35)
    t, v = make_t(lg.from_numpy(a)), make_a(a)
    for axis in axis_choices(3):
        assert_close(t.sum(axis), v.sum(axis), rtol=1e-5, atol=1e-5)
        assert_close(t.amax(axis, keepdim=True), v.max(axis, keepdims=True))


def test_sum_over_columns_of_transposed_matrix():
    a = rand(50, 70)
    t = lg.from_numpy(a)
    assert_close(t.T.sum(0), a.T.sum(0), rtol=1e-5, atol=1e-5)
    assert_close(t.T.sum(1), a.T.sum(1), rtol=1e-5, atol=1e-5)


# ---- the blocked (upcast) nest: column sums and matrix products ----

def _not_plain(t) -> bool:
    """Whether a kernel of `t` uses the blocked (3) or streaming (4) nest of lower/ rather than the plain one."""
    programs = [lower(k) for k in t.schedule()]
    return any(p.loop_hints or p.scratch for p in programs)


@pytest.mark.parametrize("shape", [(100, 16), (9, 37), (300, 130), (2, 8), (3, 1100), (5, 1024)])
def test_column_sums(shape):
    a = rand(*shape)
    t = lg.from_numpy(a)
    assert_close(t.sum(0), a.sum(0), rtol=1e-5, atol=1e-4)
    assert_close(t.amax(0), a.max(0))
    assert_close((t * 2 + 1).sum(0, keepdim=True), (a * 2 + 1).sum(0, keepdims=True), rtol=1e-5, atol=1e-4)


def test_column_sum_does_not_use_the_plain_nest():
    assert _not_plain(lg.from_numpy(rand(100, 64)).sum(0))
    assert not _not_plain(lg.from_numpy(rand(100, 64)).sum(1))
    assert not _not_plain(lg.from_numpy(rand(100, 64)).T.sum(0))


@pytest.mark.parametrize("n,k,m", [(1, 1, 1), (5, 7, 3), (6, 16, 16), (13, 37, 29), (20, 30, 70),
                                   (64, 128, 96), (7, 300, 8), (40, 3, 200)])
def test_matmul_shapes(n, k, m):
    a, b = rand(n, k), rand(k, m)
    assert_close(lg.from_numpy(a) @ lg.from_numpy(b), a @ b, rtol=1e-4, atol=1e-4)


def test_matmul_uses_the_blocked_nest_with_a_packed_panel():
    a, b = lg.from_numpy(rand(64, 50)), lg.from_numpy(rand(50, 96))
    (kernel,) = (a @ b).schedule()
    program = lower(kernel)
    assert "blocked" in program.loop_hints.values()
    assert program.scratch  # b's columns are packed into a panel
    assert not lower(kernel, scratch=False).scratch


def test_matmul_non_contiguous_operands():
    a, b = rand(45, 33), rand(70, 33)
    ta, tb = lg.from_numpy(a), lg.from_numpy(b)
    assert_close(ta @ tb.T, a @ b.T, rtol=1e-4, atol=1e-4)
    assert_close(ta.T.T @ tb.T[:, ::2], a @ b.T[:, ::2], rtol=1e-4, atol=1e-4)
    assert_close(tb[::2] @ ta.T, b[::2] @ a.T, rtol=1e-4, atol=1e-4)
    assert_close(ta.flip(0) @ tb.T.flip(1), a[::-1] @ b.T[:, ::-1], rtol=1e-4, atol=1e-4)


def test_matmul_operands_computed_in_the_kernel():
    a, b = rand(30, 40), rand(40, 50)
    ta, tb = lg.from_numpy(a), lg.from_numpy(b)
    got = (ta * 2) @ (tb.exp() - 1)
    assert len(got.schedule()) == 1
    assert_close(got, (a * 2) @ (np.exp(b) - 1), rtol=1e-4, atol=1e-4)


def test_matmul_epilogue():
    a, b, c = rand(30, 40), rand(40, 50), rand(50)
    ta, tb, tc = lg.from_numpy(a), lg.from_numpy(b), lg.from_numpy(c)
    got = (ta @ tb + tc).relu()
    assert len(got.schedule()) == 1
    assert_close(got, np.maximum(a @ b + c, 0), rtol=1e-4, atol=1e-4)
    assert_close((ta @ tb).reshape(-1), (a @ b).reshape(-1), rtol=1e-4, atol=1e-4)


def test_batched_and_broadcast_matmul():
    a, b = rand(3, 20, 30), rand(3, 30, 40)
    assert_close(lg.from_numpy(a) @ lg.from_numpy(b), a @ b, rtol=1e-4, atol=1e-4)
    w = rand(30, 17)
    assert_close(lg.from_numpy(a) @ lg.from_numpy(w), a @ w, rtol=1e-4, atol=1e-4)
    v = rand(30)
    assert_close(lg.from_numpy(a) @ lg.from_numpy(v), a @ v, rtol=1e-4, atol=1e-4)


def test_integer_matmul():
    a, b = rand(20, 30, dtype=np.int64), rand(30, 40, dtype=np.int64)
    assert_close(lg.from_numpy(a) @ lg.from_numpy(b), a @ b)


def test_matmul_with_nan_and_inf():
    a, b = rand(12, 20), rand(20, 32)
    a[3, 4] = np.nan
    b[5, 7] = np.inf
    with np.errstate(invalid="ignore"):
        assert_close(lg.from_numpy(a) @ lg.from_numpy(b), a @ b, rtol=1e-4, atol=1e-4)


def test_empty_reductions():
    a = np.zeros((3, 0), np.float32)
    t = lg.from_numpy(a)
    assert_close(t.sum(1), a.sum(1))
    assert_close(t.sum(0), a.sum(0))
    assert_close(lg.from_numpy(np.zeros((0, 4), np.float32)) @ lg.from_numpy(rand(4, 20)), np.zeros((0, 20)))
    assert_close(lg.from_numpy(np.zeros((5, 0), np.float32)) @ lg.from_numpy(np.zeros((0, 20), np.float32)),
                 np.zeros((5, 20)))


# ---- reductions read back through a broadcast (hoisted in the kernel) ----

@pytest.mark.parametrize("shape,dim", [((4, 5), 1), ((4, 5), 0), ((3, 40, 7), 1), ((3, 4, 70), -1), ((1, 9), 1),
                                       ((9, 1100), 0), ((3, 6, 530), 1), ((20, 64), 0)])
def test_subtract_max_and_softmax(shape, dim):
    a = rand(*shape) * 5
    t = lg.from_numpy(a)
    assert_close(t - t.amax(dim, keepdim=True), a - a.max(dim, keepdims=True))
    assert_close(t - t.max(dim, keepdim=True).values, a - a.max(dim, keepdims=True))
    e = (t - t.amax(dim, keepdim=True)).exp()
    got = e / e.sum(dim, keepdim=True)
    ea = np.exp(a - a.max(dim, keepdims=True))
    assert_close(got, ea / ea.sum(dim, keepdims=True), rtol=1e-5, atol=1e-6)


def test_broadcast_reduction_over_all_axes():
    a = rand(20, 30)
    t = lg.from_numpy(a)
    assert_close(t - t.max(), a - a.max())
    assert_close(t / t.sum(), a / a.sum(), rtol=1e-5, atol=1e-6)
    assert_close(t - t.mean((0, 1), keepdim=True), a - a.mean(), rtol=1e-5, atol=1e-5)


def test_logsumexp_and_variance():
    a = rand(8, 50) * 10
    t = lg.from_numpy(a)
    m = t.amax(1, keepdim=True)
    got = (t - m).exp().sum(1, keepdim=True).log() + m
    expected = np.log(np.exp(a - a.max(1, keepdims=True)).sum(1, keepdims=True)) + a.max(1, keepdims=True)
    assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert_close(t.var(1), a.var(1, ddof=1), rtol=1e-4, atol=1e-4)
    assert_close(t.std(0), a.std(0, ddof=1), rtol=1e-4, atol=1e-4)
    b = rand(30, 600) * 3
    tb = lg.from_numpy(b)
    assert len(tb.var(0).schedule()) == 1  # the mean and the sum of squares: two phases of one kernel
    assert_close(tb.var(0), b.var(0, ddof=1), rtol=1e-4, atol=1e-4)
    assert_close(tb.var(0, keepdim=True), b.var(0, ddof=1, keepdims=True), rtol=1e-4, atol=1e-4)


def test_softmax_of_large_values_is_stable():
    a = np.array([[1e4, 1e4 + 1, -1e4], [0.0, 1.0, 2.0]], np.float32)
    t = lg.from_numpy(a)
    e = (t - t.amax(1, keepdim=True)).exp()
    got = (e / e.sum(1, keepdim=True)).numpy()
    assert np.isfinite(got).all()
    ea = np.exp(a - a.max(1, keepdims=True))
    assert_close(got, ea / ea.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_reduction_broadcast_into_a_matmul_like_sum():
    a, b = rand(12, 30), rand(30, 40)
    ta, tb = lg.from_numpy(a), lg.from_numpy(b)
    centred = ta - ta.mean(1, keepdim=True)
    an = a - a.mean(1, keepdims=True)
    assert_close(centred @ tb, an @ b, rtol=1e-4, atol=1e-4)


# ---- long float32 sums: two levels (float32 blocks, float64 total; Lowerer.render_cascade_sum) ----

CASCADE_CASES = {
    "one long axis, not a multiple of the block": ((5001,), None),
    "rows longer than a block": ((7, 4100), 1),
    "inner nest within a block": ((50, 8, 100), None),
    "two axes of three": ((30, 70, 90), (0, 2)),
    "softmax row, hoisted": ((3, 5000), "softmax"),
}


@pytest.mark.parametrize("name", sorted(CASCADE_CASES))
def test_long_float32_sums_are_accurate(name):
    shape, dim = CASCADE_CASES[name]
    a = (RNG.standard_normal(shape) + 0.25).astype(np.float32)
    t = lg.from_numpy(a)
    if dim == "softmax":
        got, ref = lg.nn.functional.softmax(t, dim=1).numpy(), np.exp(a - a.max(1, keepdims=True))
        ref = ref / ref.astype(np.float64).sum(1, keepdims=True)
        assert_close(got, ref, rtol=1e-6, atol=1e-9)
        return
    got = t.sum(dim).numpy()
    exact = a.astype(np.float64).sum(axis=dim)
    assert np.max(np.abs(got - exact)) <= 4e-7 * np.max(np.abs(a).sum(axis=dim))


def test_long_float32_sum_uses_two_levels_on_the_cpu_only():
    t = lg.from_numpy(np.ones(10000, np.float32)).sum()
    (kernel,) = t.schedule()
    cpu = lower(kernel)
    assert [ins.dtype.name for ins in cpu.instrs if ins.op == "acc"] == ["float64", "float32"]
    gpu = lower(kernel, scratch=False)  # the GPU renderer sums across threads in a tree already
    assert [ins.dtype.name for ins in gpu.instrs if ins.op == "acc"] == ["float32"]
    assert t.item() == 10000.0
