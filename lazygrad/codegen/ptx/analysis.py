"""Reading a loop Program before any IR is built: what the PTX renderer accepts, where the parallel
loops and reductions are, and which mapping onto the GPU fits (`choose_strategy`).

Everything here is plain Python over the instruction list: nothing can reach LLVM (whose fatal
errors would end the process), so anything unknown raises NotImplementedError here first.
See the package docstring (`lazygrad/codegen/ptx/__init__.py`) for the strategies themselves.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from ..program import INDEX, Program

WARP = 32

# Instruction kinds this renderer implements (see program.py). Unknown kinds raise NotImplementedError.
INSTRUCTION_KINDS = frozenset({"arg", "const", "loop", "endloop", "alu", "load", "store", "acc", "update", "read"})
UPDATE_OPS = frozenset({"ADD", "MAX", "MUL", "OR"})

# ALU ops per kind of operand. Comparisons are looked up by their operands' kind, everything else by
# the result's. Ops missing here (say SIN on integers) are refused before any IR is built.
ALU_SUPPORT = {
    "float": frozenset({"EXP2", "LOG2", "SQRT", "SIN", "RECIP", "NEG", "TRUNC", "CAST", "EXP", "DIV",
                        "ADD", "MUL", "MAX", "CMPLT", "CMPEQ", "MOD", "WHERE"}),
    "int": frozenset({"NEG", "TRUNC", "CAST", "ADD", "MUL", "MAX", "CMPLT", "CMPEQ", "IDIV", "MOD", "WHERE"}),
    "bool": frozenset({"CAST", "ADD", "MUL", "MAX", "CMPLT", "CMPEQ", "WHERE", "AND"}),
    "index": frozenset({"ADD", "MUL", "IDIV", "MOD", "WHERE", "CMPLT", "CMPEQ", "CAST", "MAX", "NEG"}),
}
DTYPES = {"bool": "bool", "int32": "int", "int64": "int", "float32": "float", "float64": "float"}


class Strategy(enum.Enum):
    THREAD = "thread"   # grid-stride loop over outputs, one thread each
    BLOCK = "block"     # one block per output; loops inside shared by its threads, reductions combined
    SPLIT = "split"     # two launches: partial reductions into scratch, then a block per output
    PHASES = "phases"   # one launch per loop nest of a single-iteration program (scatter: copy, then write)


# ---- checking and analysing a program (pure Python; nothing here can crash the process) ----

def _kind(dtype) -> str:
    if dtype == INDEX:
        return "index"
    name = getattr(dtype, "name", None)
    if name not in DTYPES:
        raise NotImplementedError(f"the PTX renderer does not support dtype {dtype!r}")
    return DTYPES[name]


def check_supported(program: Program) -> None:
    """Raise NotImplementedError unless every instruction of `program` is on the renderer's allow-lists."""
    for dtype, _ in program.params:
        _kind(dtype)
    if getattr(program, "scratch", None):
        raise NotImplementedError("scratch parameters (a buffer per slice of a launch) are not supported on the "
                                  "GPU: lower the kernel with lower(kernel, scratch=False)")
    instrs = program.instrs
    for i, ins in enumerate(instrs):
        if ins.op not in INSTRUCTION_KINDS:
            raise NotImplementedError(f"the PTX renderer has no rule for instruction kind {ins.op!r} "
                                      f"(instruction %{i} of {program.name})")
        if ins.dtype is not None:
            _kind(ins.dtype)
        if ins.op == "alu":
            if not ins.src or any(not 0 <= s < i for s in ins.src):
                raise NotImplementedError(f"alu instruction %{i} has no operands or refers forward")
            operand_kind = _kind(instrs[ins.src[0]].dtype)
            kind = operand_kind if ins.arg in ("CMPLT", "CMPEQ") else _kind(ins.dtype)
            if ins.arg not in ALU_SUPPORT[kind]:
                raise NotImplementedError(f"the PTX renderer does not implement {ins.arg} on {kind} values "
                                          f"(instruction %{i} of {program.name})")
        elif ins.op == "update" and ins.arg not in UPDATE_OPS:
            raise NotImplementedError(f"the PTX renderer does not implement accumulator update {ins.arg!r}")
        elif ins.op == "arg" and ins.arg not in ("start", "end"):
            raise NotImplementedError(f"the PTX renderer does not know the program argument {ins.arg!r}")
        elif ins.op in ("load", "store") and not 0 <= ins.src[0] < len(program.params):
            raise NotImplementedError(f"{ins.op} from parameter {ins.src[0]}, which does not exist")


@dataclass
class _Nest:
    """Perfectly nested loops: `loops[k]` opens inside `loops[k-1]` with only constants between the
    opens, and the closes follow each other directly. Such a nest is one flat index space."""
    loops: list
    ends: list
    lows: list      # constant start of each loop (None for a loop bounded by start/end arguments)
    sizes: list     # trip counts (the outermost of the output nest: the program's outer_size)

    @property
    def size(self) -> int:
        return math.prod(self.sizes)

    @property
    def inner(self) -> int:
        return math.prod(self.sizes[1:])


@dataclass
class _Reduction:
    acc: int            # the accumulator instruction
    nest: _Nest         # the loops it runs over
    read: int           # the instruction reading the result
    op: str             # ADD / MAX / MUL / OR


class _Analysis:
    """Where the parallel loops and the reduction are, and which strategy fits."""

    def __init__(self, program: Program):
        self.p = program
        instrs = program.instrs
        self.end_of: dict[int, int] = {}
        self.depth: list[int] = []
        stack = []
        for i, ins in enumerate(instrs):
            if ins.op == "endloop":
                if not stack or stack[-1] != ins.src[0]:
                    raise NotImplementedError(f"endloop %{i} does not close the innermost open loop")
                self.end_of[stack.pop()] = i
            self.depth.append(len(stack))
            if ins.op == "loop":
                stack.append(i)
        if stack:
            raise NotImplementedError("a loop of the program is never closed")
        args = {ins.arg: i for i, ins in enumerate(instrs) if ins.op == "arg"}
        outer = [i for i, ins in enumerate(instrs) if ins.op == "loop" and self.depth[i] == 0]
        if len(outer) != 1 or instrs[outer[0]].src != (args.get("start"), args.get("end")):
            raise NotImplementedError("the PTX renderer expects exactly one outermost loop, bounded by the "
                                      "start and end arguments")
        self.outer = outer[0]
        for i, ins in enumerate(instrs):
            if self.depth[i] == 0 and ins.op in ("update", "endloop") and i != self.end_of[self.outer]:
                raise NotImplementedError(f"{ins.op} outside the parallel loop is not supported on the GPU")
            if self.depth[i] == 0 and ins.op == "store" and ins.src[0] != program.error_param:
                raise NotImplementedError("a store outside the parallel loop would run in every thread")
        self.nest = self._nest(self.outer, program.outer_size)
        self.reduction = self._reduction()
        self.block_loops = self._block_loops()
        self.phases = self._phases()

    def _block_loops(self) -> list | None:
        """The loops directly inside the output nest's body, when one block can share each of them:
        [(nest, accumulators it reduces into)] (no accumulators: a loop of independent iterations).
        None when the body has no loop or does something a block cannot share."""
        instrs = self.p.instrs
        first, last = self.nest.loops[-1] + 1, self.nest.ends[-1]
        depth = self.depth[self.nest.loops[-1]] + 1
        body_accs = {i for i in range(first, last) if instrs[i].op == "acc" and self.depth[i] == depth}
        loops, reduced = [], set()
        for i in range(first, last):
            ins = instrs[i]
            if self.depth[i] != depth:
                continue
            if ins.op == "update" and ins.src[0] in body_accs:
                return None   # accumulated outside a loop: every thread would add it
            if ins.op != "loop":
                continue
            if None in (self._const_int(s) for s in ins.src):
                return None
            nest = self._nest(i, None)
            end = self.end_of[i]
            accs, stores = set(), False
            for j in range(i + 1, end):
                inner = instrs[j]
                if inner.op == "update" and inner.src[0] in body_accs:
                    accs.add(inner.src[0])
                elif inner.op == "read" and inner.src[0] in body_accs:
                    return None   # a running value (a prefix sum) is not a block reduction
                elif inner.op == "store":
                    stores = True
            if accs and stores or accs & reduced:
                return None
            for acc in accs:  # each accumulator is combined with the one op it is updated with
                if len({instrs[j].arg for j in range(i + 1, end)
                        if instrs[j].op == "update" and instrs[j].src[0] == acc}) != 1:
                    return None
            reduced |= accs
            loops.append((nest, tuple(sorted(accs))))
        return loops or None

    def _phases(self) -> list | None:
        """The loop nests directly inside a single-iteration outer loop, with how each may run in
        parallel: [(nest, store plan or None for "run in one thread")]."""
        if self.p.outer_size != 1 or len(self.nest.loops) != 1:
            return None
        instrs = self.p.instrs
        first, last = self.outer + 1, self.end_of[self.outer]
        heads = []
        for i in range(first, last):
            if self.depth[i] != 1:
                continue
            if instrs[i].op == "loop":
                if None in (self._const_int(s) for s in instrs[i].src):
                    return None
                heads.append(i)
            elif instrs[i].op not in ("const", "endloop"):
                return None
        if not heads:
            return None
        phases = []
        for head in heads:
            nest = self._nest(head, None)
            phases.append((nest, self._store_plan(head + 1, nest.ends[0])))
        return phases

    def _depends_on(self, ref: int, target: int, memo: dict) -> bool:
        if ref == target:
            return True
        if ref in memo:
            return memo[ref]
        ins = self.p.instrs[ref]
        srcs = ins.src[1:] if ins.op == "load" else ins.src
        out = ins.op in ("alu", "load") and any(self._depends_on(s, target, memo) for s in srcs)
        memo[ref] = out
        return out

    def _store_plan(self, first: int, last: int) -> dict | None:
        """How each store in instrs[first:last] can run with the iterations in parallel threads:
        {store: ("plain",) | ("skip",) | ("masked", cond, value) | ("add", cond or None, value)},
        or None when some iteration could read what another writes (then the nest runs serially)."""
        instrs = self.p.instrs
        plan = {}
        users: dict[int, list] = {}
        for i in range(first, last):
            for s in (instrs[i].src[1:] if instrs[i].op in ("load", "store") else instrs[i].src):
                users.setdefault(s, []).append(i)
        for i in range(first, last):
            ins = instrs[i]
            if ins.op != "store" or ins.src[0] == self.p.error_param:
                continue
            param, addr, value = ins.src
            loads = [j for j in range(first, last) if instrs[j].op == "load" and instrs[j].src[0] == param]
            if not loads:
                plan[i] = ("plain",)
                continue
            if len(loads) != 1 or instrs[loads[0]].src[1] != addr:
                return None
            old = loads[0]
            v = instrs[value]
            memo: dict = {}
            entry, allowed_users = None, set()
            if value == old:
                entry, allowed_users = ("skip",), {i}
            elif v.op == "alu" and v.arg == "WHERE" and v.src[2] == old:
                cond, new = v.src[0], v.src[1]
                n = instrs[new]
                if n.op == "alu" and n.arg == "ADD" and old in n.src:
                    other = n.src[1] if n.src[0] == old else n.src[0]
                    if not self._depends_on(other, old, memo) and not self._depends_on(cond, old, memo):
                        entry, allowed_users = ("add", cond, other), {value, new}
                elif not self._depends_on(new, old, memo) and not self._depends_on(cond, old, memo):
                    entry, allowed_users = ("masked", cond, new), {value}
            elif v.op == "alu" and v.arg == "ADD" and old in v.src:
                other = v.src[1] if v.src[0] == old else v.src[0]
                if not self._depends_on(other, old, memo):
                    entry, allowed_users = ("add", None, other), {value}
            if entry is None or not set(users.get(old, ())) <= allowed_users:
                return None
            if entry[0] == "add" and _kind(self.p.params[param][0]) == "bool":
                return None   # no byte-wide atomics
            plan[i] = entry
        return plan

    def _const_int(self, ref):
        ins = self.p.instrs[ref]
        if ins.op == "const" and isinstance(ins.arg, int) and not isinstance(ins.arg, bool):
            return ins.arg
        return None

    def _nest(self, first: int, first_size: int | None) -> _Nest:
        instrs = self.p.instrs
        if first_size is None:
            lo, hi = (self._const_int(s) for s in instrs[first].src)
            first_low, first_size = lo, hi - lo
        else:
            first_low = None
        nest = _Nest([first], [self.end_of[first]], [first_low], [first_size])
        while True:
            k = nest.loops[-1] + 1
            while k < len(instrs) and instrs[k].op == "const":
                k += 1
            if k >= len(instrs) or instrs[k].op != "loop":
                break
            lo, hi = (self._const_int(s) for s in instrs[k].src)
            end = self.end_of[k]
            closes_next = end + 1 < len(instrs) and instrs[end + 1].op == "endloop" \
                and instrs[end + 1].src[0] == nest.loops[-1]
            if lo is None or hi is None or not closes_next:
                break
            nest.loops.append(k)
            nest.ends.append(end)
            nest.lows.append(lo)
            nest.sizes.append(max(0, hi - lo))
        return nest

    def _reduction(self) -> _Reduction | None:
        """The single reduction directly inside the output nest, when it has the shape a block can share."""
        instrs = self.p.instrs
        first, last = self.nest.loops[-1] + 1, self.nest.ends[-1]
        body_depth = self.depth[self.nest.loops[-1]] + 1
        accs = [i for i in range(first, last) if instrs[i].op == "acc"]
        if len(accs) != 1 or self.depth[accs[0]] != body_depth:
            return None
        acc = accs[0]
        k = acc + 1
        while k < last and instrs[k].op == "const":
            k += 1
        if k >= last or instrs[k].op != "loop" or None in (self._const_int(s) for s in instrs[k].src):
            return None
        nest = self._nest(k, None)
        reduce_end = nest.ends[0]
        ops = set()
        for i in range(first, last):
            ins = instrs[i]
            if ins.op == "update" and ins.src[0] == acc:
                if not nest.loops[0] < i < reduce_end:
                    return None
                ops.add(ins.arg)
            if ins.op == "store" and nest.loops[0] < i < reduce_end:
                return None
            if ins.op in ("store", "update", "loop") and first <= i < acc:
                return None
        reads = [i for i in range(first, last) if instrs[i].op == "read" and instrs[i].src[0] == acc]
        if len(ops) != 1 or len(reads) != 1 or reads[0] < reduce_end:
            return None
        return _Reduction(acc, nest, reads[0], ops.pop())

    def coefficient(self, ref: int, var: int, memo: dict) -> int | None:
        """d(index)/d(loop variable `var`) when the index is linear in it, else None."""
        if ref in memo:
            return memo[ref]
        ins = self.p.instrs[ref]
        if ref == var:
            out = 1
        elif ins.op in ("const", "arg", "loop", "read", "acc"):
            out = 0
        elif ins.op == "load":
            out = 0 if self.coefficient(ins.src[1], var, memo) == 0 else None
        elif ins.op == "alu":
            cs = [self.coefficient(s, var, memo) for s in ins.src]
            if all(c == 0 for c in cs):
                out = 0
            elif ins.arg == "ADD" and None not in cs:
                out = sum(cs)
            elif ins.arg == "MUL" and len(cs) == 2:
                consts = [self._const_int(s) for s in ins.src]
                if consts[0] is not None and cs[1] is not None:
                    out = consts[0] * cs[1]
                elif consts[1] is not None and cs[0] is not None:
                    out = consts[1] * cs[0]
                else:
                    out = None
            else:
                out = None
        else:
            out = None
        memo[ref] = out
        return out

    def loads_unit_stride(self, first: int, last: int, var: int) -> bool:
        """Whether every load in instrs[first:last] reads consecutive (or the same) elements as `var` steps."""
        memo: dict = {}
        for i in range(first, last):
            ins = self.p.instrs[i]
            if ins.op == "load" and self.coefficient(ins.src[1], var, memo) not in (0, 1):
                return False
        return True


@dataclass(frozen=True)
class Options:
    """Launch-shape choices; `sm_count` (multiprocessors of the device) sizes split reductions."""
    sm_count: int = 132
    threads: int = 256                # threads per block for elementwise kernels
    force: Strategy | None = None     # for tests: use this strategy where it is possible


def choose_strategy(an: _Analysis, options: Options):
    """(strategy, threads per block, split) for a program."""
    red, loops = an.reduction, an.block_loops
    if an.phases is not None:
        return Strategy.PHASES, options.threads, 1
    if options.force is not None:
        if options.force is Strategy.SPLIT and red is not None:
            block = _block_size(red.nest.size)
            return Strategy.SPLIT, block, max(2, min(64, -(-red.nest.size // block)))
        if options.force is not Strategy.THREAD and loops is not None:
            return Strategy.BLOCK, _block_size(max(n.size for n, _ in loops)), 1
        return Strategy.THREAD, options.threads, 1
    outputs = an.nest.size
    inner = max((n.size for n, _ in loops), default=0) if loops is not None else 0
    if inner < WARP:
        return Strategy.THREAD, options.threads, 1
    instrs_first, instrs_last = an.nest.loops[-1] + 1, an.nest.ends[-1]
    coalesced_thread = an.loads_unit_stride(instrs_first, instrs_last, an.nest.loops[-1])
    coalesced_block = all(an.loads_unit_stride(n.loops[-1] + 1, n.ends[-1], n.loops[-1]) for n, _ in loops)
    if outputs >= 65536 and (coalesced_thread or not coalesced_block):
        return Strategy.THREAD, options.threads, 1
    block = _block_size(inner)
    target_blocks = options.sm_count * 8
    if red is not None and len(loops) == 1 and outputs * 2 <= target_blocks and red.nest.size >= 16 * block:
        split = min(-(-red.nest.size // (8 * block)), -(-target_blocks // outputs))
        if split >= 2:
            return Strategy.SPLIT, block, split
    return Strategy.BLOCK, block, 1


def _block_size(reduce_size: int) -> int:
    """Threads per block for a block reduction: a power of two, 32..256, about reduce_size / 2."""
    size = WARP
    while size < 256 and size * 2 < reduce_size:
        size *= 2
    return size
