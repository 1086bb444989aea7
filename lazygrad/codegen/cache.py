"""Compiled-kernel cache: in memory for the process, and on disk across processes.

The key is a hash of the generated LLVM IR, the host CPU description and the
llvmlite version, so the same loop program on the same machine is compiled
once. Disk entries are written atomically (a temporary file renamed into
place) and carry a SHA-256 checksum of their contents: a truncated or
corrupted entry is detected, deleted and recompiled, never loaded.

The folder is kept under LAZYGRAD_CACHE_MAX_MB megabytes (default 512; 0 or
less: no limit). Every hit touches its entry's modification time, so mtime
orders entries by last use; when a write takes the folder over the limit, the
least recently used entries are deleted until it is back under 90% of it.
The folder's size is recorded in a `.usage` file that writers update under an
flock, so that no write has to list the folder. Eviction is safe with several
processes at once: deleting is the only change it makes to entries, an entry
deleted under a reader is a miss (recompiled), never a damaged load, and
evictions are serialised by the same lock.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time

import llvmlite

try:
    import fcntl
except ImportError:   # (no flock: the recorded size can lose concurrent updates; listing corrects it)
    fcntl = None

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


DEFAULT_MAX_MB = 512


def max_bytes() -> int | None:
    """The size limit of the cache folder in bytes (LAZYGRAD_CACHE_MAX_MB), or None for no limit."""
    setting = os.environ.get("LAZYGRAD_CACHE_MAX_MB")
    try:
        mb = float(setting) if setting is not None and setting.strip() else DEFAULT_MAX_MB
    except ValueError:
        mb = DEFAULT_MAX_MB
    return int(mb * (1 << 20)) if 0 < mb < float("inf") else None   # (nan, inf: no limit)


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


def _write_entry(folder: str, path: str, payload: bytes) -> int:
    """Write atomically (a temporary file renamed into place); the entry's size in bytes, or 0 when the
    cache cannot be written (skipped)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    except OSError:
        return 0
    entry = _MAGIC + hashlib.sha256(payload).digest() + payload
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(entry)
        os.replace(tmp, path)
        return len(entry)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return 0


evictions = 0   # entries this process deleted to keep the folder under its limit
_ENTRY = re.compile(r"[0-9a-f]{64}\.o")
_STALE_TMP_S = 600   # a temporary file this old belongs to a writer that died: it may go too


def _scan(folder: str) -> list[tuple[float, int, str]]:
    """(mtime, size, path) of every entry, and of temporary files left by dead writers."""
    found = []
    now = time.time()
    try:
        with os.scandir(folder) as it:
            for e in it:
                name = e.name
                is_tmp = name.startswith(".tmp-")
                if not (is_tmp or _ENTRY.fullmatch(name)):
                    continue
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue   # (deleted meanwhile)
                if is_tmp and now - st.st_mtime < _STALE_TMP_S:
                    continue   # another process is writing it
                found.append((st.st_mtime, st.st_size, e.path))
    except OSError:
        pass
    return found


def evict(folder: str, limit: int, keep: str | None = None) -> int:
    """Delete the least recently used entries until the folder holds at most 90% of `limit` bytes
    (when it holds more than `limit`); never `keep` (the entry just written). Returns the bytes
    the folder now holds, as far as this process knows."""
    global evictions
    entries = _scan(folder)
    total = sum(size for _, size, _ in entries)
    if total <= limit:
        return total
    target = int(limit * 0.9)
    for _, size, path in sorted(entries):   # oldest first
        if total <= target:
            break
        if path == keep:
            continue
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass   # another process evicted it first: it is gone all the same
        except OSError:
            continue
        total -= size
        evictions += 1
    return total


_USAGE = ".usage"   # the folder's total entry bytes, as text: kept by every writer under an flock


def _locked(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)   # (released when fd is closed)


def _record_write(folder: str, path: str, size: int) -> None:
    """Add a written entry to the folder's recorded size; evict when that passes the limit.

    Listing the folder costs a stat per entry (seconds for 100,000 entries on a busy disk), too much
    for every write, or even every process's first. So the total lives in `.usage`, updated under an
    exclusive flock (no update is lost between processes); the folder is listed only when the total
    passes the limit (then eviction rewrites it from the listing) or when the file is missing or
    unreadable. The record errs high, never low: an entry two processes both wrote counts twice, a
    damaged entry deleted before its rewrite still counts; a high record only evicts a little early,
    and the listing puts it right.
    """
    limit = max_bytes()
    if limit is None:
        return
    try:
        fd = os.open(os.path.join(folder, _USAGE), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return
    try:
        _locked(fd)
        raw = os.read(fd, 64)
        try:
            total = int(raw) + size
        except ValueError:   # new, empty or damaged: count what is there (the new entry included)
            total = sum(sz for _, sz, _ in _scan(folder))
        if total > limit:
            total = evict(folder, limit, keep=path)
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, str(total).encode())
    except OSError:
        pass
    finally:
        os.close(fd)


def _touch(path: str) -> None:
    """Mark an entry as just used (its mtime orders eviction). An entry deleted meanwhile is no matter."""
    try:
        os.utime(path)
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
            _touch(path)
            return payload
        if os.path.exists(path):  # damaged: remove it so it is rewritten
            try:
                os.unlink(path)
            except OSError:
                pass
    payload = llvm_backend.optimize_and_emit(ir_text)
    stats.bump("kernels_compiled")
    if path is not None:
        written = _write_entry(folder, path, payload)
        if written:
            _record_write(folder, path, written)
    return payload
