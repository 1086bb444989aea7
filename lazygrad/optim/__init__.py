"""lazygrad.optim: optimizers with PyTorch's names and update formulas; each step is one schedule."""
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]
