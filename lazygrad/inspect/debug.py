"""What `LAZYGRAD_DEBUG=1..4` prints while a program runs.

    1  every kernel launch with its time (and its compile time the first time)
    2  also, before the launches, the scheduled graph of each new realisation plan
       (a plan seen before prints one line naming the realisation that built it)
    3  also each kernel's loop program
    4  also each kernel's generated LLVM IR (and its PTX when it runs on a GPU)

`lazygrad.runtime.realize` calls `before_run` and `launch`; networkx is only
imported from level 2 on.
"""
from __future__ import annotations

import weakref

_count = 0
_first_seen: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # plan -> realisation that built it
_running: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()      # plan -> (this realisation, is new)


def before_run(plan, roots, level: int) -> None:
    """Called before a plan's kernels run: numbers the realisation and prints its graph (level >= 2)."""
    global _count
    _count += 1
    first = _first_seen.get(plan)
    new = first is None
    if new:
        _first_seen[plan] = _count
    _running[plan] = (_count, new)
    if level < 2:
        return
    n = len(plan.steps)
    kernels = f"{n} kernel{'s' if n != 1 else ''}"
    if not new:
        print(f"realisation #{_count}: {kernels}, the same graph as realisation #{first}")
        return
    from .formats import graph_text
    from .nxgraph import to_networkx
    from .kernel_info import from_plan
    print(f"realisation #{_count}: {kernels}, new plan")
    G = to_networkx(plan.record["simplified"], "scheduled", kernels=plan.record["scheduled"],
                    through=frozenset(id(r) for r in roots))
    code = "ptx" if level >= 4 else ("program" if level >= 3 else "none")   # PTX only exists for GPU kernels
    text = graph_text(G, from_plan(plan), code)
    print("\n".join(("  " + line).rstrip() for line in text.splitlines()))


def launch(plan, index: int, step, seconds: float) -> None:
    """One line per kernel launch."""
    number, new = _running.get(plan, (_count, False))
    compiled = ""
    if new and getattr(step.kernel, "compile_ms", None) is not None:
        compiled = f"  (compiled in {step.kernel.compile_ms:.2f} ms)"
    print(f"#{number:<4} kernel {index + 1}/{len(plan.steps)} {step.kernel.name:<16} "
          f"{seconds * 1e3:9.3f} ms  {step.compiled.name}{compiled}")
