import traceback
from .graph import evaluate_lazygrad, run_api
def evaluate_debug(graph):
    import lazygrad
    from lazygrad.runtime import realize as R
    try:
        return evaluate_lazygrad(graph)
    except AssertionError as e:
        if 'neither a leaf' not in str(e):
            raise
        # rebuild the graph and look at the nodes
        _, values = run_api(graph, lazygrad)
        outs = [values[o] for o in graph.outputs]
        from lazygrad.ir.passes import run_pipeline
        info = []
        roots = [t._node for t in outs]
        for r in roots:
            info.append(f"root {r!r} realized={r.realized is not None}")
        from lazygrad.ir.simplify import simplify
        simp = simplify([r for r in roots if r.realized is None])
        for s in simp:
            info.append(f"simplified {s!r} realized={s.realized is not None} src={[ (x, x.realized is not None) for x in s.src]}")
        from lazygrad.ir.node import toposort
        for n in toposort(simp):
            if n.realized is not None:
                info.append(f"REALIZED in graph: {n!r} op={n.op} id={id(n)} buf={n.realized!r}")
        return "DEBUG:\n" + "\n".join(info) + "\n" + traceback.format_exc()
