"""Fusion: partition a graph into kernels.

Every kernel computes one node (its output) into a fresh buffer. Between its
inputs (leaves: buffers, constants, outputs of earlier kernels) and its
output, a kernel may contain any number of elementwise and movement ops and at
most one reduction. The rules, in order:

1. The nodes asked for are kernel outputs.
2. Elementwise and movement ops are never kernel outputs on their own: they
   are recomputed inside every kernel that reads them (cheap ALU work instead
   of a round trip through memory).
3. A reduction is fused into the kernel that reads it when that kernel is the
   only one reading it and every path from the reduction up to the kernel's
   output keeps the number of elements (elementwise ops and reshapes that only
   add or drop size-1 dims): the "epilogue" of the reduction. Otherwise the
   reduction is its own kernel: for instance when it is broadcast back
   (`x - x.max(1, keepdim=True)`) or feeds another reduction.
4. Scatters are always kernel outputs (they write at computed places).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .node import Node, toposort
from .ops import Op, ELEMENTWISE, REDUCE


@dataclass(eq=False)
class Kernel:
    output: Node
    inputs: list = field(default_factory=list)   # leaf nodes read, in a fixed order
    reduce: Node | None = None                   # the reduction computed inside, if any
    nodes: list = field(default_factory=list)    # every node computed inside (for inspection)

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
    """The ids of the nodes that must be written to memory (rules 1-4)."""
    order = toposort(roots)
    consumers: dict[int, list[Node]] = {id(n): [] for n in order}
    for n in order:
        if n.realized is None:
            for s in n.src:
                consumers[id(s)].append(n)
    outputs = {id(r) for r in roots if r.realized is None and r.op is not Op.BUFFER}
    # kernels[n]: the kernel outputs whose kernels contain n; epilogue[n]: n reaches all of
    # them through element-count-preserving ops only
    kernels: dict[int, frozenset] = {}
    epilogue: dict[int, bool] = {}
    has_reduce: set[int] = set()
    for n in reversed(order):
        if n.is_leaf:
            continue
        if id(n) in outputs or n.op is Op.SCATTER:
            outputs.add(id(n))
            kernels[id(n)] = frozenset({id(n)})
            epilogue[id(n)] = True
            if n.op in REDUCE:
                has_reduce.add(id(n))
            continue
        ks = set()
        epi = True
        for c in consumers[id(n)]:
            ks |= kernels[id(c)]
            keeps_count = (c.op in ELEMENTWISE or (c.op is Op.RESHAPE and _squeezed(c.shape) == _squeezed(n.shape)))
            epi = epi and keeps_count and c.numel == n.numel and epilogue[id(c)]
        if n.op in REDUCE:
            if len(ks) == 1 and epi and not (ks & has_reduce):
                has_reduce |= ks
            else:
                outputs.add(id(n))
                ks, epi = {id(n)}, True
                has_reduce.add(id(n))
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

        def visit(n: Node, top: bool) -> None:
            if id(n) in seen:
                return
            seen.add(id(n))
            if n.op is Op.CONST and n.realized is None:
                return
            if n.is_leaf or (id(n) in outputs and not top):
                kernel.inputs.append(n)
                return
            kernel.nodes.append(n)
            if n.op in REDUCE:
                kernel.reduce = n
            for s in n.src:
                visit(s, False)

        visit(node, True)
        kernels.append(kernel)
    return kernels
