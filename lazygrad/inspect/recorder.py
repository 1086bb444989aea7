"""Recording realisations: what `lazygrad-inspect SCRIPT.py` sees while a script runs.

A `Recorder` is an observer of `lazygrad.runtime.realize`: after every
realisation it gets the plan (its pipeline record and its compiled kernels),
the roots that were computed and the time each kernel launch took. A plan is
built once per graph *structure* and reused (a training loop realises the
same structure at every step), so graphs and code are kept once per plan and
the realisations refer to them.

While recording, `lazygrad.autograd.backward` and `lazygrad.grad` are wrapped
so that the nodes of gradient computations can be told apart from the forward
pass (stage "gradients").
"""
from __future__ import annotations

import linecache
import os
import sys
import weakref
from dataclasses import dataclass, field

from . import kernel_info as K
from .nxgraph import reachable_ids, to_networkx

STAGES = ("built", "simplified", "gradients", "scheduled")
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class PlanRecord:
    index: int                 # 1, 2, ... in the order plans were first run
    first_realisation: int
    graphs: dict               # stage -> networkx.DiGraph
    kernels: list              # KernelInfo per kernel, with compile and launch times
    title: str = ""


@dataclass
class Realisation:
    index: int
    plan: int
    new_plan: bool
    timings_ms: list
    source: str = ""           # "script.py:12: print(y)": the line that asked for the values
    gradient: bool = False     # inside backward(), or computing lazygrad.grad results

    def summary(self) -> str:
        n = len(self.timings_ms)
        what = "new" if self.new_plan else "reused"
        grad = " gradient" if self.gradient else ""
        return (f"#{self.index:<3} plan {self.plan} ({what}){grad}, {n} kernel{'s' if n != 1 else ''}, "
                f"{sum(self.timings_ms):.3f} ms" + (f"  at {self.source}" if self.source else ""))

    def to_dict(self) -> dict:
        return {"index": self.index, "plan": self.plan, "new_plan": self.new_plan, "timings_ms": self.timings_ms,
                "source": self.source, "gradient": self.gradient}


@dataclass
class Report:
    script: str
    argv: list
    plans: list = field(default_factory=list)
    realisations: list = field(default_factory=list)


def plan_graphs(record: dict, through=frozenset(), marks=None) -> dict:
    """The graph at each stage of a pipeline record {"built", "simplified", "scheduled"}.

    marks: None, or the ids of the gradient nodes of the built graph ("built") and of
    the simplified one ("simplified", which the scheduled graph shares).
    """
    built, simplified = (marks or {}).get("built"), (marks or {}).get("simplified")
    graphs = {"built": to_networkx(record["built"], "built", through=through, gradient_nodes=built),
              "simplified": to_networkx(record["simplified"], "simplified", through=through,
                                        gradient_nodes=simplified),
              "scheduled": to_networkx(record["simplified"], "scheduled", kernels=record["scheduled"],
                                       through=through, gradient_nodes=simplified)}
    if marks:
        graphs["gradients"] = to_networkx(record["built"], "gradients", through=through, gradient_nodes=built)
    return graphs


class Recorder:
    """Use as a context manager: records every realisation inside it into `self.report`."""

    def __init__(self, script: str = "", argv=(), optimized_ir: bool = False, ptx: bool = False):
        self.report = Report(script, list(argv))
        self.optimized_ir = optimized_ir
        self.ptx = ptx
        self._plans: dict[int, tuple] = {}          # id(plan) -> (plan, its record): the plan is kept alive
        self._backward_roots: list = []             # loss nodes of the backward() calls running now
        self._grad_pairs: list = []                 # (weak outputs, weak gradients) from lazygrad.grad
        self._saved: list = []

    # ---- context manager ----
    def __enter__(self) -> "Recorder":
        from ..runtime import realize
        realize.observers.append(self.observe)
        self._wrap_autograd()
        return self

    def __exit__(self, *exc) -> bool:
        from ..runtime import realize
        realize.observers.remove(self.observe)
        for obj, name, value in reversed(self._saved):
            setattr(obj, name, value)
        self._saved.clear()
        return False

    def _wrap_autograd(self) -> None:
        import lazygrad
        from .. import autograd
        original_backward, original_grad = autograd.backward, autograd.grad
        recorder = self

        def backward(tensors, *args, **kwargs):
            losses = [tensors.node] if hasattr(tensors, "node") else [t.node for t in tensors]
            recorder._backward_roots.append(losses)
            try:
                return original_backward(tensors, *args, **kwargs)
            finally:
                recorder._backward_roots.pop()

        def grad(outputs, inputs, *args, **kwargs):
            result = original_grad(outputs, inputs, *args, **kwargs)
            outs = [outputs] if hasattr(outputs, "node") else list(outputs)
            grads = [g for g in (result if isinstance(result, (tuple, list)) else [result]) if g is not None]
            recorder._grad_pairs = [(o, g) for o, g in recorder._grad_pairs if any(r() is not None for r in g)]
            recorder._grad_pairs.append(([weakref.ref(o.node) for o in outs],
                                         [weakref.ref(g.node) for g in grads]))
            return result

        self._saved += [(autograd, "backward", original_backward), (autograd, "grad", original_grad)]
        autograd.backward, autograd.grad = backward, grad
        if getattr(lazygrad, "grad", None) is original_grad:
            self._saved.append((lazygrad, "grad", original_grad))
            lazygrad.grad = grad

    # ---- the observer ----
    def observe(self, event: dict) -> None:
        """Called by the runtime after each realisation. A failure here must not stop the program."""
        try:
            self._observe(event["plan"], event["timings"])
        except Exception as error:   # report it, and let the script go on
            print(f"lazygrad-inspect: could not record a realisation: {type(error).__name__}: {error}",
                  file=sys.stderr)

    def _observe(self, plan, timings) -> None:
        number = len(self.report.realisations) + 1
        rec = self._plans.get(id(plan), (None, None))[1]
        new = rec is None
        if new:
            through = frozenset(id(n) for n in plan.record["built"])
            marks = self._gradient_marks(plan.record, through)
            gradient = marks is not None
            rec = PlanRecord(len(self.report.plans) + 1, number,
                             plan_graphs(plan.record, through, marks),
                             K.from_plan(plan, self.optimized_ir, self.ptx))
            rec.title = f"first run by realisation #{number}"
            self._plans[id(plan)] = (plan, rec)
            self.report.plans.append(rec)
        else:
            gradient = "gradients" in rec.graphs
        for info, seconds in zip(rec.kernels, timings):
            info.launch_ms.append(seconds * 1e3)
        self.report.realisations.append(Realisation(number, rec.index, new, [t * 1e3 for t in timings],
                                                    _caller(), gradient))

    def _gradient_marks(self, record: dict, through):
        """Ids of the gradient nodes in the built and the simplified graph, or None when there are none.

        The forward pass is what the losses (of the backward() call running now) or the outputs
        (of the lazygrad.grad() call whose results are being computed) depend on; the rest is
        gradient. Simplify rebuilds nodes, so each stage is split on its own.
        """
        built, simplified = record["built"], record["simplified"]
        if self._backward_roots:
            # backward() realises its losses too: those roots, once simplified, anchor the forward pass
            forward = reachable_ids(self._backward_roots[-1], through)
            anchors = [s for b, s in zip(built, simplified) if id(b) in forward]
        else:
            everything = reachable_ids(built, through)
            outputs = []
            for outs, grads in self._grad_pairs:
                if any(g() is not None and id(g()) in everything for g in grads):
                    outputs += [o() for o in outs if o() is not None]
            if not outputs:
                return None
            from ..ir.simplify import simplify
            forward = reachable_ids(outputs, through)
            anchors = simplify(outputs)    # simplify is deterministic: the same nodes as in `simplified`
        marks = {"built": reachable_ids(built, through) - forward,
                 "simplified": reachable_ids(simplified, through) - reachable_ids(anchors, through)}
        return marks if marks["built"] else None


def _caller() -> str:
    """The first line outside lazygrad that led here, as "file.py:12: code"."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not os.path.abspath(filename).startswith(_PACKAGE_DIR + os.sep) and not filename.startswith("<frozen"):
            code = linecache.getline(filename, frame.f_lineno).strip()
            return f"{os.path.basename(filename)}:{frame.f_lineno}" + (f": {code}" if code else "")
        frame = frame.f_back
    return ""


def report_for(roots, title: str = "", optimized_ir: bool = False, ptx: bool = False) -> Report:
    """A report for nodes that have not run: one plan, built by the pass pipeline alone."""
    from ..ir.ops import Op
    from ..ir.passes import run_pipeline
    pending = [n for n in dict.fromkeys(roots) if n.realized is None and n.op is not Op.BUFFER]
    record = {"built": list(roots), "simplified": list(roots), "scheduled": []}
    if pending:
        record = {}
        run_pipeline(pending, record)
    plan = PlanRecord(1, 0, plan_graphs(record),
                      K.describe(record["scheduled"], optimized_ir, ptx), title or "not run")
    return Report(title or "lazygrad.inspect", [], [plan], [])
