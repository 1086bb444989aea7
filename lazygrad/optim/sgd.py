"""Stochastic gradient descent with momentum, dampening, weight decay and Nesterov (PyTorch's formulas)."""
from __future__ import annotations

from .optimizer import Optimizer, required


class SGD(Optimizer):
    """For each parameter p with gradient g (PyTorch's update, in order):

        g = g + weight_decay * p
        buf = momentum * buf + (1 - dampening) * g      (buf = g on the first step)
        g = g + momentum * buf  if nesterov  else  buf
        p = p - lr * g
    """

    def __init__(self, params, lr=required, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False, foreach=None,
                 differentiable: bool = False, fused=None):
        if lr is not required and lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))

    def _update(self, p, grad, group, state):
        g = -grad if group["maximize"] else grad
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p
        momentum = group["momentum"]
        if momentum:
            first = "momentum_buffer" not in state
            if first:
                # a zero buffer instead of "buf = g": every step then has the same graph
                state["momentum_buffer"] = self._zeros_like(p)
            dampening = group["dampening"]
            if dampening:   # the first step takes g undamped, like PyTorch
                g_weight = self._scalar("1-dampening", 1.0 if first else 1.0 - dampening, p)
                buf = state["momentum_buffer"] * momentum + g * g_weight
            else:
                buf = state["momentum_buffer"] * momentum + g
            state["momentum_buffer"] = buf
            g = g + momentum * buf if group["nesterov"] else buf
        neg_lr = self._scalar("-lr", -group["lr"], p)
        return p + neg_lr * g   # p - lr * g, computed as PyTorch does: param.add_(grad, alpha=-lr)
