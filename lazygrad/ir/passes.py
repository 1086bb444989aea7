"""The pass pipeline, as a list that tools can walk.

Each stage takes the previous stage's output. `run_pipeline` returns every
stage's output, so that `lazygrad.inspect` can show the graph as built, as
simplified, and as scheduled into kernels. (Gradients are built earlier, by
`lazygrad.ir.autodiff`, when `backward()` or `lazygrad.grad` asks for them.)
"""
from __future__ import annotations

from .limits import check_kernels
from .schedule import schedule
from .simplify import simplify


def scheduled(roots):
    """schedule(), then refuse kernels too big to ever run (ir/limits.py) before they are compiled."""
    return check_kernels(schedule(roots))


PIPELINE = [
    ("simplified", simplify),   # list[Node] -> list[Node]
    ("scheduled", scheduled),   # list[Node] -> list[Kernel]
]


def run_pipeline(roots, record: dict | None = None):
    """Run every stage; when `record` is a dict, store each stage's output under its name."""
    value = list(roots)
    if record is not None:
        record["built"] = value
    for name, stage in PIPELINE:
        value = stage(value)
        if record is not None:
            record[name] = value
    return value
