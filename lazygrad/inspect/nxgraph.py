"""IR graphs as networkx graphs, at every stage of the pass pipeline.

`to_networkx(roots, ...)` turns the nodes reachable from `roots` into a
`networkx.DiGraph`. Every graph node is named "n0", "n1", ... in topological
order (sources first) and carries plain, JSON-friendly attributes:

    op        "MUL", "SUM", "RESHAPE", ...
    shape     [4, 5]              dtype   "float32"
    arg       the op's argument (reduced axes, new shape, constant value, ...)
    src       ids of the operands, in order (an edge cannot say "x*x" twice)
    role      "buffer" (data in memory), "realized" (computed earlier),
              "const", or "op"
    output    position among the roots, or None
    hint      what a learner would call it: "unsqueeze(0)", "swapdims(0, 1)", ...
    view      movement ops only: the view the chain composes into
              {shape, strides, offset, mask, base, stack}
    kernel    after scheduling: the kernel computing the node (None for inputs)
    kernels   every kernel computing it (elementwise ops are recomputed in each
              kernel that reads them instead of going through memory)
    part      with gradients: "forward" or "gradient"

Edges go from an operand to its consumer and carry `operands`: the positions
at which the consumer uses it. `G.graph` holds `stage`, `roots` and, after
scheduling, `kernels`: one dict per kernel {index, name, output, inputs,
reduce, reduces, nodes}.
"""
from __future__ import annotations

import math

import networkx as nx

from ..ir.node import Buffer, Node
from ..ir.ops import Op, MOVEMENT, REDUCE
from ..ir import view as V


def walk(roots, through=frozenset()) -> list[Node]:
    """Every node reachable from `roots`, sources first.

    Like `lazygrad.ir.node.toposort`, realized nodes are leaves, except those
    whose ids are in `through` (the roots a realisation has just computed: the
    graph that computed them is what we want to see).
    """
    order, seen = [], set()
    for root in roots:
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            if node.realized is None or id(node) in through:
                stack.extend((s, False) for s in reversed(node.src) if id(s) not in seen)
    return order


def _jsonable(value):
    """A value JSON can store and give back equal: lists for tuples, text for the rest."""
    if isinstance(value, Buffer):
        return f"Buffer({value.dtype.name}, numel={value.numel})"
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)   # "inf", "-inf", "nan": nan != nan would break equality
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def movement_hint(op: Op, src_shape: tuple, arg, shape: tuple) -> str:
    """The PyTorch call a movement op most likely came from, in words a learner knows."""
    if op is Op.RESHAPE:
        old, new = list(src_shape), list(shape)
        if [s for s in old if s != 1] == [s for s in new if s != 1]:
            if len(new) == len(old) + 1 and _insertion(old, new) is not None:
                return f"unsqueeze({_insertion(old, new)})"
            if len(new) == len(old) - 1 and _insertion(new, old) is not None:
                return f"squeeze({_insertion(new, old)})"
            if 1 not in new:
                return "squeeze()"
            return "adds/removes size-1 dims" if len(new) != len(old) else "moves size-1 dims"
        for a in range(len(old)):
            for b in range(a + 1, len(old)):
                if new == old[:a] + [math.prod(old[a:b + 1])] + old[b + 1:]:
                    return f"flatten({a}, {b})"
        for d in range(len(new)):
            for e in range(d + 1, len(new)):
                if old == new[:d] + [math.prod(new[d:e + 1])] + new[e + 1:]:
                    return f"unflatten({d}, {tuple(new[d:e + 1])})"
        return f"view({', '.join(str(s) for s in shape)})"
    if op is Op.PERMUTE:
        moved = [i for i, p in enumerate(arg) if i != p]
        if len(moved) == 2:
            return f"swapdims({moved[0]}, {moved[1]})"
        return f"permute{tuple(arg)}"
    if op is Op.EXPAND:
        dims = [d for d, (a, b) in enumerate(zip(src_shape, shape)) if a != b]
        return f"broadcast dims {tuple(dims)} from 1 to {tuple(shape[d] for d in dims)}"
    if op is Op.PAD:
        return f"pad {tuple(tuple(p) for p in arg)}"
    if op is Op.SHRINK:
        parts = [f"{a}:{b}" + (f":{c}" if c != 1 else "") for a, b, c in arg]
        return f"slice [{', '.join(parts)}]"
    if op is Op.FLIP:
        return f"flip{tuple(arg)}"
    return ""


def _insertion(short: list, long: list):
    """The position at which one size-1 dim was inserted into `short` to make `long`, or None."""
    for d in range(len(long)):
        if long[d] == 1 and long[:d] + long[d + 1:] == short:
            return d
    return None


def op_hint(node: Node) -> str:
    if node.op in MOVEMENT:
        return movement_hint(node.op, node.src[0].shape, node.arg, node.shape)
    if node.op in REDUCE:
        what = {Op.SUM: "sum", Op.REDUCE_MAX: "max", Op.PROD: "product"}[node.op]
        return f"{what} over dims {tuple(node.arg)} (kept as size 1)"
    if node.op is Op.GATHER:
        src, index = node.src
        return f"gather along dim {node.arg}: index {list(index.shape)} picks from {list(src.shape)}"
    if node.op is Op.SCATTER:
        axis, how = node.arg
        return f"scatter along dim {axis}" + (f" ({how})" if how else "")
    if node.op is Op.EXP2 and node.src[0].op is Op.MUL and node.src[0].src[1].op is Op.CONST \
            and abs(node.src[0].src[1].arg - 1.4426950408889634) < 1e-12:
        return "exp(x) = 2**(x*log2(e))"
    if node.op is Op.ADD and node.src[1].op is Op.NEG:
        return "subtraction a + (-b)"
    if node.op is Op.MUL and node.src[1].op is Op.RECIP:
        return "division a * (1/b)"
    return ""


def to_networkx(roots, stage: str = "built", kernels=None, through=frozenset(),
                gradient_nodes=None) -> nx.DiGraph:
    """The graph of everything reachable from `roots` (IR nodes) as a networkx DiGraph.

    kernels: the schedule (list of Kernel) when `roots` are its simplified roots.
    gradient_nodes: ids of the nodes that belong to a gradient computation; when
    given, every node gets `part` = "gradient" or "forward".
    """
    roots = list(roots)
    order = walk(roots, through)
    name = {id(n): f"n{i}" for i, n in enumerate(order)}
    G = nx.DiGraph(stage=stage, roots=[name[id(r)] for r in roots])
    root_pos = {}
    for i, r in enumerate(roots):
        root_pos.setdefault(id(r), i)

    kernel_of: dict[int, list[int]] = {}
    if kernels is not None:
        G.graph["kernels"] = []
        for k, kernel in enumerate(kernels):
            for n in kernel.nodes:
                kernel_of.setdefault(id(n), []).append(k)
            G.graph["kernels"].append({
                "index": k, "name": kernel.name, "output": name[id(kernel.output)],
                "inputs": [name[id(n)] for n in kernel.inputs],
                "reduce": name[id(kernel.reduce)] if kernel.reduce is not None else None,
                "reduces": [name[id(n)] for n in getattr(kernel, "reduces", [])],
                "nodes": [name[id(n)] for n in kernel.nodes]})
    outputs = {id(k.output): i for i, k in enumerate(kernels or [])}

    views: dict[int, tuple] = {}   # node id -> (base node, stack of views)
    for n in order:
        expanded = n.realized is None or id(n) in through
        if n.op is Op.BUFFER:
            role = "buffer"
        elif not expanded:
            role = "realized"
        elif n.op is Op.CONST:
            role = "const"
        else:
            role = "op"
        attrs = {
            "op": n.op.name, "shape": list(n.shape), "dtype": n.dtype.name,
            "arg": _jsonable(n.arg), "src": [name[id(s)] for s in n.src] if expanded else [],
            "role": role, "output": root_pos.get(id(n)), "hint": op_hint(n) if expanded else "",
        }
        if n.op in MOVEMENT and expanded:
            src = n.src[0]
            base, stack = views.get(id(src), (src, [V.View.contiguous(src.shape)]))
            stack = V.apply(stack, n.op.name, n.arg)
            views[id(n)] = (base, stack)
            attrs["view"] = dict(stack[-1].to_dict(), base=name[id(base)], stack=len(stack))
            if len(stack) > 1:
                attrs["view"]["note"] = (f"a reshape of a non-contiguous view: no single view expresses it, "
                                         f"the index goes through {len(stack)} views")
        if kernels is not None:
            ks = kernel_of.get(id(n), [])
            attrs["kernels"] = ks
            attrs["kernel"] = outputs.get(id(n), ks[0] if ks else None)
        if gradient_nodes is not None:
            attrs["part"] = "gradient" if id(n) in gradient_nodes else "forward"
        G.add_node(name[id(n)], **attrs)
        if expanded:
            for pos, s in enumerate(n.src):
                edge = G.edges.get((name[id(s)], name[id(n)]))
                if edge is None:
                    G.add_edge(name[id(s)], name[id(n)], operands=[pos])
                else:
                    edge["operands"].append(pos)
    return G


def reachable_ids(roots, through=frozenset()) -> set[int]:
    return {id(n) for n in walk(roots, through)}
