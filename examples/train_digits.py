"""Classify handwritten digits (8x8 pixels) with a small MLP and cross-entropy.

    pip install 'lazygrad[examples]'      # scikit-learn, which ships the data set
    python examples/train_digits.py

The 1797 images of scikit-learn's `load_digits` come with the package, so
nothing is downloaded. 80% train the model, 20% measure its accuracy.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import lazygrad as torch
from lazygrad import nn, optim


def load_data(seed: int = 0):
    """(train_x, train_y, test_x, test_y) as host arrays, or None when scikit-learn is missing."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        return None
    digits = load_digits()
    images = digits.data.astype(np.float32) / 16.0   # pixel values 0..16 -> 0..1
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    split = int(0.8 * len(labels))
    train, test = order[:split], order[split:]
    return images[train], labels[train], images[test], labels[test]


class MLP(nn.Module):
    def __init__(self, inputs: int = 64, hidden: int = 64, classes: int = 10):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, classes))

    def forward(self, x):
        return self.layers(x)


def batches(x: np.ndarray, y: np.ndarray, size: int, rng):
    """Shuffled full-size mini-batches (the last partial one is dropped: every step has the same shapes)."""
    order = rng.permutation(len(y))
    for start in range(0, len(y) - size + 1, size):
        idx = order[start:start + size]
        yield torch.tensor(x[idx]), torch.tensor(y[idx])


def accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        predicted = model(torch.tensor(x)).argmax(1)
        return float((predicted == torch.tensor(y)).float().mean().item())


def train(epochs: int = 20, batch_size: int = 64, lr: float = 1e-2, verbose: bool = True, seed: int = 0):
    """Train on load_digits; returns (model, losses per epoch, test accuracy)."""
    data = load_data(seed)
    if data is None:
        raise ImportError("this example needs scikit-learn for its data set: pip install 'lazygrad[examples]'")
    train_x, train_y, test_x, test_y = data
    torch.manual_seed(seed)
    model = MLP()
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    losses = []
    for epoch in range(1, epochs + 1):
        total, count = 0.0, 0
        for inputs, labels in batches(train_x, train_y, batch_size, rng):
            optimizer.zero_grad()
            loss = criterion(model(inputs), labels)
            loss.backward()
            optimizer.step()
            total += loss.item()
            count += 1
        losses.append(total / count)
        if verbose:
            print(f"epoch {epoch:3d}/{epochs}  train loss {losses[-1]:.4f}", flush=True)
    return model, losses, accuracy(model, test_x, test_y)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-2)
    args = parser.parse_args(argv)
    if load_data() is None:
        print("train_digits.py needs scikit-learn, which ships the digits data set:\n"
              "    pip install 'lazygrad[examples]'    (or: pip install scikit-learn)", file=sys.stderr)
        return 1
    start = time.perf_counter()
    _, losses, test_accuracy = train(args.epochs, args.batch_size, args.lr)
    print(f"\ntrained in {time.perf_counter() - start:.2f} s; final train loss {losses[-1]:.4f}")
    print(f"test accuracy: {100 * test_accuracy:.1f}% on 360 held-out digits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
