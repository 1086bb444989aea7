"""Views: tensors that share their values with the tensor they were taken from.

In PyTorch, `v = x.view(6)`, `x.t()`, `x[0]`, `x.detach()` and `x.data` are
views: they share x's memory, so writing into one changes the other

    w.data.fill_(0.5)          # changes w
    x.view(6)[0] = 5           # changes x
    x.add_(1); print(v)        # v shows the new values

lazygrad's tensors hold graphs, not memory, so sharing has to be arranged.
A view remembers its base tensor and the steps that build its value from the
base's value: movement ops (reshape, permute, expand, shrink) and detach's
stop-gradient. Two rules keep a family of views consistent:

* writing into a view (any in-place op) writes the new values into its base,
  and so on up to the root (`write_through`): each step is undone (a permute
  by the inverse permute, a shrink by placing the values back where the
  slice took them, `where(region, placed, old)`);
* when a tensor's value changes, every live view made from it is rebuilt
  from the new value (`refresh`), and their views in turn.

Nothing is computed here: the new values are new graph nodes, and they are
realised lazily like everything else.
"""
from __future__ import annotations

import functools
import weakref

from .ir import node as N
from .ir.autodiff import stop_gradient, is_stop_gradient
from .ir.ops import Op

# the movement ops a view may be made of (flip, pad and the like copy in PyTorch)
_VIEW_MOVEMENTS = frozenset({Op.RESHAPE, Op.PERMUTE, Op.EXPAND, Op.SHRINK})
_STOP_GRADIENT = "stop_gradient"   # a step: detach()


def link(view, base):
    """Record that `view` shares values with `base`; returns `view`.

    The steps from base to view are read off the view's graph: the chain of
    movement nodes (and stop-gradient nodes) that leads from the view's node
    down to the base's node. If the view's node is not built that way (an op
    computed new values), there is nothing to share and nothing is recorded.
    """
    if view is base or (view._view_of is not None and view._view_of[0] is base):
        return view   # (itself, or already linked: a view method built on another one)
    steps = _steps_between(base._node, view._node)
    if steps is None:
        return view
    view._view_of = (base, tuple(steps))
    views = base._views
    if views is None:
        views = base._views = []
    elif len(views) >= 8 and (len(views) & (len(views) - 1)) == 0:
        # (every time the list doubles, drop the views that are gone: a weight
        # transposed at every forward pass must not grow its list without end)
        views[:] = [ref for ref in views if ref() is not None]
    views.append(weakref.ref(view))
    return view


def returns_view(method):
    """Decorator for Tensor methods whose result is a view of `self` (permute, t, expand, detach...)."""
    @functools.wraps(method)
    def view_method(self, *args, **kwargs):
        return link(method(self, *args, **kwargs), self)
    return view_method


def _steps_between(base_node, view_node, max_steps: int = 32):
    """The steps (op, arg) that turn base_node into view_node, in order; None if there are none."""
    steps = []
    node = view_node
    while node is not base_node:
        if len(steps) == max_steps:
            return None
        if node.op in _VIEW_MOVEMENTS:
            steps.append((node.op, node.arg))
        elif is_stop_gradient(node):
            steps.append((_STOP_GRADIENT, None))
        else:
            return None
        node = node.src[0]
    steps.reverse()
    return steps


def _apply(node, step):
    op, arg = step
    if op == _STOP_GRADIENT:
        return stop_gradient(node)
    return N.movement(op, node, arg)


def rebuild(base_node, steps):
    """The view's value, built from (a new value of) its base."""
    node = base_node
    for step in steps:
        node = _apply(node, step)
    return node


def value_changed(tensor) -> None:
    """`tensor` was just given a new value: bring the views it belongs to up to date."""
    if tensor._view_of is not None:
        write_through(tensor)
    elif tensor._views:
        refresh(tensor)


def refresh(tensor) -> None:
    """`tensor` has a new value: rebuild each live view taken from it (and theirs)."""
    views = tensor._views
    if not views:
        return
    alive = []
    for ref in views:
        view = ref()
        if view is None or view._view_of is None or view._view_of[0] is not tensor:
            continue   # gone, or rebound to something else since
        alive.append(ref)
        steps = view._view_of[1]
        view._node = rebuild(tensor._node, steps)
        view._version += 1
        if tensor._requires_grad and not view._requires_grad and not _detaches(steps):
            view._requires_grad, view._is_leaf = True, False   # (its base now depends on a tensor requiring grad)
        refresh(view)
    views[:] = alive


def write_through(view) -> None:
    """`view` was written in place: give its base (and the base's base...) the new values.

    Then the root's views are all rebuilt from the root's new value, so every
    tensor of the family, the written view included, agrees.
    """
    base, steps = view._view_of
    # the base's value pushed through each step: the "old" values a shrink keeps outside its region
    inputs = [base._node]
    for step in steps[:-1]:
        inputs.append(_apply(inputs[-1], step))
    new = view._node
    for step, old in zip(reversed(steps), reversed(inputs)):
        new = _undo(step, new, old)
    base._assign(new)
    if view.requires_grad and not _detaches(steps) and not base.requires_grad:
        base._requires_grad, base._is_leaf = True, False
    if base._view_of is not None:
        write_through(base)
    else:
        refresh(base)


def _detaches(steps) -> bool:
    """Whether the steps include a detach (no gradient flows between view and base)."""
    return any(op == _STOP_GRADIENT for op, _ in steps)


def _undo(step, new, old):
    """The value of a step's input after its output became `new` (`old` is the input before)."""
    op, arg = step
    if op == _STOP_GRADIENT:
        return new
    if op is Op.RESHAPE:
        return N.movement(Op.RESHAPE, new, old.shape)
    if op is Op.PERMUTE:
        inverse = tuple(sorted(range(len(arg)), key=lambda axis: arg[axis]))
        return N.movement(Op.PERMUTE, new, inverse)
    if op is Op.EXPAND:
        return new if tuple(arg) == old.shape else _fold_expanded(new, old, tuple(arg))
    if op is Op.SHRINK:
        return _place_back(new, old, arg)
    raise AssertionError(f"not a view step: {op}")


def _fold_expanded(new, old, expanded_shape):
    """The base of an expanded view after a write into part of the view.

    In PyTorch all the elements along an expanded dim are one memory location.
    A write reaches expanded views only through a slice without overlap (in-place
    ops on the expanded tensor itself are refused), so at most one of the
    elements sharing a location changed: the base takes the changed one, or
    keeps its old value where none changed.
    """
    from .tensor import Tensor, where
    axes = tuple(d for d, (before, after) in enumerate(zip(old.shape, expanded_shape)) if before != after)
    new_t, old_t = Tensor._from_node(new), Tensor._from_node(old)
    changed = new_t != old_t.expand(expanded_shape)
    if new.dtype.is_floating_point:
        changed = changed & ~(new_t.isnan() & old_t.isnan())   # (nan to nan is no change)
    count = changed.sum(axes, keepdim=True)
    total = where(changed, new_t, 0).sum(axes, keepdim=True)
    value = total / count.clamp(min=1) if new.dtype.is_floating_point else total // count.clamp(min=1)
    return where(count > 0, value.to(new.dtype), old_t)._node


def _place_back(new, old, bounds):
    """where(region, new placed at the sliced positions, old) for a shrink with `bounds`."""
    from .advanced_indexing import place_into
    from .tensor import Tensor
    return place_into(Tensor._from_node(old), Tensor._from_node(new), bounds)._node
