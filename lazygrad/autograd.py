"""Autograd entry points: `Tensor.backward()` and `lazygrad.grad()`.

The gradient itself is derived symbolically by `lazygrad.ir.autodiff`: this
module only connects tensors to it.

* It knows the leaf tensors that require grad (a registry of weak references,
  filled by `requires_grad_()`), so that `loss.backward()` can find every
  parameter the loss depends on without a tape.
* `backward()` builds the gradient graph of every such leaf and realises all
  of them in ONE schedule, together with the loss itself, so the kernels of
  the backward pass fuse with what is left of the forward pass.
* `grad()` returns the gradients as lazy tensors: nothing runs until they are
  used, so their graph can be inspected or scheduled first.
* Repeated backward passes over graphs of the same structure (a training
  loop) skip the gradient derivation: see "the backward plan cache" below.
"""
from __future__ import annotations

import weakref

import numpy as np

from . import devices, stats
from .ir import autodiff
from .ir import node as N
from .ir.node import Buffer
from .ir.ops import Op
from .runtime import realize as _realize

_CONST = Op.CONST   # (read once: on Python 3.11 reading an Enum member through its class is slow)

class _WeakRegistry:
    """A set of tensors that does not keep them alive, in the order they were added.

    (What weakref.WeakSet does, for less: backward() lists it at every step of a
    training loop, and iterating a WeakSet costs microseconds.)
    """

    def __init__(self):
        self.refs: dict[int, weakref.ref] = {}   # id(tensor) -> a weak reference to it

    def add(self, tensor) -> None:
        key = id(tensor)
        if key not in self.refs:
            refs = self.refs

            def forget(ref, key=key):
                if refs.get(key) is ref:   # (the id may already name a newer tensor)
                    del refs[key]
            refs[key] = weakref.ref(tensor, forget)

    def __iter__(self):
        return (t for t in [ref() for ref in self.refs.values()] if t is not None)

    def __len__(self) -> int:
        return len(self.refs)


# Leaf tensors that (at some point) asked for gradients; filtered when used.
_leaves = _WeakRegistry()
# Non-leaf tensors whose .grad is kept (`retain_grad()`).
_retained = _WeakRegistry()


def register_leaf(tensor) -> None:
    """Called when a leaf tensor starts requiring grad: remember it, and give it a BUFFER node of its own.

    backward() finds leaves by their node, and a lazy node (a constant,
    `randn(3) * 0.1`) is interned: other tensors may hold the very same node,
    and their uses must not count as uses of this leaf.
    """
    if tensor._node.op is not Op.BUFFER:
        _give_own_buffer(tensor)
    _leaves.add(tensor)


def keep_leaf_value_its_own(tensor, previous) -> None:
    """After an in-place op on a leaf that requires grad (under no_grad), `previous` being its old node.

    As in register_leaf: no other tensor may hold the leaf's node. A value
    computed from the leaf's own old value (`w -= lr * w.grad`) is the leaf's
    alone and may stay lazy (backward realises it); a constant (`w.fill_(2)`),
    a buffer or any other tensor's graph (`w.copy_(x)`) gets a buffer of its own.
    """
    node = tensor._node
    if node.op is Op.BUFFER or node.op is Op.CONST or not _depends_on(node, previous):
        _give_own_buffer(tensor)


def _depends_on(node, ancestor, limit: int = 10_000) -> bool:
    """Whether `ancestor` is in node's graph (looking at no more than `limit` nodes)."""
    seen, stack = set(), [node]
    while stack:
        n = stack.pop()
        if n is ancestor:
            return True
        if n in seen:
            continue
        seen.add(n)
        if len(seen) > limit:
            return False   # (the safe answer: the caller then gives the leaf a buffer of its own)
        stack.extend(n.src)
    return False


def _give_own_buffer(tensor) -> None:
    """Make tensor's node a BUFFER node that no other tensor holds (its value computed first if lazy)."""
    node = tensor._node
    if node.op is Op.CONST:   # no kernel needed for a constant (and none may get a buffer attached)
        buf = Buffer("cpu", node.dtype, node.numel, np.full(node.numel, node.arg, dtype=node.dtype.np))
    elif node.op is Op.BUFFER:
        buf = node.arg
    else:
        from .tensor import realize
        realize(tensor)
        buf = tensor._node.realized or tensor._node.arg
    # a new Buffer object (over the same memory: buffers are never written in place) is a new node
    tensor._node = N.buffer(Buffer(buf.device, buf.dtype, buf.numel, buf.data), node.shape)


def _filled_buffer(const, like):
    """A BUFFER node holding a CONST node's value, on the device of `like`.

    (Realising the CONST itself would attach a buffer to a node that is
    interned and shared by every equal constant.)
    """
    from . import devices as _device
    from .tensor import Tensor
    data = np.full(const.numel, const.arg, dtype=const.dtype.np)
    t = Tensor._from_node(N.buffer(Buffer("cpu", const.dtype, const.numel, data), const.shape))
    if _device.state.cuda_used and like.is_cuda:
        _device.place(t, "cuda")
    return t._node


def retain_grad(tensor) -> None:
    if not tensor.requires_grad:
        raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
    if not tensor.is_leaf:
        _retained.add(tensor)


def _size_str(shape) -> str:
    return f"lazygrad.Size([{', '.join(str(s) for s in shape)}])"


def _seed(output, grad_output, position: int):
    """The gradient flowing into `output`: 1 for a one-element output, else `grad_output`."""
    if grad_output is None:
        if output.numel() != 1:
            raise RuntimeError("grad can be implicitly created only for scalar outputs")
        return N.const(1.0, output.dtype, output._node.shape)
    from .tensor import Tensor
    if not isinstance(grad_output, Tensor):
        from .tensor import tensor
        grad_output = tensor(grad_output, dtype=output.dtype)
    if tuple(grad_output.shape) != tuple(output.shape):
        raise RuntimeError(f"Mismatch in shape: grad_output[{position}] has a shape of "
                           f"{_size_str(grad_output.shape)} and output[{position}] has a shape of "
                           f"{_size_str(output.shape)}.")
    return N.cast(grad_output._node, output.dtype)


def _grad_targets(inputs):
    """The tensors whose .grad a backward() fills: given ones, or every live leaf requiring grad."""
    if inputs is not None:
        from .tensor import Tensor
        targets = [inputs] if isinstance(inputs, Tensor) else list(inputs)
        for t in targets:
            if not t.requires_grad:
                raise RuntimeError("One of the differentiated Tensors does not require grad")
        return targets
    targets = [t for t in _leaves if t._requires_grad and t._is_leaf]
    if _retained:
        targets += [t for t in _retained if t._requires_grad]
    return targets


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None) -> None:
    """Accumulate d(tensors)/d(leaf) into `leaf.grad` for every leaf that requires grad.

    `tensors` is one tensor (`loss.backward()`) or several, each with its
    gradient in `grad_tensors` (None for a one-element tensor). The graph is
    kept, so `retain_graph` is accepted and has no effect. With
    `create_graph=True` the .grad tensors stay lazy and differentiable.
    """
    from .tensor import Tensor, realize
    outputs = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    if grad_tensors is None or isinstance(grad_tensors, Tensor):
        grad_tensors = [grad_tensors] * len(outputs) if grad_tensors is None else [grad_tensors]
    for i, out in enumerate(outputs):
        if not out.requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have a grad_fn")
    seeds = [_seed(out, g, i) for i, (out, g) in enumerate(zip(outputs, grad_tensors))]
    targets = _grad_targets(inputs)
    if not targets:
        return
    cache_key = order = values = None
    if not create_graph and _cache_usable():
        cache_key, order, values = _backward_key(outputs, seeds, targets)
        cached = _backward_plans.get(cache_key)
        if cached is not None and cached.values == values:   # differentiated before: run its plan
            stats.bump("schedule_cache_hits")
            cached.run(order, outputs, targets)
            return
    grads = autodiff.gradients([o._node for o in outputs], seeds, [t._node for t in targets])

    results = []
    for target, g in zip(targets, grads):
        if g is None:
            continue
        if g.op is Op.CONST and not create_graph:   # e.g. zero through trunc(): host data, no kernel
            g = _filled_buffer(g, target)
        if target.grad is None:
            target.grad = Tensor._from_node(g, requires_grad=create_graph)
        else:   # accumulate like PyTorch: the same .grad tensor now holds old + new
            old = target.grad
            if tuple(old.shape) != tuple(target.shape):
                raise RuntimeError(f"backward: the existing .grad of shape {_size_str(old.shape)} does not match "
                                   f"the tensor's shape {_size_str(target.shape)}")
            old._node = N.binary(Op.ADD, N.cast(old._node, g.dtype), g)
        results.append(target.grad)

    if create_graph:
        return  # the gradients stay lazy graphs that can be differentiated again
    # A leaf whose value is still lazy (updated in place under no_grad, e.g. by a
    # hand-written SGD step) is computed in the same schedule and then holds a
    # plain buffer, so that the graph does not grow from step to step.
    lazy_leaves = [t for t, g in zip(targets, grads)
                   if g is not None and t._is_leaf and t._node.op is not Op.BUFFER]
    if cache_key is not None and not lazy_leaves:
        plan = _BackwardPlan.record(order, outputs, targets, [g is not None for g in grads], values)
        if plan is not None:
            _backward_plans[cache_key] = plan   # (replacing a plan recorded for other scalar values)
            plan.run(order, outputs, targets)
            return
    handles = [Tensor._from_node(t._node) for t in lazy_leaves]
    # the outputs too: a training loop reads the loss next, and it shares work with the gradients
    losses = [Tensor._from_node(o._node) for o in outputs if o._node.realized is None]
    realize(*losses, *handles, *results)
    for leaf, handle in zip(lazy_leaves, handles):
        leaf._node = handle._node


# ---- the backward plan cache ----
#
# A training loop calls backward() at every step on a graph of the same
# structure: the same operations on new buffers. For a small model, deriving
# the gradient graph again (autodiff) and walking it to find its cached plan
# take longer than running the kernels. So backward() remembers, per structure
# of the forward graph, the plan that computed the loss and the gradients, and
# where that plan's input buffers sit in the forward graph. When a forward
# graph of a known structure comes back, that plan runs directly on its
# buffers and no gradient graph is built at all.
#
# Why this is safe: the gradient graph is a function of the forward graph's
# structure alone (each derivative rule looks at ops, args, dtypes and shapes,
# never at buffer contents). The key therefore holds that structure, walked
# through realized nodes (gradients flow through them), together with where
# each tensor requiring grad and each existing .grad (added to) sits in it.
#
# Constants: the key holds scalar parameters as realize keys them (dtype and
# shape), and a recorded plan runs again only for the very same values. A rule
# makes constants of its own (ln 2, 2.0), and one may be the very node of an
# equal constant of the forward graph: with other values the forward graph
# would have two nodes where the plan has one. A loss scaled by an annealed
# Python float therefore derives its gradient at every step, but reuses the
# realize plan (nothing is compiled) and keeps one entry here, replaced.

_backward_plans: dict = {}


def _cache_usable() -> bool:
    """The cache is used on the CPU, when nobody watches realisations (inspector, LAZYGRAD_DEBUG)."""
    return not devices.state.cuda_used and not _realize.observers and _realize.debug_level() == 0


def _backward_key(outputs, seeds, targets):
    """The cache key of a backward() call, the walked nodes (in the order the key numbers them) and
    the values of its scalar parameters."""
    walked = [o._node for o in outputs] + seeds + [t._node for t in targets]
    walked += [t.grad._node for t in targets if t.grad is not None]
    key, leaves, order = _realize._structure(walked, through=True)
    values = tuple([n.arg for n in leaves if n.op is _CONST])
    return (key, tuple(t.grad is not None for t in targets)), order, values


class _BackwardPlan:
    """What one backward() of a given structure ran, ready to run again on new buffers.

    plan            the realize Plan computing the (unrealized) losses and every gradient
    leaf_positions  for each input buffer of the plan, the place of its node in the walk (`order`,
                    followed by `made`)
    root_meta       (dtype, numel) of each of the plan's roots
    output_roots    per output: the index of its root, or None (already computed)
    grad_roots      per target: the index of the root holding its new .grad, or None (no gradient)
    """

    def __init__(self, plan, leaf_positions, root_meta, output_roots, grad_roots, made=(), values=None):
        self.plan = plan
        self.values = values     # the values of the key's scalar parameters when it was recorded
        self.made = list(made)   # scalar parameters made by the derivation (see record), after the walk
        self.leaf_positions = leaf_positions
        self.root_meta = root_meta
        self.output_roots = output_roots
        self.grad_roots = grad_roots

    @classmethod
    def record(cls, order, outputs, targets, reached, values=None):
        """The plan for this backward(), once the gradient graphs are in the .grad of the targets
        that a gradient `reached`; None when this call cannot be replayed (a gradient that no
        kernel computes, or that reads a buffer made on the way)."""
        grads = [t.grad._node if hit else None for t, hit in zip(targets, reached)]
        nodes = [o._node for o in outputs] + [g for g in grads if g is not None]
        roots = [n for n in dict.fromkeys(nodes) if n.realized is None and n.op is not Op.BUFFER]
        index = {id(n): i for i, n in enumerate(roots)}
        if not roots or any(g is not None and id(g) not in index for g in grads):
            return None
        position = {id(n): i for i, n in enumerate(order)}
        plan, leaves = _realize.plan_for(roots)
        # A scalar parameter that the derivation made (ln 2 in the rule for EXP2) is not in the forward
        # graph: it is kept here and placed after the walk, whose length the key fixes. (The plan runs
        # again only for the same key and values, so for the same constants: see above.)
        made = [leaf for leaf in dict.fromkeys(leaves) if id(leaf) not in position and leaf.op is Op.CONST]
        position.update((id(leaf), len(order) + i) for i, leaf in enumerate(made))
        if any(id(leaf) not in position for leaf in leaves):
            return None
        return cls(plan, [position[id(leaf)] for leaf in leaves], [(n.dtype, n.numel) for n in roots],
                   [index.get(id(o._node)) for o in outputs],
                   [None if g is None else index[id(g)] for g in grads], made, values)

    def run(self, order, outputs, targets) -> None:
        """Run the plan on the buffers of a graph walked into `order`; fill the losses and the .grads."""
        from .tensor import Tensor
        if self.made:
            order = order + self.made
        leaves = [order[p] for p in self.leaf_positions]
        buffers, _ = _realize.execute(self.plan, leaves, self.root_meta)
        for out, r in zip(outputs, self.output_roots):
            if r is not None:
                out._node.realized = buffers[r]
        for target, r in zip(targets, self.grad_roots):
            if r is None:
                continue     # no gradient reaches this tensor: its .grad stays as it is
            node = N.buffer(buffers[r], target._node.shape)
            if target.grad is None:
                target.grad = Tensor._from_node(node)
            else:            # the same .grad tensor now holds old + new (the plan added them)
                target.grad._node = node


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=None,
         is_grads_batched=False, materialize_grads=False):
    """torch.autograd.grad: the gradients of `outputs` with respect to `inputs`, as lazy tensors.

    Nothing is computed here: each result holds its gradient graph, which
    `.numpy()`, `realize()` or `lazygrad.inspect` can then run or show. With
    `create_graph=True` the results can be differentiated again.
    """
    from .tensor import Tensor
    if is_grads_batched:
        raise NotImplementedError("grad(is_grads_batched=True) is not supported")
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    single_input = isinstance(inputs, Tensor)
    inputs = [inputs] if single_input else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs] * len(outputs) if grad_outputs is None else [grad_outputs]
    if len(grad_outputs) != len(outputs):
        raise RuntimeError(f"grad requires one grad_output per output: got {len(grad_outputs)} grad_outputs "
                           f"for {len(outputs)} outputs")
    for i, out in enumerate(outputs):
        if not out.requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have a grad_fn")
    for t in inputs:
        if not t.requires_grad:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
    seeds = [_seed(out, g, i) for i, (out, g) in enumerate(zip(outputs, grad_outputs))]
    grads = autodiff.gradients([o._node for o in outputs], seeds, [t._node for t in inputs])
    results = []
    for t, g in zip(inputs, grads):
        if g is None:
            if materialize_grads:
                g = N.const(0.0, t.dtype, t._node.shape)
            elif allow_unused:
                results.append(None)
                continue
            else:
                raise RuntimeError("One of the differentiated Tensors appears to not have been used in the graph. "
                                   "Set allow_unused=True if this is the desired behavior.")
        if create_graph:
            results.append(Tensor._from_node(g, requires_grad=True))
        else:
            results.append(Tensor._from_node(autodiff.stop_gradient(g)))
    return tuple(results)
