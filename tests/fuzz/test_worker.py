"""The worker process: a dead or hung worker becomes a failing example that names the graph."""
from __future__ import annotations

import os
import time

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from .graph import Graph, evaluate_lazygrad
from .strategies import features, graphs
from .worker import Worker, WorkerCrashed, WorkerError


CRASHERS = ("neg", "abs", "relu")


def _abort_on_some_ops(graph: Graph):
    """Stands in for an LLVM fatal error: kills the process for graphs holding a neg, abs or relu."""
    if any(op.name in CRASHERS for op in graph.ops):
        os.abort()
    return len(graph.nodes)


def _raise_value_error(text):
    raise ValueError(text)


def _segfault():
    import signal
    os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(10)


def _hang(seconds):
    time.sleep(seconds)


def _nvptx_fatal_error():
    """A real LLVM fatal error: llvm.exp.f32 has no NVPTX lowering ("Cannot select")."""
    import llvmlite.binding as llvm
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    ir = """
target triple = "nvptx64-nvidia-cuda"
declare float @llvm.exp.f32(float)
define ptx_kernel void @k(float addrspace(1)* %p) {
  %v = load float, float addrspace(1)* %p
  %e = call float @llvm.exp.f32(float %v)
  store float %e, float addrspace(1)* %p
  ret void
}
"""
    tm = llvm.Target.from_triple("nvptx64-nvidia-cuda").create_target_machine(cpu="sm_80")
    mod = llvm.parse_assembly(ir)
    return tm.emit_assembly(mod)


def test_abort_becomes_an_exception_and_the_worker_restarts():
    with Worker() as w:
        assert w.call(len, "abc") == 3
        with pytest.raises(WorkerCrashed) as info:
            w.call(os.abort, label="GRAPH-DESCRIPTION-42")
        text = str(info.value)
        assert "SIGABRT" in text and "GRAPH-DESCRIPTION-42" in text
        assert w.call(len, "abcd") == 4  # a fresh worker took over
        assert w.restarts == 2


def test_exit_and_segfault_are_reported():
    with Worker() as w:
        with pytest.raises(WorkerCrashed, match="exit status 3"):
            w.call(os._exit, 3, label="g")
        with pytest.raises(WorkerCrashed, match="SIGSEGV"):
            w.call(_segfault, label="segfault")
        assert w.call(abs, -5) == 5


def test_remote_exception_is_returned_with_its_traceback():
    with Worker() as w:
        with pytest.raises(WorkerError) as info:
            w.call(_raise_value_error, "bad shape (2, 3)", label="the graph")
        assert info.value.type_name == "ValueError"
        assert "bad shape (2, 3)" in str(info.value) and "the graph" in str(info.value)
        assert "_raise_value_error" in info.value.remote_traceback
        assert w.restarts == 1  # an exception does not cost a restart


def test_hung_worker_is_killed_after_the_timeout():
    with Worker(timeout=1.0) as w:
        with pytest.raises(WorkerCrashed, match="did not answer"):
            w.call(_hang, 60, label="slow graph")
        assert w.call(abs, -1) == 1


def test_real_llvm_fatal_error_is_survived():
    import llvmlite.binding as llvm
    try:
        llvm.initialize_all_targets()
        llvm.Target.from_triple("nvptx64-nvidia-cuda")
    except Exception:  # noqa: BLE001
        pytest.skip("this llvmlite has no NVPTX target")
    with Worker() as w:
        try:
            w.call(_nvptx_fatal_error, label="exp on nvptx")
        except WorkerCrashed as e:  # LLVM printed its reason and ended the process (exit(1) or abort())
            text = str(e)
            assert "exp on nvptx" in text and "died" in text
            assert "fexp" in text or "LLVM ERROR" in text  # its stderr travels with the exception
        except WorkerError:
            pass  # a future LLVM may report it as an exception: also fine, the run survives
        assert w.call(abs, -2) == 2


def test_hypothesis_reports_the_crashing_graph():
    """A fuzz test whose worker dies on some graphs fails with a (shrunk) graph, not a dead run."""
    feats = features()
    w = Worker()

    @settings(max_examples=60, deadline=None, database=None, derandomize=True,
              phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))
    @given(graph=graphs(feats=feats, max_ops=4))
    def fuzz(graph):
        w.call(_abort_on_some_ops, graph, label=repr(graph))

    try:
        with pytest.raises(WorkerCrashed) as info:
            fuzz()
    finally:
        w.close()
    text = str(info.value)
    assert "SIGABRT" in text
    # the message names the (shrunk) graph that killed the worker
    assert "Graph(" in text and any(f".{name}()" in text for name in CRASHERS)


def test_worker_evaluates_lazygrad_graphs():
    from .graph import Input, Op
    g = Graph("float32", (Input((2, 3), "float", 1), Op("exp", (0,)), Op("sum", (1,), (1, False))), (2,), ("float",))
    with Worker() as w:
        (out,) = w.call(evaluate_lazygrad, g, label=repr(g))
    assert out.shape == (2,) and out.dtype.name == "float32"
