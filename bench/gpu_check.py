#!/usr/bin/env python
"""One prepared check of lazygrad on an NVIDIA GPU (made for a lent H100/H200, < 5 minutes).

    python bench/gpu_check.py            # everything
    python bench/gpu_check.py --no-tests # only the measurements

1. Runs the GPU tests: `pytest -q tests/test_cuda.py tests/test_ptx.py` (on a GPU, test_cuda.py
   runs on the real device).
2. Measures, next to PyTorch CUDA in the same process, with CUDA events and medians:
   * the fused elementwise chain exp(relu(a*b + c) * 0.5) on 64M float32
     (lazygrad: one kernel; PyTorch eager: five), as GB/s of the 16 bytes per element the
     chain must move at least (three reads, one write);
   * a row softmax of a (8192, 8192) float32 matrix, as GB/s of 8 bytes per element (one read,
     one write), whatever the number of passes each implementation makes;
   * a device-to-device copy (cuMemcpyDtoD, and torch's copy_) as the ceiling: 2 x bytes / time.
   The target for the elementwise chain is 80% or more of the copy bandwidth.
Every part reports its own failure (with the traceback) and the rest still runs; the exit
status is 1 when anything failed.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

FAILURES: list = []
RESULTS: list = []


def section(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def attempt(title: str, fn, *args):
    """Run one part; on failure print what failed and carry on."""
    section(title)
    t0 = time.perf_counter()
    try:
        out = fn(*args)
        print(f"[{title}: done in {time.perf_counter() - t0:.1f} s]", flush=True)
        return out
    except BaseException as e:  # noqa: BLE001 - report everything, including KeyboardInterrupt's cousins
        if isinstance(e, KeyboardInterrupt):
            raise
        FAILURES.append(f"{title}: {type(e).__name__}: {e}")
        print(f"FAILED: {title}: {type(e).__name__}: {e}", flush=True)
        traceback.print_exc()
        return None


# ---- 0. the machine ----

def describe_machine():
    import lazygrad as lg
    print(f"python {sys.version.split()[0]}, lazygrad {lg.__version__}")
    try:
        import torch
        print(f"torch {torch.__version__}, CUDA available to torch: {torch.cuda.is_available()}")
    except ImportError:
        print("torch: not installed (PyTorch comparisons will be skipped)")
    except Exception as e:  # noqa: BLE001 - a broken torch must not stop the lazygrad checks
        print(f"torch failed to import ({type(e).__name__}: {e}): no PyTorch comparison")
    if not lg.cuda.is_available():
        raise RuntimeError(f"lazygrad sees no usable GPU: {lg.cuda._driver_status()}")
    from lazygrad.runtime import cuda as rt
    dev = rt.current()
    version = rt._INT(0)
    rt.driver().call("cuDriverGetVersion", rt.ctypes.byref(version))
    print(f"device: {dev.name}, compute capability {dev.capability[0]}.{dev.capability[1]}, "
          f"{dev.sm_count} SMs, {dev.total_memory / 2**30:.1f} GiB; PTX target {dev.arch}; "
          f"driver API {version.value // 1000}.{version.value % 1000 // 10}")


# ---- 1. tests ----

def run_tests(timeout_s: int):
    cmd = [sys.executable, "-m", "pytest", "-q", "-rfEsx", "tests/test_cuda.py", "tests/test_ptx.py"]
    print(" ".join(cmd), flush=True)
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        print(out[-6000:])
        raise RuntimeError(f"the tests did not finish within {timeout_s} s") from None
    text = proc.stdout + proc.stderr
    print(text[-12000:])
    if proc.returncode != 0:
        raise RuntimeError(f"pytest exited with status {proc.returncode}")


def _torch():
    """torch when it can use the GPU, else None (and say why)."""
    try:
        import torch
    except ImportError:
        print("torch is not installed: no PyTorch comparison")
        return None
    if not torch.cuda.is_available():
        print(f"torch {torch.__version__} has no CUDA device: no PyTorch comparison")
        return None
    return torch


# ---- timing ----

def median_ms_lazygrad(run_batch, batch: int, batches: int) -> float:
    """Median over `batches` of (GPU time of `batch` back-to-back calls) / batch, by CUDA events."""
    import lazygrad as lg
    times = []
    for _ in range(batches):
        start, end = lg.cuda.Event(), lg.cuda.Event()
        prepared = run_batch.prepare(batch)
        start.record()
        run_batch.run(prepared)
        end.record()
        times.append(start.elapsed_time(end) / batch)
    return statistics.median(times)


def median_ms_torch(fn, batch: int, batches: int) -> float:
    import torch
    times = []
    for _ in range(batches):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(batch):
            fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / batch)
    return statistics.median(times)


def fresh(t):
    """A new tensor over the same GPU memory. Nodes are interned: the same expression over the same
    tensors is the same node, already computed after the first call; a fresh BUFFER node is not."""
    import lazygrad as lg
    from lazygrad.ir import node as N
    buf = t._node.arg if t._node.op.name == "BUFFER" else t._node.realized
    return lg.Tensor._from_node(N.buffer(N.Buffer(buf.device, buf.dtype, buf.numel, buf.data), t._node.shape))


class LazyBatch:
    """Build `batch` lazy graphs over fresh inputs first (host work), then realise them back to back:
    the GPU runs the kernels one after another while the host issues the next launch."""

    def __init__(self, build):
        self.build = build

    def prepare(self, batch):
        return [self.build() for _ in range(batch)]

    def run(self, outs):
        import lazygrad as lg
        for o in outs:
            lg.realize(o)


def report(name: str, nbytes: int, ms: float, ceiling_gbs: float | None) -> float:
    gbs = nbytes / (ms * 1e-3) / 1e9
    share = f"  ({100 * gbs / ceiling_gbs:5.1f}% of copy)" if ceiling_gbs else ""
    line = f"{name:<44} {ms:8.3f} ms  {gbs:8.1f} GB/s{share}"
    print(line, flush=True)
    RESULTS.append(line)
    return gbs


# ---- 2. measurements ----

def copy_ceiling(n: int, batch: int, batches: int) -> float:
    """Device-to-device copy of n float32: 2 * 4n bytes moved."""
    import numpy as np
    import lazygrad as lg
    from lazygrad.runtime import cuda as rt
    src = rt.DeviceArray.empty(n, np.float32)
    dst = rt.DeviceArray.empty(n, np.float32)
    src.zero()

    class Copy:
        def prepare(self, batch):
            return batch

        def run(self, k):
            for _ in range(k):
                dst.copy_from(src)
    dst.copy_from(src)
    lg.cuda.synchronize()
    ms = median_ms_lazygrad(Copy(), batch, batches)
    best = report("copy: cuMemcpyDtoD", 8 * n, ms, None)
    torch = _torch()
    if torch is not None:
        a = torch.empty(n, dtype=torch.float32, device="cuda")
        b = torch.empty_like(a)
        b.copy_(a)
        ms = median_ms_torch(lambda: b.copy_(a), batch, batches)
        best = max(best, report("copy: torch copy_", 8 * n, ms, None))
        del a, b
        torch.cuda.empty_cache()
    src.release()
    dst.release()
    return best


def elementwise(n: int, batch: int, batches: int, ceiling: float | None):
    import numpy as np
    import lazygrad as lg
    rng = np.random.default_rng(0)
    host = [rng.standard_normal(n, dtype=np.float32) for _ in range(3)]
    a, b, c = (lg.tensor(h, device="cuda") for h in host)

    def chain():
        x, y, z = fresh(a), fresh(b), fresh(c)
        return (((x * y + z).relu()) * 0.5).exp()

    t0 = time.perf_counter()
    first = chain().numpy()   # compiles (PTX, driver JIT) and checks the result
    print(f"first call (compile + run + copy back): {time.perf_counter() - t0:.3f} s")
    ref = np.exp(np.maximum(host[0][:1 << 20] * host[1][:1 << 20] + host[2][:1 << 20], 0) * 0.5)
    err = float(np.max(np.abs(first[:1 << 20] - ref) / np.maximum(np.abs(ref), 1e-30)))
    print(f"max relative error vs NumPy (first 1M elements): {err:.2e}")
    if not err < 1e-5:
        FAILURES.append(f"elementwise: relative error {err:.2e} vs NumPy")
    del first
    _show_kernels()
    t0 = time.perf_counter()
    for _ in range(20):
        lg.realize(chain())
    lg.cuda.synchronize()
    print(f"host-side cost incl. GPU, 20 calls: {(time.perf_counter() - t0) / 20 * 1e3:.3f} ms per call")
    ms = median_ms_lazygrad(LazyBatch(chain), batch, batches)
    report("exp(relu(a*b+c)*0.5): lazygrad (1 kernel)", 16 * n, ms, ceiling)
    a = b = c = None  # free the GPU memory before PyTorch's turn
    torch = _torch()
    if torch is None:
        return
    ta, tb, tc = (torch.from_numpy(h).cuda() for h in host)
    fn = lambda: torch.exp(torch.relu(ta * tb + tc) * 0.5)  # noqa: E731
    fn()
    ms = median_ms_torch(fn, batch, batches)
    report("exp(relu(a*b+c)*0.5): torch eager", 16 * n, ms, ceiling)
    ta = tb = tc = None
    torch.cuda.empty_cache()


def softmax(rows: int, cols: int, batch: int, batches: int, ceiling: float | None):
    import numpy as np
    import lazygrad as lg
    import lazygrad.nn.functional as F
    rng = np.random.default_rng(1)
    host = rng.standard_normal((rows, cols), dtype=np.float32)
    x = lg.tensor(host, device="cuda")

    def run():
        return F.softmax(fresh(x), dim=1)

    first = run().numpy()
    sample = host[:256]
    e = np.exp(sample - sample.max(1, keepdims=True))
    ref = e / e.sum(1, keepdims=True)
    err = float(np.max(np.abs(first[:256] - ref)))
    print(f"max abs error vs NumPy (first 256 rows): {err:.2e}")
    if not err < 1e-6:
        FAILURES.append(f"softmax: abs error {err:.2e} vs NumPy")
    del first
    _show_kernels()
    ms = median_ms_lazygrad(LazyBatch(run), batch, batches)
    report(f"softmax rows ({rows}x{cols}): lazygrad", 8 * rows * cols, ms, ceiling)
    x = None  # free the GPU memory before PyTorch's turn
    torch = _torch()
    if torch is None:
        return
    tx = torch.from_numpy(host).cuda()
    fn = lambda: torch.softmax(tx, dim=1)  # noqa: E731
    fn()
    ms = median_ms_torch(fn, batch, batches)
    report(f"softmax rows ({rows}x{cols}): torch", 8 * rows * cols, ms, ceiling)
    tx = None
    torch.cuda.empty_cache()


_shown: set = set()


def _show_kernels():
    """The GPU kernels compiled since the last call: strategy and launch shape."""
    from lazygrad.runtime import cuda as rt
    dev = rt.current()
    for name, k in rt._kernels.items():
        if name in _shown:
            continue
        _shown.add(name)
        stages = ", ".join(f"{s.entry.rsplit('_', 1)[-1] if s.entry != name else 'main'}: "
                           f"{rt.grid_size(s, dev.sm_count)} blocks x {s.threads_per_block} threads"
                           for s in k.rendered.stages)
        print(f"  kernel {k.program.name:<24} {k.rendered.strategy.value:<7} {stages}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-tests", action="store_true", help="skip the pytest run")
    parser.add_argument("--test-timeout", type=int, default=180)
    parser.add_argument("--n", type=int, default=1 << 26, help="elements of the elementwise inputs (64M)")
    parser.add_argument("--rows", type=int, default=8192)
    parser.add_argument("--cols", type=int, default=8192)
    parser.add_argument("--batch", type=int, default=10, help="calls per timed batch")
    parser.add_argument("--batches", type=int, default=7, help="timed batches (the median is reported)")
    args = parser.parse_args()
    t0 = time.perf_counter()
    if attempt("machine", describe_machine) is None and FAILURES:
        print("\nno usable GPU: nothing else to check")
        return 1
    if not args.no_tests:
        attempt("tests (pytest -q tests/test_cuda.py tests/test_ptx.py)", run_tests, args.test_timeout)
    ceiling = attempt("copy bandwidth (ceiling)", copy_ceiling, args.n, args.batch, args.batches)
    attempt("elementwise chain, 64M float32", elementwise, args.n, args.batch, args.batches, ceiling)
    attempt("row softmax", softmax, args.rows, args.cols, args.batch, args.batches, ceiling)
    section("summary")
    for line in RESULTS:
        print(line)
    print(f"total time {time.perf_counter() - t0:.1f} s")
    if FAILURES:
        print("\nFAILED PARTS:")
        for f in FAILURES:
            print("  " + f)
        return 1
    print("all parts passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
