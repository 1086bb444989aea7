"""Autograd entry points (backward, grad). The symbolic gradient pass lives in ir/autodiff.py."""
from __future__ import annotations


def backward(tensor, gradient=None, inputs=None):
    raise NotImplementedError("backward() is not implemented yet")


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    raise NotImplementedError("lazygrad.grad() is not implemented yet")
