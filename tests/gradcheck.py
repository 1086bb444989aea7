"""A small gradient checker: symbolic gradients against float64 finite differences.

`gradcheck(fn, *arrays)` builds float64 tensors from the NumPy arrays, takes
the symbolic gradient of `sum(fn(*tensors) * r)` (r: fixed random weights,
so that every output element matters) with `lazygrad.grad`, and compares it
with central differences of the same function evaluated by lazygrad.
Each finite-difference evaluation has the graph shape of the first one, so
after one compile they reuse the cached plan and run fast.
"""
from __future__ import annotations

import numpy as np

import lazygrad


def _weighted_sum(fn, tensors, weights):
    out = fn(*tensors)
    if weights is None:
        return out.sum()
    return (out * lazygrad.tensor(weights)).sum()


def symbolic_grads(fn, *arrays, weights=None):
    tensors = [lazygrad.tensor(np.asarray(a, dtype=np.float64), requires_grad=True) for a in arrays]
    loss = _weighted_sum(fn, tensors, weights)
    grads = lazygrad.grad(loss, tensors, allow_unused=True)
    return [np.zeros(a.shape) if g is None else g.numpy() for g, a in zip(grads, tensors)]


def numeric_grads(fn, *arrays, weights=None, eps=1e-6):
    arrays = [np.array(a, dtype=np.float64) for a in arrays]

    def value(args):
        with lazygrad.no_grad():
            return float(_weighted_sum(fn, [lazygrad.tensor(a) for a in args], weights).item())

    grads = []
    for k, a in enumerate(arrays):
        g = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            plus = [x.copy() for x in arrays]
            minus = [x.copy() for x in arrays]
            plus[k][i] += eps
            minus[k][i] -= eps
            g[i] = (value(plus) - value(minus)) / (2 * eps)
        grads.append(g)
    return grads


def gradcheck(fn, *arrays, rtol=1e-5, atol=1e-6, seed=0):
    """Assert that lazygrad's gradient of fn matches finite differences at `arrays`."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    with lazygrad.no_grad():
        out_shape = tuple(fn(*[lazygrad.tensor(a) for a in arrays]).shape)
    weights = np.random.default_rng(seed).uniform(0.5, 1.5, size=out_shape)
    got = symbolic_grads(fn, *arrays, weights=weights)
    want = numeric_grads(fn, *arrays, weights=weights)
    for k, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=f"gradient of input {k}")
    return got
