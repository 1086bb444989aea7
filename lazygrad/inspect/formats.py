"""Text, DOT and JSON renderings of inspection graphs.

Each function takes graphs built by `lazygrad.inspect.nxgraph.to_networkx`
(or a whole `Report` of a script run) and returns a string.
"""
from __future__ import annotations

import json

import networkx as nx

from .layout import display_graph


# ---------------------------------------------------------------- text

def node_line(G, n: str) -> str:
    """One readable line per node: id, op, dtype[shape], how the shape changed, what it means."""
    a = G.nodes[n]
    op = a["op"]
    if op == "CONST":
        op = f"CONST {a['arg']}"
    line = f"{n} {op} {a['dtype']}{a['shape']}"
    if a["src"]:
        first = G.nodes[a["src"][0]]["shape"]
        if first != a["shape"] and a["op"] != "CONST":
            line += f"  {first} -> {a['shape']}"
    if a["hint"]:
        line += f"  {a['hint']}"
    view = a.get("view")
    if view is not None:
        line += f"  view: strides={tuple(view['strides'])} offset={view['offset']}"
        if view["mask"] is not None:
            line += f" mask={tuple(tuple(m) for m in view['mask'])}"
        if view["stack"] > 1:
            line += f" (through {view['stack']} views: no single view expresses this reshape)"
    if a["role"] == "buffer":
        line += "  [input buffer]"
    elif a["role"] == "realized":
        line += "  [computed earlier]"
    if a.get("part") == "gradient":
        line += "  (gradient)"
    return line


def _tree(G, root: str, stop, note, out: list, indent: str = "") -> None:
    """Append the tree under `root` to `out`. stop(n): print n without its sources.

    A node shared by several consumers is printed in full once, then as "(see above)".
    """
    shown = set()
    stack = [(root, indent, "", True)]
    while stack:
        n, prefix, branch, is_root = stack.pop()
        extra = note(n)
        seen = n in shown
        out.append(f"{prefix}{branch}{node_line(G, n)}{extra}{'  (see above)' if seen and G.nodes[n]['src'] and not stop(n) else ''}")
        if seen or stop(n):
            continue
        shown.add(n)
        child_prefix = prefix + ("" if is_root else ("   " if branch.startswith("└") else "│  "))
        srcs = list(dict.fromkeys(G.nodes[n]["src"]))
        for i, s in reversed(list(enumerate(srcs))):
            stack.append((s, child_prefix, "└─ " if i == len(srcs) - 1 else "├─ ", False))


def graph_text(G, kernels=None, code: str = "none") -> str:
    """The graph as indented trees; once scheduled, one tree per kernel.

    kernels: KernelInfo list (for compile/launch times and code);
    code: "none", "program" (the loop program), "llvm" (loop program and LLVM IR) or
    "ptx" (loop program, LLVM IR and PTX, when the kernels were recorded with PTX).
    """
    out = [f"stage: {G.graph['stage']}, {G.number_of_nodes()} nodes"]
    if "kernels" not in G.graph:
        for r in dict.fromkeys(G.graph["roots"]):
            out.append("")
            out.append(f"output {G.nodes[r]['output']}:")
            _tree(G, r, stop=lambda n: False, note=lambda n: "", out=out, indent="  ")
        return "\n".join(out)
    ks = G.graph["kernels"]
    out[0] += f", {len(ks)} kernel{'s' if len(ks) != 1 else ''}"
    output_of = {k["output"]: k["index"] for k in ks}
    for k in ks:
        info = kernels[k["index"]] if kernels else None
        out.append("")
        head = info.summary() if info else f"kernel {k['index']} {k['name']}"
        out.append(f"== {head} ==")
        inputs = set(k["inputs"])

        def note(n, k=k, inputs=inputs):
            if n in inputs and n in output_of and output_of[n] != k["index"]:
                return f"  <- output of kernel {output_of[n]}, read from memory"
            if n in inputs:
                return "  <- read from memory"
            return ""
        _tree(G, k["output"], stop=lambda n, inputs=inputs: n in inputs, note=note, out=out, indent="  ")
        if info and code in ("program", "llvm", "ptx"):
            out.append("  loop program:")
            out.extend("    " + line for line in info.program_text.splitlines())
        if info and code in ("llvm", "ptx"):
            out.append("  LLVM IR:")
            out.extend("    " + line for line in info.llvm_ir.splitlines())
        if info and code == "ptx" and info.ptx:
            out.append("  PTX:")
            out.extend("    " + line for line in info.ptx.splitlines())
    unscheduled = [r for r in G.graph["roots"] if r not in output_of]
    for r in dict.fromkeys(unscheduled):
        out.append("")
        out.append(f"output {G.nodes[r]['output']} needs no kernel: {node_line(G, r)}")
    return "\n".join(out)


def report_text(report, stages, code: str = "none") -> str:
    """A whole script run: the realisations, then each distinct graph at the chosen stages."""
    out = [f"lazygrad-inspect: {report.script}"]
    compiled = sum(len(p.kernels) for p in report.plans)
    compile_ms = sum(k.compile_ms or 0.0 for p in report.plans for k in p.kernels)
    run_ms = sum(sum(r.timings_ms) for r in report.realisations)
    out.append(f"{len(report.realisations)} realisations, {len(report.plans)} distinct graphs, "
               f"{compiled} kernels compiled in {compile_ms:.1f} ms, {run_ms:.3f} ms running kernels")
    out.append("")
    out.append("realisations:")
    shown = report.realisations[:30]
    for r in shown:
        out.append("  " + r.summary())
    if len(report.realisations) > len(shown):
        out.append(f"  ... and {len(report.realisations) - len(shown)} more (see the table below)")
    out.append("")
    out.append("graphs:")
    out.append(f"  {'plan':>4}  {'runs':>5}  {'kernels':>7}  {'compile ms':>10}  {'run ms':>9}")
    for p in report.plans:
        runs = [r for r in report.realisations if r.plan == p.index]
        out.append(f"  {p.index:>4}  {len(runs):>5}  {len(p.kernels):>7}  "
                   f"{sum(k.compile_ms or 0 for k in p.kernels):>10.2f}  "
                   f"{sum(sum(r.timings_ms) for r in runs):>9.3f}")
    for p in report.plans:
        for stage in stages:
            G = p.graphs.get(stage)
            if G is None:
                continue
            out.append("")
            out.append(f"---- plan {p.index} ({p.title}) ----")
            out.append(graph_text(G, p.kernels if stage == "scheduled" else None, code))
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- DOT

_COLORS = {"buffer": "#e6e6e6", "realized": "#d9d2e9", "const": "#fff2cc"}
_OP_COLORS = {"SUM": "#fce5cd", "REDUCE_MAX": "#fce5cd", "PROD": "#fce5cd", "GATHER": "#d0e0e3", "SCATTER": "#d0e0e3"}
_MOVEMENT = {"RESHAPE", "PERMUTE", "EXPAND", "PAD", "SHRINK", "FLIP"}


def fill_color(attrs: dict) -> str:
    if attrs["role"] in _COLORS:
        return _COLORS[attrs["role"]]
    if attrs["op"] in _MOVEMENT:
        return "#d9ead3"
    return _OP_COLORS.get(attrs["op"], "#cfe2f3")


def _q(text: str) -> str:
    """A DOT quoted string."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def dot_lines(G, prefix: str, title: str) -> list:
    """The body of one graph, as a cluster named after `prefix`."""
    d = display_graph(G)
    lines = [f"  subgraph {_q('cluster_' + prefix)} {{", f"    label={_q(title)}; style=dashed; color=gray60;"]

    def node(did: str) -> str:
        a = G.nodes[d.nodes[did]["ref"]]
        label = f"{d.nodes[did]['ref']} {a['op']}" + (f" {a['arg']}" if a["op"] == "CONST" else "")
        label += f"\n{a['dtype']}{a['shape']}" + (f"\n{a['hint']}" if a["hint"] else "")
        pen = ', color="#cc0000", penwidth=2' if a.get("part") == "gradient" else ""
        return f"{_q(prefix + '/' + did)} [label={_q(label)}, fillcolor={_q(fill_color(a))}{pen}];"

    grouped = set()
    for index, name, members in d.groups:
        lines.append(f"    subgraph {_q(f'cluster_{prefix}_k{index}')} {{")
        lines.append(f"      label={_q(f'kernel {index}: {name}')}; style=\"rounded,bold\"; color=\"#3d85c6\";")
        lines.extend("      " + node(m) for m in members)
        lines.append("    }")
        grouped.update(members)
    lines.extend("    " + node(n) for n in d.nodes if n not in grouped)
    for a, b, kind in d.edges:
        style = " [style=dashed]" if kind == "load" else ""
        lines.append(f"    {_q(prefix + '/' + a)} -> {_q(prefix + '/' + b)}{style};")
    lines.append("  }")
    return lines


def dot(graphs) -> str:
    """DOT text for Graphviz: `graphs` is a list of (name, title, G); each becomes a cluster."""
    lines = ["digraph lazygrad {", '  graph [rankdir=TB, fontname="Helvetica", fontsize=11];',
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
             '  edge [color="#555555", arrowsize=0.6];']
    for name, title, G in graphs:
        lines.extend(dot_lines(G, name, title))
    lines.append("}")
    return "\n".join(lines) + "\n"


def report_graphs(report, stages) -> list:
    return [(f"p{p.index}_{stage}", f"plan {p.index}: {stage} ({p.title})", p.graphs[stage])
            for p in report.plans for stage in stages if stage in p.graphs]


# ---------------------------------------------------------------- JSON

def to_data(G) -> dict:
    """networkx node-link data (JSON-ready)."""
    try:
        return nx.node_link_data(G, edges="edges")
    except TypeError:   # networkx < 3.4 names the key "links"
        return nx.node_link_data(G)


def from_data(data: dict) -> nx.DiGraph:
    """The graph back from `to_data`'s output (after a trip through JSON)."""
    try:
        return nx.node_link_graph(data, edges="edges" if "edges" in data else "links")
    except TypeError:
        return nx.node_link_graph(data)


def graph_json(G) -> str:
    return json.dumps(to_data(G), indent=1)


def report_json(report, stages) -> str:
    return json.dumps({
        "format": "lazygrad-inspect", "version": 1, "script": report.script, "argv": report.argv,
        "realisations": [r.to_dict() for r in report.realisations],
        "plans": [{"index": p.index, "title": p.title, "first_realisation": p.first_realisation,
                   "kernels": [k.to_dict() for k in p.kernels],
                   "graphs": {s: to_data(p.graphs[s]) for s in stages if s in p.graphs}}
                  for p in report.plans],
    }, indent=1)


def load_report(text: str) -> dict:
    """A report written by `report_json`, with every graph turned back into a networkx DiGraph."""
    data = json.loads(text)
    for p in data["plans"]:
        p["graphs"] = {s: from_data(g) for s, g in p["graphs"].items()}
    return data
