"""Kernel counts: what the scheduler fuses (see lazygrad/ir/schedule.py), checked against NumPy's values."""
from __future__ import annotations

import numpy as np

import lazygrad as lg
import lazygrad.nn.functional as F

from helpers import assert_close

RNG = np.random.default_rng(7)


def rand(*shape):
    return RNG.uniform(-2.0, 2.0, size=shape).astype(np.float32)


def kernels(t) -> int:
    return len(t.schedule())


def test_elementwise_chain_is_one_kernel():
    a, b, c = rand(8, 9), rand(8, 9), rand(8, 9)
    ta, tb, tc = (lg.from_numpy(x) for x in (a, b, c))
    out = ((ta * tb + tc).relu() * 0.5).exp()
    assert kernels(out) == 1
    assert_close(out, np.exp(np.maximum(a * b + c, 0) * 0.5), rtol=1e-6)


def test_elementwise_chain_of_many_inputs_is_one_kernel():
    arrays = [rand(5, 6) for _ in range(12)]
    tensors = [lg.from_numpy(x) for x in arrays]
    out, expected = tensors[0], arrays[0]
    for t, x in zip(tensors[1:], arrays[1:]):
        out, expected = (out * t + 1).sin(), np.sin(expected * x + 1)
    assert kernels(out) == 1
    assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_producers_fuse_into_the_reduction():
    a, b = rand(10, 20), rand(10, 20)
    out = (lg.from_numpy(a) * lg.from_numpy(b)).sum(1)
    assert kernels(out) == 1
    assert_close(out, (a * b).sum(1), rtol=1e-5, atol=1e-5)


def test_reduction_epilogue_is_fused():
    a = rand(10, 20)
    out = (lg.from_numpy(a).sum(1) * 2 + 1).sqrt()
    assert kernels(out) == 1
    with np.errstate(invalid="ignore"):
        assert_close(out, np.sqrt(a.sum(1) * 2 + 1), rtol=1e-5, atol=1e-5)


def test_subtract_row_max():
    a = rand(6, 11)
    t = lg.from_numpy(a)
    out = t - t.max(1, keepdim=True).values
    assert kernels(out) <= 2
    assert_close(out, a - a.max(1, keepdims=True))
    out = t - t.amax(1, keepdim=True)
    assert kernels(out) <= 2
    assert_close(out, a - a.max(1, keepdims=True))


def test_row_softmax_from_tensor_ops():
    a = rand(16, 33) * 4
    x = lg.from_numpy(a)
    e = (x - x.amax(-1, keepdim=True)).exp()
    out = e / e.sum(-1, keepdim=True)
    assert kernels(out) <= 2
    ea = np.exp(a - a.max(-1, keepdims=True))
    assert_close(out, ea / ea.sum(-1, keepdims=True), rtol=1e-5, atol=1e-7)


def test_functional_softmax_and_log_softmax():
    a = rand(16, 33) * 4
    x = lg.from_numpy(a)
    assert kernels(F.softmax(x, dim=-1)) <= 2
    assert kernels(F.log_softmax(x, dim=-1)) <= 2
    ea = np.exp(a - a.max(-1, keepdims=True))
    assert_close(F.softmax(x, dim=-1), ea / ea.sum(-1, keepdims=True), rtol=1e-5, atol=1e-7)
    z = a - a.max(-1, keepdims=True)
    assert_close(F.log_softmax(x, dim=-1), z - np.log(np.exp(z).sum(-1, keepdims=True)), rtol=1e-5, atol=1e-5)
    assert_close(F.softmax(x, dim=0), np.exp(a) / np.exp(a).sum(0, keepdims=True), rtol=1e-5, atol=1e-7)


def test_movement_ops_add_no_kernel():
    a, b = rand(4, 6), rand(6, 4)
    ta, tb = lg.from_numpy(a), lg.from_numpy(b)
    out = (ta.T.reshape(2, 3, 4).permute(2, 0, 1).flip(1)[:, :, 1:] + 1) * tb.reshape(4, 2, 3)[:, :, 1:]
    assert kernels(out) == 1
    expected = (a.T.reshape(2, 3, 4).transpose(2, 0, 1)[:, ::-1][:, :, 1:] + 1) * b.reshape(4, 2, 3)[:, :, 1:]
    assert_close(out, expected)
    assert kernels((ta.T + tb).sum(0)) == 1


def test_realised_tensor_is_not_recomputed():
    a = rand(8, 8)
    t = lg.from_numpy(a)
    y = (t * 2).exp()
    y.realize()
    assert kernels(y) == 0
    z = y + 1
    assert kernels(z) == 1
    (kernel,) = z.schedule()
    assert all(n.op.name != "EXP2" for n in kernel.nodes)  # reads y's buffer, does not recompute it
    assert_close(z, np.exp(a * 2) + 1, rtol=1e-6)


def test_matmul_is_one_kernel():
    a, b = rand(33, 20), rand(20, 45)
    out = lg.from_numpy(a) @ lg.from_numpy(b)
    assert kernels(out) == 1
    assert_close(out, a @ b, rtol=1e-5, atol=1e-5)


def test_reduction_feeding_another_axis_is_a_separate_kernel():
    a = rand(6, 7)
    t = lg.from_numpy(a)
    out = (t - t.amax(0, keepdim=True)).sum(1)  # max over rows, then sum over columns
    assert kernels(out) == 2
    assert_close(out, (a - a.max(0, keepdims=True)).sum(1), rtol=1e-5, atol=1e-5)


def test_shared_reduction_is_computed_once():
    a = rand(6, 7)
    t = lg.from_numpy(a)
    s = t.sum(1, keepdim=True)
    u, v = t / s, t - s
    lg.realize(u, v)
    assert_close(u, a / a.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)
    assert_close(v, a - a.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_expensive_result_read_through_a_broadcast_is_materialised():
    # the softmax would otherwise be recomputed (an exp) once per column of the product
    a, w = rand(128, 96), rand(96, 80)
    x, tw = lg.from_numpy(a), lg.from_numpy(w)
    out = F.softmax(x, dim=-1) @ tw
    assert kernels(out) == 2
    ea = np.exp(a - a.max(-1, keepdims=True))
    assert_close(out, (ea / ea.sum(-1, keepdims=True)) @ w, rtol=1e-5, atol=1e-6)
    # a cheap producer is still computed inside the product
    assert kernels((x * 2 + 1) @ tw) == 1
