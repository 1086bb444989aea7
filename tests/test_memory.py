"""Memory: the fused chain needs no more than its inputs and output, long loops do not grow,
and intermediates go back to the pool as soon as their last reader has run.

RSS is measured in subprocesses (a fresh interpreter, nothing else allocated)
from /proc/self/status: VmRSS now, VmHWM the peak, which writing "5" to
/proc/self/clear_refs resets (Linux >= 4.0) so a peak can be measured from a
baseline taken after the inputs exist.
"""
from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lazygrad as lg
from lazygrad.runtime import cpu

REPO = Path(__file__).resolve().parents[1]
MB = 1 << 20

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")

PRELUDE = r"""
import gc, json, os, sys
import numpy as np
import lazygrad as lg

def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field)

def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
"""


def _run(script: str, timeout=600) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("LAZYGRAD_DEBUG", None)
    proc = subprocess.run([sys.executable, "-c", PRELUDE + script], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode == 3:
        pytest.skip(proc.stdout.strip())
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


FUSED_CHAIN = r"""
N = 1 << 24
chain = lambda a, b, c: ((a * b + c).relu() * 0.5).exp()
small = [lg.tensor(np.full(4096, 0.5, np.float32)) for _ in range(3)]
chain(*small).numpy()                      # compile once, on a small size
try:
    reset_peak()
except OSError as e:
    print("cannot reset the peak RSS here: %s" % e); sys.exit(3)
rng = np.random.default_rng(0)
a, b, c = (lg.from_numpy(rng.random(N, dtype=np.float32)) for _ in range(3))  # realised inputs
gc.collect()
base = status("VmRSS")
reset_peak()
out = chain(a, b, c)
out.realize()
peak = status("VmHWM")
value = out.numpy()
ok = bool(np.allclose(value[:1000], np.exp(np.maximum(a.numpy()[:1000] * b.numpy()[:1000] + c.numpy()[:1000], 0) * 0.5)))
print(json.dumps({"base": base, "peak": peak, "ok": ok, "kernels": lg.stats()["kernels_launched"]}))
"""


def test_fused_chain_peak_rss_is_inputs_plus_output():
    """exp(relu(a*b+c)*0.5) over 16M floats: one kernel, no intermediates.

    The baseline already holds the three inputs (192 MB); the computation may add the
    64 MB output and at most 10% of inputs + output (25.6 MB) for everything else.
    """
    r = _run(FUSED_CHAIN)
    n_bytes = (1 << 24) * 4
    inputs, output = 3 * n_bytes, n_bytes
    growth = r["peak"] - r["base"]
    assert r["ok"]
    assert growth <= output + 0.10 * (inputs + output), \
        f"peak grew by {growth / MB:.1f} MB over the baseline; allowed {(output + 0.1 * (inputs + output)) / MB:.1f} MB"
    assert growth >= 0.9 * output  # the measurement sees the output being written (a sanity check)


TRAINING = r"""
from lazygrad import nn, optim
steps, warm = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
model = nn.Linear(8, 1)
opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
rss = []
for i in range(steps):
    x = lg.tensor(rng.random((4, 8), dtype=np.float32))
    y = lg.tensor(rng.random((4, 1), dtype=np.float32))
    loss = ((model(x) - y) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    loss.item()
    if i + 1 == warm:
        gc.collect()
        rss.append(status("VmRSS"))
        stats_warm = lg.stats()
gc.collect()
rss.append(status("VmRSS"))
from lazygrad.ir.node import Node
from lazygrad.runtime import realize
s = lg.stats()
print(json.dumps({"rss": rss, "schedules": s["schedules_built"] - stats_warm["schedules_built"],
                  "compiled": s["kernels_compiled"] + s["disk_cache_hits"] - stats_warm["kernels_compiled"]
                              - stats_warm["disk_cache_hits"],
                  "interned": len(Node._interned), "plans": len(realize._plans),
                  "pool_mb": __import__("lazygrad.runtime.cpu", fromlist=["pool"]).pool.bytes / 2**20}))
"""


def test_ten_thousand_training_steps_keep_rss_flat():
    """10,000 SGD steps (momentum) of a linear model on fresh data: after 1,000 warm-up steps RSS grows < 20 MB,
    nothing is scheduled or compiled again, and the node table and plan cache stay small."""
    if not (hasattr(lg, "nn") and hasattr(lg, "optim")):
        pytest.skip("needs lazygrad.nn and lazygrad.optim")
    r = _run(TRAINING.replace("int(sys.argv[1]), int(sys.argv[2])", "10000, 1000"))
    growth = r["rss"][1] - r["rss"][0]
    assert growth < 20 * MB, f"RSS grew by {growth / MB:.1f} MB over 9,000 steps"
    assert r["schedules"] == 0 and r["compiled"] == 0, r
    assert r["interned"] < 2000 and r["plans"] < 20, r
    assert r["pool_mb"] < 64, r


TINY_STEPS = r"""
rng = np.random.default_rng(0)
w = lg.tensor(rng.random(16, dtype=np.float32))
b = lg.tensor(rng.random(16, dtype=np.float32))
rss, total = [], 0.0
for i in range(10000):
    x = lg.tensor(rng.random(16, dtype=np.float32))
    total += (x * w + b).sum().item()
    if i + 1 == 1000:
        gc.collect()
        rss.append(status("VmRSS"))
        warm = lg.stats()
gc.collect()
rss.append(status("VmRSS"))
from lazygrad.ir.node import Node
s = lg.stats()
print(json.dumps({"rss": rss, "schedules": s["schedules_built"] - warm["schedules_built"],
                  "interned": len(Node._interned), "allocated": s["buffers_allocated"] - warm["buffers_allocated"]}))
"""


def test_ten_thousand_tiny_realisations_keep_rss_flat():
    r = _run(TINY_STEPS)
    growth = r["rss"][1] - r["rss"][0]
    assert growth < 20 * MB, f"RSS grew by {growth / MB:.1f} MB over 9,000 realisations"
    assert r["schedules"] == 0, r           # the schedule cache answers every repeat
    assert r["interned"] < 500, r           # dead graphs leave the node table


def test_changing_python_scalars_do_not_recompile_or_grow_the_plan_cache():
    from lazygrad.runtime import realize
    x = lg.tensor(np.ones(16, np.float32))
    (x * 0.5).sum().item()
    before = lg.stats()["schedules_built"], len(realize._plans)
    for i in range(40):
        (x * (0.5 + i * 1e-3)).sum().item()
    assert lg.stats()["schedules_built"] - before[0] <= 2
    assert len(realize._plans) - before[1] <= 2


def test_a_learning_rate_schedule_in_python_floats_compiles_nothing_after_the_first_step():
    """A hand-written training loop: SGD with a decaying Python-float learning rate, a loss
    scaled by a changing float, and a running average `total / step` for logging."""
    rng = np.random.default_rng(0)
    x = lg.tensor(rng.standard_normal((5, 7)).astype(np.float32))
    y = lg.tensor(rng.standard_normal((5, 3)).astype(np.float32))
    w = lg.tensor(rng.standard_normal((3, 7)).astype(np.float32), requires_grad=True)
    b = lg.tensor(np.zeros(3, np.float32), requires_grad=True)
    tw, tb = w.detach().numpy().copy(), b.detach().numpy().copy()
    total = 0.0
    for step in range(1, 8):
        lr = 0.1 * 0.9 ** step + 1e-3 * step
        w.grad = b.grad = None
        loss = ((x @ w.T + b - y) ** 2).mean() * (1.0 + 0.37 / step)
        loss.backward()
        with lg.no_grad():
            w -= lr * w.grad
            b -= lr * b.grad
        total += float((loss / step).item())
        if step == 2:
            # step 1 plans the first backward and `loss / 1` (1 is compiled in); step 2 the backward
            # fused with the pending update, and `loss / 2`, where 2 is a parameter like every later step
            warm = lg.stats()
    after = lg.stats()
    for counter in ("schedules_built", "kernels_compiled", "disk_cache_hits", "memory_cache_hits"):
        assert after[counter] == warm[counter], (counter, warm, after)
    # the same values as float64 NumPy, to float32 accuracy
    xn, yn = x.numpy().astype(np.float64), y.numpy().astype(np.float64)
    tw, tb = tw.astype(np.float64), tb.astype(np.float64)
    for step in range(1, 8):
        lr = 0.1 * 0.9 ** step + 1e-3 * step
        scale = 1.0 + 0.37 / step
        d = xn @ tw.T + tb - yn
        gd = 2 * d / d.size * scale
        tw, tb = tw - lr * gd.T @ xn, tb - lr * gd.sum(0)
    np.testing.assert_allclose(w.detach().numpy(), tw, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(b.detach().numpy(), tb, rtol=1e-4, atol=1e-5)


def test_backward_with_changing_python_scalars_is_right_and_keeps_one_cached_plan():
    """backward() with a scalar that changes between calls. The rule for sqrt makes a constant 2.0 of
    its own, the very node of the loss's `* 2.0`: a plan recorded for one value must never run for
    another (it would read the loss's scalar where the rule's 2.0 belongs)."""
    from lazygrad import autograd
    w_np = np.linspace(0.5, 3.0, 12, dtype=np.float64).reshape(3, 4)
    w = lg.tensor(w_np, requires_grad=True)
    before = len(autograd._backward_plans)
    for c in (2.0, 3.0, 3.0, 2.0, 0.7, 2.0, 5.5):
        w.grad = None
        (w.sqrt() * c).sum().backward()
        np.testing.assert_allclose(w.grad.numpy(), c / (2 * np.sqrt(w_np)), rtol=1e-12)
    assert len(autograd._backward_plans) - before <= 1


# ---------------------------------------------------------------- intermediates and the pool

class _Trace:
    """Records takes, gives and launches of the CPU runtime (in this process)."""

    def __init__(self, monkeypatch):
        self.events = []
        take, give, launch = cpu.pool.take, cpu.pool.give, cpu.launch

        def traced_take(np_dtype, numel):
            arr = take(np_dtype, numel)
            self.events.append(("take", id(arr), arr.nbytes))
            return arr

        def traced_give(arr):
            self.events.append(("give", id(arr), arr.nbytes))
            give(arr)

        def traced_launch(kernel, arrays, *args, **kwargs):
            self.events.append(("launch", tuple(id(a) for a in arrays if a is not None), 0))
            return launch(kernel, arrays, *args, **kwargs)

        monkeypatch.setattr(cpu.pool, "take", traced_take)
        monkeypatch.setattr(cpu.pool, "give", traced_give)
        monkeypatch.setattr(cpu, "launch", traced_launch)

    def launches(self):
        return [e[1] for e in self.events if e[0] == "launch"]


def _mlp_chain(depth=4, rows=2048, width=64):
    rng = np.random.default_rng(0)
    h = lg.tensor(rng.random((rows, width), dtype=np.float32))
    ws = [lg.tensor(rng.random((width, width), dtype=np.float32) * 0.1) for _ in range(depth)]
    for w in ws:
        h = h.relu() @ w  # each product is a kernel reading only the previous one
    return h, rows * width * 4


def test_intermediates_are_freed_as_soon_as_they_are_dead(monkeypatch):
    out, big = _mlp_chain()
    cpu.pool.clear()
    lg.stats(reset=True)
    trace = _Trace(monkeypatch)
    out.realize()
    events = trace.events
    launches = [i for i, e in enumerate(events) if e[0] == "launch"]
    outputs = [events[i][1][0] for i in launches]  # each launch's first array is its output
    assert len(launches) >= 4
    for k in range(1, len(launches) - 1):
        prev_out = outputs[k - 1]
        # the previous product's last reader is launch k: it goes back before launch k + 1
        between = events[launches[k] + 1:launches[k + 1]]
        assert ("give", prev_out, big) in between, f"intermediate of kernel {k - 1} was not freed after kernel {k}"
    # live big buffers never exceed two: the one being read and the one being written
    live, peak = set(), 0
    for kind, ident, nbytes in events:
        if kind == "take" and nbytes == big:
            live.add(ident)
        elif kind == "give" and nbytes == big:
            live.discard(ident)
        peak = max(peak, len(live))
    assert peak == 2
    fresh_big = len({e[1] for e in events if e[0] == "take" and e[2] == big})
    assert fresh_big == 2, "dead intermediates were not reused for later outputs"
    # at the end every intermediate is back in the pool: exactly one big buffer (the output is not)
    pooled = [a for arrays in cpu.pool.free.values() for a in arrays if a.nbytes == big]
    assert len(pooled) == 1
    assert not np.shares_memory(pooled[0], out.numpy())


def test_intermediates_go_back_to_the_pool_when_a_kernel_fails(monkeypatch):
    rng = np.random.default_rng(0)
    x = lg.tensor(rng.random((1024, 64), dtype=np.float32))
    w = lg.tensor(rng.random((64, 64), dtype=np.float32))
    h = (x @ w).relu() @ w                               # two kernels with a 256 KB intermediate
    bad = h.gather(1, lg.tensor([[70]] * 1024))          # then an out-of-range gather
    cpu.pool.clear()
    trace = _Trace(monkeypatch)
    with pytest.raises((IndexError, RuntimeError)):
        bad.realize()
    taken = {e[1] for e in trace.events if e[0] == "take"}
    given = {e[1] for e in trace.events if e[0] == "give"}
    assert taken and taken <= given, "a buffer taken for the failed schedule was never returned"
    assert h.numpy().shape == (1024, 64)                 # and the runtime still works


def test_pool_keeps_at_most_its_limit():
    pool = cpu.BufferPool(limit_bytes=4 * MB)
    arrays = [np.empty(MB // 4, np.float32) for _ in range(6)]  # 1 MB each
    for a in arrays:
        pool.give(a)
    assert pool.bytes <= 4 * MB
    taken = pool.take(np.dtype(np.float32), MB // 4)
    assert any(taken is a for a in arrays) and pool.bytes <= 3 * MB


def test_dead_graphs_leave_the_node_table():
    from lazygrad.ir.node import Node
    gc.collect()
    before = len(Node._interned)
    for i in range(200):
        x = lg.tensor(np.full(8, float(i), np.float32))
        ((x * 2 + 1).exp().sum() * 3).item()
    del x
    gc.collect()
    assert len(Node._interned) - before < 100
