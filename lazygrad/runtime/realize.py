"""Realisation: turn lazy nodes into buffers by running their schedule.

`realize(nodes)` is the one place where work happens:

1. Walk the graph and compute its *structure key*: the graph with every
   buffer replaced by a numbered placeholder. A training loop builds a graph
   of the same structure at every step, over new buffers.
2. If that structure was seen before, reuse its plan (the compiled kernels
   and which buffer each one reads and writes). Otherwise run the pass
   pipeline (simplify, schedule), lower each kernel to a loop program and
   compile it.
3. Run the plan: allocate each kernel's output, launch it, return
   intermediates to the pool as soon as their last reader has run, and
   attach the result buffers to the nodes that were asked for.
"""
from __future__ import annotations

import os
import time

from .. import stats
from ..codegen.lower import lower
from ..ir.node import Buffer, Node, toposort
from ..ir.ops import Op
from ..ir.passes import run_pipeline
from . import cpu

# Hooks called with a dict describing each realisation (used by lazygrad.inspect and DEBUG).
observers: list = []


def debug_level() -> int:
    try:
        return int(os.environ.get("LAZYGRAD_DEBUG", "0"))
    except ValueError:
        return 0


class Step:
    """One kernel launch in a plan: where its inputs come from and where its output goes."""

    def __init__(self, kernel, program, compiled, inputs, output_slot):
        self.kernel = kernel        # the scheduled Kernel (nodes of the first graph seen)
        self.program = program      # its loop Program (outer_size is this step's own)
        self.compiled = compiled    # CompiledKernel (possibly shared with other programs)
        self.inputs = inputs        # list of ("leaf", i) or ("tmp", j)
        self.output_slot = output_slot


class Plan:
    def __init__(self, steps, root_slots, tmp_meta, last_use, record):
        self.steps = steps
        self.root_slots = root_slots    # per root: ("leaf", i) / ("tmp", j) / ("const", node)
        self.tmp_meta = tmp_meta        # per tmp: (dtype, numel)
        self.last_use = last_use        # per tmp: index of the last step that reads it
        self.record = record            # pipeline stages of the first graph, for inspection


_plans: dict = {}


def _structure(roots: list[Node]):
    """The structure key of a graph and its leaves (buffers and realized nodes) in order."""
    order = toposort(roots)
    position: dict[int, int] = {}
    leaves: list[Node] = []
    parts = []
    for i, n in enumerate(order):
        position[id(n)] = i
        if n.realized is not None or n.op is Op.BUFFER:
            parts.append(("L", len(leaves), n.dtype.name, n.shape))
            leaves.append(n)
        elif n.op is Op.CONST:
            parts.append(("C", repr(n.arg), n.dtype.name, n.shape))
        else:
            parts.append((n.op, n.arg, n.dtype.name, n.shape, tuple(position[id(s)] for s in n.src)))
    key = (tuple(parts), tuple(position[id(r)] for r in roots))
    return key, leaves


def _buffer_of(leaf: Node) -> Buffer:
    return leaf.realized if leaf.realized is not None else leaf.arg


def _build_plan(roots: list[Node], leaves: list[Node]) -> Plan:
    record: dict = {}
    kernels = run_pipeline(roots, record)
    simplified = record["simplified"]
    leaf_slot = {id(n): ("leaf", i) for i, n in enumerate(leaves)}
    out_slot: dict[int, tuple] = {}
    steps, tmp_meta = [], []
    level = debug_level()
    for kernel in kernels:
        program = lower(kernel)
        t0 = time.perf_counter()
        compiled = cpu.compile_program(program)
        compile_ms = (time.perf_counter() - t0) * 1e3
        kernel.compile_ms = compile_ms
        inputs = []
        for node in kernel.inputs:
            slot = leaf_slot.get(id(node)) or out_slot.get(id(node))
            assert slot is not None, f"kernel input {node} is neither a leaf nor an earlier output"
            inputs.append(slot)
        slot = ("tmp", len(tmp_meta))
        tmp_meta.append((kernel.output.dtype, kernel.output.numel))
        out_slot[id(kernel.output)] = slot
        steps.append(Step(kernel, program, compiled, inputs, slot))
        if level >= 3:
            print(program.text())
        if level >= 4:
            print(compiled.ir_text)
    root_slots = []
    for node in simplified:
        if id(node) in out_slot:
            root_slots.append(out_slot[id(node)])
        elif id(node) in leaf_slot:
            root_slots.append(leaf_slot[id(node)])
        else:
            raise AssertionError(f"root {node} was not scheduled")
    last_use = {}
    for i, step in enumerate(steps):
        for kind, j in step.inputs:
            if kind == "tmp":
                last_use[j] = i
    for kind, j in root_slots:
        if kind == "tmp":
            last_use[j] = len(steps)  # roots live on
    if level >= 2:
        for k in kernels:
            print(f"scheduled {k}")
    return Plan(steps, root_slots, tmp_meta, last_use, record)


def realize(nodes: list[Node]) -> None:
    """Compute every node in `nodes` (that is not computed yet) and attach its buffer."""
    roots = [n for n in dict.fromkeys(nodes) if n.realized is None and n.op is not Op.BUFFER]
    if not roots:
        return
    key, leaves = _structure(roots)
    plan = _plans.get(key)
    if plan is None:
        stats.bump("schedules_built")
        plan = _build_plan(roots, leaves)
        _plans[key] = plan
    else:
        stats.bump("schedule_cache_hits")
    run_plan(plan, roots, leaves)


def run_plan(plan: Plan, roots: list[Node], leaves: list[Node]) -> None:
    leaf_arrays = [_buffer_of(n).data for n in leaves]
    tmp_arrays: list = [None] * len(plan.tmp_meta)
    level = debug_level()
    root_tmps = {j for kind, j in plan.root_slots if kind == "tmp"}
    timings = []
    try:
        for i, step in enumerate(plan.steps):
            dtype, numel = plan.tmp_meta[step.output_slot[1]]
            out = cpu.pool.take(dtype.np, numel)
            tmp_arrays[step.output_slot[1]] = out
            arrays = [out] + [leaf_arrays[j] if kind == "leaf" else tmp_arrays[j] for kind, j in step.inputs]
            if step.program.error_param is not None:
                arrays.append(None)  # filled per slice by the launcher
            t0 = time.perf_counter()
            flags = cpu.launch(step.compiled, arrays, step.program)
            elapsed = time.perf_counter() - t0
            timings.append(elapsed)
            if level >= 1:
                print(f"launch {step.compiled.name:<40} {elapsed * 1e3:8.3f} ms")
            if any(int(f[0]) for f in flags):
                raise _index_error(step.kernel)
            # free intermediates whose last reader just ran
            for kind, j in step.inputs:
                if kind == "tmp" and plan.last_use.get(j) == i and j not in root_tmps and tmp_arrays[j] is not None:
                    cpu.pool.give(tmp_arrays[j])
                    tmp_arrays[j] = None
    except BaseException:
        for j, arr in enumerate(tmp_arrays):
            if arr is not None and j not in root_tmps:
                cpu.pool.give(arr)
        raise
    for root, (kind, j) in zip(roots, plan.root_slots):
        if kind == "tmp":
            root.realized = Buffer("cpu", root.dtype, root.numel, tmp_arrays[j])
        elif kind == "leaf":
            root.realized = _buffer_of(leaves[j])
    for obs in observers:
        obs({"plan": plan, "roots": roots, "timings": timings})


def _index_error(kernel) -> IndexError:
    gathers = [n for n in kernel.nodes if n.op is Op.GATHER]
    if gathers:
        g = gathers[0]
        src, index = g.src
        return IndexError(f"gather(): index out of range in self: an index is outside [0, {src.shape[g.arg]}) "
                          f"for dim {g.arg} of a tensor of shape {tuple(src.shape)} "
                          f"(index shape {tuple(index.shape)})")
    return IndexError("index out of range in a kernel")


def schedule_of(nodes: list[Node]):
    """The kernels realising `nodes` would run, without running them."""
    roots = [n for n in dict.fromkeys(nodes) if n.realized is None and n.op is not Op.BUFFER]
    if not roots:
        return []
    return run_pipeline(roots)
