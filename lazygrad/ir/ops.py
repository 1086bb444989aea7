"""The primitive operations of the IR, and the one table of their facts.

Everything the tensor layer offers (sigmoid, softmax, matmul, ...) is built
from these primitives. Each primitive's facts are declared once, in
`OP_INFO` below: its kind and arity, how costly it is to compute again
(the scheduler's recompute rule) and how to evaluate it on constants (the
simplify pass). A new primitive touches this table, its derivative rule
(`lazygrad/ir/autodiff.py`), and each renderer's table (CPU:
`lazygrad/codegen/llvm_alu.py`, GPU: `lazygrad/codegen/ptx/alu.py`).

The loop program (codegen) computes with these same `Op` members, plus
the four it needs of its own (`lazygrad/codegen/program.py`'s `LoopOp`:
EXP, DIV, AND, OR), so no renderer keeps a list of op names.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto
from typing import Callable


class Op(Enum):
    # leaves
    BUFFER = auto()   # arg: the Buffer holding the data
    CONST = auto()    # arg: a Python number, broadcast to the node's shape
    # unary
    EXP2 = auto()
    LOG2 = auto()
    SQRT = auto()
    SIN = auto()
    RECIP = auto()
    NEG = auto()
    TRUNC = auto()    # round toward zero (floor/ceil/round are built from it)
    CAST = auto()     # to the node's dtype (arg "stop_gradient": identity that blocks gradients, ir/autodiff.py)
    # binary (operands have equal shapes and dtypes; CMP* give bool)
    ADD = auto()
    MUL = auto()
    MAX = auto()      # propagates NaN like torch.maximum
    CMPLT = auto()
    CMPEQ = auto()
    IDIV = auto()     # integer division rounding toward zero
    MOD = auto()      # remainder with the sign of the dividend (C's fmod / %)
    # ternary
    WHERE = auto()    # WHERE(cond, a, b)
    # reductions: arg is the tuple of reduced axes; those axes keep size 1
    SUM = auto()
    REDUCE_MAX = auto()
    PROD = auto()     # product; integers wrap like PyTorch's int64 (an empty product is 1)
    # movement: never copy, they change how an index reaches the data
    RESHAPE = auto()  # arg: new shape
    PERMUTE = auto()  # arg: the permutation
    EXPAND = auto()   # arg: new shape (size-1 dims broadcast)
    PAD = auto()      # arg: ((before, after), ...) filled with zero
    SHRINK = auto()   # arg: ((start, stop, step), ...) with step >= 1
    FLIP = auto()     # arg: tuple of flipped axes
    # indexing
    GATHER = auto()   # GATHER(src, index), arg=axis: out[..i..] = src[..index[..i..]..]
    SCATTER = auto()  # SCATTER(base, index, src), arg=(axis, reduce): a copy of base with src written at index

    # Ops are hashed at every node construction (the interning key holds one).
    # Enum's own __hash__ is a Python function hashing the member's name;
    # members are singletons, so hashing by identity is equivalent and cheap.
    __hash__ = object.__hash__


class OpKind(Enum):
    LEAF = auto()
    UNARY = auto()
    BINARY = auto()
    TERNARY = auto()
    REDUCE = auto()
    MOVEMENT = auto()
    INDEXED = auto()     # GATHER, SCATTER: reads or writes at computed places


@dataclass(frozen=True)
class OpInfo:
    """What the passes know about one op.

    kind     what sort of op it is (elementwise ops are UNARY, BINARY or TERNARY)
    arity    how many sources its node has
    cost     the work of computing one element again, in units of a cheap ALU op (an
             add); the scheduler writes a value to memory instead of recomputing it
             when that is costly (`ir/schedule.py`), movement and leaves cost nothing
    fold     evaluates the op on constants (NumPy scalars of the sources' dtypes, and
             the result's DType) for the simplify pass; None: never folded
    """
    kind: OpKind
    arity: int
    cost: int = 1
    fold: Callable | None = None

    @property
    def is_elementwise(self) -> bool:
        return self.kind in (OpKind.UNARY, OpKind.BINARY, OpKind.TERNARY)

    @property
    def is_costly(self) -> bool:
        """Costly to recompute: a transcendental function, a root, a division."""
        return self.cost >= COSTLY


# An op whose cost is at least this is "costly" (schedule.py's recompute rule).
COSTLY = 4


# ---- constant folding (NumPy scalars in the sources' dtypes; `dtype` is the result's DType) ----

def _fold_add(a, b, dtype):
    return a | b if dtype.is_bool else a + b


def _fold_mul(a, b, dtype):
    return a & b if dtype.is_bool else a * b


def _fold_neg(a, dtype):
    return None if dtype.is_bool else -a


def _fold_cast(a, dtype):
    return a.astype(dtype.np)


def _fold_cmplt(a, b, dtype):
    return a < b


def _fold_cmpeq(a, b, dtype):
    return a == b


def _fold_where(cond, a, b, dtype):
    return a if bool(cond) else b


_L, _U, _B, _T = OpKind.LEAF, OpKind.UNARY, OpKind.BINARY, OpKind.TERNARY
_R, _M, _I = OpKind.REDUCE, OpKind.MOVEMENT, OpKind.INDEXED

OP_INFO: dict[Op, OpInfo] = {
    Op.BUFFER: OpInfo(_L, 0, cost=0),
    Op.CONST: OpInfo(_L, 0, cost=0),
    Op.EXP2: OpInfo(_U, 1, cost=8),
    Op.LOG2: OpInfo(_U, 1, cost=8),
    Op.SQRT: OpInfo(_U, 1, cost=4),
    Op.SIN: OpInfo(_U, 1, cost=16),
    Op.RECIP: OpInfo(_U, 1, cost=4),
    Op.NEG: OpInfo(_U, 1, fold=_fold_neg),
    Op.TRUNC: OpInfo(_U, 1),
    Op.CAST: OpInfo(_U, 1, fold=_fold_cast),
    Op.ADD: OpInfo(_B, 2, fold=_fold_add),
    Op.MUL: OpInfo(_B, 2, fold=_fold_mul),
    Op.MAX: OpInfo(_B, 2),
    Op.CMPLT: OpInfo(_B, 2, fold=_fold_cmplt),
    Op.CMPEQ: OpInfo(_B, 2, fold=_fold_cmpeq),
    Op.IDIV: OpInfo(_B, 2, cost=8),
    Op.MOD: OpInfo(_B, 2, cost=8),
    Op.WHERE: OpInfo(_T, 3, fold=_fold_where),
    Op.SUM: OpInfo(_R, 1),
    Op.REDUCE_MAX: OpInfo(_R, 1),
    Op.PROD: OpInfo(_R, 1),
    Op.RESHAPE: OpInfo(_M, 1, cost=0),
    Op.PERMUTE: OpInfo(_M, 1, cost=0),
    Op.EXPAND: OpInfo(_M, 1, cost=0),
    Op.PAD: OpInfo(_M, 1, cost=0),
    Op.SHRINK: OpInfo(_M, 1, cost=0),
    Op.FLIP: OpInfo(_M, 1, cost=0),
    Op.GATHER: OpInfo(_I, 2),
    Op.SCATTER: OpInfo(_I, 3),
}


def ops_of_kind(*kinds: OpKind) -> frozenset:
    return frozenset(op for op, info in OP_INFO.items() if info.kind in kinds)


UNARY = ops_of_kind(OpKind.UNARY)
BINARY = ops_of_kind(OpKind.BINARY)
TERNARY = ops_of_kind(OpKind.TERNARY)
ELEMENTWISE = UNARY | BINARY | TERNARY
REDUCE = ops_of_kind(OpKind.REDUCE)
MOVEMENT = ops_of_kind(OpKind.MOVEMENT)
LEAF = ops_of_kind(OpKind.LEAF)
COMPARISON = frozenset({Op.CMPLT, Op.CMPEQ})
COSTLY_OPS = frozenset(op for op, info in OP_INFO.items() if info.is_costly)
