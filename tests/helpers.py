"""Shared test helpers: NumPy is the oracle."""
from __future__ import annotations

import numpy as np

import lazygrad as lg


def assert_close(got, expected, rtol=1e-5, atol=1e-6):
    """Values, shape and dtype kind must match; NaNs must be in the same places."""
    got_arr = got.numpy() if isinstance(got, lg.Tensor) else np.asarray(got)
    expected = np.asarray(expected)
    assert got_arr.shape == expected.shape, f"shape {got_arr.shape} != {expected.shape}"
    if expected.dtype == np.bool_:
        assert got_arr.dtype == np.bool_, f"dtype {got_arr.dtype} is not bool"
        np.testing.assert_array_equal(got_arr, expected)
        return
    if np.issubdtype(expected.dtype, np.integer):
        assert np.issubdtype(got_arr.dtype, np.integer), f"dtype {got_arr.dtype} is not an integer type"
        np.testing.assert_array_equal(got_arr, expected)
        return
    np.testing.assert_allclose(got_arr.astype(np.float64), expected.astype(np.float64), rtol=rtol, atol=atol,
                               equal_nan=True)


def random_array(shape, dtype, rng, low=-3.0, high=3.0):
    if dtype == np.bool_:
        return rng.random(shape) > 0.5
    if np.issubdtype(dtype, np.integer):
        return rng.integers(-5, 6, size=shape).astype(dtype)
    return rng.uniform(low, high, size=shape).astype(dtype)


def non_contiguous_variants(arr: np.ndarray):
    """(name, numpy array, function building the same view of a lazygrad tensor) for 2-D+ inputs."""
    out = [("contiguous", arr, lambda t: t)]
    if arr.ndim >= 2:
        out.append(("permuted", np.swapaxes(arr, 0, 1).copy(), None))
    return out
