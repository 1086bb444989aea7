"""Time a float32 matrix product: lazygrad vs NumPy (OpenBLAS) vs PyTorch, in one run.

    python bench/bench_matmul.py [--n 1024] [--repeat 15]

lazygrad builds `a @ b` as `(a[:, :, None] * b[None, :, :]).sum(1)`, one
kernel, which the code generator lowers into a register-blocked loop nest
(6 x 16 outputs per block, vector fused multiply-adds, rows split across
threads; see lazygrad/codegen/lower/upcast.py). Each lazygrad iteration builds its
product from new input tensors: nodes are interned, so the same expression on
the same tensors would return the result already computed.

Medians over `--repeat` runs are printed, with GFLOP/s (2*n^3 flops per
product) and the ratio of lazygrad's speed to each other library's.

Note on the environment: some machines set OPENBLAS_CORETYPE and/or
OPENBLAS_L2_SIZE, which can make NumPy's OpenBLAS pick a slower kernel. The
script prints them when set; for NumPy's best speed run it as
`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/bench_matmul.py`.
All three libraries use every core by default. For a one-core comparison
(steadier on a machine where other work runs):
`OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 LAZYGRAD_THREADS=1 python bench/bench_matmul.py`.
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


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        times.append(fn())
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    n = args.n
    flops = 2.0 * n ** 3
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(f"note: {var}={os.environ[var]} is set; it can slow NumPy (see this script's docstring)")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    expected = a @ b

    # lazygrad: compile once, then time realisations over new inputs
    first = (lg.from_numpy(a) @ lg.from_numpy(b)).numpy()
    err = float(np.abs(first - expected).max() / np.abs(expected).max())

    def run_lazygrad():
        ta, tb = lg.from_numpy(a), lg.from_numpy(b)
        c = ta @ tb
        t0 = time.perf_counter()
        c.realize()
        return time.perf_counter() - t0

    def run_numpy():
        t0 = time.perf_counter()
        np.matmul(a, b)
        return time.perf_counter() - t0

    results = {}
    run_numpy()
    results["numpy"] = median_time(run_numpy, args.repeat)
    results["lazygrad"] = median_time(run_lazygrad, args.repeat)
    try:
        import torch
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)

        def run_torch():
            t0 = time.perf_counter()
            torch.mm(ta, tb)
            return time.perf_counter() - t0
        run_torch()
        results["torch"] = median_time(run_torch, args.repeat)
    except ImportError:
        pass

    print(f"{n}x{n} @ {n}x{n} float32, median of {args.repeat} (max relative error of lazygrad: {err:.1e})")
    for name, t in results.items():
        print(f"  {name:<9} {t * 1e3:9.2f} ms  {flops / t / 1e9:8.1f} GFLOP/s")
    mine = results["lazygrad"]
    for name, t in results.items():
        if name != "lazygrad":
            print(f"  lazygrad speed / {name} speed = {t / mine:.2f}")


if __name__ == "__main__":
    main()
