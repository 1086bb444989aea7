"""lazygrad.nn: modules, parameters, losses (PyTorch's names and semantics)."""
from . import functional, init
from .loss import CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from .module import Module
from .modules import (Flatten, Identity, LeakyReLU, Linear, LogSoftmax, ModuleList, ReLU, Sequential, Sigmoid,
                      Softmax, Tanh)
from .parameter import Parameter

__all__ = ["functional", "init", "Module", "Parameter", "Linear", "Identity", "Flatten", "ReLU", "LeakyReLU",
           "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Sequential", "ModuleList", "MSELoss", "L1Loss",
           "NLLLoss", "CrossEntropyLoss"]
