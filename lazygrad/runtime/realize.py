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

import math
import os
import time

import numpy as np

from .. import stats
from ..codegen.lower import LOG2E, lower
from ..ir import node as N
from ..ir.node import Buffer, Node, arg_key, toposort
from ..ir.ops import Op
from ..ir.passes import run_pipeline
from .. import devices
from . import cpu

# (read once: on Python 3.11 reading an Enum member through its class, `Op.BUFFER`, is slow)
_CONST, _BUFFER = Op.CONST, Op.BUFFER

# ---- scalar parameters ----
#
# A Python scalar in a tensor expression (`x * lr`, `loss / step`) becomes a CONST node. Were its value
# part of the structure key, every new value would build a new plan and compile new kernels, and the
# plan cache would grow without bound. So a floating-point constant is a *parameter*: the key records
# its dtype and shape only, the plan reads it from a one-element buffer (an input like any other), and
# each run passes the current value. The values below stay *baked*, keyed by value and compiled into
# the code, because the passes rely on them: simplify rewrites x * 1 and folds constants (the 0s and 1s
# of gradient seeds, masks, zeros() and ones()), the lowering renders EXP2(x * log2 e) as an accurate
# exp; nan (x != x) and infinities (masks, max) are kept as they are. Integer and boolean constants are
# always baked: they are index arithmetic, masks and divisors that the lowering inspects. (Every baked
# value is one more plan for a loop whose scalar passes through it, so the list is kept short: `loss /
# step` builds one plan at step 1 and one for every step after.)
# In short, a CONST node is a parameter when its value is a float, not nan, and not in _BAKED_FLOATS
# (the test is written out in `_structure`, which runs for every node of every realisation).
_BAKED_FLOATS = frozenset({0.0, 1.0, math.inf, -math.inf, LOG2E})


# (value, dtype) -> a one-element Buffer holding it: the input a plan reads a parameter from. Parameters
# are never 0 or nan (baked), so the float itself is an exact key. Bounded: a schedule of ever new values
# (a learning rate decayed at every step) must not keep every one.
_param_buffers: dict = {}
_PARAM_BUFFERS_LIMIT = 1024


def _param_buffer(node: Node) -> Buffer:
    key = (node.arg, node.dtype)
    buf = _param_buffers.get(key)
    if buf is None:
        if len(_param_buffers) >= _PARAM_BUFFERS_LIMIT:
            _param_buffers.clear()
        buf = _param_buffers[key] = Buffer("cpu", node.dtype, 1, np.full(1, node.arg, dtype=node.dtype.np))
    return buf

# Hooks called with a dict describing each realisation (used by lazygrad.inspect and DEBUG).
observers: list = []


# Where debug_level() reads LAZYGRAD_DEBUG: os.environ's own table (bytes on POSIX). os.environ.get
# of an unset name raises and catches a KeyError inside, microseconds at every realisation.
try:
    _environ, _DEBUG_KEY = os.environ._data, os.environ.encodekey("LAZYGRAD_DEBUG")
except AttributeError:   # (not CPython's os._Environ)
    _environ, _DEBUG_KEY = os.environ, "LAZYGRAD_DEBUG"


def debug_level() -> int:
    """LAZYGRAD_DEBUG as a number (0 when unset or not a number), read at every call."""
    value = _environ.get(_DEBUG_KEY)
    if value is None:
        return 0
    try:
        return int(value)
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
    def __init__(self, steps, root_slots, tmp_meta, last_use, record, backend=cpu, n_leaves: int = 0,
                 param_leaves=()):
        self.backend = backend          # the runtime module that compiles and runs it (cpu or cuda)
        self.steps = steps
        self.root_slots = root_slots    # per root: ("leaf", i) / ("tmp", j) / ("const", node)
        self.tmp_meta = tmp_meta        # per tmp: (dtype, numel)
        self.last_use = last_use        # per tmp: index of the last step that reads it
        self.record = record            # pipeline stages of the first graph, for inspection
        # Worked out once here rather than at every run. At run time the arrays sit in one list:
        # the leaves' first, then the temporaries' (tmp j at n_leaves + j).
        self.n_leaves = n_leaves
        self.param_leaves = list(param_leaves)   # which leaves are scalar parameters (CONST nodes)
        self.root_tmps = {j for kind, j in root_slots if kind == "tmp"}
        for i, step in enumerate(steps):
            dtype, numel = tmp_meta[step.output_slot[1]]
            step.output = (n_leaves + step.output_slot[1], dtype.np, numel)   # where, and what to allocate
            step.reads = [n_leaves + step.output_slot[1]] + [j if kind == "leaf" else n_leaves + j
                                                             for kind, j in step.inputs]   # its arrays, in order
            step.frees = [n_leaves + j for kind, j in dict.fromkeys(step.inputs)   # intermediates to free after it
                          if kind == "tmp" and last_use.get(j) == i and j not in self.root_tmps]
            step.flagged = step.program.error_param is not None   # it takes an error flag


_plans: dict = {}


def _structure(roots: list[Node], through: bool = False, params: bool = True):
    """The structure key of a graph, and its leaves (buffers and realized nodes) in order.

    The key is the graph written out with every leaf replaced by a placeholder
    numbered by its place in the walk: two graphs with equal keys differ only
    in the buffers they read and the values of their scalar parameters (see
    the parameter rule above; a parameter is a leaf too), so one plan runs both. A
    depth-first walk lists each node after its sources and describes it by
    (op, arg, dtype, shape, places of its sources); the leaves come out in walk
    order, which is the order the plan expects its input buffers in.

    `params=False` keys every constant by value (no parameters): see plan_for.

    `through=True` also walks below realized nodes (marking them "R"), for
    autograd's cache of backward plans: gradients are derived through
    realized nodes, so their history is part of what the gradient looks like.
    It then also returns the list of all nodes in walk order.

    (The walk is recursive, the fastest way to walk a graph in Python, and
    this runs at every realisation. A graph deeper than Python's recursion
    limit, a long chain of lazy operations, is walked again with an explicit
    stack, which lists the nodes in the same order.)
    """
    # node -> its place in the walk (keyed by the node itself: nodes hash by identity, in C, and
    # `id(node)` would be one more call per lookup). Its keys are the nodes in walk order.
    position: dict[Node, int] = {}
    leaves: list[Node] = []
    parts: list[tuple] = []
    CONST, BUFFER, baked = _CONST, _BUFFER, _BAKED_FLOATS

    def visit(node: Node) -> int:
        """List `node` after its sources; its place in the walk."""
        place = position.get(node)
        if place is not None:
            return place
        op = node.op
        if node.realized is None and op is not CONST and op is not BUFFER:   # an operation: most nodes
            src = node.src   # (one or two sources are visited without a loop: this is the hot path)
            places = (visit(src[0]),) if len(src) == 1 else \
                (visit(src[0]), visit(src[1])) if len(src) == 2 else tuple([visit(s) for s in src])
            part = (op, node.arg, node.dtype, node.shape, places)
        elif op is CONST:
            # even when an earlier realisation attached a buffer to this (interned) node, a constant is
            # a value: a parameter (see _BAKED_FLOATS: a leaf read from a one-element buffer, keyed without
            # its value), or baked into the kernels' code and keyed by value
            arg = node.arg
            if params and arg.__class__ is float and arg == arg and arg not in baked:   # (a parameter: see _BAKED_FLOATS)
                part = ("P", node.dtype, node.shape)
                leaves.append(node)
            else:
                part = ("C", arg_key(arg), node.dtype, node.shape)
        elif op is BUFFER or not through:
            part = ("L", node.dtype, node.shape)
            leaves.append(node)
        else:   # a realized node, walked through
            part = ("R", op, node.arg, node.dtype, node.shape, tuple([visit(s) for s in node.src]))
            leaves.append(node)
        place = position[node] = len(parts)
        parts.append(part)
        return place

    def visit_with_stack(root: Node) -> int:
        """`visit` without recursion: a node is visited once its sources are listed."""
        def sources(node):
            return node.src if through or node.realized is None else ()
        stack = [(root, iter(sources(root)))]
        while stack:
            node, pending = stack[-1]
            for s in pending:
                if s not in position:
                    stack.append((s, iter(sources(s))))
                    break
            else:
                stack.pop()
                visit(node)   # (its sources are listed: no recursion)
        return position[root]

    try:
        root_places = tuple([visit(r) for r in roots])
    except RecursionError:
        position.clear(), leaves.clear(), parts.clear()
        root_places = tuple([visit_with_stack(r) for r in roots])
    key = (tuple(parts), root_places)
    # `visit` refers to itself through its closure: a reference cycle that would keep `position` (every
    # node, and so every result buffer) alive until Python's cycle collector runs. Break it now.
    visit = visit_with_stack = None  # noqa: F841
    return (key, leaves, list(position)) if through else (key, leaves)


def _buffer_of(leaf: Node) -> Buffer:
    if leaf.op is _CONST:   # a scalar parameter
        return _param_buffer(leaf)
    return leaf.realized if leaf.realized is not None else leaf.arg


def _with_parameters(roots: list[Node], leaves: list[Node]):
    """`roots` with every scalar parameter among `leaves` read from a one-element buffer.

    Returns the new roots and, per parameter, the BUFFER node standing for it (which
    the plan's kernels take as an input). The buffer is read through RESHAPE and
    EXPAND to the constant's shape, as any broadcast value is.
    """
    params = {id(n) for n in leaves if n.op is _CONST}
    if not params:
        return roots, {}
    new: dict[int, Node] = {}
    standins: dict[int, Node] = {}
    for node in toposort(roots):
        if id(node) in params:
            buf = N.buffer(Buffer("cpu", node.dtype, 1, np.full(1, node.arg, dtype=node.dtype.np)), (1,))
            standins[id(node)] = buf
            read = N.movement(Op.RESHAPE, buf, (1,) * len(node.shape)) if node.shape != (1,) else buf
            new[id(node)] = N.movement(Op.EXPAND, read, node.shape) if read.shape != node.shape else read
        elif node.realized is not None or not node.src:
            new[id(node)] = node
        else:
            src = tuple([new[id(s)] for s in node.src])
            same = all(a is b for a, b in zip(src, node.src))
            new[id(node)] = node if same else Node(node.op, src, node.arg, node.dtype, node.shape)
    return [new[id(r)] for r in roots], standins


def _build_plan(roots: list[Node], leaves: list[Node], backend=cpu) -> Plan:
    record: dict = {}
    built, standins = _with_parameters(roots, leaves)
    kernels = run_pipeline(built, record)
    simplified = record["simplified"]
    leaf_slot = {id(standins.get(id(n), n)): ("leaf", i) for i, n in enumerate(leaves)}
    out_slot: dict[int, tuple] = {}
    steps, tmp_meta = [], []
    for kernel in kernels:
        # a GPU launch cannot give each of its threads a scratch buffer (see Program.scratch)
        program = lower(kernel) if backend is cpu else lower(kernel, scratch=False)
        t0 = time.perf_counter()
        compiled = backend.compile_program(program)
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
    return Plan(steps, root_slots, tmp_meta, last_use, record, backend, len(leaves),
                [i for i, n in enumerate(leaves) if n.op is _CONST])


def realize(nodes: list[Node], device: str | None = None):
    """Compute every node in `nodes` (that is not computed yet) and attach its buffer.

    The graph runs where its buffers are (see devices.plan_device); `device` places a graph that
    reads no buffer at all (constants only). Returns None, or on a GPU a dict id(node) -> Buffer
    for the roots whose buffers were not attached (see run_plan).
    """
    roots = [n for n in dict.fromkeys(nodes) if n.realized is None and n.op is not _BUFFER]
    if not roots:
        return None
    level = debug_level()
    plan, leaves = plan_for(roots, device, inspected=level > 0 or bool(observers))
    return run_plan(plan, roots, leaves, level)


def plan_for(roots: list[Node], device: str | None = None, inspected: bool = False):
    """The plan computing `roots` (from the cache when a graph of this structure was seen) and its leaves.

    `inspected`: the realisation is watched (lazygrad.inspect, LAZYGRAD_DEBUG), which shows the graphs
    as the program built them. Its plan then has no scalar parameters (constants stay constants, keyed
    by value), so that the graphs it records are the program's own.
    """
    key, leaves = _structure(roots, params=not inspected)
    backend = cpu
    if devices.state.cuda_used or device == "cuda":  # nothing to decide until a GPU tensor exists
        if devices.plan_device(roots, device) == "cuda":
            from . import cuda as backend
            key = ("cuda", key)
    plan = _plans.get(key)
    if plan is None:
        stats.bump("schedules_built")
        plan = _build_plan(roots, leaves, backend)
        _plans[key] = plan
    else:
        stats.bump("schedule_cache_hits")
    return plan, leaves


def _leaf_buffers(plan: Plan, leaves: list[Node]) -> list[Buffer]:
    """The leaves' buffers, on the plan's device. Only a GPU plan can meet a buffer of the other
    device: a 0-d CPU tensor, or a constant that was realised on the CPU before (copied over)."""
    buffers = [_buffer_of(n) for n in leaves]
    if plan.backend is cpu:
        return buffers
    out = []
    for buf in buffers:
        if buf.device != plan.backend.DEVICE:
            buf = Buffer(plan.backend.DEVICE, buf.dtype, buf.numel, plan.backend.DeviceArray.from_host(buf.data))
        out.append(buf)
    return out


def execute(plan: Plan, leaves: list[Node], root_meta: list[tuple], level: int = 0):
    """Run `plan`'s kernels on the buffers of `leaves`; nothing is attached to any node.

    `root_meta` gives each root's (dtype, numel). Returns one Buffer per root
    and the time of each launch. Intermediates go back to the pool as soon as
    their last reader has run.
    """
    backend = plan.backend
    pool = backend.pool
    if backend is cpu:   # (_buffer_of, written out)
        leaf_buffers = [n.arg if n.realized is None else n.realized for n in leaves]
        for i in plan.param_leaves:
            leaf_buffers[i] = _param_buffer(leaves[i])
    else:
        leaf_buffers = _leaf_buffers(plan, leaves)
    arrays = [b.data for b in leaf_buffers] + [None] * len(plan.tmp_meta)   # (see Plan: leaves, then tmps)
    timings = []
    take, give, launch, perf_counter = pool.take, pool.give, backend.launch, time.perf_counter
    try:
        for i, step in enumerate(plan.steps):
            where, np_dtype, numel = step.output
            arrays[where] = take(np_dtype, numel)
            args = [arrays[k] for k in step.reads]
            if step.flagged:
                args.append(None)  # the error flag: filled per slice by the launcher
            t0 = perf_counter()
            flags = launch(step.compiled, args, step.program)
            elapsed = perf_counter() - t0
            timings.append(elapsed)
            if level >= 1:
                from ..inspect import debug
                debug.launch(plan, i, step, elapsed)
            if flags:
                codes = [int(f[0]) for f in flags if int(f[0])]
                if codes:
                    raise _index_error(step, codes[0])
            for k in step.frees:   # intermediates whose last reader just ran
                give(arrays[k])
                arrays[k] = None
    except BaseException:
        for j in range(len(plan.tmp_meta)):
            arr = arrays[plan.n_leaves + j]
            if arr is not None and j not in plan.root_tmps:
                pool.give(arr)
        raise
    device_name = "cpu" if backend is cpu else backend.DEVICE
    buffers = []
    for (dtype, numel), (kind, j) in zip(root_meta, plan.root_slots):
        if kind == "tmp":
            buf = Buffer(device_name, dtype, numel, arrays[plan.n_leaves + j])
            if backend is cpu:
                cpu.pool.recycle_when_dead(buf)  # its memory serves later results once it is garbage
        else:
            buf = leaf_buffers[j]
        buffers.append(buf)
    return buffers, timings


def run_plan(plan: Plan, roots: list[Node], leaves: list[Node], level: int | None = None):
    """Run `plan` on the buffers of `leaves` and attach each root's result buffer to the root."""
    backend = plan.backend
    level = debug_level() if level is None else level
    if level >= 1:  # LAZYGRAD_DEBUG output is written by lazygrad/inspect/debug.py
        from ..inspect import debug
        debug.before_run(plan, roots, level)
    buffers, timings = execute(plan, leaves, [(root.dtype, root.numel) for root in roots], level)
    detached = None
    for root, buf in zip(roots, buffers):
        if backend is not cpu and devices.graph_device(root) != "cuda":
            # a graph that reads no GPU buffer (constants, 0-d CPU tensors): its node is interned and
            # may be shared with CPU graphs, so a GPU buffer must not be attached to it; the caller
            # takes the buffer
            detached = detached or {}
            detached[id(root)] = buf
        else:
            root.realized = buf
    for obs in observers:
        obs({"plan": plan, "roots": roots, "timings": timings})
    return detached


class IndexOutOfRangeError(IndexError, RuntimeError):
    """An index outside its dimension, found by a kernel. PyTorch raises IndexError for some indexing
    ops and RuntimeError for others (gather, scatter): this is both, so either `except` catches it."""


def _index_error(step, code: int) -> IndexOutOfRangeError:
    """The error for a kernel whose error flag came back nonzero (see Lowerer.flag_error)."""
    from ..codegen.lower import decode_index_error
    value, site = decode_index_error(code)
    sites = step.program.error_sites  # (axis, size) of each index check in the kernel
    if site < len(sites):
        axis, size = sites[site]
        if axis == "ZeroDivisionError":  # lower.ZERO_DIVISION: integer // or % by zero, as PyTorch reports it
            return RuntimeError("ZeroDivisionError")
        return IndexOutOfRangeError(f"index {value} is out of bounds for dimension {axis} with size {size}")
    return IndexOutOfRangeError(f"index {value} is out of bounds (in kernel {step.kernel.name})")


def schedule_of(nodes: list[Node]):
    """The kernels realising `nodes` would run, without running them."""
    roots = [n for n in dict.fromkeys(nodes) if n.realized is None and n.op is not Op.BUFFER]
    if not roots:
        return []
    return run_pipeline(roots)
