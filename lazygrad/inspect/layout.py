"""What to draw, and where: the display graph and a layered layout.

In the scheduled stage each kernel is drawn as a box holding its own copy of
every node it computes. An elementwise node read by two kernels is computed
twice (fusion recomputes it rather than storing it), so it appears in both
boxes. Edges that enter a box from outside are loads from memory: inputs, or
the output of an earlier kernel.

Other stages draw the graph as it is, one box per IR node.
"""
from __future__ import annotations

from dataclasses import dataclass, field

NODE_W, NODE_H = 168, 44     # size of a node's box, in SVG pixels
GAP_X, GAP_Y = 26, 40        # space between boxes
PAD = 18                     # space inside a kernel's outline


@dataclass
class Display:
    nodes: dict = field(default_factory=dict)    # display id -> {"ref": graph node id, "kernel": k or None}
    edges: list = field(default_factory=list)    # (from, to, "fused" | "load")
    groups: list = field(default_factory=list)   # per kernel: (index, name, [display ids])


def display_graph(G) -> Display:
    """The drawing of graph G: one node per IR node, or per (kernel, node) once scheduled."""
    d = Display()
    kernels = G.graph.get("kernels")
    if kernels is None:
        for n in G.nodes:
            d.nodes[n] = {"ref": n, "kernel": None}
        for n in G.nodes:
            for s in dict.fromkeys(G.nodes[n]["src"]):
                d.edges.append((s, n, "fused"))
        return d
    output_of = {k["output"]: k["index"] for k in kernels}

    def outside(ref: str, k: int) -> str:
        """The display id of a value kernel k reads from memory."""
        j = output_of.get(ref)
        if j is not None and j != k:
            return f"k{j}:{ref}"
        if ref not in d.nodes:
            d.nodes[ref] = {"ref": ref, "kernel": None}
        return ref

    for k in kernels:
        index, inputs, members = k["index"], set(k["inputs"]), []
        stack, seen = [k["output"]], set()
        while stack:
            ref = stack.pop()
            if ref in seen:
                continue
            seen.add(ref)
            me = f"k{index}:{ref}"
            d.nodes[me] = {"ref": ref, "kernel": index}
            members.append(me)
            for s in dict.fromkeys(G.nodes[ref]["src"]):
                if s in inputs:
                    d.edges.append((outside(s, index), me, "load"))
                else:
                    d.edges.append((f"k{index}:{s}", me, "fused"))
                    stack.append(s)
        d.groups.append((index, k["name"], members))
    for r in G.graph["roots"]:   # roots no kernel computes (already in memory, or constants)
        if r not in output_of and r not in d.nodes:
            d.nodes[r] = {"ref": r, "kernel": None}
    return d


def layered_layout(d: Display):
    """Positions (x, y of each box's top-left corner) and kernel outlines (x, y, w, h).

    Rows are depths: a node sits one row below its deepest source. Unscheduled
    graphs fill each row left to right, ordered by where their sources are
    (the barycenter heuristic, which keeps edges short and crossings few).
    Scheduled graphs give each kernel its own column block, in schedule order,
    so outlines never overlap; inputs from memory sit in the top row, above
    their readers.
    """
    srcs: dict[str, list] = {n: [] for n in d.nodes}
    for a, b, _ in d.edges:
        srcs[b].append(a)
    grouped = bool(d.groups)
    depth: dict[str, int] = {}
    for n in _topological(d.nodes, srcs):
        base = 1 if grouped and d.nodes[n]["kernel"] is not None else 0
        depth[n] = max([base] + [depth[s] + 1 for s in srcs[n]])
    # a node without sources (a constant, an input) sits just above its first reader, not at the top
    readers: dict[str, list] = {}
    for a, b, _ in d.edges:
        readers.setdefault(a, []).append(b)
    for n in d.nodes:
        if not srcs[n] and readers.get(n) and not (grouped and d.nodes[n]["kernel"] is None):
            depth[n] = max(depth[n], min(depth[r] for r in readers[n]) - 1)
    x: dict[str, float] = {}
    outlines = []
    if not grouped:
        _fill_rows(list(d.nodes), depth, srcs, x, left=0.0)
    else:
        left = 0.0
        for index, _name, members in d.groups:
            width = _fill_rows(members, depth, srcs, x, left=left + PAD)
            top = min(depth[m] for m in members)
            bottom = max(depth[m] for m in members)
            outlines.append((index, left, _row_y(top) - PAD - 14,
                             width + 2 * PAD, _row_y(bottom) - _row_y(top) + NODE_H + 2 * PAD + 14))
            left += width + 2 * PAD + GAP_X
        # inputs: in their row, under the mean x of their readers, pushed apart where they collide
        free = [n for n in d.nodes if d.nodes[n]["kernel"] is None]
        for n in free:
            xs = [x[r] for r in readers.get(n, []) if r in x]
            x[n] = sum(xs) / len(xs) if xs else 0.0
        for row in sorted({depth[n] for n in free}):
            cursor = float("-inf")
            for n in sorted((n for n in free if depth[n] == row), key=lambda n: x[n]):
                x[n] = max(x[n], cursor)
                cursor = x[n] + NODE_W + GAP_X
    pos = {n: (x[n], _row_y(depth[n])) for n in d.nodes}
    shift = -min([p[0] for p in pos.values()] + [o[1] for o in outlines] + [0.0])
    top_shift = -min([p[1] for p in pos.values()] + [o[2] for o in outlines] + [0.0])
    pos = {n: (px + shift + 10, py + top_shift + 10) for n, (px, py) in pos.items()}
    outlines = [(i, ox + shift + 10, oy + top_shift + 10, w, h) for i, ox, oy, w, h in outlines]
    return pos, outlines


def _row_y(row: int) -> float:
    return row * (NODE_H + GAP_Y)


def _topological(nodes, srcs) -> list:
    order, state = [], {}
    for start in nodes:
        stack = [(start, False)]
        while stack:
            n, done = stack.pop()
            if done:
                order.append(n)
                continue
            if n in state:
                continue
            state[n] = True
            stack.append((n, True))
            stack.extend((s, False) for s in srcs[n] if s not in state)
    return order


def _fill_rows(members: list, depth: dict, srcs: dict, x: dict, left: float) -> float:
    """Place `members` row by row from `left`; returns the width used."""
    rows: dict[int, list] = {}
    for m in members:
        rows.setdefault(depth[m], []).append(m)
    width = NODE_W
    for row in sorted(rows):
        def barycenter(n):
            xs = [x[s] for s in srcs[n] if s in x]
            return sum(xs) / len(xs) if xs else float("inf")
        ordered = sorted(rows[row], key=barycenter)
        for i, n in enumerate(ordered):
            x[n] = left + i * (NODE_W + GAP_X)
        width = max(width, len(ordered) * (NODE_W + GAP_X) - GAP_X)
    return width
