"""The CPU buffer pool: a result that becomes garbage serves the next result of its size
(fresh memory costs page faults), but never while something still sees its memory."""
from __future__ import annotations

import gc

import numpy as np

import lazygrad as lg


def _allocated() -> int:
    return lg.stats()["buffers_allocated"]


def _result(a: np.ndarray, k: float):
    t = lg.from_numpy(a)
    return ((t * k + 1).relu() * 0.5).exp().realize()


def test_dropped_results_are_reused():
    a = np.random.default_rng(0).standard_normal(5000).astype(np.float32)
    for _ in range(3):  # compile and settle
        _result(a, 2.0)
    before = _allocated()
    for _ in range(5):
        _result(a, 2.0)  # dropped at once: no reference cycle may keep it alive until gc runs
    assert _allocated() == before


def test_memory_still_seen_through_numpy_is_not_reused():
    a = np.random.default_rng(1).standard_normal(4000).astype(np.float32)
    view = _result(a, 3.0).numpy()  # the tensor is garbage, its memory is not
    kept = view.copy()
    gc.collect()
    for k in (4.0, 5.0, 6.0):
        _result(a, k)
    np.testing.assert_array_equal(view, kept)


def test_memory_still_held_by_a_tensor_is_not_reused():
    a = np.random.default_rng(2).standard_normal(3000).astype(np.float32)
    t = _result(a, 3.0)
    kept = t.numpy().copy()
    for k in (4.0, 5.0):
        _result(a, k)
    np.testing.assert_array_equal(t.numpy(), kept)
