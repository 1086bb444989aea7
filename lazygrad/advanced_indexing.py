"""Indexing with integer tensors and boolean masks (gather-based)."""
from __future__ import annotations


def advanced_getitem(t, index):
    raise NotImplementedError("indexing with tensors, lists or masks is not implemented yet")


def advanced_setitem(t, index, value):
    raise NotImplementedError("item assignment (t[index] = value) is not implemented yet")
