"""Math ops (exp, log, log1p, sqrt, rsqrt, pow, sin, cos, tanh, sigmoid, abs, sign, floor, ceil, round, trunc,
clamp, remainder, floor division) and softmax / log_softmax, with PyTorch's results for nan, inf and -0.0."""
import math

import numpy as np
import pytest

import lazygrad as lg
import lazygrad.nn.functional as F
from gradcheck import gradcheck
from helpers import assert_close

RNG = np.random.default_rng(3)

SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49999997, 1e-8, -1e-8, 3.7, -3.7, 100.0,
           -100.0, 1e4, -1e4, 88.0, -88.0, 89.0, -104.0, 710.0, 1e-40, 2.0 ** 23 + 1, -(2.0 ** 23 + 1),
           float("inf"), float("-inf"), float("nan")]


def assert_same(got, expected, rtol):
    """Equal up to rtol, NaN in the same places, and zeros with the same sign."""
    got = got.numpy() if isinstance(got, lg.Tensor) else got
    assert got.shape == expected.shape and got.dtype == expected.dtype, (got.dtype, expected.dtype)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    zeros = expected == 0
    np.testing.assert_array_equal(np.signbit(got[zeros]), np.signbit(expected[zeros]), err_msg="sign of zero")
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=0, equal_nan=True)


def sigmoid(x):
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


# NumPy references (PyTorch's semantics where they differ: sign(nan) is 0, round is half to even)
UNARY = {
    "exp": np.exp, "log": np.log, "log1p": np.log1p, "sqrt": np.sqrt, "rsqrt": lambda x: 1 / np.sqrt(x),
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "tanh": np.tanh, "sigmoid": sigmoid, "abs": np.abs,
    "sign": lambda x: np.nan_to_num(np.sign(x), nan=0.0), "floor": np.floor, "ceil": np.ceil, "round": np.round,
    "trunc": np.trunc, "expm1": np.expm1, "exp2": np.exp2, "log2": np.log2, "reciprocal": lambda x: 1 / x,
    "frac": lambda x: x - np.trunc(x), "neg": np.negative,
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_against_numpy(name, dtype):
    x = RNG.uniform(-5, 5, size=(4, 6)).astype(dtype)
    if name in ("log", "sqrt", "rsqrt", "log2"):
        x = np.abs(x) + 1e-3
    if name == "log1p":
        x = np.abs(x) - 0.9
    with np.errstate(all="ignore"):
        expected = UNARY[name](x.astype(np.float64)).astype(dtype)
    rtol = 2e-6 if dtype == "float32" else 1e-12
    t = lg.tensor(x)
    assert_same(getattr(t, name)(), expected, rtol)
    if hasattr(lg, name):
        assert_same(getattr(lg, name)(t.t()).t(), expected, rtol)  # a transposed input, through the function


def test_integer_inputs_of_float_functions_give_float32():
    t = lg.tensor([1, 2, 4])
    for name in ("exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid", "rsqrt", "log1p"):
        out = getattr(t, name)()
        assert out.dtype is lg.float32
        assert_close(out, UNARY[name](np.array([1.0, 2.0, 4.0])).astype(np.float32), rtol=2e-6)
    for name in ("abs", "sign", "floor", "ceil", "round", "trunc", "neg"):
        for dtype in (lg.int32, lg.int64):
            x = lg.tensor([-3, 0, 5], dtype=dtype)
            assert getattr(x, name)().dtype is dtype
            np.testing.assert_array_equal(getattr(x, name)().numpy(), UNARY[name](np.array([-3, 0, 5])))


@pytest.mark.parametrize("name,kernel", [("abs", "abs_cpu"), ("floor", "floor_vml_cpu"), ("ceil", "ceil_vml_cpu"),
                                         ("round", "round_vml_cpu"), ("trunc", "trunc_vml_cpu")])
def test_bool_inputs_raise_like_pytorch(name, kernel):
    with pytest.raises(NotImplementedError, match=f"\"{kernel}\" not implemented for 'Bool'"):
        getattr(lg.tensor([True, False]), name)()


def test_frac_of_integers_raises():
    with pytest.raises(NotImplementedError, match="\"frac_cpu\" not implemented for 'Long'"):
        lg.tensor([1, 2]).frac()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_binary_against_numpy(dtype):
    a = RNG.uniform(-6, 6, size=(5, 7)).astype(dtype)
    b = RNG.uniform(-3, 3, size=(5, 7)).astype(dtype)
    b[np.abs(b) < 0.2] = 0.7
    ta, tb = lg.tensor(a), lg.tensor(b)
    rtol = 2e-6 if dtype == "float32" else 1e-12
    assert_same(ta % tb, np.remainder(a, b), rtol)
    assert_same(ta.remainder(2.5), np.remainder(a, np.array(2.5, dtype)), rtol)
    assert_same(ta // tb, np.floor_divide(a, b), rtol)
    assert_same(lg.floor_divide(ta, -1.5), np.floor_divide(a, np.array(-1.5, dtype)), rtol)
    assert_same(ta.div(tb, rounding_mode="floor"), np.floor_divide(a, b), rtol)
    assert_same(np.abs(ta) ** tb, np.abs(a) ** b, 4e-6 if dtype == "float32" else 1e-12)
    assert_same(lg.pow(ta, 2.0), a ** 2, rtol)
    assert_same(2.0 ** tb, np.array(2.0, dtype) ** b, rtol)
    assert_same(ta.clamp(-1, 2), np.clip(a, -1, 2), rtol)
    assert_same(ta.clamp(min=tb), np.maximum(a, b), rtol)
    assert_same(lg.clamp(ta, max=0.5), np.minimum(a, 0.5).astype(dtype), rtol)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integer_division_remainder_pow(dtype):
    a, b = np.meshgrid(np.array([-7, -3, -1, 0, 1, 2, 3, 7], dtype), np.array([-7, -3, -1, 1, 2, 3, 7], dtype))
    ta, tb = lg.tensor(a), lg.tensor(b)
    np.testing.assert_array_equal((ta // tb).numpy(), np.floor_divide(a, b))
    np.testing.assert_array_equal((ta % tb).numpy(), np.remainder(a, b))
    np.testing.assert_array_equal(ta.fmod(tb).numpy(), np.fmod(a, b))
    np.testing.assert_array_equal((ta ** np.abs(tb)).numpy(), a ** np.abs(b))
    assert (ta // tb).dtype.name == dtype and (ta / tb).dtype is lg.float32
    np.testing.assert_array_equal(ta.clamp(-2, 3).numpy(), np.clip(a, -2, 3))
    assert ta.clamp(0.5).dtype is lg.float32


def test_special_values_against_pytorch():
    torch = pytest.importorskip("torch")
    names = ["exp", "log", "log1p", "sqrt", "rsqrt", "sin", "cos", "tan", "tanh", "sigmoid", "abs", "sign", "floor",
             "ceil", "round", "trunc", "expm1", "exp2", "log2", "reciprocal", "frac", "neg"]
    for dtype in ("float32", "float64"):
        values = np.array(SPECIAL, dtype=dtype)
        for name in names:
            ours = getattr(lg.tensor(values), name)().numpy()
            theirs = getattr(torch.tensor(values), name)().numpy()
            if name in ("cos", "tan") and dtype == "float64":
                # cos(x) = sin(x + pi/2): the float64 shift costs ~1e-16 * |x| (2**23 + 1 here)
                ours, theirs = ours[np.abs(values) < 1e6], theirs[np.abs(values) < 1e6]
            assert_same(ours, theirs, 4e-6 if dtype == "float32" else 1e-12)


def test_binary_special_values_against_pytorch():
    torch = pytest.importorskip("torch")
    vals = [0.0, -0.0, 1.0, -1.0, 2.5, -2.5, 3.0, -3.0, 7.5, float("inf"), float("-inf"), float("nan"), 1e-3]
    a, b = np.meshgrid(vals, vals)
    for dtype in ("float32", "float64"):
        for op in ("remainder", "floor_divide", "pow", "fmod", "maximum", "minimum", "div"):
            ours = getattr(lg.tensor(a.astype(dtype)), op)(lg.tensor(b.astype(dtype))).numpy()
            theirs = getattr(torch.tensor(a.astype(dtype)), op)(torch.tensor(b.astype(dtype))).numpy()
            assert_same(ours, theirs, 4e-6 if dtype == "float32" else 1e-12)
        x = np.array(SPECIAL, dtype=dtype)
        for args in [(-1, 1), (0, None), (None, 0.5), (float("nan"), 1), (2, 1), (-0.0, 0.0)]:
            assert_same(lg.tensor(x).clamp(*args).numpy(), torch.tensor(x).clamp(*args).numpy(), 0)


def test_negative_zero_nan_and_inf_cases():
    neg0 = lg.tensor([-0.0])
    for name in ("sin", "tan", "tanh", "ceil", "round", "trunc", "floor", "expm1", "log1p", "sqrt"):
        assert np.signbit(getattr(neg0, name)().numpy()[0]), name
    assert not np.signbit(neg0.abs().numpy()[0])
    assert lg.tensor([-0.5, -0.4]).ceil().numpy().tolist() == [0.0, 0.0]
    assert np.signbit(lg.tensor([-0.5, -0.4]).round().numpy()).all()
    assert lg.tensor([0.5, 1.5, 2.5, -2.5]).round().tolist() == [0.0, 2.0, 2.0, -2.0]
    assert lg.tensor([float("nan")]).sign().tolist() == [0.0]
    assert lg.tensor([float("inf")]).log1p().tolist() == [float("inf")]
    assert lg.tensor([-0.0]).pow(lg.tensor([-1.0])).tolist() == [float("-inf")]
    assert lg.tensor([-1.0]).pow(lg.tensor([float("inf")])).tolist() == [1.0]
    assert math.isnan(lg.tensor([-2.0]).pow(lg.tensor([0.5])).item())
    assert lg.tensor([float("inf")]).floor_divide(1.0).isnan().item()
    assert lg.tensor([1e-8]).tanh().item() == pytest.approx(1e-8, rel=1e-6)
    assert lg.tensor([1e-8]).expm1().item() == pytest.approx(1e-8, rel=1e-6)


def test_gradients():
    x = RNG.uniform(0.2, 2.0, size=(3, 4))
    for name in ("exp", "log", "log1p", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid", "expm1"):
        gradcheck(lambda a: getattr(a, name)(), x)
    gradcheck(lambda a, b: a ** b, x, RNG.uniform(-2, 2, size=(3, 4)))
    gradcheck(lambda a: (a - 1).abs() * (a - 1).sign(), x)
    gradcheck(lambda a: a.clamp(0.5, 1.5), x)


# ---- softmax / log_softmax (nn.functional is written elsewhere; here: the seed's behaviour) ----

@pytest.mark.parametrize("dim", [0, 1, 2, -1, -2])
def test_softmax_and_log_softmax_over_any_dim(dim):
    x = RNG.standard_normal((3, 4, 5)).astype(np.float32)
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    expected = e / e.sum(axis=dim, keepdims=True)
    assert_close(F.softmax(lg.tensor(x), dim=dim), expected, rtol=1e-5)
    assert_close(F.log_softmax(lg.tensor(x), dim=dim), np.log(expected), rtol=1e-5, atol=1e-5)


def test_softmax_is_stable_and_small():
    big = lg.tensor([[1e4, 0.0, -1e4], [1e4, 1e4, 1e4]])
    assert F.softmax(big, dim=1).tolist() == [[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]] or \
        np.allclose(F.softmax(big, dim=1).numpy(), [[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    assert not F.log_softmax(big, dim=1).isnan().any().item()
    seed = F.softmax(lg.tensor([[1.0, 2.0], [3.0, 4.0]]), dim=0)
    assert_close(seed, [[0.1192029, 0.1192029], [0.8807971, 0.8807971]])
    rows = lg.tensor(RNG.standard_normal((64, 100)).astype(np.float32))
    assert len(F.softmax(rows, dim=1).schedule()) <= 2      # issue 4: at most 2 kernels for a row softmax
    assert len(F.log_softmax(rows, dim=1).schedule()) <= 2
