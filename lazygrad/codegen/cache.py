"""Compiled-kernel cache: in memory for the process, and on disk across processes.

The key is a hash of the generated LLVM IR, the host CPU description and the
llvmlite version, so the same loop program on the same machine is compiled
once. Disk entries are written atomically (a temporary file renamed into
place) and carry a SHA-256 checksum of their contents: a truncated or
corrupted entry is detected, deleted and recompiled, never loaded.
"""
from __future__ import annotations

import hashlib
import os
import tempfile

import llvmlite

from .. import stats
from . import llvm as llvm_backend

_MAGIC = b"LGK1"
# Bumped whenever what an entry holds changes (e.g. how its symbol is named), so old entries are never used.
FORMAT_VERSION = "2"


def cache_dir() -> str | None:
    """The folder for compiled kernels, or None when LAZYGRAD_CACHE=0 / off."""
    setting = os.environ.get("LAZYGRAD_CACHE")
    if setting is not None and setting.strip().lower() in ("0", "off", "false", "no", ""):
        return None
    return setting or os.path.join(os.path.expanduser("~"), ".cache", "lazygrad")


def kernel_key(ir_text: str) -> str:
    h = hashlib.sha256()
    h.update(ir_text.encode())
    h.update(llvm_backend.host_description().encode())
    h.update(llvmlite.__version__.encode())
    h.update(FORMAT_VERSION.encode())
    return h.hexdigest()


def _read_entry(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError:
        return None
    if len(blob) < 4 + 32 or blob[:4] != _MAGIC:
        return None
    digest, payload = blob[4:36], blob[36:]
    if hashlib.sha256(payload).digest() != digest:
        return None
    return payload


def _write_entry(folder: str, path: str, payload: bytes) -> None:
    os.makedirs(folder, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_MAGIC + hashlib.sha256(payload).digest() + payload)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def object_code(ir_text: str, key: str) -> bytes:
    """Object code for `ir_text`: from disk when a valid entry exists, else compiled (and saved)."""
    folder = cache_dir()
    path = os.path.join(folder, key + ".o") if folder else None
    if path is not None:
        payload = _read_entry(path)
        if payload is not None:
            stats.bump("disk_cache_hits")
            return payload
        if os.path.exists(path):  # damaged: remove it so it is rewritten
            try:
                os.unlink(path)
            except OSError:
                pass
    payload = llvm_backend.optimize_and_emit(ir_text)
    stats.bump("kernels_compiled")
    if path is not None:
        _write_entry(folder, path, payload)
    return payload
