"""The one node type of the IR.

A Node is immutable and interned: building the same node twice returns the
same object. That makes common subexpression elimination free and lets
graphs be compared and hashed by identity.

The only mutable thing a node carries is `realized`: once a kernel has
computed the node's value, the Buffer holding it is attached here so that the
value is never computed again.
"""
from __future__ import annotations

import math
import struct
import weakref

from . import dtypes
from .dtypes import DType
from .ops import Op, REDUCE, MOVEMENT, ELEMENTWISE, COMPARISON

# (read once: on Python 3.11 reading an Enum member through its class, `Op.BUFFER`, is slow, and
# these constructors run for every tensor operation)
_BUFFER, _CONST, _PERMUTE = Op.BUFFER, Op.CONST, Op.PERMUTE


class Buffer:
    """A handle to memory holding one node's values in contiguous row-major order.

    The IR only needs its identity; the runtime fills `data` (a NumPy array on
    the CPU, a device allocation on a GPU).
    """

    __slots__ = ("device", "dtype", "numel", "data", "__weakref__")

    def __init__(self, device: str, dtype: DType, numel: int, data=None):
        self.device = device
        self.dtype = dtype
        self.numel = numel
        self.data = data

    def __repr__(self) -> str:
        return f"Buffer({self.device}, {self.dtype.name}, numel={self.numel})"


def arg_key(arg):
    """A node's arg as a dict key. 0.0 == -0.0 and nan != nan, so a float is keyed by its bits."""
    if isinstance(arg, float):
        return ("float", struct.pack("<d", arg))
    return arg


class _InternRef(weakref.ref):
    """A weak reference to an interned node that knows the node's key in the table.

    (What `weakref.KeyedRef` is, without its Python-level constructor: one is
    made for every new node.)
    """
    __slots__ = ("key",)


# The intern table: key -> weak reference to the one node with that key.
# (A plain dict of weak references rather than a WeakValueDictionary: every
# tensor operation looks a node up here, and the plain dict's lookup runs in
# C. A node is not kept alive by the table: when the last graph using it is
# gone, `_forget` removes its entry.)
_interned: "dict[tuple, _InternRef]" = {}


def _forget(ref: _InternRef) -> None:
    """Called by Python when an interned node dies: drop its entry from the table."""
    if _interned.get(ref.key) is ref:   # (the key may already name a newer node)
        del _interned[ref.key]


def _intern(op: Op, src: tuple, arg, dtype: DType, shape: tuple) -> "Node":
    """The node with these fields: the existing one, or a new one entered in the table.

    `Node(...)` comes here; the constructors below call it directly (a plain
    function call costs less than calling the class).
    """
    key = (op, src, ("float", struct.pack("<d", arg)) if isinstance(arg, float) else arg, dtype, shape)  # arg_key
    ref = _interned.get(key)
    if ref is not None:
        node = ref()
        if node is not None:
            return node
    node = object.__new__(Node)
    node.op = op
    node.src = src
    node.arg = arg
    node.dtype = dtype
    node.shape = shape
    node.realized = None
    ref = _interned[key] = _InternRef(node, _forget)
    ref.key = key
    return node


class Node:
    __slots__ = ("op", "src", "arg", "dtype", "shape", "realized", "__weakref__")

    _interned = _interned   # (the intern table above, also reachable as Node._interned)

    def __new__(cls, op: Op, src: tuple = (), arg=None, dtype: DType = dtypes.float32, shape: tuple = ()):
        return _intern(op, src, arg, dtype, shape)

    # Nodes are interned: identity is equality.
    __hash__ = object.__hash__

    def __eq__(self, other):
        return self is other

    def __reduce__(self):
        raise TypeError("IR nodes are interned and cannot be pickled")

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def is_leaf(self) -> bool:
        """A node the kernels read from memory or from a constant: nothing to compute."""
        return self.op in (Op.BUFFER, Op.CONST) or self.realized is not None

    def __repr__(self) -> str:
        arg = "" if self.arg is None or self.op is Op.BUFFER else f", arg={self.arg!r}"
        return f"<{self.op.name} {self.dtype.name}{list(self.shape)}{arg}>"


# ---- constructors: each checks what it can, so a bad graph never reaches codegen ----

def buffer(buf: Buffer, shape: tuple) -> Node:
    assert buf.numel == math.prod(shape), (buf.numel, shape)
    return _intern(_BUFFER, (), buf, buf.dtype, tuple(shape))


def const(value, dtype: DType, shape: tuple = ()) -> Node:
    if dtype.is_bool:
        value = bool(value)
    elif dtype.is_int:
        value = int(value)
    else:
        value = float(value)
    return _intern(_CONST, (), value, dtype, tuple(shape))


def unary(op: Op, x: Node) -> Node:
    return _intern(op, (x,), None, x.dtype, x.shape)


def cast(x: Node, dtype: DType) -> Node:
    if x.dtype is dtype:
        return x
    return Node(Op.CAST, (x,), None, dtype, x.shape)


def binary(op: Op, a: Node, b: Node) -> Node:
    assert a.shape == b.shape and a.dtype is b.dtype, (op, a, b)
    dtype = dtypes.bool_ if op in COMPARISON else a.dtype
    return _intern(op, (a, b), None, dtype, a.shape)


def where(cond: Node, a: Node, b: Node) -> Node:
    assert cond.dtype is dtypes.bool_ and cond.shape == a.shape == b.shape and a.dtype is b.dtype
    return Node(Op.WHERE, (cond, a, b), None, a.dtype, a.shape)


def reduce(op: Op, x: Node, axes: tuple) -> Node:
    assert op in REDUCE
    axes = tuple(sorted(set(axes))) if len(axes) > 1 else tuple(axes)
    shape = tuple([1 if i in axes else s for i, s in enumerate(x.shape)])
    return _intern(op, (x,), axes, x.dtype, shape)


def movement(op: Op, x: Node, arg) -> Node:
    """Build a movement node; its output shape follows from the op and arg."""
    assert op in MOVEMENT
    shape = tuple(arg) if op in _SHAPE_IS_ARG else movement_shape(op, x.shape, arg)
    return _intern(op, (x,), arg, x.dtype, shape)


_SHAPE_IS_ARG = frozenset({Op.RESHAPE, Op.EXPAND})


def movement_shape(op: Op, shape: tuple, arg) -> tuple:
    if op in _SHAPE_IS_ARG:
        return tuple(arg)
    if op is _PERMUTE:
        return tuple([shape[i] for i in arg])
    if op is Op.PAD:
        return tuple(s + before + after for s, (before, after) in zip(shape, arg))
    if op is Op.SHRINK:
        return tuple(len(range(start, stop, step)) for start, stop, step in arg)
    if op is Op.FLIP:
        return tuple(shape)
    raise ValueError(op)


def gather(src: Node, index: Node, axis: int) -> Node:
    assert index.dtype is dtypes.int64 and len(index.shape) == len(src.shape)
    return Node(Op.GATHER, (src, index), axis, src.dtype, index.shape)


def scatter(base: Node, index: Node, src: Node, axis: int, reduce: str | None) -> Node:
    assert index.dtype is dtypes.int64 and src.dtype is base.dtype
    return Node(Op.SCATTER, (base, index, src), (axis, reduce), base.dtype, base.shape)


# ---- walking graphs ----

def toposort(roots) -> list[Node]:
    """Every node reachable from `roots`, each after all of its sources.

    Realized nodes are leaves: the walk does not descend below them.
    """
    order: list[Node] = []
    seen: set[int] = set()
    for root in roots:
        if id(root) in seen:
            continue
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            if node.realized is None:
                for s in reversed(node.src):
                    if id(s) not in seen:
                        stack.append((s, False))
    return order


def is_elementwise(node: Node) -> bool:
    return node.op in ELEMENTWISE
