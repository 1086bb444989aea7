"""The primitive operations of the IR.

Everything the tensor layer offers (sigmoid, softmax, matmul, ...) is built
from these. A new primitive touches this list, one rule in
`lazygrad/ir/autodiff.py`, and each renderer's table.
"""
from enum import Enum, auto


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


UNARY = frozenset({Op.EXP2, Op.LOG2, Op.SQRT, Op.SIN, Op.RECIP, Op.NEG, Op.TRUNC, Op.CAST})
BINARY = frozenset({Op.ADD, Op.MUL, Op.MAX, Op.CMPLT, Op.CMPEQ, Op.IDIV, Op.MOD})
TERNARY = frozenset({Op.WHERE})
ELEMENTWISE = UNARY | BINARY | TERNARY
REDUCE = frozenset({Op.SUM, Op.REDUCE_MAX, Op.PROD})
MOVEMENT = frozenset({Op.RESHAPE, Op.PERMUTE, Op.EXPAND, Op.PAD, Op.SHRINK, Op.FLIP})
LEAF = frozenset({Op.BUFFER, Op.CONST})
COMPARISON = frozenset({Op.CMPLT, Op.CMPEQ})
