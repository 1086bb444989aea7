"""Random numbers for factories (rand, randn, init).

Random data is *input* to the graph, like data loaded from a file: a NumPy
Generator seeded by `lazygrad.manual_seed` fills a new buffer, and no tensor
operation is computed here. (lazygrad's numbers differ from PyTorch's for the
same seed: PyTorch's generator is not reproduced.)
"""
from __future__ import annotations

import numpy as np

_generator = np.random.default_rng(0)


def manual_seed(seed: int):
    global _generator
    _generator = np.random.default_rng(int(seed))
    return _generator


seed = manual_seed


def initial_seed() -> int:
    return 0


def uniform_array(shape, low: float, high: float, dtype) -> np.ndarray:
    return _generator.uniform(low, high, size=shape).astype(dtype.np)


def normal_array(shape, mean: float, std: float, dtype) -> np.ndarray:
    return (_generator.standard_normal(size=shape) * std + mean).astype(dtype.np)


def integers_array(shape, low: int, high: int, dtype) -> np.ndarray:
    return _generator.integers(low, high, size=shape).astype(dtype.np)


def permutation_array(n: int) -> np.ndarray:
    return _generator.permutation(n).astype(np.int64)
