"""One self-contained HTML page: the graphs drawn as SVG, clickable.

Everything is inside the file (styles, data, script): it opens from disk with
no network and no server. The layout is computed here in Python
(`layout.layered_layout`); the page's small script only switches between
graphs and fills the details panel when a node is clicked.
"""
from __future__ import annotations

import html
import json

from .formats import fill_color
from .layout import GAP_X, GAP_Y, NODE_H, NODE_W, display_graph, layered_layout


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _short(text: str, limit: int = 26) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def _number(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def svg(G, view_id: str) -> str:
    """The graph as an SVG drawing (boxes for nodes, outlines for kernels, curves for edges)."""
    d = display_graph(G)
    pos, outlines = layered_layout(d)
    width = max([x + NODE_W for x, _ in pos.values()] + [x + w for _, x, _, w, _ in outlines] + [200]) + 10
    height = max([y + NODE_H for _, y in pos.values()] + [y + h for _, _, y, _, h in outlines] + [60]) + 10
    marker = f"arrow-{view_id}"
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="lg-svg" width="{width:.0f}" height="{height:.0f}" '
             f'viewBox="0 0 {width:.0f} {height:.0f}">',
             f'<defs><marker id="{_e(marker)}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
             f'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#666"/>'
             f'</marker></defs>']
    names = {index: name for index, name, _ in d.groups}
    for index, x, y, w, h in outlines:
        parts.append(f'<g class="lg-kernel" data-kernel="{index}"><rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" '
                     f'height="{h:.1f}" rx="10"/><text x="{x + 10:.1f}" y="{y + 16:.1f}">'
                     f'kernel {index}: {_e(names[index])}</text></g>')
    for a, b, kind in d.edges:
        parts.append(f'<path class="lg-edge {kind}" d="{_edge_path(pos[a], pos[b])}" '
                     f'marker-end="url(#{_e(marker)})"/>')
    for did, info in d.nodes.items():
        a = G.nodes[info["ref"]]
        x, y = pos[did]
        top = f"{info['ref']} {a['op']}" + (f" {_number(a['arg'])}" if a["op"] == "CONST" else "")
        classes = "lg-node" + (" gradient" if a.get("part") == "gradient" else "")
        kernel = "" if info["kernel"] is None else f' data-kernel="{info["kernel"]}"'
        tip = "; ".join(t for t in (a["hint"], a["role"] if a["role"] != "op" else "") if t)
        parts.append(f'<g class="{classes}" data-node="{_e(did)}" data-ref="{_e(info["ref"])}"{kernel} '
                     f'transform="translate({x:.1f},{y:.1f})"><title>{_e(tip or a["op"])}</title>'
                     f'<rect width="{NODE_W}" height="{NODE_H}" rx="6" fill="{fill_color(a)}"/>'
                     f'<text x="8" y="17" class="op">{_e(_short(top))}</text>'
                     f'<text x="8" y="34">{_e(_short(a["dtype"] + str(a["shape"])))}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def _edge_path(src, dst) -> str:
    """An SVG path from the bottom of one box to the top of another.

    An edge to the next row is one S-curve. A longer edge would run through the
    boxes in the rows between, so it goes round them, down the gap on the right.
    """
    (xa, ya), (xb, yb) = src, dst
    x1, y1, x2, y2 = xa + NODE_W / 2, ya + NODE_H, xb + NODE_W / 2, yb - 1
    if y2 - y1 <= GAP_Y + 1 or y2 < y1:
        bend = max(20.0, abs(y2 - y1) / 2)
        return f"M {x1:.1f} {y1:.1f} C {x1:.1f} {y1 + bend:.1f} {x2:.1f} {y2 - bend:.1f} {x2:.1f} {y2:.1f}"
    side = max(xa, xb) + NODE_W + GAP_X / 2
    q = GAP_Y / 2
    return (f"M {x1:.1f} {y1:.1f} C {x1:.1f} {y1 + q:.1f} {side:.1f} {y1 + q / 2:.1f} {side:.1f} {y1 + q:.1f} "
            f"L {side:.1f} {y2 - q:.1f} C {side:.1f} {y2 - q / 2:.1f} {x2:.1f} {y2 - q:.1f} {x2:.1f} {y2:.1f}")


_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; }
header { padding: 10px 16px; background: #1f3b57; color: white; }
header h1 { font-size: 18px; margin: 0 12px 0 0; display: inline; }
#lg-errors { background: #fdd; color: #900; padding: 8px 16px; }
nav { padding: 8px 16px; border-bottom: 1px solid #ccc; display: flex; flex-wrap: wrap; gap: 6px; }
nav button { border: 1px solid #aac; background: #f4f6fb; border-radius: 4px; padding: 3px 8px; cursor: pointer; }
nav button.active { background: #1f3b57; color: white; }
main { display: flex; height: calc(100vh - 150px); min-height: 400px; }
#canvas { flex: 1; overflow: auto; padding: 8px; }
#details { width: 38%; overflow: auto; border-left: 1px solid #ccc; padding: 8px 14px; background: #fafafa; }
#details table { border-collapse: collapse; }
#details td { border-bottom: 1px solid #e4e4e4; padding: 2px 8px 2px 0; vertical-align: top; }
#details td:first-child { color: #666; white-space: nowrap; }
#details pre { background: #f0f0f0; padding: 6px; overflow: auto; font-size: 12px; max-height: 420px; }
#details a { color: #1a5fb4; cursor: pointer; text-decoration: underline; }
.lg-node { cursor: pointer; }
.lg-node rect { stroke: #556; stroke-width: 1; }
.lg-node.gradient rect { stroke: #c00; stroke-width: 2; }
.lg-node.selected rect { stroke: #e69138; stroke-width: 3; }
.lg-node.related rect { stroke: #e69138; stroke-width: 2; stroke-dasharray: 4 2; }
.lg-node text { font: 11px monospace; fill: #111; pointer-events: none; }
.lg-node text.op { font-weight: bold; }
.lg-kernel rect { fill: #eef4fc; stroke: #3d85c6; stroke-width: 1.5; }
.lg-kernel text { font: bold 12px sans-serif; fill: #3d85c6; }
.lg-edge { fill: none; stroke: #777; stroke-width: 1.2; }
.lg-edge.load { stroke-dasharray: 5 3; stroke: #3d85c6; }
#realisations { padding: 8px 16px; border-top: 1px solid #ccc; max-height: 30vh; overflow: auto; }
#realisations td, #realisations th { padding: 1px 10px 1px 0; text-align: left; font-size: 13px; }
.legend { margin-left: 12px; font-size: 12px; }
.legend span { display: inline-block; padding: 0 6px; margin-right: 4px; border: 1px solid #999; border-radius: 3px;
  color: #222; background: #fff; }
"""

_SCRIPT = r"""
(function () {
  "use strict";
  var errors = document.getElementById("lg-errors");
  function report(message) {
    errors.hidden = false;
    var line = document.createElement("div");
    line.className = "lg-error";
    line.textContent = String(message);
    errors.appendChild(line);
  }
  window.onerror = function (message, source, line) { report(message + " (line " + line + ")"); };
  window.addEventListener("unhandledrejection", function (e) { report("unhandled rejection: " + e.reason); });

  var data = JSON.parse(document.getElementById("lg-data").textContent);
  var details = document.getElementById("details");
  var current = null;

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  function fmt(value) {
    if (value === null || value === undefined) return "";
    return typeof value === "string" ? value : JSON.stringify(value);
  }

  function showView(id) {
    var views = document.querySelectorAll(".lg-view");
    for (var i = 0; i < views.length; i++) views[i].hidden = views[i].getAttribute("data-view") !== id;
    var buttons = document.querySelectorAll("nav button");
    for (var j = 0; j < buttons.length; j++)
      buttons[j].classList.toggle("active", buttons[j].getAttribute("data-view") === id);
    current = id;
  }

  function nodeLink(viewId, ref, kernel) {
    var a = el("a", ref);
    a.addEventListener("click", function () {
      var sel = '.lg-view[data-view="' + viewId + '"] g.lg-node[data-ref="' + ref + '"]';
      var candidates = document.querySelectorAll(sel), pick = candidates[0];
      for (var i = 0; i < candidates.length; i++)
        if (candidates[i].getAttribute("data-kernel") === kernel) pick = candidates[i];
      if (pick) select(viewId, pick.getAttribute("data-node"));
    });
    return a;
  }

  function select(viewId, displayId) {
    var view = data.views[viewId];
    if (!view) throw new Error("no graph named " + viewId);
    showView(viewId);
    var group = document.querySelector('.lg-view[data-view="' + viewId + '"] g.lg-node[data-node="' + displayId + '"]');
    if (!group) throw new Error("no node " + displayId + " in " + viewId);
    var all = document.querySelectorAll("g.lg-node");
    for (var i = 0; i < all.length; i++) all[i].classList.remove("selected", "related");
    var ref = group.getAttribute("data-ref"), kernel = group.getAttribute("data-kernel");
    var twins = document.querySelectorAll('.lg-view[data-view="' + viewId + '"] g.lg-node[data-ref="' + ref + '"]');
    for (var t = 0; t < twins.length; t++) twins[t].classList.add("related");
    group.classList.remove("related");
    group.classList.add("selected");

    var node = view.nodes[ref];
    details.textContent = "";
    details.appendChild(el("h2", ref + " " + node.op));
    if (node.hint) details.appendChild(el("p", node.hint));
    var table = el("table");
    var rows = [["shape", fmt(node.shape)], ["dtype", node.dtype], ["arg", node.arg === null ? "none" : fmt(node.arg)], ["role", node.role]];
    if (node.output !== null && node.output !== undefined) rows.push(["output", "#" + node.output]);
    if (node.part) rows.push(["part", node.part]);
    if (node.view) {
      var v = node.view;
      rows.push(["view", "strides " + fmt(v.strides) + ", offset " + v.offset +
                 (v.mask ? ", mask " + fmt(v.mask) : "") + " over " + v.base +
                 (v.stack > 1 ? " (" + v.stack + " views)" : "")]);
      if (v.note) rows.push(["note", v.note]);
    }
    if (node.kernels) rows.push(["kernels", node.kernels.length ? node.kernels.join(", ") : "none (read from memory or inlined)"]);
    rows.forEach(function (r) {
      var tr = el("tr"); tr.appendChild(el("td", r[0])); tr.appendChild(el("td", r[1])); table.appendChild(tr);
    });
    var srcRow = el("tr"), srcCell = el("td");
    srcRow.appendChild(el("td", "sources"));
    node.src.forEach(function (s, i) {
      if (i) srcCell.appendChild(document.createTextNode(", "));
      srcCell.appendChild(nodeLink(viewId, s, kernel));
    });
    srcRow.appendChild(srcCell);
    table.appendChild(srcRow);
    details.appendChild(table);

    if (kernel !== null) {
      var k = data.plans[view.plan].kernels[Number(kernel)];
      var box = el("div", null, "lg-kernel-code");
      box.appendChild(el("h3", "kernel " + kernel + ": " + k.name));
      box.appendChild(el("p", k.summary));
      [["loop program", k.program, true], ["LLVM IR", k.llvm_ir, false], ["optimised LLVM IR", k.optimized_ir, false], ["PTX", k.ptx, false]]
        .forEach(function (part) {
          if (!part[1]) return;
          var d = el("details"); d.open = part[2];
          d.appendChild(el("summary", part[0]));
          d.appendChild(el("pre", part[1]));
          box.appendChild(d);
        });
      details.appendChild(box);
    }
  }

  var groups = document.querySelectorAll("g.lg-node");
  for (var i = 0; i < groups.length; i++) {
    groups[i].addEventListener("click", function (event) {
      var g = event.currentTarget;
      select(g.closest(".lg-view").getAttribute("data-view"), g.getAttribute("data-node"));
    });
  }
  var buttons = document.querySelectorAll("nav button");
  for (var b = 0; b < buttons.length; b++) {
    buttons[b].addEventListener("click", function (event) { showView(event.currentTarget.getAttribute("data-view")); });
  }
  var planLinks = document.querySelectorAll("[data-show-view]");
  for (var p = 0; p < planLinks.length; p++) {
    planLinks[p].addEventListener("click", function (event) {
      event.preventDefault();
      showView(event.currentTarget.getAttribute("data-show-view"));
    });
  }

  // "#view=p1_scheduled&node=k0:n3" opens a graph and selects a node (also used by the tests)
  var wanted = {};
  location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
    var i = kv.indexOf("=");
    if (i > 0) wanted[kv.slice(0, i)] = decodeURIComponent(kv.slice(i + 1));
  });
  var first = data.order[0];
  if (wanted.view && wanted.node) select(wanted.view, wanted.node);
  else if (first) showView(wanted.view || first);

  var ready = el("div");
  ready.id = "lg-ready";
  ready.hidden = true;
  ready.setAttribute("data-views", String(data.order.length));
  document.body.appendChild(ready);
})();
"""


def page(report, stages) -> str:
    """The HTML page for a report (a script run or a single tensor)."""
    views, order, blocks, nav = {}, [], [], []
    for p in report.plans:
        for stage in stages:
            G = p.graphs.get(stage)
            if G is None:
                continue
            vid = f"p{p.index}_{stage}"
            order.append(vid)
            views[vid] = {"plan": str(p.index), "stage": stage, "nodes": {n: a for n, a in G.nodes(data=True)}}
            title = f"plan {p.index}, {stage}: {G.number_of_nodes()} nodes"
            if "kernels" in G.graph:
                count = len(G.graph["kernels"])
                title += f", {count} kernel{'s' if count != 1 else ''}"
            nav.append(f'<button data-view="{vid}">plan {p.index} &middot; {_e(stage)}</button>')
            blocks.append(f'<div class="lg-view" data-view="{vid}" hidden><h2>{_e(title)}</h2>'
                          f'<p>{_e(p.title)}</p>{svg(G, vid)}</div>')
    data = {"order": order, "views": views,
            "plans": {str(p.index): {"kernels": [k.to_dict() for k in p.kernels]} for p in report.plans}}
    payload = json.dumps(data).replace("</", "<\\/").replace("<!--", "<\\!--")
    rows = "".join(
        f'<tr><td>#{r.index}</td><td><a data-show-view="p{r.plan}_scheduled" href="#">plan {r.plan}</a></td>'
        f'<td>{"new" if r.new_plan else "reused"}{" (gradient)" if r.gradient else ""}</td>'
        f'<td>{len(r.timings_ms)}</td><td>{sum(r.timings_ms):.3f}</td><td>{_e(r.source)}</td></tr>'
        for r in report.realisations)
    table = ("<section id=\"realisations\"><h3>realisations</h3><table><tr><th>#</th><th>graph</th><th>plan</th>"
             f"<th>kernels</th><th>ms</th><th>where</th></tr>{rows}</table></section>") if rows else ""
    legend = ('<span class="legend"><span style="background:#e6e6e6">buffer</span>'
              '<span style="background:#fff2cc">const</span><span style="background:#cfe2f3">elementwise</span>'
              '<span style="background:#fce5cd">reduce</span><span style="background:#d9ead3">movement</span>'
              '<span style="background:#d0e0e3">gather/scatter</span>'
              '<span style="border-color:#c00">gradient</span> dashed edge: read from memory</span>')
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>lazygrad-inspect: '
            f'{_e(report.script)}</title><style>{_STYLE}</style></head><body>'
            f'<header><h1>lazygrad-inspect</h1>{_e(report.script)} &middot; {_count(len(report.plans), "graph")} '
            f'&middot; {_count(len(report.realisations), "realisation")} {legend}</header>'
            f'<div id="lg-errors" hidden></div><nav>{"".join(nav)}</nav>'
            f'<main><section id="canvas">{"".join(blocks)}</section>'
            f'<aside id="details"><p>Click a node to see its details and the code of its kernel.</p></aside></main>'
            f'{table}<script type="application/json" id="lg-data">{payload}</script>'
            f'<script>{_SCRIPT}</script></body></html>\n')
