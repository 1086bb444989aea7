"""`lazygrad.device`: where a tensor lives: "cpu", or "cuda" (device 0) where a GPU works
(`lazygrad.cuda.is_available()`); asking for "cuda" without one raises a clear RuntimeError.
The second half of this module decides which device a lazy graph runs on."""
from __future__ import annotations

import weakref


class device:
    __slots__ = ("type", "index")

    def __init__(self, type_or_str="cpu", index: int | None = None):
        if isinstance(type_or_str, device):
            type_or_str, index = type_or_str.type, type_or_str.index
        text = str(type_or_str)
        if ":" in text:
            text, idx = text.split(":", 1)
            index = int(idx)
        if text not in ("cpu", "cuda"):
            raise RuntimeError(f"Expected one of cpu, cuda device type at start of device string: {type_or_str}")
        self.type = text
        self.index = index

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        return f"device(type='{self.type}')" if self.index is None else f"device(type='{self.type}', index={self.index})"

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, device) and self.type == other.type and (self.index or 0) == (other.index or 0)

    def __hash__(self) -> int:
        return hash((self.type, self.index or 0))


CPU = device("cpu")


def normalize(dev) -> device:
    if dev is None:
        return CPU
    d = device(dev)
    if d.type == "cuda":
        from . import cuda
        cuda.require("to")
        if (d.index or 0) != 0:
            raise RuntimeError(f"CUDA error: invalid device ordinal: lazygrad uses one GPU, cuda:0 (got {d})")
    return d


# ---- where a graph's values live (only consulted once a CUDA tensor has been made) ----
#
# A node's device is decided by the BUFFER leaves of its whole structural graph: the buffers of
# "cpu" tensors, the buffers of "cuda" tensors. Constants belong to no device (they combine with
# anything), and so does anything built from constants alone, even once realised: nodes are
# interned, so `torch.ones(3)` and the `1` in `x_cuda + 1` can be the very same node. A 0-d CPU
# tensor combines with CUDA tensors, as in PyTorch, and so do CPU index tensors (`x_cuda[idx]`):
# they are copied over when the kernel runs.

CUDA = device("cuda", 0)
MIXED_DEVICES = "Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu!"
_CPU_SCALAR = "cpu-scalar"


class _State:
    """`cuda_used` stays False until the first CUDA buffer exists: until then every tensor is on the
    CPU and none of the device bookkeeping below runs (the CPU path pays nothing for it)."""
    cuda_used = False


state = _State()
_graph_devices: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _join(a, b):
    if a is None or a == b:
        return b
    if b is None:
        return a
    if a == _CPU_SCALAR:
        return b
    if b == _CPU_SCALAR:
        return a
    raise RuntimeError(MIXED_DEVICES)


def graph_device(node):
    """"cpu", "cuda", "cpu-scalar" (only 0-d CPU buffers) or None (constants only) for a node's graph.

    Raises RuntimeError (PyTorch's message) when the graph reads buffers of both devices.
    Memoised per node (nodes are immutable, so a node's device never changes)."""
    from .ir.ops import Op
    memo = _graph_devices
    got = memo.get(node, False)
    if got is not False:
        return got
    stack = [node]
    while stack:
        n = stack[-1]
        if n in memo:
            stack.pop()
            continue
        if n.op is Op.BUFFER:
            d = n.arg.device
            memo[n] = _CPU_SCALAR if d == "cpu" and n.shape == () else d
            stack.pop()
            continue
        pending = [s for s in n.src if s not in memo]
        if pending:
            stack.extend(pending)
            continue
        d = None
        for k, s in enumerate(n.src):
            sd = memo[s]
            if k == 1 and sd == "cpu" and n.op in (Op.GATHER, Op.SCATTER):
                sd = _CPU_SCALAR  # indices held on the CPU may index GPU data (PyTorch allows it for t[idx])
            d = _join(d, sd)
        memo[n] = d
        stack.pop()
    return memo[node]


def device_of(node) -> device:
    """The device a tensor holding `node` reports (`Tensor.device`)."""
    if not state.cuda_used:
        return CPU
    return CUDA if graph_device(node) == "cuda" else CPU


def plan_device(roots, hint: str | None = None) -> str:
    """The device that computes `roots` together: that of their buffers, else `hint`, else the CPU."""
    d = None
    for r in roots:
        d = _join(d, graph_device(r))
    if d is None or d == _CPU_SCALAR:
        return hint or "cpu"
    return d


def cuda_buffer(node):
    """A Buffer on the GPU holding `node`'s value (computed there when the graph reads no CPU data)."""
    from .ir.node import Buffer
    from .runtime import cuda as cuda_runtime
    from .runtime import realize as realize_mod
    from . import cuda
    cuda.require("to")
    state.cuda_used = True
    if node.realized is not None and node.realized.device == "cuda":
        return node.realized
    if node.op.name == "BUFFER" and node.arg.device == "cuda":
        return node.arg
    where = graph_device(node)
    if where == "cuda" or (where is None and node.realized is None):
        # computed on the GPU: a graph of GPU tensors, or of constants only (a fill kernel)
        detached = realize_mod.realize([node], device="cuda") or {}
        buf = node.realized if node.realized is not None else detached.get(id(node))
        if buf is not None and buf.device == "cuda":
            return buf
    data = cuda_runtime.DeviceArray.from_host(cpu_array(node))  # CPU data: copied over
    return Buffer("cuda", node.dtype, node.numel, data)


def cpu_array(node):
    """`node`'s value as a flat host array (computed where its buffers are; copied back from a GPU)."""
    from .runtime import realize as realize_mod
    buf = node.arg if node.op.name == "BUFFER" else node.realized
    if buf is None:
        detached = realize_mod.realize([node]) or {}
        buf = node.realized or detached.get(id(node))
    if buf.device == "cuda":
        return buf.data.numpy()
    return buf.data


def move(tensor, target: device):
    """`tensor.to(target)` across devices: a new leaf tensor holding the value on `target`."""
    import numpy as np
    from .ir import node as N
    from .ir.node import Buffer
    from .autograd_state import is_grad_enabled
    if tensor.requires_grad and is_grad_enabled():
        raise NotImplementedError(
            "moving a tensor that requires grad to another device is not differentiable in lazygrad: "
            f"create it on the device (device='{target.type}', requires_grad=True), or move its data "
            "(t.detach().to(device).requires_grad_())")
    node = tensor._node
    if target.type == "cuda":
        buf = cuda_buffer(node)
    else:
        buf = Buffer("cpu", node.dtype, node.numel, np.asarray(cpu_array(node)).reshape(-1))
    return type(tensor)._from_node(N.buffer(buf, node.shape))


def place(tensor, dev, requires_grad: bool = False):
    """Factories: put a freshly made tensor (a CPU buffer or a lazy constant) on `dev` (None: the CPU),
    then mark it as requiring grad if asked (after the move: autograd knows a leaf by its node).

    The tensor keeps its identity; on a GPU its node becomes a BUFFER there."""
    d = normalize(dev)
    if d.type == "cuda":
        from .ir import node as N
        tensor._node = N.buffer(cuda_buffer(tensor._node), tensor._node.shape)
    if requires_grad:
        tensor.requires_grad_(True)
    return tensor
