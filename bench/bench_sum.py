"""Time float32 sums (full, per row) and their accuracy: lazygrad vs NumPy vs PyTorch (when installed).

    python bench/bench_sum.py [--repeat 25]

Long float32 sums in lazygrad are summed in two levels (blocks of up to
2048 elements in float32 vector lanes, the block sums in float64; see
`Lowerer.render_cascade_sum` in lazygrad/codegen/lower/reduce.py). This prints, per
case, the fastest of `--repeat` runs of each library and the relative error
of each result against a float64 reference, so that a change to the
reduction loops can be checked for both speed and accuracy. Every lazygrad
run uses a fresh tensor (nodes are interned: the same expression over the
same tensor would return the result already computed).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import lazygrad as lg  # noqa: E402

CASES = {
    "sum of 16M": ((1 << 24,), None),
    "sum of 256K": ((1 << 18,), None),
    "rows 4096x4096 .sum(1)": ((4096, 4096), 1),
    "rows 512x3000 .sum(1)": ((512, 3000), 1),
}


def _fastest(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        best = min(best, fn())
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=25)
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    for name, (shape, dim) in CASES.items():
        a = (rng.standard_normal(shape, dtype=np.float32) + 0.1).astype(np.float32)
        exact = a.astype(np.float64).sum(axis=dim)

        def error(got):
            return float(np.max(np.abs(np.asarray(got, np.float64) - exact)) / np.max(np.abs(exact)))

        def run_lazygrad():
            out = lg.from_numpy(a).sum(dim)
            t0 = time.perf_counter()
            out.realize()
            return time.perf_counter() - t0

        def run_numpy():
            t0 = time.perf_counter()
            a.sum(axis=dim)
            return time.perf_counter() - t0

        rows = [("lazygrad", run_lazygrad, error(lg.from_numpy(a).sum(dim).numpy())),
                ("numpy", run_numpy, error(a.sum(axis=dim)))]
        if torch is not None:
            ta = torch.from_numpy(a)

            def run_torch():
                t0 = time.perf_counter()
                ta.sum(dim) if dim is not None else ta.sum()
                return time.perf_counter() - t0
            rows.append(("torch", run_torch, error((ta.sum(dim) if dim is not None else ta.sum()).numpy())))
        print(f"{name} (float32, {a.nbytes / 2**20:.0f} MiB)")
        for lib, fn, err in rows:
            t = _fastest(fn, args.repeat)
            print(f"  {lib:9s} {t * 1e3:8.3f} ms  {a.nbytes / t / 1e9:6.1f} GB/s  max error / max |sum| {err:.1e}")


if __name__ == "__main__":
    main()
