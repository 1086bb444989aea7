"""Adam and AdamW (PyTorch's update formulas, including amsgrad and maximize)."""
from __future__ import annotations

import math

from .optimizer import Optimizer


class Adam(Optimizer):
    """For each parameter p with gradient g, at step t (PyTorch's update, in order):

        g = g + weight_decay * p                       (Adam: L2 penalty in the gradient)
        p = p * (1 - lr * weight_decay)                (AdamW: decoupled decay instead)
        m = m + (g - m) * (1 - beta1)                  (torch's lerp)
        v = v * beta2 + g * g * (1 - beta2)
        denom = sqrt(v) / sqrt(1 - beta2^t) + eps      (v: the running max of v with amsgrad)
        p = p - lr / (1 - beta1^t) * m / denom

    The step-dependent factors lr / (1 - beta1^t) and sqrt(1 - beta2^t) are
    one-element buffers, so every step runs the same compiled kernels.
    """

    decoupled_weight_decay = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 amsgrad: bool = False, *, foreach=None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False, fused=None):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    def _update(self, p, grad, group, state):
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = self._zeros_like(p)
            state["exp_avg_sq"] = self._zeros_like(p)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = self._zeros_like(p)
        state["step"] += 1
        t = state["step"]
        g = -grad if group["maximize"] else grad
        if wd:
            if self.decoupled_weight_decay:
                p = p * self._scalar("1-lr*wd", 1.0 - lr * wd, p)
            else:
                g = g + wd * p
        m, v = state["exp_avg"], state["exp_avg_sq"]
        weight = 1.0 - beta1
        m = m + (g - m) * weight if weight < 0.5 else g - (g - m) * (1.0 - weight)   # torch.lerp
        v = v * beta2 + g * g * (1.0 - beta2)
        state["exp_avg"], state["exp_avg_sq"] = m, v
        if group["amsgrad"]:
            v = state["max_exp_avg_sq"].maximum(v)
            state["max_exp_avg_sq"] = v
        step_size = self._scalar("step_size", lr / (1.0 - beta1 ** t), p)
        correction2_sqrt = self._scalar("correction2_sqrt", math.sqrt(1.0 - beta2 ** t), p)
        denom = v.sqrt() / correction2_sqrt + eps
        return p - step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.01): p = p * (1 - lr * weight_decay) before the Adam step."""

    decoupled_weight_decay = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
                 amsgrad: bool = False, *, foreach=None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused)
