"""`lazygrad.nn.functional` (import it as F): activations and losses as functions.

Each is a composition of tensor operations, so its gradient comes from the
primitive rules in lazygrad/ir/autodiff.py and its kernels fuse with their
neighbours: for instance `cross_entropy` is a log-softmax and a masked sum,
about three small kernels forward and backward.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..ir import dtypes
from ..ir.ops import Op
from ..tensor import Tensor, normalize_dim, tensor as _tensor, where


def _as_tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else _tensor(x)


# ---- activations ----

def relu(input: Tensor, inplace: bool = False) -> Tensor:
    out = input.relu()
    return input._inplace(out) if inplace else out


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    out = where(input > 0, input, input * negative_slope)
    return input._inplace(out) if inplace else out


def sigmoid(input: Tensor) -> Tensor:
    return input.sigmoid()


def tanh(input: Tensor) -> Tensor:
    return input.tanh()


def _softmax_dim(ndim: int, dim) -> int:
    if dim is None:
        warnings.warn("Implicit dimension choice for softmax has been deprecated. "
                      "Change the call to include dim=X as an argument.", stacklevel=3)
        dim = 0 if ndim in (0, 1, 3) else 1
    return normalize_dim(dim, ndim)


def _shifted(input: Tensor, dim: int) -> Tensor:
    """input minus its max along dim: exp() of it cannot overflow.

    The max is detached: softmax does not change when a constant is
    subtracted, so no gradient needs to flow through it (and the graph is
    smaller without it).
    """
    if input.ndim == 0:
        return input - input.detach()
    if input.shape[dim] == 0:  # an empty softmax is empty (amax would refuse the empty dim)
        return input
    return input - input.amax(dim, keepdim=True).detach()


def softmax(input: Tensor, dim=None, dtype=None) -> Tensor:
    x = input.to(dtype) if dtype is not None else input._float_input()
    d = _softmax_dim(x.ndim, dim)
    e = _shifted(x, d).exp()
    return e / (e.sum(d, keepdim=True) if x.ndim else e)


def log_softmax(input: Tensor, dim=None, dtype=None) -> Tensor:
    x = input.to(dtype) if dtype is not None else input._float_input()
    d = _softmax_dim(x.ndim, dim)
    z = _shifted(x, d)
    return z - (z.exp().sum(d, keepdim=True) if x.ndim else z.exp()).log()


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """input @ weight.T + bias, with weight of shape (out_features, in_features)."""
    if input._node.shape[-1] != weight._node.shape[-1]:
        a = "x".join(str(s) for s in (input.shape if input.ndim == 2 else (-1, input.shape[-1])))
        b = "x".join(str(s) for s in reversed(weight.shape))
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({a} and {b})")
    out = input @ weight.t()
    return out + bias if bias is not None else out


# ---- losses ----

def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{reduction} is not a valid value for reduction")


def _check_sizes(name: str, input: Tensor, target: Tensor) -> None:
    if input._node.shape != target._node.shape:
        warnings.warn(f"Using a target size ({target.shape}) that is different to the input size ({input.shape}). "
                      "This will likely lead to incorrect results due to broadcasting. "
                      "Please ensure they have the same size.", stacklevel=3)


def mse_loss(input: Tensor, target, size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    target = _as_tensor(target)
    _check_sizes("mse_loss", input, target)
    diff = input - target
    return _reduce(diff * diff, reduction)


def l1_loss(input: Tensor, target, size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    target = _as_tensor(target)
    _check_sizes("l1_loss", input, target)
    diff = input - target
    # |d| as max(d, -d): at d == 0 the tie splits the gradient, giving 0 like PyTorch's sign()
    return _reduce(diff.maximum(-diff), reduction)


def _class_mask(target: Tensor, num_classes: int, class_dim: int, ndim: int) -> Tensor:
    """one_hot(target) as a bool mask shaped like the input: (arange(C) == target) along class_dim."""
    from ..creation import arange
    classes = arange(num_classes, device=target.device).reshape(tuple(num_classes if i == class_dim else 1 for i in range(ndim)))
    return target.unsqueeze(class_dim) == classes


def _check_targets(name: str, input: Tensor, target: Tensor, ignore_index: int):
    """PyTorch's shape and range checks. Returns whether some target is ignored (None: not known yet).

    Targets are data: when they are already in memory their range is checked
    like PyTorch does (an out-of-range class would otherwise just select nothing).
    """
    if target.dtype.is_floating_point or target.dtype.is_bool:
        raise RuntimeError(f"{name}(): expected target of scalar type Long but found {target.dtype.name}")
    class_dim = 0 if input.ndim == 1 else 1
    want = tuple(s for i, s in enumerate(input.shape) if i != class_dim)
    if tuple(target.shape) != want:
        if input.ndim >= 2 and target.ndim >= 1 and target.shape[0] != input.shape[0]:
            raise ValueError(f"Expected input batch_size ({input.shape[0]}) to match target batch_size "
                             f"({target.shape[0]}).")
        raise RuntimeError(f"{name}(): expected target of shape {list(want)} for an input of shape "
                           f"{list(input.shape)}, got {list(target.shape)}")
    node = target._node
    if node.op is not Op.BUFFER and node.realized is None:
        return None
    data = np.asarray(target._host_array())
    ignored = data == ignore_index
    bad = (~ignored) & ((data < 0) | (data >= input.shape[class_dim]))
    if bad.any():
        raise IndexError(f"Target {int(data[bad].reshape(-1)[0])} is out of bounds.")
    return bool(ignored.any())


def _nll(log_probs: Tensor, target: Tensor, weight, ignore_index: int, reduction: str, label_smoothing: float,
         name: str) -> Tensor:
    """The negative log-likelihood of class-index targets, optionally with label smoothing."""
    has_ignored = _check_targets(name, log_probs, target, ignore_index)
    class_dim = 0 if log_probs.ndim == 1 else 1
    num_classes = log_probs.shape[class_dim]
    hit = _class_mask(target, num_classes, class_dim, log_probs.ndim)
    if has_ignored is not False and 0 <= ignore_index < num_classes:
        hit = hit & (target != ignore_index).unsqueeze(class_dim)
    zero = 0.0
    if weight is not None:
        w = _as_tensor(weight).to(log_probs.dtype)
        w = w.reshape(tuple(num_classes if i == class_dim else 1 for i in range(log_probs.ndim)))
        per_class = log_probs * w
        sample_weight = where(hit, w, zero).sum(class_dim)
    else:
        per_class = log_probs
        sample_weight = None
    loss = -where(hit, per_class, zero).sum(class_dim)
    if reduction == "mean":
        if sample_weight is not None:
            denominator = sample_weight.sum()
        elif has_ignored is False:
            denominator = float(target.numel())   # known: every target counts
        else:
            denominator = hit.sum().to(log_probs.dtype)
        reduced = loss.sum() / denominator
    else:
        reduced = _reduce(loss, reduction)
    if not label_smoothing:
        return reduced
    counted = hit.any(class_dim) if has_ignored is not False else None
    smooth = -per_class.sum(class_dim)
    if counted is not None:
        smooth = where(counted, smooth, zero)
    smooth = smooth.sum() / denominator if reduction == "mean" else _reduce(smooth, reduction)
    return (1.0 - label_smoothing) * reduced + (label_smoothing / num_classes) * smooth


def nll_loss(input: Tensor, target: Tensor, weight=None, size_average=None, ignore_index: int = -100,
             reduce=None, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of `target` classes, given log-probabilities `input` (N, C, ...)."""
    return _nll(input, target, weight, ignore_index, reduction, 0.0, "nll_loss")


def cross_entropy(input: Tensor, target: Tensor, weight=None, size_average=None, ignore_index: int = -100,
                  reduce=None, reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of logits `input` (N, C, ...) against int64 class indices or class probabilities."""
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    target = _as_tensor(target)
    class_dim = 0 if input.ndim == 1 else 1
    log_probs = log_softmax(input, class_dim)
    if not target.dtype.is_floating_point:
        return _nll(log_probs, target, weight, ignore_index, reduction, label_smoothing, "cross_entropy")
    # class probabilities (same shape as input)
    if tuple(target.shape) != tuple(input.shape):
        raise RuntimeError(f"cross_entropy(): expected target of shape {list(input.shape)} (class probabilities), "
                           f"got {list(target.shape)}")
    num_classes = input.shape[class_dim]
    if label_smoothing:
        target = target * (1.0 - label_smoothing) + label_smoothing / num_classes
    per_class = log_probs * target
    if weight is not None:
        w = _as_tensor(weight).to(input.dtype)
        per_class = per_class * w.reshape(tuple(num_classes if i == class_dim else 1 for i in range(input.ndim)))
    loss = -per_class.sum(class_dim)
    if reduction == "mean":
        return loss.sum() / float(max(input.numel() // num_classes, 1)) if input.ndim else loss
    return _reduce(loss, reduction)


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 one-hot encoding with a new last dim of size num_classes."""
    if num_classes < 0:
        num_classes = int(tensor.max().item()) + 1
    elif tensor.numel() and (tensor._node.op is Op.BUFFER or tensor._node.realized is not None):
        data = np.asarray(tensor._host_array())  # values in memory: PyTorch's range checks (else: zero rows)
        if data.min() < 0:
            raise RuntimeError("Class values must be non-negative.")
        if data.max() >= num_classes:
            raise RuntimeError("Class values must be smaller than num_classes.")
    return _class_mask(tensor, num_classes, tensor.ndim, tensor.ndim + 1).to(dtypes.int64)
