"""Time the fused elementwise chain `exp(relu(a*b + c) * 0.5)` on 16M float32 elements:
lazygrad vs NumPy vs PyTorch (when installed), in one run.

    python bench/bench_elementwise.py [--n 16777216] [--repeat 15]

lazygrad computes the whole chain in one kernel: one pass over memory (3
reads, 1 write), the exp as a vectorised polynomial, split across every core.
NumPy makes five passes with a temporary array each. Every iteration uses
FRESH input tensors: nodes are interned, so the same expression over the same
tensors would return the result already computed. Inputs are made outside the
timed region; the timed region is the realisation (the output buffer comes
from lazygrad's buffer pool when an earlier result was freed).

Medians of `--repeat` runs are printed with the ratio of lazygrad's speed to
each other library's.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16 * 1024 * 1024)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal(args.n, dtype=np.float32) for _ in range(3))
    expected = np.exp(np.maximum(a * b + c, 0) * 0.5)

    def fresh_inputs():
        return lg.from_numpy(a), lg.from_numpy(b), lg.from_numpy(c)

    ta, tb, tc = fresh_inputs()
    got = ((ta * tb + tc).relu() * 0.5).exp().numpy()
    err = float(np.max(np.abs(got - expected) / np.maximum(np.abs(expected), 1e-30)))
    del got

    def run_lazygrad():
        ta, tb, tc = fresh_inputs()
        out = ((ta * tb + tc).relu() * 0.5).exp()
        t0 = time.perf_counter()
        out.realize()
        return time.perf_counter() - t0

    def run_numpy():
        t0 = time.perf_counter()
        np.exp(np.maximum(a * b + c, 0) * 0.5)
        return time.perf_counter() - t0

    results = {"numpy": statistics.median(run_numpy() for _ in range(args.repeat)),
               "lazygrad": statistics.median(run_lazygrad() for _ in range(args.repeat))}
    try:
        import torch
        xa, xb, xc = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(c)

        def run_torch():
            t0 = time.perf_counter()
            torch.exp(torch.relu(xa * xb + xc) * 0.5)
            return time.perf_counter() - t0
        results["torch"] = statistics.median(run_torch() for _ in range(args.repeat))
    except ImportError:
        pass

    gb = 4 * args.n * 4 / 1e9  # 3 inputs read + 1 output written, the least any implementation moves
    print(f"exp(relu(a*b+c)*0.5) on {args.n} float32, median of {args.repeat} "
          f"(max relative error of lazygrad: {err:.1e}; {lg.runtime.cpu.num_threads()} threads)")
    for name, t in results.items():
        print(f"  {name:<9} {t * 1e3:9.2f} ms  {gb / t:6.1f} GB/s")
    mine = results["lazygrad"]
    for name, t in results.items():
        if name != "lazygrad":
            print(f"  lazygrad speed / {name} speed = {t / mine:.2f}")


if __name__ == "__main__":
    main()
