"""Long fuzz runs that keep going after a failure and report each distinct bug once.

    cd tests && python -m fuzz.explore --graphs 5000 [--grad] [--seed 1] [--shrink]

pytest stops a hypothesis test at its first failure; this driver evaluates
every graph, groups failures by a signature (exception type and the line
that raised it, or the op that produced a wrong output), prints the smallest
graph of each group and, with --shrink, asks hypothesis for a minimal graph
with the same signature. The last line is the number of graphs evaluated.
"""
from __future__ import annotations

import argparse
import re
import sys
import time
import traceback

import numpy as np
from hypothesis import HealthCheck, Phase, find, given, settings, seed as hseed

from .graph import (Graph, compare_outputs, evaluate_lazygrad, evaluate_lazygrad_sliced, finite_difference_check,
                    gradients_lazygrad, probe_backward, run_numpy)
from .strategies import features, graphs
from .worker import Worker, WorkerCrashed, WorkerError


SLICED = False


def check(worker: Worker, graph: Graph, grad: bool) -> None:
    if grad:
        grads = worker.call(gradients_lazygrad, graph, label=repr(graph))
        finite_difference_check(graph, grads)
    else:
        fn = evaluate_lazygrad_sliced if SLICED else evaluate_lazygrad
        got = worker.call(fn, graph, label=repr(graph))
        compare_outputs(graph, got, run_numpy(graph, np.float64), run_numpy(graph, np.float32))


def signature(graph: Graph, exc: BaseException) -> str:
    if isinstance(exc, WorkerCrashed):
        return "crash: " + str(exc).splitlines()[0][:80]
    if isinstance(exc, WorkerError):
        frames = re.findall(r'File "([^"]+)", line (\d+)', exc.remote_traceback)
        lazy = [f for f in frames if "/lazygrad/" in f[0]] or frames
        where = f"{lazy[-1][0].split('/')[-1]}:{lazy[-1][1]}" if lazy else "?"
        return f"error {exc.type_name} at {where}: {exc.message[:60]}"
    if isinstance(exc, AssertionError):
        text = str(exc)
        m = re.search(r"output \d+ \(v(\d+)\)", text)
        if m:
            node = graph.nodes[int(m.group(1))]
            what = "dtype" if "dtype" in text.split("\n")[1] else ("shape" if "shape" in text.split("\n")[1]
                                                                    else "values")
            return f"mismatch ({what}) in {getattr(node, 'name', 'input')}"
        if "gradient checks failed" in text:
            return "gradient mismatch"
        return "assertion: " + text.splitlines()[0][:80]
    return f"harness {type(exc).__name__}: {str(exc)[:80]}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--graphs", type=int, default=1000)
    ap.add_argument("--grad", action="store_true")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--max-ops", type=int, default=10)
    ap.add_argument("--shrink", action="store_true")
    ap.add_argument("--sliced", action="store_true", help="split every kernel across 3 threads")
    args = ap.parse_args(argv)
    global SLICED
    SLICED = args.sliced

    feats = features()
    worker = Worker()
    if args.grad:
        status = worker.call(probe_backward)
        if status != "ok":
            print(f"backward() is not usable: {status}")
            return 2
    failures: dict[str, list] = {}
    first_seen: dict[str, int] = {}   # signature -> number of the graph that showed it first (to replay a run)
    count = [0]
    t0 = time.time()

    @settings(max_examples=args.graphs, deadline=None, phases=[Phase.generate], database=None,
              suppress_health_check=list(HealthCheck))
    @given(graph=graphs(feats=feats, grad=args.grad, max_ops=args.max_ops))
    def run(graph):
        count[0] += 1
        try:
            check(worker, graph, args.grad)
        except Exception as e:  # noqa: BLE001
            sig = signature(graph, e)
            failures.setdefault(sig, []).append((graph, e))
            first_seen.setdefault(sig, count[0])
        if count[0] % 500 == 0:
            print(f"... {count[0]} graphs, {len(failures)} distinct failures, {time.time() - t0:.0f} s",
                  flush=True)

    if args.seed is not None:
        run = hseed(args.seed)(run)
    run()
    worker.close()

    for sig, items in sorted(failures.items(), key=lambda kv: -len(kv[1])):
        graph, exc = min(items, key=lambda ge: (len(ge[0].nodes), len(repr(ge[0]))))
        print("=" * 100)
        print(f"{sig}  ({len(items)} graphs, first at graph #{first_seen[sig]})")
        if args.shrink:
            graph, exc = shrink(sig, graph, feats, args)
        text = str(exc)
        print(text if len(text) < 6000 else text[:6000] + "\n...")
    print("=" * 100)
    print(f"graphs evaluated: {count[0]}; distinct failures: {len(failures)}; {time.time() - t0:.0f} s")
    return 1 if failures else 0


def shrink(sig, graph, feats, args):
    """A minimal graph with the same failure signature (hypothesis.find)."""
    worker = Worker()
    last = {}

    def fails_same(g):
        try:
            check(worker, g, args.grad)
        except Exception as e:  # noqa: BLE001
            if signature(g, e) == sig:
                last[id(g)] = e
                return True
        return False
    try:
        small = find(graphs(feats=feats, grad=args.grad, max_ops=args.max_ops), fails_same,
                     settings=settings(max_examples=2000, deadline=None, database=None,
                                       suppress_health_check=list(HealthCheck)))
        exc = last.get(id(small))
        if exc is None:
            try:
                check(worker, small, args.grad)
                exc = AssertionError("(did not fail again)")
            except Exception as e:  # noqa: BLE001
                exc = e
        return small, exc
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        return graph, None
    finally:
        worker.close()


if __name__ == "__main__":
    sys.exit(main())
