"""The disk kernel cache's size limit (LAZYGRAD_CACHE_MAX_MB): least recently used entries go first.

Unit tests call cache.evict / cache.object_code on a temporary folder; the end-to-end tests run the
workload of test_cache.py in subprocesses (one at a time, and four at once) with a limit far below
what the workload writes.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lazygrad.codegen import cache

from test_cache import REPO, WORKLOAD, _assert_valid, _entries, _env, _run


def _folder_bytes(folder) -> int:
    return sum(p.stat().st_size for p in Path(folder).iterdir() if p.is_file() and p.name != ".usage")


def _fake_entries(folder: Path, sizes: list[int]) -> list[Path]:
    """Valid entries (payloads of the given sizes), the first one the least recently used."""
    folder.mkdir(mode=0o700, exist_ok=True)
    paths = []
    now = time.time()
    for i, size in enumerate(sizes):
        path = folder / (f"{i:064x}" + ".o")
        assert cache._write_entry(str(folder), str(path), bytes([i % 256]) * size)
        os.utime(path, (now - 1000 + i, now - 1000 + i))
        paths.append(path)
    return paths


def test_max_bytes_setting(monkeypatch):
    monkeypatch.delenv("LAZYGRAD_CACHE_MAX_MB", raising=False)
    assert cache.max_bytes() == cache.DEFAULT_MAX_MB << 20 == 512 << 20
    monkeypatch.setenv("LAZYGRAD_CACHE_MAX_MB", "2")
    assert cache.max_bytes() == 2 << 20
    monkeypatch.setenv("LAZYGRAD_CACHE_MAX_MB", "0.5")
    assert cache.max_bytes() == 1 << 19
    for unlimited in ("0", "-1", "inf", "nan"):
        monkeypatch.setenv("LAZYGRAD_CACHE_MAX_MB", unlimited)
        assert cache.max_bytes() is None
    for junk in ("", "lots"):
        monkeypatch.setenv("LAZYGRAD_CACHE_MAX_MB", junk)
        assert cache.max_bytes() == 512 << 20


def test_evict_deletes_least_recently_used_entries_first(tmp_path):
    folder = tmp_path / "c"
    paths = _fake_entries(folder, [1000] * 10)   # 10 entries of 1036 bytes
    before = cache.evictions
    assert cache.evict(str(folder), limit=20000) == 10360   # under the limit: nothing to do
    assert all(p.exists() for p in paths) and cache.evictions == before
    left = cache.evict(str(folder), limit=6000)   # over: down to 90% of it (5400 bytes: 5 entries)
    assert left == 5 * 1036 and [p.exists() for p in paths] == [False] * 5 + [True] * 5
    assert cache.evictions == before + 5
    _assert_valid(folder)


def test_evict_never_deletes_the_entry_just_written(tmp_path):
    folder = tmp_path / "c"
    paths = _fake_entries(folder, [100, 100, 5000])
    os.utime(paths[2], (0, 0))   # the oldest of all, but the one being kept
    cache.evict(str(folder), limit=1000, keep=str(paths[2]))
    assert [p.exists() for p in paths] == [False, False, True]


def test_evict_leaves_other_files_and_live_temporaries(tmp_path):
    folder = tmp_path / "c"
    paths = _fake_entries(folder, [2000, 2000])
    other = folder / "notes.txt"
    other.write_bytes(b"x" * 5000)
    live, dead = folder / ".tmp-live", folder / ".tmp-dead"
    live.write_bytes(b"y" * 3000)   # being written by another process right now
    dead.write_bytes(b"z" * 3000)   # left by a writer that died long ago
    os.utime(dead, (time.time() - 3600, time.time() - 3600))
    cache.evict(str(folder), limit=1000)
    assert other.exists() and live.exists() and not dead.exists()
    assert not any(p.exists() for p in paths)


def _usage(folder) -> int:
    return int((Path(folder) / ".usage").read_text())


def _entry_bytes(folder) -> int:
    return sum(p.stat().st_size for p in _entries(folder))


def test_the_folder_size_is_recorded_not_listed_at_every_write(tmp_path, monkeypatch):
    folder = tmp_path / "c"
    paths = _fake_entries(folder, [100, 200])
    monkeypatch.setenv("LAZYGRAD_CACHE_MAX_MB", "1")
    cache._record_write(str(folder), str(paths[1]), 236)   # no record yet: the folder is listed
    assert _usage(folder) == 136 + 236
    listed = []
    monkeypatch.setattr(cache, "_scan", lambda f: listed.append(f) or [])
    cache._record_write(str(folder), str(paths[1]), 1000)   # a record: added to, nothing listed
    assert _usage(folder) == 1372 and not listed
    for damage in ("", "garbage", "12x"):   # an unreadable record is recounted
        (folder / ".usage").write_text(damage)
        monkeypatch.undo()
        monkeypatch.setenv("LAZYGRAD_CACHE_MAX_MB", "1")
        cache._record_write(str(folder), str(paths[1]), 236)
        assert _usage(folder) == 136 + 236


def test_passing_the_recorded_limit_evicts_and_rewrites_the_record(tmp_path, monkeypatch):
    folder = tmp_path / "c"
    paths = _fake_entries(folder, [3000] * 4)   # 4 x 3036 bytes
    monkeypatch.setenv("LAZYGRAD_CACHE_MAX_MB", str(10000 / 2 ** 20))
    (folder / ".usage").write_text(str(3 * 3036))
    cache._record_write(str(folder), str(paths[3]), 3036)   # 12144 > 10000: down to 9000
    assert [p.exists() for p in paths] == [False, False, True, True]
    assert _usage(folder) == 2 * 3036


def test_a_hit_marks_the_entry_as_recently_used(tmp_path, monkeypatch):
    folder = tmp_path / "c"
    [path] = _fake_entries(folder, [300])
    os.utime(path, (1000, 1000))
    monkeypatch.setenv("LAZYGRAD_CACHE", str(folder))
    key = path.name[:-2]
    assert cache.object_code("(never compiled: the entry is a hit)", key) == bytes([0]) * 300
    assert path.stat().st_mtime > time.time() - 60


def test_a_process_keeps_the_folder_under_its_limit(tmp_path, reference):
    unlimited = tmp_path / "all"
    _run(unlimited)
    total = _folder_bytes(unlimited)
    limit_mb = total / 2 / 2 ** 20   # half of what the workload writes
    limited = tmp_path / "half"
    out = _run(limited, max_mb=limit_mb)
    assert out["values"] == reference["values"]
    assert _folder_bytes(limited) <= limit_mb * 2 ** 20
    assert 0 < len(_entries(limited)) < len(_entries(unlimited))
    assert _usage(limited) == _entry_bytes(limited)   # one writer: the record is exact
    _assert_valid(limited)
    again = _run(limited, max_mb=limit_mb)   # a later process: what is left is used, the rest recompiled
    assert again["values"] == reference["values"]
    assert _folder_bytes(limited) <= limit_mb * 2 ** 20


ONE_HIT_AND_NEW_KERNELS = r"""
import json, numpy as np, lazygrad as lg
rng = np.random.default_rng(0)
a = lg.tensor(rng.standard_normal((8, 5)).astype(np.float32))
out = [a.sum(1).numpy().tolist()]                     # a kernel the workload compiled: a hit
for k in range(3):                                    # new kernels, written after the hit
    out.append((a * (k + 2)).sin().amax(0).numpy().tolist())
print(json.dumps({"values": out, "stats": lg.stats()}))
"""


def test_recently_used_entries_outlive_older_ones(tmp_path, reference):
    folder = tmp_path / "c"
    _run(folder)
    entries = _entries(folder)
    start = time.time()
    for i, p in enumerate(entries):   # an age order: entries[0] the least recently used
        os.utime(p, (start - 1000 + i, start - 1000 + i))
    total = _folder_bytes(folder)
    out = _run(folder, script=ONE_HIT_AND_NEW_KERNELS, max_mb=total / 2 ** 20)   # the new kernels overflow it
    hits = out["stats"]["disk_cache_hits"]
    assert hits >= 1 and out["stats"]["kernels_compiled"] >= 1
    touched = [p for p in entries if p.exists() and p.stat().st_mtime >= start - 1]
    assert len(touched) == hits, "a hit was not marked as used"
    kept = [p.exists() for p in entries if p not in touched]
    assert kept.count(False) > 0, "nothing was evicted"
    assert kept == sorted(kept), "a more recently used entry went before an older one"
    assert _folder_bytes(folder) <= total
    _assert_valid(folder)


def test_concurrent_processes_under_a_small_limit_leave_a_valid_cache(tmp_path, reference):
    """Four processes compile the same kernels at once into a cache that can hold about half of them:
    they write, hit and evict at the same time. Every entry left must be valid, no result wrong."""
    unlimited = tmp_path / "all"
    _run(unlimited)
    limit_mb = _folder_bytes(unlimited) / 2 / 2 ** 20
    folder, meet = tmp_path / "cache", tmp_path / "meet"
    meet.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", WORKLOAD, str(meet)], env=_env(folder, limit_mb), cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    deadline = time.time() + 120
    while len(list(meet.glob("ready-*"))) < len(procs) and time.time() < deadline:
        time.sleep(0.01)
    (meet / "go").touch()
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr[-3000:]
        assert json.loads(stdout.strip().splitlines()[-1])["values"] == reference["values"]
    _assert_valid(folder)
    assert _usage(folder) >= _entry_bytes(folder)   # (no update lost: the record never counts low)
    assert _folder_bytes(folder) <= limit_mb * 2 ** 20 + 64   # (+ the record itself)
    after = _run(folder, max_mb=limit_mb)
    assert after["values"] == reference["values"]
    assert _folder_bytes(folder) <= limit_mb * 2 ** 20
    _assert_valid(folder)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = _run(tmp_path_factory.mktemp("reference-cache"))
    assert out["stats"]["kernels_compiled"] >= 6
    return out
