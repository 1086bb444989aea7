"""Shared pytest configuration.

`devices` lists where the op tests run: the CPU always, "cuda" too when a working GPU is present.
Take the `device` fixture in a test to run it once per device:

    def test_add(device):
        x = lg.ones(3, device=device)
"""
import pytest

import lazygrad

devices = ["cpu"] + (["cuda"] if lazygrad.cuda.is_available() else [])


@pytest.fixture(params=devices)
def device(request):
    """Each device of `devices` in turn ("cpu", and "cuda" where a GPU works)."""
    return request.param
