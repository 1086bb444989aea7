"""Fusion: partition a graph into kernels.

Every kernel computes one node (its output) into a fresh buffer. Between its
inputs (leaves: buffers, constants, outputs of earlier kernels) and its
output, a kernel may contain any number of elementwise and movement ops and
reductions (all over the same axes of the same shape). The rules, in order:

1. The nodes asked for are kernel outputs.
2. Elementwise and movement ops are never kernel outputs on their own: they
   are recomputed inside every kernel that reads them (cheap ALU work instead
   of a round trip through memory).
3. A reduction is fused into the kernel that reads it when that kernel is the
   only one reading it and either
   a. every path from the reduction up to the kernel's output keeps the
      number of elements (elementwise ops, reshapes, permutes, flips): the
      "epilogue" of the reduction (`(a*b).sum(1) * 2`; `(a.T @ b).T` writes
      the product transposed instead of copying it afterwards); or
   b. the reduction is read back through an EXPAND over exactly the reduced
      axes (a "broadcast epilogue"; elementwise ops may come before the
      EXPAND, as in `x - max` = `x + expand(-max)`), and from there only
      through elementwise ops of the reduction's input shape into another
      reduction of the kernel
      over the same axes, or into the kernel's output when that has the input
      shape too. `x - x.max(1, keepdim=True)` is one kernel, and so is a whole
      row softmax `e / e.sum(1, keepdim=True)` with `e = (x - x.amax(1,
      keepdim=True)).exp()`: for each row, one loop finds the max, one sums,
      one writes (the lowering, codegen/lower/, hoists each reduction out of the loops it does not
      depend on).
   All reductions in one kernel share one input shape and reduced axes (the
   kernel's "signature"); a reduction that fits no kernel is its own kernel,
   for instance when it feeds a reduction over other axes.
4. Scatters are always kernel outputs (they write at computed places).
5. An exception to rule 2: an elementwise result read many times through a
   broadcast (the `a` of a matmul `(a[:, :, None] * b[None]).sum(1)` is read
   once per output column) is written to memory when recomputing it is
   expensive (a transcendental op, or many ops) and would happen often: a
   softmax feeding a matmul is two kernels, not an exp per multiply-add.
   Results computed from a reduction are left to rule 3.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .node import Node, toposort
from .ops import Op, ELEMENTWISE, MOVEMENT, REDUCE

# Rule 5: an elementwise result read RECOMPUTE_FACTOR or more times through a broadcast,
# saving at least RECOMPUTE_ELEMENTS recomputations, is written to memory when it has one of
# these ops or RECOMPUTE_OPS ops in all.
TRANSCENDENTAL = frozenset({Op.EXP2, Op.LOG2, Op.SIN, Op.SQRT, Op.RECIP, Op.IDIV, Op.MOD})
RECOMPUTE_FACTOR = 4
RECOMPUTE_ELEMENTS = 1 << 16
RECOMPUTE_OPS = 8


@dataclass(eq=False)
class Kernel:
    output: Node
    inputs: list = field(default_factory=list)   # leaf nodes read, in a fixed order
    reduce: Node | None = None                   # the reduction nearest the output, if any
    nodes: list = field(default_factory=list)    # every node computed inside (for inspection)
    reduces: list = field(default_factory=list)  # every reduction computed inside

    @property
    def name(self) -> str:
        kind = "r" if self.reduce is not None else ("s" if self.output.op is Op.SCATTER else "e")
        dims = "_".join(str(s) for s in self.output.shape) or "scalar"
        return f"{kind}_{dims}"

    def __repr__(self) -> str:
        ops = sorted({n.op.name for n in self.nodes})
        return f"<Kernel {self.name} out={self.output} inputs={len(self.inputs)} ops={ops}>"


def _squeezed(shape) -> tuple:
    return tuple(s for s in shape if s != 1)


def find_kernel_outputs(roots: list[Node]) -> set[int]:
    """The ids of the nodes that must be written to memory (rules 1-4).

    Walks the graph from the outputs down (consumers before producers) and
    keeps, for every node:
      kernels[n]   the kernel outputs whose kernels contain n;
      epilogue[n]  n reaches all of them through element-count-preserving ops;
      sinks[n]     where n's value flows when it is computed at the full index
                   of a kernel's iteration space: a set of ("reduce", r) (into
                   reduction r) and ("output", o) (into output o of n's shape),
                   through elementwise ops of n's shape only; None when some
                   path does anything else;
      expanded[n]  the same for a node read back through an EXPAND: pairs
                   (expanded shape, sink) reached through elementwise ops of
                   n's shape, one EXPAND, then as in `sinks` (rule 3b);
    and for every kernel output k, signature[k]: (input shape, axes) of the
    kernel's reductions, or None while it has none.
    """
    order = toposort(roots)
    by_id = {id(n): n for n in order}
    consumers: dict[int, list[Node]] = {id(n): [] for n in order}
    for n in order:
        if n.realized is None:
            for s in n.src:
                consumers[id(s)].append(n)
    # (a constant asked for is computed even if its interned node was realised elsewhere:
    # simplify can fold a graph into such a node, which this realisation's leaves do not hold)
    outputs = {id(r) for r in roots if r.op is Op.CONST or (r.realized is None and r.op is not Op.BUFFER)}
    kernels: dict[int, frozenset] = {}
    epilogue: dict[int, bool] = {}
    sinks: dict[int, frozenset | None] = {}
    expanded: dict[int, frozenset | None] = {}
    signature: dict[int, tuple | None] = {}

    def sinks_from_consumers(n: Node):
        found = set()
        for c in consumers[id(n)]:
            if c.op in REDUCE:
                found.add(("reduce", id(c)))
            elif c.op in ELEMENTWISE and c.shape == n.shape:
                if id(c) in outputs:
                    found.add(("output", id(c)))
                elif sinks[id(c)] is None:
                    return None
                else:
                    found |= sinks[id(c)]
            else:
                return None
        return frozenset(found)

    def expanded_from_consumers(n: Node):
        """(expanded shape, sink) pairs reached through same-shape elementwise ops and then one EXPAND."""
        found = set()
        for c in consumers[id(n)]:
            if id(c) in outputs:
                return None
            if c.op is Op.EXPAND and sinks[id(c)]:
                found |= {(c.shape, sink) for sink in sinks[id(c)]}
            elif c.op in ELEMENTWISE and c.shape == n.shape and expanded[id(c)]:
                found |= expanded[id(c)]
            else:
                return None
        return frozenset(found)

    def broadcast_fusable(red: Node, k: int) -> bool:
        """Rule 3b: may reduction `red` join kernel `k` as a broadcast epilogue?"""
        sig = (red.src[0].shape, red.arg)
        if signature[k] is not None and signature[k] != sig:
            return False
        if not expanded[id(red)]:
            return False
        for shape, (kind, x) in expanded[id(red)]:
            target = by_id[x]
            if shape != red.src[0].shape:
                return False
            if kind == "reduce" and ((target.src[0].shape, target.arg) != sig or kernels[x] != {k}):
                return False
            if kind == "output" and (x != k or target.shape != shape):
                return False
        return True

    def read_through_broadcast(n: Node) -> int:
        """How many times each element of n is read through the EXPANDs above it (1: no broadcast)."""
        best, stack = 1, [(c, 1) for c in consumers[id(n)]]
        while stack:
            c, factor = stack.pop()
            if c.op not in MOVEMENT or id(c) in outputs:
                best = max(best, factor)
                continue
            if c.op is Op.EXPAND:
                factor *= c.numel // max(1, c.src[0].numel)
            stack.extend((d, factor) for d in consumers[id(c)])
        return best

    def expensive_to_recompute(n: Node) -> bool:
        """Rule 5: n's elementwise graph has a transcendental op or many ops, and n is not a
        function of a reduced value (one reached without an EXPAND between: rule 3's business)."""
        ops, transcendental, seen, stack = 0, False, set(), [(n, False)]
        while stack:
            x, expanded_on_the_way = stack.pop()
            if (id(x), expanded_on_the_way) in seen or x.is_leaf:
                continue
            seen.add((id(x), expanded_on_the_way))
            if x.op in REDUCE or x.op is Op.SCATTER:
                if not expanded_on_the_way:
                    return False
                continue  # a reduction broadcast into n: computed once per row, not counted
            if x.op not in MOVEMENT:
                ops += 1
                transcendental |= x.op in TRANSCENDENTAL
            stack.extend((s, expanded_on_the_way or x.op is Op.EXPAND) for s in x.src)
        return transcendental or ops >= RECOMPUTE_OPS

    for n in reversed(order):
        if n.is_leaf:
            continue
        if n.op in ELEMENTWISE and id(n) not in outputs:
            factor = read_through_broadcast(n)
            if factor >= RECOMPUTE_FACTOR and (factor - 1) * n.numel >= RECOMPUTE_ELEMENTS \
                    and expensive_to_recompute(n):
                outputs.add(id(n))
        if id(n) in outputs or n.op is Op.SCATTER:
            outputs.add(id(n))
            kernels[id(n)] = frozenset({id(n)})
            epilogue[id(n)] = True
            sinks[id(n)] = expanded[id(n)] = None
            signature[id(n)] = (n.src[0].shape, n.arg) if n.op in REDUCE else None
            continue
        ks = set()
        epi = True
        for c in consumers[id(n)]:
            ks |= kernels[id(c)]
            keeps_count = c.op in ELEMENTWISE or c.op in (Op.RESHAPE, Op.PERMUTE, Op.FLIP)
            epi = epi and keeps_count and c.numel == n.numel and epilogue[id(c)]
        sinks[id(n)] = sinks_from_consumers(n)
        expanded[id(n)] = expanded_from_consumers(n)
        if n.op in REDUCE:
            k = next(iter(ks)) if len(ks) == 1 else None
            if k is not None and ((epi and signature[k] is None) or broadcast_fusable(n, k)):
                signature[k] = (n.src[0].shape, n.arg)
            else:
                outputs.add(id(n))
                ks, epi = {id(n)}, True
                signature[id(n)] = (n.src[0].shape, n.arg)
        kernels[id(n)] = frozenset(ks)
        epilogue[id(n)] = epi
    return outputs


def schedule(roots: list[Node]) -> list[Kernel]:
    """The kernels that compute `roots`, in an order that respects their dependencies."""
    outputs = find_kernel_outputs(roots)
    order = toposort(roots)
    kernels = []
    for node in order:
        if id(node) not in outputs:
            continue
        kernel = Kernel(node)
        seen: set[int] = set()
        # depth first from the output, sources in order (an explicit stack: graphs can be deeper
        # than Python's recursion limit)
        stack = [(node, True)]
        while stack:
            n, top = stack.pop()
            if id(n) in seen:
                continue
            seen.add(id(n))
            if n.op is Op.CONST:
                # constants are rendered into the code, never loaded: even one that some other
                # realisation attached a buffer to (CONST nodes are interned and shared)
                if top:
                    kernel.nodes.append(n)  # a kernel filling its output with the constant
                continue
            if n.is_leaf or (id(n) in outputs and not top):
                kernel.inputs.append(n)
                continue
            kernel.nodes.append(n)
            if n.op in REDUCE:
                kernel.reduce = kernel.reduce or n
                kernel.reduces.append(n)
            stack.extend((s, False) for s in reversed(n.src))
        kernels.append(kernel)
    return kernels
