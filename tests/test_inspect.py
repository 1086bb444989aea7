"""lazygrad.inspect: graphs at every stage, views, kernels, the four formats, the CLI and LAZYGRAD_DEBUG."""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import textwrap

import networkx as nx
import numpy as np
import pytest

import lazygrad as torch
import lazygrad.inspect as inspect
from lazygrad.inspect import formats
from lazygrad.inspect.__main__ import main as cli_main
from lazygrad.inspect.layout import display_graph
from lazygrad.ir.view import View, apply, positions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- the seed's examples

def softmax_example():
    x = torch.tensor(np.linspace(-2, 2, 20, dtype=np.float32).reshape(4, 5))
    e = (x - x.amax(1, keepdim=True)).exp()
    return e / e.sum(1, keepdim=True)


def gather_example():
    A = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    return A.gather(1, torch.tensor([[0], [1]])).flatten()


def ops_of(G) -> list:
    return [a["op"] for _, a in G.nodes(data=True)]


def test_softmax_graph_stages_and_kernels():
    y = softmax_example()
    built = inspect.graph(y, stage="built")
    assert isinstance(built, nx.DiGraph)
    ops = ops_of(built)
    for op in ("BUFFER", "REDUCE_MAX", "SUM", "EXP2", "RECIP", "EXPAND", "MUL", "ADD", "NEG"):
        assert op in ops, op
    assert ops.count("BUFFER") == 1 and ops.count("SUM") == 1 and ops.count("REDUCE_MAX") == 1
    assert "kernel" not in built.nodes["n0"]
    (root,) = built.graph["roots"]
    assert built.nodes[root]["shape"] == [4, 5] and built.nodes[root]["dtype"] == "float32"
    assert built.nodes[root]["output"] == 0
    # edges follow the sources: every src list matches the predecessors
    for n, a in built.nodes(data=True):
        assert set(a["src"]) == set(built.predecessors(n))

    G = inspect.graph(y, stage="scheduled")
    kernels = G.graph["kernels"]
    assert len(kernels) == len(y.schedule())
    assert 1 <= len(kernels) <= 2       # a row softmax is at most 2 kernels (issue 4)
    assert G.nodes[kernels[-1]["output"]]["shape"] == [4, 5]
    for n, a in G.nodes(data=True):
        if a["role"] == "op":
            assert a["kernels"], f"{n} {a['op']} is computed by no kernel"
            assert a["kernel"] in a["kernels"]
        else:
            assert a["kernel"] is None and a["kernels"] == []
    for k in kernels:
        assert all(k["index"] in G.nodes[n]["kernels"] for n in k["nodes"])
        assert set(k["reduces"]) <= set(k["nodes"])
    # both reductions are computed inside kernels
    assert {G.nodes[r]["op"] for k in kernels for r in k["reduces"]} == {"SUM", "REDUCE_MAX"}
    # the broadcast of the row max is a view with stride 0 on the broadcast dim
    expands = [a for _, a in G.nodes(data=True) if a["op"] == "EXPAND"]
    assert expands and all(a["view"]["strides"] == [1, 0] and a["view"]["offset"] == 0 for a in expands)


def column_sum_of_softmax():
    """Reductions over different axes cannot share a kernel: at least two kernels."""
    return softmax_example().sum(0)


def test_softmax_text_marks_kernel_boundaries():
    text = inspect.text(softmax_example())
    assert text.count("== kernel ") == len(softmax_example().schedule())
    assert "REDUCE_MAX float32[4, 1]  [4, 5] -> [4, 1]  max over dims (1,)" in text
    z = column_sum_of_softmax()
    n = len(z.schedule())
    assert n >= 2
    text = inspect.text(z)
    assert text.count("== kernel ") == n
    assert "SUM float32[1, 5]  [4, 5] -> [1, 5]  sum over dims (0,)" in text
    assert f"<- output of kernel {n - 2}, read from memory" in text
    assert "[input buffer]  <- read from memory" in text
    assert "broadcast dims (1,) from 1 to (5,)" in text
    built = inspect.text(softmax_example(), stage="built")
    assert "stage: built" in built and "== kernel" not in built
    with_code = inspect.text(softmax_example(), code="llvm")
    assert "loop program:" in with_code and "define void" in with_code


def test_gather_example_shapes_through_the_graph():
    g = gather_example()
    G = inspect.graph(g, stage="built")
    (gather,) = [a for _, a in G.nodes(data=True) if a["op"] == "GATHER"]
    assert gather["shape"] == [2, 1] and gather["arg"] == 1
    assert gather["hint"] == "gather along dim 1: index [2, 1] picks from [2, 2]"
    (flatten,) = [a for _, a in G.nodes(data=True) if a["op"] == "RESHAPE" and a["shape"] == [2]]
    assert flatten["hint"] == "squeeze(1)"          # flatten() of [2, 1] drops the size-1 dim
    S = inspect.graph(g, stage="scheduled")
    assert len(S.graph["kernels"]) == 1
    assert any(S.nodes[n]["op"] == "GATHER" for n in S.graph["kernels"][0]["nodes"])
    text = inspect.text(g)
    assert "GATHER float32[2, 1]" in text and "gather along dim 1" in text
    assert g.tolist() == [1.0, 4.0]


def test_learner_sees_dims_change_through_view_squeeze_unsqueeze_swapdims():
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    y = a.view(4).unsqueeze(0).swapdims(0, 1).squeeze(1) * 2
    text = inspect.text(y, stage="built")
    assert "RESHAPE float32[4]  [2, 2] -> [4]  flatten(0, 1)" in text
    assert "RESHAPE float32[1, 4]  [4] -> [1, 4]  unsqueeze(0)" in text
    assert "PERMUTE float32[4, 1]  [1, 4] -> [4, 1]  swapdims(0, 1)" in text
    assert "RESHAPE float32[4]  [4, 1] -> [4]  squeeze(1)" in text
    assert y.tolist() == [2.0, 4.0, 6.0, 8.0]


def test_kernels_carry_loop_program_and_llvm_ir():
    y = softmax_example()
    ks = inspect.kernels(y)
    assert len(ks) == len(y.schedule())
    for k in ks:
        assert k.program_text.startswith(f"program {k.name}")
        assert "loop index" in k.program_text and "store" in k.program_text
        assert "define void" in k.llvm_ir and k.name in k.llvm_ir
        assert k.compile_ms is None and k.launch_ms == []   # nothing ran
    assert any("[MAX]" in k.program_text for k in ks)       # the row max accumulates with MAX
    opt = inspect.kernels(y, optimized=True)
    assert all("define" in k.optimized_ir for k in opt)


def test_kernels_with_ptx_when_the_gpu_renderer_exists():
    try:
        import lazygrad.codegen.ptx  # noqa: F401
    except ImportError:
        pytest.skip("no PTX renderer yet")
    ks = inspect.kernels(softmax_example(), ptx=True)
    assert all(k.ptx.startswith("// ") for k in ks)
    assert any(".entry" in k.ptx and ".target sm_" in k.ptx for k in ks)
    assert "PTX:" in inspect.text(softmax_example(), code="ptx")


def test_kernels_of_a_gpu_plan_show_the_ptx_that_ran():
    from types import SimpleNamespace
    from lazygrad.inspect.kernel_info import from_plan
    cpu_kernels = inspect.kernels(softmax_example())
    steps = [SimpleNamespace(kernel=k.kernel, program=k.program,
                             compiled=SimpleNamespace(name=f"gpu_{i}", ir_text="target triple = \"nvptx64\"",
                                                      ptx=f".entry gpu_{i}"))
             for i, k in enumerate(cpu_kernels)]
    infos = from_plan(SimpleNamespace(steps=steps), optimized=True)
    assert [k.ptx for k in infos] == [f".entry gpu_{i}" for i in range(len(steps))]
    assert all(k.optimized_ir is None and k.symbol.startswith("gpu_") for k in infos)


def test_a_realized_tensor_is_a_single_leaf():
    y = softmax_example().realize()
    G = inspect.graph(y)
    assert G.number_of_nodes() == 1 and G.graph["kernels"] == []
    assert next(iter(G.nodes.values()))["role"] in ("buffer", "realized")


def test_unknown_stage_is_an_error():
    with pytest.raises(ValueError, match="unknown stage"):
        inspect.graph(softmax_example(), stage="fused")


# ---------------------------------------------------------------- gradients and a training step

def autograd_available() -> bool:
    w = torch.tensor([[0.5], [-1.0], [2.0]], requires_grad=True)
    try:
        torch.grad((w * w).sum(), [w])
    except NotImplementedError:
        return False
    return True


def _autograd_or_skip():
    if not autograd_available():
        pytest.skip("autograd is not available yet")


def test_gradient_graph_of_a_loss():
    _autograd_or_skip()
    x = torch.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    w = torch.tensor([[0.5], [-1.0], [2.0]], requires_grad=True)
    b = torch.tensor([0.1], requires_grad=True)
    loss = ((x @ w + b - 1.0) ** 2).mean()
    G = inspect.graph(loss, stage="gradients", wrt=[w, b])
    grad_w, grad_b = G.graph["gradient_roots"]
    assert G.nodes[grad_w]["shape"] == [3, 1] and G.nodes[grad_b]["shape"] == [1]
    parts = {a["part"] for _, a in G.nodes(data=True)}
    assert parts == {"forward", "gradient"}
    assert G.nodes[grad_w]["part"] == "gradient"
    loss_id = G.graph["roots"][-1]
    assert G.nodes[loss_id]["part"] == "forward" and G.nodes[loss_id]["shape"] == []
    # the gradient of a reduction is a broadcast: the gradient part has EXPAND nodes
    assert any(a["op"] == "EXPAND" and a["part"] == "gradient" for _, a in G.nodes(data=True))
    assert "(gradient)" in formats.graph_text(G)
    with pytest.raises(ValueError, match="wrt"):
        inspect.graph(loss, stage="gradients")


def test_recorder_marks_the_realisation_of_lazygrad_grad():
    _autograd_or_skip()
    original = torch.grad
    x = torch.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    w = torch.tensor([[0.5], [-1.0], [2.0]], requires_grad=True)
    with inspect.record() as rec:
        loss = ((x @ w).exp()).sum()
        (gw,) = torch.grad(loss, [w])
        expected = (x.numpy() * np.exp(x.numpy() @ w.detach().numpy())).sum(0)
        np.testing.assert_allclose(gw.numpy()[:, 0], expected, rtol=1e-5)
    assert torch.grad is original                      # the wrapper is gone after the block
    marked = [r for r in rec.report.realisations if r.gradient]
    assert len(marked) == 1
    plan = rec.report.plans[marked[0].plan - 1]
    for stage in ("built", "gradients", "simplified", "scheduled"):
        parts = [a["part"] for _, a in plan.graphs[stage].nodes(data=True)]
        assert "gradient" in parts and "forward" in parts, stage
    (root,) = plan.graphs["scheduled"].graph["roots"]
    assert plan.graphs["scheduled"].nodes[root]["part"] == "gradient"


def training_step_script(tmp_path, steps: int = 2):
    """The training step of the seed: forward, loss, backward (when autograd exists), SGD update."""
    script = tmp_path / "train_step.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        import numpy as np
        import lazygrad as torch
        x = torch.tensor(np.linspace(-1, 1, 24, dtype=np.float32).reshape(8, 3))
        y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3
        w = torch.zeros(3, 1, requires_grad=True)
        b = torch.zeros(1, requires_grad=True)
        for step in range({steps}):
            loss = ((x @ w + b - y) ** 2).mean()
            try:
                loss.backward()
            except NotImplementedError:   # before autograd exists: forward and loss only
                print("loss", loss.detach().item())
                continue
            with torch.no_grad():
                w -= 0.1 * w.grad
                b -= 0.1 * b.grad
                w.grad = None
                b.grad = None
            print("loss", loss.item())
        sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    """))
    return script


def test_cli_records_a_training_loop(tmp_path, capsys):
    script = training_step_script(tmp_path, steps=3)
    out = tmp_path / "run.json"
    status = cli_main(["--format", "json", "-o", str(out), str(script), "7"])
    assert status == 7                       # the script's exit status, from its sys.argv
    captured = capsys.readouterr()
    assert captured.out.count("loss") == 3
    assert "wrote json" in captured.err
    report = formats.load_report(out.read_text())
    assert report["script"].endswith("train_step.py") and report["argv"] == ["7"]
    rs, plans = report["realisations"], report["plans"]
    assert len(rs) >= 3
    assert plans and all(r["plan"] in {p["index"] for p in plans} for r in rs)
    # a training loop builds each graph once: later steps reuse the plans, compiling nothing
    assert len(plans) < len(rs)
    assert not rs[-1]["new_plan"]
    assert all(r["source"].startswith("train_step.py:") for r in rs)
    for p in plans:
        runs = [r for r in rs if r["plan"] == p["index"]]
        for k, info in enumerate(p["kernels"]):
            assert info["compile_ms"] > 0
            assert len(info["launch_ms"]) == len(runs)
            assert info["program"].startswith("program ") and "define void" in info["llvm_ir"]
        sched = p["graphs"]["scheduled"]
        assert isinstance(sched, nx.DiGraph) and len(sched.graph["kernels"]) == len(p["kernels"])
    if autograd_available():                # backward's realisations are marked, gradient nodes too
        assert any(r["gradient"] for r in rs)
        grad_plans = [p for p in plans if "gradients" in p["graphs"]]
        assert grad_plans
        parts = {a["part"] for _, a in grad_plans[0]["graphs"]["gradients"].nodes(data=True)}
        assert parts == {"forward", "gradient"}


def test_record_context_manager_and_text_report():
    x = torch.tensor(np.arange(12, dtype=np.float32).reshape(3, 4))
    with inspect.record() as rec:
        (x * 3).sum(1).numpy()
        (x * 3).sum(1).numpy()             # the same interned nodes: already computed, nothing runs
        (x + 1).max().item()
    report = rec.report
    assert len(report.realisations) == 2 and len(report.plans) == 2
    text = formats.report_text(report, ["scheduled"])
    assert "2 realisations, 2 distinct graphs" in text
    assert "#1   plan 1 (new)" in text and "SUM float32[3, 1]" in text
    assert "compiled in" in text


# ---------------------------------------------------------------- views

def _numpy_op(a, op, arg):
    if op == "RESHAPE":
        return a.reshape(arg)
    if op == "PERMUTE":
        return a.transpose(arg)
    if op == "EXPAND":
        return np.broadcast_to(a, arg)
    if op == "PAD":
        # -1: "masked", as positions() reports it
        return a if a.ndim == 0 else np.pad(a, np.array(arg, dtype=np.int64).reshape(-1, 2), constant_values=-1)
    if op == "SHRINK":
        return a[tuple(slice(s, e, st) for s, e, st in arg)]
    return np.flip(a, arg)


def _random_op(shape, rng):
    op = rng.choice(["RESHAPE", "PERMUTE", "EXPAND", "PAD", "SHRINK", "FLIP"])
    if op == "RESHAPE":
        n = int(np.prod(shape))
        a = rng.choice([d for d in range(1, n + 1) if n % d == 0])
        b = rng.choice([d for d in range(1, n // a + 1) if (n // a) % d == 0])
        new = [a, b, n // a // b]
        rng.shuffle(new)
        return op, tuple(s for s in new if s != 1 or rng.random() < 0.5)
    if op == "PERMUTE":
        order = list(range(len(shape)))
        rng.shuffle(order)
        return op, tuple(order)
    if op == "EXPAND":
        return op, tuple(rng.choice([2, 3]) if s == 1 else s for s in shape)
    if op == "PAD":
        return op, tuple((rng.randint(0, 2), rng.randint(0, 2)) for _ in shape)
    if op == "SHRINK":
        bounds = []
        for s in shape:
            start = rng.randint(0, max(s - 1, 0))
            bounds.append((start, rng.randint(start + 1, s) if s else 0, rng.randint(1, 2)))
        return op, tuple(bounds)
    return op, tuple(d for d in range(len(shape)) if rng.random() < 0.5)


def test_views_compose_like_numpy():
    rng = random.Random(1234)
    stacked = 0
    for _ in range(600):
        shape = (rng.randint(1, 4), rng.randint(1, 4), rng.randint(1, 3))
        expected = np.arange(int(np.prod(shape))).reshape(shape)
        views = [View.contiguous(shape)]
        for _ in range(5):
            op, arg = _random_op(expected.shape, rng)
            expected = _numpy_op(expected, op, arg)
            views = apply(views, op, arg)
            got = positions(views)
            assert got.shape == expected.shape
            np.testing.assert_array_equal(got, expected, err_msg=f"{op} {arg} -> {views}")
            if expected.size == 0:
                break
        stacked += len(views) > 1
    assert stacked > 0     # some chains needed a second view, and were still right


def test_view_examples():
    v = View.contiguous((2, 3))
    assert v.is_contiguous and v.strides == (3, 1)
    t = v.permute((1, 0))
    assert t.strides == (1, 3) and not t.is_contiguous
    assert t.reshape((6,)) is None                       # a transposed matrix cannot be flattened in place
    assert apply([v], "PERMUTE", (1, 0))[-1].reshape((3, 2, 1)).strides == (1, 3, 1)
    assert v.reshape((3, 2)).strides == (2, 1)
    assert v.reshape((1, 6)) == View((1, 6), (6, 1))
    e = View.contiguous((2, 1)).expand((2, 5))
    assert e.strides == (1, 0) and e.mask is None
    f = v.flip((1,))
    assert f.offset == 2 and f.strides == (3, -1)
    p = v.pad(((1, 0), (0, 2)))
    assert p.shape == (3, 5) and p.offset == -3 and p.mask == ((1, 3), (0, 3))
    assert p.position((0, 0)) is None and p.position((1, 0)) == 0
    s = v.shrink(((0, 2, 1), (0, 3, 2)))
    assert s.shape == (2, 2) and s.strides == (3, 2)


def test_graph_view_of_a_non_contiguous_reshape():
    x = torch.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    y = x.t().reshape(6) + 0.0
    G = inspect.graph(y, stage="built")
    (flat,) = [a for _, a in G.nodes(data=True) if a["op"] == "RESHAPE" and a["shape"] == [6]]
    assert flat["view"]["stack"] == 2 and "no single view" in flat["view"]["note"]
    (perm,) = [a for _, a in G.nodes(data=True) if a["op"] == "PERMUTE"]
    assert perm["view"]["strides"] == [1, 3] and perm["view"]["base"] == "n0"
    assert y.tolist() == [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]


# ---------------------------------------------------------------- JSON

def assert_same_graph(a: nx.DiGraph, b: nx.DiGraph):
    assert a.graph == b.graph
    assert dict(a.nodes(data=True)) == dict(b.nodes(data=True))
    assert sorted(a.edges(data=True)) == sorted(b.edges(data=True))
    assert nx.utils.graphs_equal(a, b)


@pytest.mark.parametrize("stage", ["built", "simplified", "scheduled"])
def test_json_round_trip(stage):
    for make in (softmax_example, gather_example):
        G = inspect.graph(make(), stage=stage)
        text = inspect.to_json(G)
        back = inspect.from_json(text)
        assert isinstance(back, nx.DiGraph) and back.is_directed()
        assert_same_graph(G, back)


def test_json_round_trip_keeps_special_constants():
    x = torch.tensor([1.0, -2.0])
    y = x.clamp(min=float("-inf"), max=float("inf")) * float("nan")
    G = inspect.graph(y, stage="built")
    assert_same_graph(G, inspect.from_json(json.dumps(json.loads(inspect.to_json(G)))))


# ---------------------------------------------------------------- DOT

_DOT_TOKEN = re.compile(r'\s+|//[^\n]*|"((?:[^"\\]|\\.)*)"|(->)|([{}\[\];,=])|([A-Za-z_][A-Za-z_0-9]*|-?(?:\.\d+|\d+(?:\.\d*)?))')


def parse_dot(text: str) -> dict:
    """A small parser for the DOT language (graphs, subgraphs, node/edge/attribute statements).

    Raises SyntaxError on anything it cannot read. Returns the nodes (id -> attributes),
    the edges, and each subgraph's name with the nodes declared inside it.
    """
    tokens, pos = [], 0
    while pos < len(text):
        m = _DOT_TOKEN.match(text, pos)
        if not m:
            raise SyntaxError(f"bad DOT at {pos}: {text[pos:pos + 20]!r}")
        pos = m.end()
        if m.group(1) is not None:
            tokens.append(("ID", re.sub(r'\\(.)', r'\1', m.group(1))))
        elif m.group(2) or m.group(3):
            tokens.append((m.group(2) or m.group(3), None))
        elif m.group(4):
            tokens.append(("ID", m.group(4)))
    tokens.append(("EOF", None))
    out = {"nodes": {}, "edges": [], "subgraphs": []}
    i = 0

    def expect(kind):
        nonlocal i
        if tokens[i][0] != kind:
            raise SyntaxError(f"expected {kind}, got {tokens[i]}")
        i += 1
        return tokens[i - 1][1]

    def attrs() -> dict:
        nonlocal i
        result = {}
        while tokens[i][0] == "[":
            i += 1
            while tokens[i][0] != "]":
                key = expect("ID")
                expect("=")
                result[key] = expect("ID")
                if tokens[i][0] in (",", ";"):
                    i += 1
            i += 1
        return result

    def statements(members: list) -> None:
        nonlocal i
        while tokens[i][0] != "}":
            kind, value = tokens[i]
            if kind == "ID" and value == "subgraph":
                i += 1
                name = expect("ID") if tokens[i][0] == "ID" else ""
                expect("{")
                inner: list = []
                statements(inner)
                expect("}")
                out["subgraphs"].append((name, inner))
                members.extend(inner)
            elif kind == "ID" and value in ("graph", "node", "edge") and tokens[i + 1][0] == "[":
                i += 1
                attrs()
            elif kind == "ID" and tokens[i + 1][0] == "=":
                i += 3
            elif kind == "ID":
                chain = [expect("ID")]
                while tokens[i][0] == "->":
                    i += 1
                    chain.append(expect("ID"))
                a = attrs()
                if len(chain) == 1:
                    out["nodes"][chain[0]] = a
                    members.append(chain[0])
                else:
                    out["edges"].extend(zip(chain, chain[1:]))
            else:
                raise SyntaxError(f"unexpected {tokens[i]}")
            if tokens[i][0] == ";":
                i += 1

    if tokens[i] == ("ID", "strict"):
        i += 1
    if tokens[i][1] not in ("digraph", "graph"):
        raise SyntaxError("a DOT file starts with graph or digraph")
    i += 1
    if tokens[i][0] == "ID":
        i += 1
    expect("{")
    statements([])
    expect("}")
    expect("EOF")
    return out


def test_dot_output_parses_with_kernels_as_clusters():
    y = column_sum_of_softmax()
    G = inspect.graph(y)
    text = inspect.dot(y)
    parsed = parse_dot(text)
    d = display_graph(G)
    assert len(parsed["nodes"]) == len(d.nodes)
    assert len(parsed["edges"]) == len(d.edges)
    for a, b in parsed["edges"]:
        assert a in parsed["nodes"] and b in parsed["nodes"]
    clusters = {name: members for name, members in parsed["subgraphs"] if re.search(r"_k\d+$", name)}
    assert len(clusters) == len(G.graph["kernels"])
    for k in G.graph["kernels"]:
        members = clusters[f"cluster_g_k{k['index']}"]
        assert f"g/k{k['index']}:{k['output']}" in members
    labels = [a["label"] for a in parsed["nodes"].values()]
    assert any(label.startswith("n") and "REDUCE_MAX" in label and "float32[4, 1]" in label for label in labels)
    with pytest.raises(SyntaxError):
        parse_dot(text.replace("->", "=>", 1))


def test_dot_of_built_graph_and_pydot_when_installed():
    G = inspect.graph(gather_example(), stage="built")
    text = inspect.dot(gather_example(), stage="built")
    parsed = parse_dot(text)
    assert len(parsed["nodes"]) == G.number_of_nodes()
    assert len(parsed["edges"]) == G.number_of_edges()
    try:
        import pydot  # noqa: F401
    except ImportError:
        return
    (graph,) = pydot.graph_from_dot_data(text)
    assert graph is not None


# ---------------------------------------------------------------- HTML in headless Chromium

def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def render_in_chromium(html_path, tmp_path, fragment: str = ""):
    """The DOM after the page's scripts ran, and Chromium's log (console messages)."""
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium)")
    profile = tmp_path / "chromium-profile"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=5000", "--dump-dom", f"file://{html_path}{fragment}"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, result.stderr


def console_errors(log: str) -> list:
    return [line for line in log.splitlines() if "CONSOLE" in line or "Uncaught" in line]


def test_html_renders_in_headless_chromium(tmp_path):
    y = column_sum_of_softmax()
    page = inspect.html(y)
    assert "<script src" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    path = tmp_path / "softmax.html"
    path.write_text(page, encoding="utf-8")
    G = inspect.graph(y)
    first = G.graph["kernels"][0]
    dom, log = render_in_chromium(path, tmp_path, f"#view=p1_scheduled&node=k0:{first['output']}")
    assert 'id="lg-ready"' in dom, dom[-3000:]
    assert 'class="lg-error"' not in dom
    assert console_errors(log) == []
    # every node of every stage is drawn, and each kernel is outlined
    expected = sum(len(display_graph(inspect.graph(y, stage=s)).nodes) for s in ("built", "simplified", "scheduled"))
    assert dom.count('class="lg-node') == expected
    assert dom.count('class="lg-kernel"') == len(y.schedule())
    # the selected node's details and its kernel's code are shown
    details = dom[dom.index('id="details"'):]
    assert f"{first['output']} {G.nodes[first['output']]['op']}" in details and "loop program" in details and "LLVM IR" in details
    assert f"program {first['name']}" in details and "define void" in details


def test_html_reports_script_errors_in_the_page(tmp_path):
    path = tmp_path / "gather.html"
    path.write_text(inspect.html(gather_example()), encoding="utf-8")
    dom, _ = render_in_chromium(path, tmp_path, "#view=p1_scheduled&node=no-such-node")
    assert 'class="lg-error"' in dom and "no node no-such-node" in dom
    assert 'id="lg-ready"' not in dom


def test_cli_html_of_a_training_step(tmp_path, capsys):
    script = training_step_script(tmp_path, steps=2)
    out = tmp_path / "train.html"
    assert cli_main(["--format", "html", "-o", str(out), str(script)]) == 0
    capsys.readouterr()
    page = out.read_text(encoding="utf-8")
    assert page.count("<svg") >= 3 and "train_step.py" in page
    dom, log = render_in_chromium(out, tmp_path)
    assert 'id="lg-ready"' in dom and 'class="lg-error"' not in dom
    assert console_errors(log) == []


# ---------------------------------------------------------------- the command line

def test_cli_help_documents_the_options():
    result = subprocess.run([sys.executable, "-m", "lazygrad.inspect", "--help"], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    assert result.returncode == 0
    for word in ("--stage", "--format", "-o", "--code", "text", "dot", "json", "html", "built", "simplified",
                 "gradients", "scheduled", "SCRIPT", "LAZYGRAD_DEBUG"):
        assert word in result.stdout or word in result.stdout.upper(), word


def test_cli_text_and_dot(tmp_path, capsys):
    script = tmp_path / "softmax_script.py"
    script.write_text(textwrap.dedent("""
        import numpy as np
        import lazygrad as torch
        x = torch.tensor(np.linspace(-2, 2, 20, dtype=np.float32).reshape(4, 5))
        e = (x - x.amax(1, keepdim=True)).exp()
        print((e / e.sum(1, keepdim=True)).sum(1))
    """))
    assert cli_main([str(script)]) == 0
    text = capsys.readouterr().out
    assert "tensor([1." in text                  # the script's own output
    assert "1 realisations, 1 distinct graphs" in text
    assert "at softmax_script.py:6" in text
    assert "== kernel 0" in text and "compiled in" in text and "1 launch" in text
    assert cli_main(["--stage", "all", "--code", "program", str(script)]) == 0
    text = capsys.readouterr().out
    for stage in ("built", "simplified", "scheduled"):
        assert f"stage: {stage}" in text
    assert "loop program:" in text
    dot_file = tmp_path / "out.dot"
    assert cli_main(["-f", "dot", "--stage", "scheduled", "-o", str(dot_file), str(script)]) == 0
    parsed = parse_dot(dot_file.read_text())
    assert any(name.endswith("_k0") for name, _ in parsed["subgraphs"])
    assert cli_main([str(tmp_path / "missing.py")]) == 2


# ---------------------------------------------------------------- LAZYGRAD_DEBUG

DEBUG_SCRIPT = """
import numpy as np
import lazygrad as torch
for step in range(2):   # new data each step, the same graph: the second realisation reuses the plan
    x = torch.tensor(np.linspace(-2, 2, 20, dtype=np.float32).reshape(4, 5) + step)
    e = (x - x.amax(1, keepdim=True)).exp()
    (e / e.sum(1, keepdim=True)).numpy()
"""


def run_with_debug(level: int) -> str:
    env = dict(os.environ, LAZYGRAD_DEBUG=str(level), PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, "-c", DEBUG_SCRIPT], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_debug_levels():
    n = len(softmax_example().schedule())
    assert run_with_debug(0) == ""
    one = run_with_debug(1)
    launches = [line for line in one.splitlines() if re.match(r"#\d+\s+kernel \d+/\d+ ", line)]
    assert len(launches) == 2 * n and all(re.search(r"\d+\.\d{3} ms", line) for line in launches)
    assert one.count("compiled in") == n                   # the second realisation reuses the plan
    assert "stage:" not in one
    two = run_with_debug(2)
    assert "realisation #1: " in two and "new plan" in two
    assert "realisation #2: " in two and "the same graph as realisation #1" in two
    assert two.count("== kernel ") == n and "loop program" not in two
    three = run_with_debug(3)
    assert three.count("loop program:") == n and "define void" not in three
    four = run_with_debug(4)
    assert four.count("loop program:") == n and four.count("LLVM IR:") == n and "define void" in four


def test_debug_output_in_process(monkeypatch, capsys):
    monkeypatch.setenv("LAZYGRAD_DEBUG", "2")
    x = torch.tensor(np.arange(7, dtype=np.float32))
    (x * 5.4321 - 1).numpy()              # a graph no other test builds: a new plan, printed in full
    out = capsys.readouterr().out
    assert re.search(r"realisation #\d+: 1 kernel, new plan", out)
    assert "MUL float32[7]" in out and "CONST 5.4321" in out
    assert re.search(r"kernel 1/1 e_7 +\d+\.\d{3} ms", out)
