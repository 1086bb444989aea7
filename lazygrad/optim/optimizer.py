"""The Optimizer base class: parameter groups, state, and one-schedule steps.

An optimizer step is lazy too. Each parameter's update is written with
ordinary tensor operations (under no_grad); `step()` then realises the new
values of every parameter and every state tensor together, in ONE schedule,
and rebinds each parameter to its new buffer.

Repeated steps must reuse that schedule, and the schedule cache recognises a
graph by its structure, some constants included (0 and 1 are compiled into
the kernels: see lazygrad/runtime/realize.py). So a value that changes from
step to step (Adam's bias corrections, a learning rate changed by a schedule,
a dampening that is 1 at the first step) enters the graph as a one-element
buffer made by `_scalar`, never as a constant: step 2 onward then compiles
nothing.
"""
from __future__ import annotations

import numpy as np

from .. import devices as _device
from ..autograd_state import enable_grad, no_grad
from ..creation import _from_array
from ..ir.ops import Op
from ..tensor import Tensor, realize
from ..views import value_changed


class _Required:
    def __repr__(self) -> str:
        return "<required parameter>"


required = _Required()


class Optimizer:
    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.state: dict = {}
        self.param_groups: list[dict] = []
        self._scalars: dict = {}
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            "but got lazygrad.Tensor")
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        for group in params:
            self.add_param_group(group)

    def add_param_group(self, group: dict) -> None:
        group = dict(group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        for p in group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter {name}")
            group.setdefault(name, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in group["params"]):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    if set_to_none:
                        p.grad = None
                    else:
                        p.grad.zero_()

    # ---- helpers for subclasses ----
    def _scalar(self, name: str, value: float, like: Tensor) -> Tensor:
        """`value` as a 0-d buffer, re-made only when the value changes.

        (A 0-d CPU tensor combines with tensors on any device, as in PyTorch.)
        """
        key = (name, like.dtype)
        cached = self._scalars.get(key)
        if cached is None or cached[0] != value:
            cached = (value, _from_array(np.array(value, dtype=like.dtype.np)))
            self._scalars[key] = cached
        return cached[1]

    @staticmethod
    def _zeros_like(p: Tensor) -> Tensor:
        """A zero-filled state buffer on the parameter's device (made like torch.zeros: no kernel)."""
        zeros = _from_array(np.zeros(tuple(p.shape), dtype=p.dtype.np))
        if _device.state.cuda_used and p.is_cuda:
            _device.place(zeros, "cuda")
        return zeros

    def _update(self, p: Tensor, grad: Tensor, group: dict, state: dict) -> Tensor:
        """The parameter's new value (lazy); new state tensors go into `state`."""
        raise NotImplementedError(f"{type(self).__name__} must define _update()")

    # ---- the step ----
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        new_values: list[tuple[Tensor, Tensor]] = []
        new_state: list[Tensor] = []
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    state = self.state.setdefault(p, {})
                    # p's current value as a plain tensor: built from p itself under no_grad, every
                    # update would end in a stop_gradient node, one more node per parameter per step
                    value = Tensor._from_node(p._node)
                    new_values.append((p, self._update(value, p.grad, group, state)))
                    new_state += [v for v in state.values()
                                  if isinstance(v, Tensor) and v._node.op is not Op.BUFFER]
        # one schedule for every update; realize() rebinds each result to its own buffer
        realize(*(value for _, value in new_values), *new_state)
        for p, value in new_values:
            p._node = value._node
            value_changed(p)   # (views of p, e.g. a kept `p.data`, show the new values: lazygrad/views.py)
        return loss

    # ---- saving and loading ----
    def state_dict(self) -> dict:
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                packed["params"].append(index[id(p)])
            groups.append(packed)
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        for ours, theirs in zip(self.param_groups, groups):
            if len(ours["params"]) != len(theirs["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't match the size of "
                                 "optimizer's group")
        for ours, theirs in zip(self.param_groups, groups):
            for key, value in theirs.items():
                if key != "params":
                    ours[key] = value
            for p, i in zip(ours["params"], theirs["params"]):
                if i in state_dict["state"]:
                    self.state[p] = dict(state_dict["state"][i])

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)

