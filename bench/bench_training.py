"""Training steps per second: lazygrad vs PyTorch eager vs a hand-written NumPy loop.

    python bench/bench_training.py                 # all three sizes
    python bench/bench_training.py --sizes tiny medium --repeats 7

One step is the classic loop on a single Linear layer with MSELoss and SGD:
zero_grad, forward, loss, backward, optimizer step. Sizes (batch x in -> out):

    tiny    x(5, 7)       -> Linear(7, 12)
    medium  x(4096, 256)  -> Linear(256, 256)
    large   x(8192, 1024) -> Linear(1024, 1024)

Each library runs a few warm-up steps (lazygrad compiles its kernels there),
then `repeats` timed blocks of steps, interleaved across the libraries; the
median time per step is reported.
PyTorch is optional: without it only lazygrad and NumPy are compared.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

SIZES = {
    "tiny": (5, 7, 12),
    "medium": (4096, 256, 256),
    "large": (8192, 1024, 1024),
}
LR = 0.01
PAUSE_SECONDS = 0.3


def _block_seconds(step, steps_per_block: int) -> float:
    start = time.perf_counter()
    for _ in range(steps_per_block):
        step()
    return (time.perf_counter() - start) / steps_per_block


def lazygrad_step(x_np, y_np, w_np, b_np):
    import lazygrad
    from lazygrad import nn, optim
    model = nn.Linear(w_np.shape[1], w_np.shape[0])
    nn.init.constant_(model.weight, 0.0)
    model.load_state_dict({"weight": lazygrad.tensor(w_np), "bias": lazygrad.tensor(b_np)})
    x, y = lazygrad.tensor(x_np), lazygrad.tensor(y_np)
    criterion = nn.MSELoss()
    optimizer = optim.SGD(model.parameters(), lr=LR)

    def step():
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return step, lambda: model.weight.detach().numpy()


def torch_step(x_np, y_np, w_np, b_np):
    import torch
    model = torch.nn.Linear(w_np.shape[1], w_np.shape[0])
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(w_np))
        model.bias.copy_(torch.from_numpy(b_np))
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    criterion = torch.nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)

    def step():
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return step, lambda: model.weight.detach().numpy()


def numpy_step(x_np, y_np, w_np, b_np):
    """The same step written by hand: forward, the MSE gradient, SGD, in float32 NumPy."""
    w, b = w_np.copy(), b_np.copy()
    scale = np.float32(2.0 / y_np.size)
    lr = np.float32(LR)

    def step():
        out = x_np @ w.T + b
        diff = out - y_np
        loss = np.mean(diff * diff)
        grad_out = diff * scale
        w[...] -= lr * (grad_out.T @ x_np)
        b[...] -= lr * grad_out.sum(0)
        return loss

    return step, lambda: w


def run(sizes, repeats: int, check: bool = True) -> list[dict]:
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    rows = []
    for name in sizes:
        batch, n_in, n_out = SIZES[name]
        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch, n_in)).astype(np.float32)
        y = rng.standard_normal((batch, n_out)).astype(np.float32)
        bound = 1.0 / np.sqrt(n_in)
        w = rng.uniform(-bound, bound, (n_out, n_in)).astype(np.float32)
        b = rng.uniform(-bound, bound, (n_out,)).astype(np.float32)
        work = batch * n_in * n_out
        steps = max(1, min(200, int(2e9 // max(work, 1))))   # about the same time per block for each size
        warmup = 3 if work > 1e8 else 10
        row = {"size": name, "shape": f"x({batch},{n_in})->Linear({n_in},{n_out})"}
        finals = {}
        builders = {"lazygrad": lazygrad_step, "numpy": numpy_step}
        if torch_version is not None:
            builders["torch"] = torch_step
        steppers = {}
        for lib, build in builders.items():
            steppers[lib] = build(x, y, w, b)
            for _ in range(warmup):          # lazygrad compiles its kernels here
                steppers[lib][0]()
        # timed blocks interleaved across libraries, so that a busy machine slows all of them alike
        times = {lib: [] for lib in builders}
        for _ in range(repeats):
            for lib, (step, _) in steppers.items():
                # (a pause first: BLAS and OpenMP thread pools spin for a while after each call,
                # and would otherwise take cores from whichever library is timed next)
                time.sleep(PAUSE_SECONDS)
                times[lib].append(_block_seconds(step, steps))
        for lib, (_, weights) in steppers.items():
            row[lib] = statistics.median(times[lib])
            finals[lib] = np.asarray(weights())
        if check and "torch" in finals:
            # the same number of steps from the same start: the weights must agree
            np.testing.assert_allclose(finals["lazygrad"], finals["torch"], rtol=1e-3, atol=1e-4)
        rows.append(row)
    return rows


def report(rows) -> None:
    have_torch = all("torch" in r for r in rows)
    header = f"{'size':<8}{'shape':<34}{'lazygrad':>14}{'torch':>14}{'numpy':>14}"
    header += f"{'vs torch':>10}{'vs numpy':>10}"
    print(header)
    print("-" * len(header))
    for r in rows:
        line = f"{r['size']:<8}{r['shape']:<34}{1 / r['lazygrad']:>10.1f} st/s"
        line += f"{1 / r['torch']:>10.1f} st/s" if have_torch else f"{'-':>14}"
        line += f"{1 / r['numpy']:>10.1f} st/s"
        line += f"{r['torch'] / r['lazygrad']:>9.2f}x" if have_torch else f"{'-':>10}"
        line += f"{r['numpy'] / r['lazygrad']:>9.2f}x"
        print(line)
    print("\n(median steps per second; 'vs X' = lazygrad speed / X speed, above 1 means lazygrad is faster)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-check", action="store_true", help="skip comparing the final weights with PyTorch")
    args = parser.parse_args(argv)
    report(run(args.sizes, args.repeats, check=not args.no_check))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
