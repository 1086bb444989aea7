"""Fit a linear model to noisy data with the classic PyTorch training loop.

    python examples/train_linear.py            # or: --epochs 50 --plot loss.png

The data comes from known weights plus noise, so at the end we can check
that training found them. The loop is plain PyTorch code; only the import
differs. Under the hood each `loss.backward()` derives the gradient graph
symbolically and runs it (with the forward pass) as a few fused kernels, and
each `optimizer.step()` runs all parameter updates as one more schedule.
From the second epoch on, every kernel comes from the cache: nothing is
compiled again.
"""
from __future__ import annotations

import argparse
import sys
import time

import lazygrad as torch
from lazygrad import nn, optim

IN_FEATURES, OUT_FEATURES = 3, 2


class LinearRegression(nn.Module):
    def __init__(self):
        super().__init__()
        self.weights = nn.Parameter(torch.randn(IN_FEATURES, OUT_FEATURES))
        self.bias = nn.Parameter(torch.zeros(OUT_FEATURES))

    def forward(self, x):
        return x @ self.weights + self.bias


def make_data(samples: int = 1000, noise: float = 0.1):
    true_weights = torch.tensor([[2.0, -1.0], [-3.4, 0.5], [1.5, 4.2]])
    true_bias = torch.tensor([4.2, -0.7])
    inputs = torch.randn(samples, IN_FEATURES)
    labels = inputs @ true_weights + true_bias + noise * torch.randn(samples, OUT_FEATURES)
    return inputs, labels.realize(), true_weights, true_bias


def progress_line(epoch: int, epochs: int, loss: float, width: int = 30) -> str:
    done = int(width * epoch / epochs)
    return f"epoch {epoch:4d}/{epochs} [{'#' * done}{'.' * (width - done)}] loss {loss:.6f}"


def train(epochs: int = 100, lr: float = 0.1, verbose: bool = True, seed: int = 0):
    """Train and return (model, losses per epoch, true weights, true bias)."""
    torch.manual_seed(seed)
    inputs, labels, true_weights, true_bias = make_data()
    model = LinearRegression()
    criterion = nn.MSELoss()
    optimizer = optim.SGD(model.parameters(), lr=lr)

    losses = []
    for epoch in range(1, epochs + 1):
        if epoch == 2:
            torch.stats(reset=True)  # from here on, count what the later epochs cost
        optimizer.zero_grad()
        outputs = model(inputs)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if verbose:
            end = "\n" if epoch == epochs or not sys.stdout.isatty() else "\r"
            if sys.stdout.isatty() or epoch % max(epochs // 10, 1) == 0 or epoch == 1:
                print(progress_line(epoch, epochs, losses[-1]), end=end, flush=True)
    return model, losses, true_weights, true_bias


def save_plot(losses, path: str) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no loss curve (pip install 'lazygrad[plot]')")
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(range(1, len(losses) + 1), losses)
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE loss")
    ax.set_yscale("log")
    ax.set_title("train_linear.py")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    print(f"loss curve written to {path}")
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--plot", default="loss_curve.png", help="where to write the loss curve (needs matplotlib)")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    model, losses, true_weights, true_bias = train(args.epochs, args.lr)
    elapsed = time.perf_counter() - start
    print(f"\ntrained {args.epochs} epochs in {elapsed:.2f} s; final loss {losses[-1]:.6f}")
    print("\nweights   learned              true")
    learned = model.weights.detach().numpy()
    for row_learned, row_true in zip(learned, true_weights.numpy()):
        print("          " + " ".join(f"{v:8.4f}" for v in row_learned) + "    "
              + " ".join(f"{v:8.4f}" for v in row_true))
    print("bias      " + " ".join(f"{v:8.4f}" for v in model.bias.detach().numpy()) + "    "
          + " ".join(f"{v:8.4f}" for v in true_bias.numpy()))
    stats = torch.stats()
    steps = max(args.epochs - 1, 1)
    print(f"\nepochs 2..{args.epochs}: {stats['kernels_compiled']} kernels compiled, "
          f"{stats['kernels_launched'] / steps:.0f} kernel launches and "
          f"{stats['schedule_cache_hits'] / steps:.0f} reused schedules per epoch")
    if args.plot:
        save_plot(losses, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
