"""Every elementwise op against NumPy: several shapes and dtypes, 0-d, size-1 and empty tensors."""
import numpy as np
import pytest

import lazygrad as lg
from helpers import assert_close, random_array

SHAPES = [(), (1,), (5,), (3, 4), (2, 1, 3), (0, 3)]
FLOATS = [np.float32, np.float64]
RNG = np.random.default_rng(0)

UNARY = {
    "neg": (lambda t: -t, lambda a: -a),
    "exp": (lambda t: t.exp(), np.exp),
    "log": (lambda t: t.abs().log(), lambda a: np.log(np.abs(a))),
    "sqrt": (lambda t: t.abs().sqrt(), lambda a: np.sqrt(np.abs(a))),
    "sin": (lambda t: t.sin(), np.sin),
    "cos": (lambda t: t.cos(), np.cos),
    "tanh": (lambda t: t.tanh(), np.tanh),
    "sigmoid": (lambda t: t.sigmoid(), lambda a: 1 / (1 + np.exp(-a))),
    "relu": (lambda t: t.relu(), lambda a: np.maximum(a, 0)),
    "abs": (lambda t: t.abs(), np.abs),
    "reciprocal": (lambda t: t.reciprocal(), lambda a: 1 / a),
    "floor": (lambda t: t.floor(), np.floor),
    "ceil": (lambda t: t.ceil(), np.ceil),
    "trunc": (lambda t: t.trunc(), np.trunc),
    "square": (lambda t: t.square(), np.square),
    "pow3": (lambda t: t ** 3, lambda a: a ** 3),
    "pow_half": (lambda t: t.abs() ** 0.5, lambda a: np.abs(a) ** 0.5),
    "pow_float": (lambda t: t.abs() ** 1.7, lambda a: np.abs(a) ** 1.7),
    "clamp": (lambda t: t.clamp(-1.0, 0.5), lambda a: np.clip(a, -1.0, 0.5)),
    "sign": (lambda t: t.sign(), np.sign),
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary(name, dtype, shape):
    fn, ref = UNARY[name]
    a = random_array(shape, dtype, RNG)
    with np.errstate(all="ignore"):
        expected = ref(a).astype(dtype)
    out = fn(lg.tensor(a))
    assert out.dtype.np == np.dtype(dtype)
    assert_close(out, expected, rtol=2e-6 if dtype == np.float32 else 1e-12, atol=1e-6 if dtype == np.float32 else 1e-12)


BINARY = {
    "add": (lambda x, y: x + y, np.add),
    "sub": (lambda x, y: x - y, np.subtract),
    "mul": (lambda x, y: x * y, np.multiply),
    "div": (lambda x, y: x / y, np.divide),
    "maximum": (lambda x, y: x.maximum(y), np.maximum),
    "minimum": (lambda x, y: x.minimum(y), np.minimum),
    "pow": (lambda x, y: x.abs() ** y, lambda a, b: np.abs(a) ** b),
    "lt": (lambda x, y: x < y, np.less),
    "le": (lambda x, y: x <= y, np.less_equal),
    "gt": (lambda x, y: x > y, np.greater),
    "ge": (lambda x, y: x >= y, np.greater_equal),
    "eq": (lambda x, y: x == y, np.equal),
    "ne": (lambda x, y: x != y, np.not_equal),
}

BROADCAST_PAIRS = [((), ()), ((4,), ()), ((3, 4), (4,)), ((3, 1), (1, 4)), ((2, 1, 3), (4, 1)), ((0, 3), (3,))]


@pytest.mark.parametrize("shapes", BROADCAST_PAIRS)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_float32_broadcasting(name, shapes):
    fn, ref = BINARY[name]
    a = random_array(shapes[0], np.float32, RNG)
    b = random_array(shapes[1], np.float32, RNG)
    if name == "div":
        b = np.where(np.abs(b) < 0.1, 0.5, b).astype(np.float32)
    with np.errstate(all="ignore"):
        expected = ref(a, b)
    assert_close(fn(lg.tensor(a), lg.tensor(b)), expected, rtol=3e-6)


INT_BINARY = {
    "add": (lambda x, y: x + y, np.add),
    "mul": (lambda x, y: x * y, np.multiply),
    "sub": (lambda x, y: x - y, np.subtract),
    "floordiv": (lambda x, y: x // y, np.floor_divide),
    "remainder": (lambda x, y: x % y, np.remainder),
    "maximum": (lambda x, y: x.maximum(y), np.maximum),
    "minimum": (lambda x, y: x.minimum(y), np.minimum),
}


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("name", sorted(INT_BINARY))
def test_integer_binary(name, dtype):
    fn, ref = INT_BINARY[name]
    a = random_array((4, 5), dtype, RNG)
    b = random_array((4, 5), dtype, RNG)
    b = np.where(b == 0, 3, b).astype(dtype)
    out = fn(lg.tensor(a), lg.tensor(b))
    assert out.dtype.np == np.dtype(dtype)
    assert_close(out, ref(a, b))


def test_float_floordiv_and_remainder_follow_python_signs():
    a = np.array([7.5, -7.5, 7.5, -7.5, 0.0], dtype=np.float32)
    b = np.array([2.0, 2.0, -2.0, -2.0, 3.0], dtype=np.float32)
    assert_close(lg.tensor(a) // lg.tensor(b), np.floor_divide(a, b))
    assert_close(lg.tensor(a) % lg.tensor(b), np.remainder(a, b))


def test_bool_logic():
    a = RNG.random((3, 4)) > 0.5
    b = RNG.random((3, 4)) > 0.5
    ta, tb = lg.tensor(a), lg.tensor(b)
    assert_close(ta & tb, a & b)
    assert_close(ta | tb, a | b)
    assert_close(ta ^ tb, a ^ b)
    assert_close(~ta, ~a)
    assert_close(ta.logical_not(), ~a)


def test_scalars_on_either_side():
    a = random_array((2, 3), np.float32, RNG)
    t = lg.tensor(a)
    assert_close(2 + t, 2 + a)
    assert_close(2 - t, 2 - a)
    assert_close(2 * t, 2 * a)
    assert_close(2 / (t.abs() + 1), 2 / (np.abs(a) + 1))
    assert_close(t - 1.5, a - 1.5)
    assert_close(2 ** t, 2.0 ** a, rtol=3e-6)
    assert_close(t > 0, a > 0)
    assert_close(np.float32(2.0) * t, 2 * a)


def test_where_broadcasts():
    a = random_array((3, 4), np.float32, RNG)
    assert_close(lg.where(lg.tensor(a) > 0, lg.tensor(a), 0.0), np.where(a > 0, a, 0.0).astype(np.float32))
    assert_close(lg.where(lg.tensor(a) > 0, 1, -1), np.where(a > 0, 1, -1))


def test_special_values_match_numpy():
    x = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e-40, 88.5, -100.0, 1e30], dtype=np.float32)
    t = lg.tensor(x)
    with np.errstate(all="ignore"):
        assert_close(t.exp(), np.exp(x), rtol=2e-6)
        assert_close(t.log(), np.log(x), rtol=2e-6)
        assert_close(t.sqrt(), np.sqrt(x))
        assert_close(t.sigmoid(), 1 / (1 + np.exp(-x)), rtol=2e-6)
        assert_close(t.abs(), np.abs(x))
        assert_close(t.relu(), np.where(np.isnan(x), np.nan, np.maximum(x, 0)))
        # sin reduces every finite argument exactly (Cody-Waite below 2**19, Payne-Hanek above): 1e30 too
        assert_close(t.sin(), np.sin(x.astype(np.float64)).astype(np.float32), rtol=2e-6, atol=2e-6)
        assert_close(t.floor(), np.floor(x))


def test_exp_log_accuracy_over_the_whole_range():
    """float32 exp/log within a few ulp of the float64 reference across the representable range."""
    xs = np.linspace(-103, 88.7, 200001).astype(np.float32)
    got = lg.tensor(xs).exp().numpy().astype(np.float64)
    ref = np.exp(xs.astype(np.float64))
    normal = ref > 1.2e-38
    ulp = np.spacing(ref[normal].astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got[normal] - ref[normal]) / ulp) <= 3
    ys = np.exp(np.linspace(-87, 88, 200001)).astype(np.float32)
    got = lg.tensor(ys).log().numpy().astype(np.float64)
    ref = np.log(ys.astype(np.float64))
    ulp = np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got - ref) / ulp) <= 4


@pytest.mark.parametrize("view", ["permuted", "sliced", "expanded", "flipped"])
def test_non_contiguous_inputs(view):
    a = random_array((4, 6), np.float32, RNG)
    b = random_array((6, 4), np.float32, RNG)
    ta, tb = lg.tensor(a), lg.tensor(b)
    if view == "permuted":
        got, exp = ta.T * tb + 1, a.T * b + 1
    elif view == "sliced":
        got, exp = ta[1:, ::2].exp() - tb[::2, 1:4], np.exp(a[1:, ::2]) - b[::2, 1:4]
    elif view == "expanded":
        got, exp = ta[:, :1].expand(4, 6) * ta, np.broadcast_to(a[:, :1], (4, 6)) * a
    else:
        got, exp = ta.flip(0) + ta.flip(1), a[::-1] + a[:, ::-1]
    assert_close(got, exp, rtol=2e-6)
