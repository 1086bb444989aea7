"""lazygrad.inspect: see what a line of tensor code becomes.

    import lazygrad as torch, lazygrad.inspect as inspect
    x = torch.randn(4, 5)
    y = (x - x.amax(1, keepdim=True)).exp()
    y = y / y.sum(1, keepdim=True)
    G = inspect.graph(y)                  # networkx.DiGraph, scheduled into kernels
    print(inspect.text(y))                # the same as indented trees, one per kernel
    for k in inspect.kernels(y):          # loop program and LLVM IR per kernel
        print(k.summary()); print(k.program_text)

Nothing runs: the pass pipeline (`lazygrad.ir.passes.run_pipeline`) is
walked and each stage's output is shown. The stages:

    "built"       the graph as the tensor code built it
    "simplified"  after constant folding and algebraic identities
    "gradients"   the gradient graph of `t` with respect to `wrt` (needs autograd)
    "scheduled"   the simplified graph cut into kernels (node attribute `kernel`)

`lazygrad-inspect SCRIPT.py` (or `python -m lazygrad.inspect SCRIPT.py`) runs a
whole script and records every realisation; `record()` does the same inside
a Python program. See lazygrad/inspect/nxgraph.py for the node attributes.
"""
from __future__ import annotations

STAGES = ("built", "simplified", "gradients", "scheduled")
FORMATS = ("text", "dot", "json", "html")


def _nodes(t) -> list:
    """IR nodes of a tensor, a node, or a list of them."""
    items = list(t) if isinstance(t, (list, tuple)) else [t]
    return [x.node if hasattr(x, "node") else x for x in items]


def _check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}: choose one of {', '.join(STAGES)}")


def gradient_roots(t, wrt):
    """(output nodes, gradient nodes) of `lazygrad.grad(t, wrt)`; nothing runs."""
    import lazygrad
    if wrt is None:
        raise ValueError("stage='gradients' needs wrt=[tensors to differentiate with respect to]")
    outputs = list(t) if isinstance(t, (list, tuple)) else [t]
    wrt = list(wrt) if isinstance(wrt, (list, tuple)) else [wrt]
    grads = lazygrad.grad(outputs, wrt)   # NotImplementedError while autograd does not exist
    grads = grads if isinstance(grads, (list, tuple)) else [grads]
    return _nodes(outputs), [g.node for g in grads if g is not None]


def graph(t, stage: str = "scheduled", wrt=None):
    """The graph of tensor(s) `t` at a pipeline stage, as a networkx.DiGraph (see nxgraph.py)."""
    from .nxgraph import reachable_ids, to_networkx
    from .recorder import report_for
    _check_stage(stage)
    if stage == "gradients":
        outputs, grads = gradient_roots(t, wrt)
        G = to_networkx(grads + outputs, "gradients",
                        gradient_nodes=reachable_ids(grads) - reachable_ids(outputs))
        G.graph["gradient_roots"] = G.graph["roots"][:len(grads)]
        return G
    return report_for(_nodes(t)).plans[0].graphs[stage]


def kernels(t, optimized: bool = False, ptx: bool = False) -> list:
    """The kernels realising `t` would run, each with its loop program and LLVM IR (KernelInfo).

    optimized=True adds the LLVM IR after O3 and vectorisation; ptx=True the PTX the
    GPU backend generates (no GPU needed). Nothing is run.
    """
    from .recorder import report_for
    return report_for(_nodes(t), optimized_ir=optimized, ptx=ptx).plans[0].kernels


def text(t, stage: str = "scheduled", wrt=None, code: str = "none") -> str:
    """A readable tree per output (per kernel once scheduled).

    code: "program" adds each kernel's loop program, "llvm" also its LLVM IR, "ptx" also its PTX.
    """
    from .formats import graph_text
    from .recorder import report_for
    _check_stage(stage)
    if stage == "gradients":
        return graph_text(graph(t, stage, wrt))
    plan = report_for(_nodes(t), ptx=code == "ptx").plans[0]
    return graph_text(plan.graphs[stage], plan.kernels if stage == "scheduled" else None, code)


def dot(t, stage: str = "scheduled", wrt=None) -> str:
    """Graphviz DOT text (render with `dot -Tsvg`)."""
    from .formats import dot as to_dot
    return to_dot([("g", stage, graph(t, stage, wrt))])


def to_json(G) -> str:
    """networkx node-link JSON of a graph from `graph()`."""
    from .formats import graph_json
    return graph_json(G)


def from_json(text: str):
    """The networkx.DiGraph back from `to_json`'s output."""
    import json
    from .formats import from_data
    return from_data(json.loads(text))


def html(t, stages=("built", "simplified", "scheduled"), ptx: bool = False) -> str:
    """One self-contained HTML page drawing `t`'s graph at each stage; click a node for details and code."""
    from .page import page
    from .recorder import report_for
    return page(report_for(_nodes(t), title="lazygrad.inspect.html()", ptx=ptx), stages)


def record(optimized_ir: bool = False, ptx: bool = False):
    """A context manager recording every realisation inside it (like the CLI does for a script).

        with lazygrad.inspect.record() as rec:
            train_one_step()
        print(lazygrad.inspect.formats.report_text(rec.report, ["scheduled"]))
    """
    from .recorder import Recorder
    return Recorder("lazygrad.inspect.record()", optimized_ir=optimized_ir, ptx=ptx)
