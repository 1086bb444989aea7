"""Random smooth float64 graphs through lazygrad's backward(), against float64 finite differences.

Skipped while `Tensor.backward` raises NotImplementedError.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from .conftest import PHASES, Counter, examples, long_run, seeded
from .graph import finite_difference_check, gradients_lazygrad, probe_backward
from .strategies import features, graphs

FEATURES = features()
COUNT = Counter("backward")


@pytest.fixture(scope="module")
def autograd(worker):
    status = worker.call(probe_backward, label="probe: sum(x*x).backward()")
    if status.startswith("NotImplementedError"):
        pytest.skip(f"lazygrad has no backward() yet ({status})")
    assert status == "ok", status
    yield
    COUNT.log()


@seeded
@settings(max_examples=examples(60), deadline=None, derandomize=not long_run(),
          suppress_health_check=list(HealthCheck), print_blob=True, phases=PHASES)
@given(graph=graphs(feats=FEATURES, grad=True, max_ops=6))
def test_backward_matches_finite_differences(worker, autograd, graph):
    COUNT.count += 1
    grads = worker.call(gradients_lazygrad, graph, label=repr(graph))
    checked, skipped = finite_difference_check(graph, grads)
    assert checked + skipped > 0
