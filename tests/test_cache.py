"""The disk kernel cache (lazygrad/codegen/cache.py) under concurrency, damage and hostile folders.

Every test runs lazygrad in subprocesses with LAZYGRAD_CACHE pointing at a
temporary folder, so the user's own cache is never touched and each process
starts with an empty in-memory cache.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lazygrad.codegen import cache

REPO = Path(__file__).resolve().parents[1]

# A script computing several distinct kernels (elementwise, reductions, matmul, a gather) and
# printing their results and the cache counters as JSON. argv[1]: a folder to rendezvous in
# (optional): the script imports lazygrad, says it is ready and waits for "go" before compiling.
WORKLOAD = r"""
import json, os, sys, time
import numpy as np
import lazygrad as lg
if len(sys.argv) > 1:
    meet = sys.argv[1]
    open(os.path.join(meet, "ready-%d" % os.getpid()), "w").close()
    deadline = time.time() + 120
    while not os.path.exists(os.path.join(meet, "go")) and time.time() < deadline:
        time.sleep(0.002)
rng = np.random.default_rng(0)
a = lg.tensor(rng.standard_normal((8, 5)).astype(np.float32))
b = lg.tensor(rng.standard_normal((5, 3)).astype(np.float32))
outs = {
    "chain": (a * 2 + 1).exp().relu(),
    "sum": a.sum(1),
    "max": a.amax(0),
    "matmul": a @ b,
    "softmaxish": (a - a.amax(1, keepdim=True)).exp(),
    "gather": a.gather(1, lg.tensor([[0, 4]] * 8)),
    "int": (lg.arange(12).reshape(3, 4) * 3 + 1) // 2,
    "mean_sq": (a * a).mean(),
}
result = {k: np.asarray(v.numpy()).tolist() for k, v in outs.items()}
print(json.dumps({"values": result, "stats": lg.stats()}))
"""


def _env(folder, max_mb=None) -> dict:
    env = dict(os.environ)
    env["LAZYGRAD_CACHE"] = str(folder)
    env.pop("LAZYGRAD_CACHE_MAX_MB", None)   # (the default limit: far above what these workloads write)
    if max_mb is not None:
        env["LAZYGRAD_CACHE_MAX_MB"] = str(max_mb)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("LAZYGRAD_DEBUG", None)
    return env


def _run(folder, *args, script=WORKLOAD, max_mb=None) -> dict:
    proc = subprocess.run([sys.executable, "-c", script, *map(str, args)], env=_env(folder, max_mb), cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _entries(folder) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.suffix == ".o")


def _assert_valid(folder) -> None:
    entries = _entries(folder)
    assert entries, "the cache is empty"
    for p in entries:
        assert cache._read_entry(str(p)) is not None, f"{p.name} is not a valid entry"
    leftovers = [p.name for p in Path(folder).iterdir() if p.name.startswith(".tmp-")]
    assert not leftovers, f"temporary files left behind: {leftovers}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The workload's values and its kernel count, from one cold run in a fresh cache."""
    folder = tmp_path_factory.mktemp("reference-cache")
    out = _run(folder)
    assert out["stats"]["kernels_compiled"] >= 6 and out["stats"]["disk_cache_hits"] == 0
    return out


def test_second_process_loads_everything_from_disk(tmp_path, reference):
    first = _run(tmp_path)
    second = _run(tmp_path)
    n = first["stats"]["kernels_compiled"]
    assert second["stats"]["kernels_compiled"] == 0
    assert second["stats"]["disk_cache_hits"] == n
    assert first["values"] == second["values"] == reference["values"]
    assert len(_entries(tmp_path)) == n
    _assert_valid(tmp_path)


def test_concurrent_processes_leave_a_valid_cache(tmp_path, reference):
    """Four processes compile the same kernels at the same moment into one empty cache."""
    folder, meet = tmp_path / "cache", tmp_path / "meet"
    meet.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", WORKLOAD, str(meet)], env=_env(folder), cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    deadline = time.time() + 120
    while len(list(meet.glob("ready-*"))) < len(procs) and time.time() < deadline:
        time.sleep(0.01)
    (meet / "go").touch()  # all start compiling together
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr[-3000:]
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    for out in outs:
        assert out["values"] == reference["values"]
    _assert_valid(folder)
    assert len(_entries(folder)) == reference["stats"]["kernels_compiled"]
    after = _run(folder)  # and the result is a cache a later process uses completely
    assert after["stats"]["kernels_compiled"] == 0 and after["values"] == reference["values"]


def _damage(path: Path, how: str) -> None:
    blob = path.read_bytes()
    if how == "truncated":
        path.write_bytes(blob[: len(blob) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "flipped byte":
        i = len(blob) * 3 // 4
        path.write_bytes(blob[:i] + bytes([blob[i] ^ 0xFF]) + blob[i + 1:])
    elif how == "bad checksum":
        path.write_bytes(blob[:4] + bytes(32) + blob[36:])
    elif how == "wrong magic":
        path.write_bytes(b"XXXX" + blob[4:])
    elif how == "garbage":
        path.write_bytes(os.urandom(len(blob)))
    elif how == "header only":
        path.write_bytes(blob[:36])
    else:
        raise ValueError(how)


DAMAGES = ["truncated", "empty", "flipped byte", "bad checksum", "wrong magic", "garbage", "header only"]


def test_damaged_entries_are_detected_recompiled_and_rewritten(tmp_path, reference):
    """Each entry gets a different kind of damage; none may be loaded, all are rewritten."""
    _run(tmp_path)
    entries = _entries(tmp_path)
    assert len(entries) >= len(DAMAGES)
    for i, p in enumerate(entries):
        _damage(p, DAMAGES[i % len(DAMAGES)])
    out = _run(tmp_path)
    assert out["values"] == reference["values"]
    assert out["stats"]["disk_cache_hits"] == 0, "a damaged entry was loaded"
    assert out["stats"]["kernels_compiled"] == len(entries)
    _assert_valid(tmp_path)  # rewritten whole
    assert _run(tmp_path)["stats"]["kernels_compiled"] == 0


def test_only_the_damaged_entry_is_recompiled(tmp_path, reference):
    _run(tmp_path)
    entries = _entries(tmp_path)
    _damage(entries[0], "truncated")
    out = _run(tmp_path)
    assert out["values"] == reference["values"]
    assert out["stats"]["kernels_compiled"] == 1 and out["stats"]["disk_cache_hits"] == len(entries) - 1
    _assert_valid(tmp_path)


def test_read_entry_rejects_every_single_byte_change(tmp_path):
    payload = bytes(range(256)) * 4
    path = tmp_path / "k.o"
    cache._write_entry(str(tmp_path), str(path), payload)
    assert cache._read_entry(str(path)) == payload
    blob = path.read_bytes()
    for i in range(0, len(blob), 7):
        path.write_bytes(blob[:i] + bytes([blob[i] ^ 0x01]) + blob[i + 1:])
        assert cache._read_entry(str(path)) is None, f"a change at byte {i} went unnoticed"
    for n in (0, 3, 35, 36, len(blob) - 1):
        path.write_bytes(blob[:n])
        assert cache._read_entry(str(path)) is None, f"a file cut to {n} bytes went unnoticed"


UMASK_SCRIPT = r"""
import os, sys
os.umask(int(sys.argv[1], 8))
import lazygrad as lg
print(float(lg.ones(3).exp().sum().item()))
"""


@pytest.mark.parametrize("umask", ["000", "022"])
def test_cache_folder_and_created_parents_are_private(tmp_path, umask):
    folder = tmp_path / "x" / "y" / "cache"
    proc = subprocess.run([sys.executable, "-c", UMASK_SCRIPT, umask], env=_env(folder), cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for p in (tmp_path / "x", tmp_path / "x" / "y", folder):
        assert stat.S_IMODE(p.stat().st_mode) == 0o700, f"{p} is {oct(stat.S_IMODE(p.stat().st_mode))}"
    assert _entries(folder)


def test_cache_folder_under_an_existing_parent_is_private(tmp_path):
    (tmp_path / "parent").mkdir(mode=0o755)
    folder = tmp_path / "parent" / "cache"
    proc = subprocess.run([sys.executable, "-c", UMASK_SCRIPT, "000"], env=_env(folder), cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "parent").stat().st_mode) == 0o755  # an existing folder is not changed


def test_a_folder_others_can_write_to_is_not_used(tmp_path, reference):
    """Someone who can write to the folder could plant object code with a valid checksum."""
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o777)
    proc = subprocess.run([sys.executable, "-c", WORKLOAD], env=_env(folder), cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["values"] == reference["values"]
    assert "not using the kernel cache folder" in proc.stderr
    assert not _entries(folder) and out["stats"]["disk_cache_hits"] == 0


def test_a_cache_folder_that_cannot_be_created_does_not_break_computing(tmp_path, reference):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = subprocess.run([sys.executable, "-c", WORKLOAD], env=_env(blocker / "cache"), cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["values"] == reference["values"]


@pytest.mark.parametrize("setting", ["0", "off"])
def test_lazygrad_cache_off_disables_the_disk_cache(tmp_path, setting, reference):
    env = _env(setting)
    proc = subprocess.run([sys.executable, "-c", WORKLOAD], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["values"] == reference["values"]
    assert out["stats"]["disk_cache_hits"] == 0 and out["stats"]["kernels_compiled"] >= 6
    assert not any(tmp_path.iterdir()), "nothing may be written when the cache is off"


def test_cache_dir_setting(monkeypatch, tmp_path):
    for off in ("0", "off", "OFF", "false", "no", ""):
        monkeypatch.setenv("LAZYGRAD_CACHE", off)
        assert cache.cache_dir() is None, off
    monkeypatch.setenv("LAZYGRAD_CACHE", str(tmp_path))
    assert cache.cache_dir() == str(tmp_path)
    monkeypatch.delenv("LAZYGRAD_CACHE")
    assert cache.cache_dir().endswith(os.path.join(".cache", "lazygrad"))
