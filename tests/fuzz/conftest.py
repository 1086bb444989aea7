"""Settings shared by the fuzz tests.

LAZYGRAD_FUZZ_EXAMPLES=N raises the number of graphs per fuzz test (default:
a quick profile for the normal suite). With the default the examples are
derandomised, so the normal suite is deterministic; a long run draws fresh
random graphs (LAZYGRAD_FUZZ_SEED=n fixes them). LAZYGRAD_FUZZ_LOG=path appends
one line per fuzz test with the number of graphs it ran. LAZYGRAD_FUZZ_TIMEOUT
(seconds, default 300) bounds one graph in the worker; the worker compiles into
its own temporary kernel cache unless LAZYGRAD_FUZZ_CACHE names a folder.

For runs that keep going after a failure and report each distinct bug once:
`cd tests && python -m fuzz.explore --graphs 5000 [--grad]`.
"""
from __future__ import annotations

import os

import pytest
from hypothesis import Phase, seed

from .worker import Worker

# no "explain" phase: it is slow on a failure and adds nothing the graph printout does not say
PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink]


def examples(default: int) -> int:
    value = os.environ.get("LAZYGRAD_FUZZ_EXAMPLES")
    return int(value) if value else default


def long_run() -> bool:
    return bool(os.environ.get("LAZYGRAD_FUZZ_EXAMPLES"))


def seeded(test):
    """Apply LAZYGRAD_FUZZ_SEED to a long run's hypothesis test (outermost decorator)."""
    value = os.environ.get("LAZYGRAD_FUZZ_SEED")
    return seed(int(value))(test) if value and long_run() else test


@pytest.fixture(scope="session")
def worker():
    w = Worker(timeout=float(os.environ.get("LAZYGRAD_FUZZ_TIMEOUT", "300")))
    yield w
    w.close()


class Counter:
    def __init__(self, name: str):
        self.name = name
        self.count = 0

    def log(self) -> None:
        path = os.environ.get("LAZYGRAD_FUZZ_LOG")
        if path and self.count:
            with open(path, "a") as f:
                f.write(f"{self.name} {self.count}\n")
