"""Printing tensors the way PyTorch prints them.

`tensor([1., 4.])`, `tensor(3.5000)`, `tensor([[1, 2],\n        [3, 4]])`:
the same number formatting (integer mode, fixed 4 decimals, or scientific),
alignment, line wrapping at 80 columns and summarisation with `...` past
1000 elements. This code only formats values already computed.
"""
from __future__ import annotations

import math

import numpy as np

PRECISION = 4
THRESHOLD = 1000
EDGEITEMS = 3
LINEWIDTH = 80


class _Formatter:
    def __init__(self, values: np.ndarray, floating: bool):
        self.floating = floating
        self.int_mode = True
        self.sci_mode = False
        self.max_width = 1
        flat = values.reshape(-1)
        if not floating:
            for v in flat.tolist():
                self.max_width = max(self.max_width, len(str(v)))
            return
        finite = flat[np.isfinite(flat) & (flat != 0)].astype(np.float64)
        if finite.size == 0:
            return
        abs_vals = np.abs(finite)
        lo, hi = float(abs_vals.min()), float(abs_vals.max())
        for v in finite.tolist():
            if v != math.ceil(v):
                self.int_mode = False
                break
        if self.int_mode:
            if hi / lo > 1000.0 or hi > 1.0e8:
                self.sci_mode = True
                for v in finite.tolist():
                    self.max_width = max(self.max_width, len(f"{v:.{PRECISION}e}"))
            else:
                for v in finite.tolist():
                    self.max_width = max(self.max_width, len(f"{v:.0f}") + 1)
        else:
            if hi / lo > 1000.0 or hi > 1.0e8 or lo < 1.0e-4:
                self.sci_mode = True
                for v in finite.tolist():
                    self.max_width = max(self.max_width, len(f"{v:.{PRECISION}e}"))
            else:
                for v in finite.tolist():
                    self.max_width = max(self.max_width, len(f"{v:.{PRECISION}f}"))

    def width(self) -> int:
        return self.max_width

    def format(self, value) -> str:
        if self.floating:
            value = float(value)
            if self.sci_mode:
                text = f"{value:{self.max_width}.{PRECISION}e}"
            elif self.int_mode:
                text = f"{value:.0f}"
                if not (math.isinf(value) or math.isnan(value)):
                    text += "."
            else:
                text = f"{value:.{PRECISION}f}"
        else:
            text = f"{value}"
        return (self.max_width - len(text)) * " " + text


def _summarized(values: np.ndarray) -> np.ndarray:
    if values.ndim == 0:
        return values
    if values.shape[0] > 2 * EDGEITEMS:
        values = np.concatenate([values[:EDGEITEMS], values[-EDGEITEMS:]])
    return np.stack([_summarized(v) for v in values]) if values.ndim > 1 else values


def _vector_str(values, indent, summarize, fmt) -> str:
    element_length = fmt.width() + 2
    per_line = max(1, int(math.floor((LINEWIDTH - indent) / element_length)))
    if summarize and values.shape[0] > 2 * EDGEITEMS:
        data = ([fmt.format(v) for v in values[:EDGEITEMS].tolist()] + [" ..."]
                + [fmt.format(v) for v in values[-EDGEITEMS:].tolist()])
    else:
        data = [fmt.format(v) for v in values.tolist()]
    lines = [", ".join(data[i:i + per_line]) for i in range(0, len(data), per_line)]
    return "[" + ("," + "\n" + " " * (indent + 1)).join(lines) + "]"


def _tensor_str(values, indent, summarize, fmt) -> str:
    dim = values.ndim
    if dim == 0:
        return fmt.format(values.item())
    if dim == 1:
        return _vector_str(values, indent, summarize, fmt)
    n = values.shape[0]
    if summarize and n > 2 * EDGEITEMS:
        slices = ([_tensor_str(values[i], indent + 1, summarize, fmt) for i in range(EDGEITEMS)] + ["..."]
                  + [_tensor_str(values[i], indent + 1, summarize, fmt) for i in range(n - EDGEITEMS, n)])
    else:
        slices = [_tensor_str(values[i], indent + 1, summarize, fmt) for i in range(n)]
    return "[" + ("," + "\n" * (dim - 1) + " " * (indent + 1)).join(slices) + "]"


def format_values(values: np.ndarray, dtype, indent: int) -> str:
    """The bracketed body of a tensor's repr, e.g. `[[1., 2.],\\n [3., 4.]]`."""
    summarize = values.size > THRESHOLD
    floating = dtype.is_floating_point
    fmt = _Formatter(_summarized(values) if summarize else values, floating)
    if dtype.is_bool:
        fmt.max_width = max((len(str(v)) for v in values.reshape(-1).tolist()), default=1)
    return _tensor_str(values, indent, summarize, fmt)


def tensor_repr(values: np.ndarray, dtype, suffixes: list[str], prefix: str = "tensor(") -> str:
    indent = len(prefix)
    if values.size == 0:
        body = "[]"
        if values.shape != (0,):
            suffixes = [f"size={tuple(values.shape)}"] + suffixes
    else:
        body = format_values(values, dtype, indent)
    from .ir import dtypes
    if dtype not in (dtypes.default_float, dtypes.int64, dtypes.bool_):
        suffixes = [f"dtype={dtype!r}"] + suffixes
    text = prefix + body
    for s in suffixes:
        text += ", " + s
    return text + ")"
