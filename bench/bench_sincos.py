"""Time sin and cos on 4M float32 and float64 elements: lazygrad vs NumPy vs PyTorch
(when installed), medians over repeats.

    python bench/bench_sincos.py [--n 4194304] [--repeat 15] [--ops sin,cos]
                                 [--dtypes float32,float64] [--inputs ordinary,huge,mixed]

Inputs:
  ordinary  uniform in [-100, 100): the Cody-Waite reduction only (|x| < 2**19)
  huge      |x| log-uniform over [2**20, 2**60): every element needs Payne-Hanek
  mixed     ordinary, with 1 element in 1000 huge

Every iteration realises a FRESH tensor (nodes are interned, so the same
expression over the same tensor would return the result already computed);
the timed region is the realisation only. The max error against NumPy (in
ulp of the result, or absolute for cos, which lazygrad builds from sin(x/2))
is printed next to each lazygrad line.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import lazygrad as lg  # noqa: E402


def make_inputs(kind: str, n: int, dtype) -> np.ndarray:
    rng = np.random.default_rng(0)
    ordinary = rng.uniform(-100.0, 100.0, n)
    huge = np.exp2(rng.uniform(20, 60, n)) * rng.choice([-1.0, 1.0], n)
    if kind == "ordinary":
        x = ordinary
    elif kind == "huge":
        x = huge
    elif kind == "mixed":
        x = np.where(rng.random(n) < 1e-3, huge, ordinary)
    else:
        raise SystemExit(f"unknown --inputs {kind}")
    return x.astype(dtype)


def error(got: np.ndarray, x: np.ndarray, op: str) -> str:
    want = getattr(np, op)(x.astype(np.float64))
    if op == "cos":
        return f"max abs err {float(np.max(np.abs(got.astype(np.float64) - want))):.1e}"
    want_t = want.astype(got.dtype)
    ulp = np.spacing(np.abs(want_t)).astype(np.float64)
    return f"max err {float(np.max(np.abs(got.astype(np.float64) - want) / ulp)):.2f} ulp"


def bench(op: str, dtype: str, kind: str, n: int, repeat: int) -> None:
    x = make_inputs(kind, n, np.dtype(dtype))
    got = getattr(lg.from_numpy(x), op)().numpy()
    err = error(got, x, op)
    del got

    def run_lazygrad():
        out = getattr(lg.from_numpy(x), op)()
        t0 = time.perf_counter()
        out.realize()
        return time.perf_counter() - t0

    def run_numpy():
        t0 = time.perf_counter()
        getattr(np, op)(x)
        return time.perf_counter() - t0

    runners = {"lazygrad": run_lazygrad, "numpy": run_numpy}
    try:
        import torch
        xt = torch.from_numpy(x)

        def run_torch():
            t0 = time.perf_counter()
            getattr(torch, op)(xt)
            return time.perf_counter() - t0
        runners["torch"] = run_torch
    except ImportError:
        pass
    # interleave the libraries so that a burst of load on a shared machine hits all of them alike
    times = {name: [] for name in runners}
    for _ in range(repeat):
        for name, fn in runners.items():
            times[name].append(fn())
    med = {name: statistics.median(ts) for name, ts in times.items()}
    print(f"{op} {dtype} {kind} n={n} (median of {repeat}; {lg.runtime.cpu.num_threads()} threads)")
    for name, t in med.items():
        extra = f"  ({err})" if name == "lazygrad" else ""
        ratio = "" if name == "lazygrad" else f"  lazygrad speed / {name} = {t / med['lazygrad']:.2f}"
        print(f"  {name:<9} {t * 1e3:8.2f} ms{ratio}{extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4 * 1024 * 1024)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--ops", default="sin,cos")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--inputs", default="ordinary")
    args = parser.parse_args()
    for kind in args.inputs.split(","):
        for op in args.ops.split(","):
            for dtype in args.dtypes.split(","):
                bench(op, dtype, kind, args.n, args.repeat)


if __name__ == "__main__":
    main()
