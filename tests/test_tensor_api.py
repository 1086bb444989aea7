"""The Tensor API: factories, attributes, dtypes and promotion, printing, movement and basic indexing."""
import math

import numpy as np
import pytest

import lazygrad as lg
from helpers import assert_close, random_array

RNG = np.random.default_rng(1)


def test_tensor_dtype_inference():
    assert lg.tensor([1, 2]).dtype is lg.int64
    assert lg.tensor([1.0, 2]).dtype is lg.float32
    assert lg.tensor([True, False]).dtype is lg.bool
    assert lg.tensor(np.zeros(3, dtype=np.float64)).dtype is lg.float64
    assert lg.tensor(np.zeros(3, dtype=np.int32)).dtype is lg.int32
    assert lg.Tensor([1, 2]).dtype is lg.float32
    assert lg.FloatTensor([1, 2]).dtype is lg.float32
    assert lg.LongTensor([1, 2]).dtype is lg.int64
    assert lg.from_numpy(np.arange(3)).dtype is lg.int64
    assert str(lg.float32) == "lazygrad.float32"
    assert lg.tensor(3.5).shape == () and lg.tensor(3.5).item() == 3.5


def test_promotion_rules_follow_pytorch():
    i = lg.tensor([1, 2])
    f = lg.tensor([1.0, 2.0])
    d = lg.tensor(np.array([1.0, 2.0]))
    b = lg.tensor([True, False])
    assert (i * 2.5).dtype is lg.float32          # int tensor * Python float -> default float
    assert (i + 1).dtype is lg.int64
    assert (f + d).dtype is lg.float64            # float32 with float64 numpy input -> float64
    assert (f + lg.tensor(2.0, dtype=lg.float64)).dtype is lg.float32  # 0-d tensors do not promote dimmed ones
    assert (i + lg.tensor(2.0, dtype=lg.float64)).dtype is lg.float64  # ...unless of a higher category
    assert (b + 1).dtype is lg.int64
    assert (b + b).dtype is lg.bool
    assert (i / i).dtype is lg.float32            # true division of ints is float
    assert (lg.tensor([1], dtype=lg.int32) + i).dtype is lg.int64
    assert (lg.tensor([1], dtype=lg.int32) + 5).dtype is lg.int32
    assert (i > 1).dtype is lg.bool
    assert i.sum().dtype is lg.int64 and b.sum().dtype is lg.int64
    assert i.exp().dtype is lg.float32


def test_factories():
    assert_close(lg.zeros(2, 3), np.zeros((2, 3), np.float32))
    assert_close(lg.ones((2,)), np.ones(2, np.float32))
    assert_close(lg.full((2, 2), 7), np.full((2, 2), 7))
    assert lg.full((2, 2), 7).dtype is lg.int64
    assert_close(lg.arange(5), np.arange(5))
    assert_close(lg.arange(1, 2, 0.25), np.arange(1, 2, 0.25, dtype=np.float32))
    assert_close(lg.eye(3), np.eye(3, dtype=np.float32))
    x = lg.randn(3, 4)
    assert_close(lg.zeros_like(x), np.zeros((3, 4), np.float32))
    assert_close(lg.ones_like(x), np.ones((3, 4), np.float32))
    lg.manual_seed(5)
    r1 = lg.rand(100).numpy().copy()
    lg.manual_seed(5)
    r2 = lg.rand(100).numpy()
    np.testing.assert_array_equal(r1, r2)
    assert 0 <= r1.min() and r1.max() < 1


def test_attributes():
    x = lg.zeros(2, 3, 4)
    assert x.shape == (2, 3, 4) and x.size() == (2, 3, 4) and x.size(1) == 3 and x.size(-1) == 4
    assert x.dim() == 3 and x.ndim == 3 and x.numel() == 24 and len(x) == 2
    assert str(x.device) == "cpu"
    assert x.T.shape == (4, 3, 2)
    assert repr(x.shape) == "lazygrad.Size([2, 3, 4])"


def test_conversions():
    x = lg.tensor([1.7, -2.2])
    assert x.long().dtype is lg.int64 and x.long().tolist() == [1, -2]
    assert x.to(lg.float64).dtype is lg.float64
    assert lg.tensor([1, 2]).float().tolist() == [1.0, 2.0]
    assert lg.tensor([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]
    assert lg.tensor([2.5]).item() == 2.5
    assert float(lg.tensor(1.5)) == 1.5
    with pytest.raises(RuntimeError, match="cannot be converted to Scalar"):
        lg.tensor([1.0, 2.0]).item()


@pytest.mark.parametrize("values, text", [
    ([1.0, 4.0], "tensor([1., 4.])"),
    ([1.5, 2.25], "tensor([1.5000, 2.2500])"),
    ([[1, 2], [3, 4]], "tensor([[1, 2],\n        [3, 4]])"),
    (3.5, "tensor(3.5000)"),
    ([True, False], "tensor([ True, False])"),
    ([1e-5, 1.0], "tensor([1.0000e-05, 1.0000e+00])"),
    ([], "tensor([])"),
])
def test_repr_matches_pytorch(values, text):
    assert repr(lg.tensor(values)) == text


def test_repr_dtype_suffix_and_summary():
    assert repr(lg.tensor([1, 2], dtype=lg.int32)) == "tensor([1, 2], dtype=lazygrad.int32)"
    long = repr(lg.arange(2000))
    assert long.startswith("tensor([   0,    1,    2,  ..., 1997, 1998, 1999])")


def test_repr_against_torch():
    torch = pytest.importorskip("torch")
    for arr in [np.array([1.0, 4.0], np.float32), np.array([[0.5, -1.25], [3.0, 1e3]], np.float32),
                np.arange(12, dtype=np.int64).reshape(3, 4), np.array(2.0, np.float32),
                np.linspace(-1, 1, 30, dtype=np.float32).reshape(3, 10), np.array([np.nan, 1.0, np.inf], np.float32)]:
        assert repr(lg.tensor(arr)) == repr(torch.tensor(arr))


MOVEMENT = {
    "reshape": (lambda t: t.reshape(4, 6), lambda a: a.reshape(4, 6)),
    "reshape_infer": (lambda t: t.reshape(-1, 3), lambda a: a.reshape(-1, 3)),
    "view": (lambda t: t.view(24), lambda a: a.reshape(24)),
    "permute": (lambda t: t.permute(2, 0, 1), lambda a: a.transpose(2, 0, 1)),
    "transpose": (lambda t: t.transpose(0, -1), lambda a: np.swapaxes(a, 0, -1)),
    "T": (lambda t: t.T, lambda a: a.T),
    "expand": (lambda t: t[:, :1, :].expand(2, 5, 4), lambda a: np.broadcast_to(a[:, :1, :], (2, 5, 4))),
    "flatten": (lambda t: t.flatten(1), lambda a: a.reshape(2, 12)),
    "squeeze": (lambda t: t[:, :1].squeeze(1), lambda a: a[:, 0]),
    "unsqueeze": (lambda t: t.unsqueeze(-1), lambda a: a[..., None]),
    "flip": (lambda t: t.flip(-1), lambda a: a[..., ::-1]),
    "permute_reshape": (lambda t: t.permute(1, 0, 2).reshape(3, 8), lambda a: a.transpose(1, 0, 2).reshape(3, 8)),
    "slice_steps": (lambda t: t[:, ::2, 1::2], lambda a: a[:, ::2, 1::2]),
    "negative_int": (lambda t: t[-1, 1], lambda a: a[-1, 1]),
    "none_ellipsis": (lambda t: t[None, ..., 0], lambda a: a[None, ..., 0]),
    "empty_slice": (lambda t: t[:, 2:1], lambda a: a[:, 2:1]),
    "chain": (lambda t: t.T.reshape(-1)[::3].flip(0), lambda a: a.T.reshape(-1)[::3][::-1]),
}


@pytest.mark.parametrize("name", sorted(MOVEMENT))
def test_movement_ops(name):
    fn, ref = MOVEMENT[name]
    a = random_array((2, 3, 4), np.float32, RNG)
    t = fn(lg.tensor(a))
    assert_close(t, ref(a))
    assert_close(t * 2 + 1, ref(a) * 2 + 1)  # the view fused into a consumer


def test_movement_never_copies():
    """Movement ops add no kernel: a fused consumer of a view is one kernel, like the plain one."""
    a, b = lg.randn(64, 32), lg.randn(32, 64)
    assert len((a.T * b).schedule()) == 1
    assert len((a.reshape(32, 64)[::2].flip(0) + b[1::2]).schedule()) == 1
    assert len(a.permute(1, 0).unsqueeze(0).squeeze(0).schedule()) == 1  # realising a view: one copy


def test_zero_dim_size_one_and_empty():
    assert_close(lg.tensor(2.0) * lg.tensor([1.0, 2.0]), np.array([2.0, 4.0], np.float32))
    assert_close(lg.zeros(0, 3) + 1, np.ones((0, 3), np.float32))
    assert_close(lg.zeros(0, 3).sum(0), np.zeros(3, np.float32))
    assert_close(lg.zeros(0, 3).sum(), np.float32(0.0))
    assert_close(lg.ones(1, 1, 3).sum(-1), np.full((1, 1), 3.0, np.float32))
    assert lg.zeros(0, 3).mean().isnan().item()


def test_in_place_ops_rebind_the_same_object():
    x = lg.tensor([1.0, 2.0])
    y = x
    x += 1
    x *= 2
    x -= 1
    assert y is x and x.tolist() == [3.0, 5.0]
    x.zero_()
    assert x.tolist() == [0.0, 0.0]
    x.copy_(lg.tensor([7.0, 8.0]))
    assert x.tolist() == [7.0, 8.0]
