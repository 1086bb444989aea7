"""Whether operations record gradients (`lazygrad.no_grad()` turns it off)."""
from __future__ import annotations

import functools
import threading


class _GradMode(threading.local):
    enabled = True   # every thread starts with gradients on


_state = _GradMode()


def is_grad_enabled() -> bool:
    return _state.enabled


def set_grad_enabled(mode: bool) -> None:
    _state.enabled = bool(mode)


class no_grad:
    """Context manager and decorator: operations inside build no gradient history."""

    def __enter__(self):
        self.prev = is_grad_enabled()
        set_grad_enabled(False)
        return self

    def __exit__(self, *exc):
        set_grad_enabled(self.prev)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)
        return wrapper


class enable_grad(no_grad):
    def __enter__(self):
        self.prev = is_grad_enabled()
        set_grad_enabled(True)
        return self
