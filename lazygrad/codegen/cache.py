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
FORMAT_VERSION = "3"  # 3: objects use the large code model


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


def _make_private_dirs(folder: str) -> None:
    """Create `folder` and its missing parents with mode 0700, whatever the umask.

    os.makedirs(mode=0o700) gives the parents it creates 0777 & ~umask (world-writable
    under umask 0, letting another user swap the cache folder) and the umask can also
    take bits from the leaf. Only folders created here are chmod-ed.
    """
    folder = os.path.abspath(folder)
    parent = os.path.dirname(folder)
    if parent != folder and not os.path.isdir(parent):
        _make_private_dirs(parent)
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        return
    os.chmod(folder, 0o700)


_usable: dict[str, bool] = {}


def usable_dir(folder: str) -> bool:
    """Create the cache folder (0700) if needed; False (disk cache off) when others could write to it.

    A folder another user owns, or one that is group- or world-writable, could hold
    planted object code with a valid checksum: such a folder is not used.
    """
    known = _usable.get(folder)
    if known is not None:
        return known
    try:
        _make_private_dirs(folder)
        st = os.stat(folder)
        ok = (not hasattr(os, "getuid") or st.st_uid == os.getuid()) and not st.st_mode & 0o022
    except OSError:
        ok = False
    if not ok:
        import warnings
        warnings.warn(f"lazygrad: not using the kernel cache folder {folder!r}: it could not be created, or "
                      "another user could write to it (it must be owned by you and not group/world-writable)",
                      RuntimeWarning, stacklevel=3)
    _usable[folder] = ok
    return ok


def _write_entry(folder: str, path: str, payload: bytes) -> None:
    """Write atomically (a temporary file renamed into place); a cache that cannot be written is skipped."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    except OSError:
        return
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
    if folder is not None and not usable_dir(folder):
        folder = None
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
