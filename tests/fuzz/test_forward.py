"""Differential fuzzing: random graphs through lazygrad against a NumPy evaluation of the same graph.

Each graph is evaluated by lazygrad in a worker process (an LLVM abort becomes
a failing example naming the graph) and by NumPy in float64 and float32 here;
see graph.compare_outputs for the tolerance.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from .conftest import PHASES, Counter, examples, long_run, seeded
from .graph import compare_outputs, evaluate_lazygrad, evaluate_lazygrad_sliced, run_numpy
from .worker import Worker
from .strategies import features, graphs

FEATURES = features()
COUNT = Counter("forward")


@pytest.fixture(scope="module", autouse=True)
def _log_count():
    yield
    COUNT.log()


def _settings(default):
    return settings(max_examples=examples(default), deadline=None, derandomize=not long_run(),
                    suppress_health_check=list(HealthCheck), print_blob=True,
                    phases=PHASES)


@seeded
@_settings(150)
@given(graph=graphs(feats=FEATURES))
def test_forward_matches_numpy(worker, graph):
    COUNT.count += 1
    got = worker.call(evaluate_lazygrad, graph, label=repr(graph))
    ref64 = run_numpy(graph, np.float64)
    ref32 = run_numpy(graph, np.float32)
    assert len(got) == len(ref64)
    compare_outputs(graph, got, ref64, ref32)


@seeded
@_settings(40)
@given(graph=graphs(feats=FEATURES, max_ops=14))
def test_forward_long_chains(worker, graph):
    """Longer graphs: more fusion decisions, more kernels per schedule."""
    COUNT.count += 1
    got = worker.call(evaluate_lazygrad, graph, label=repr(graph))
    compare_outputs(graph, got, run_numpy(graph, np.float64), run_numpy(graph, np.float32))


@pytest.fixture(scope="module")
def sliced_worker():
    """A worker of its own: evaluate_lazygrad_sliced changes its process for good."""
    w = Worker()
    yield w
    w.close()


@seeded
@_settings(40)
@given(graph=graphs(feats=FEATURES))
def test_forward_with_kernels_split_across_threads(sliced_worker, graph):
    """Every kernel run as slices [start, end) of its outer loop on 3 threads, as big kernels are."""
    COUNT.count += 1
    got = sliced_worker.call(evaluate_lazygrad_sliced, graph, label=repr(graph))
    compare_outputs(graph, got, run_numpy(graph, np.float64), run_numpy(graph, np.float32))
