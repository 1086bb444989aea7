"""Counters that show how much work the compiler and runtime did."""
from __future__ import annotations

_COUNTERS = ("kernels_compiled", "kernels_launched", "memory_cache_hits", "disk_cache_hits",
             "buffers_allocated", "schedules_built", "schedule_cache_hits")

counters = {name: 0 for name in _COUNTERS}


def bump(name: str, amount: int = 1) -> None:
    counters[name] += amount


def stats(reset: bool = False) -> dict:
    """A snapshot of the counters; `reset=True` zeroes them after taking it.

    kernels_compiled   kernels turned into machine code by LLVM in this process
    kernels_launched   kernel calls (a kernel split over threads counts once)
    memory_cache_hits  kernels found already loaded in this process
    disk_cache_hits    kernels loaded from the on-disk cache instead of compiled
    buffers_allocated  fresh buffers taken from the system (not from the pool)
    schedules_built    graphs partitioned into kernels
    schedule_cache_hits  graphs whose shape had been scheduled before
    """
    snapshot = dict(counters)
    if reset:
        for name in counters:
            counters[name] = 0
    return snapshot
