"""Symbolic autograd: every primitive's rule against finite differences, and the Tensor API around it."""
import numpy as np
import pytest

import lazygrad
from lazygrad.ir import autodiff
from lazygrad.ir import node as N
from lazygrad.ir.ops import Op, LEAF

from gradcheck import gradcheck

rng = np.random.default_rng(1234)


def arr(*shape, low=-2.0, high=2.0):
    return rng.uniform(low, high, size=shape)


def test_rule_table_has_one_entry_per_primitive():
    assert set(autodiff.RULES) == set(Op) - LEAF


def test_non_differentiable_primitives_give_no_gradient():
    a = N.buffer(N.Buffer("cpu", lazygrad.int64, 3), (3,))
    b = N.buffer(N.Buffer("cpu", lazygrad.int64, 3), (3,))
    g = N.const(1, lazygrad.int64, (3,))
    for op in (Op.IDIV, Op.MOD, Op.CMPLT, Op.CMPEQ):
        node = N.binary(op, a, b)
        assert autodiff.RULES[op](node, g) == (None, None), op
    x = N.buffer(N.Buffer("cpu", lazygrad.float32, 3), (3,))
    assert autodiff.RULES[Op.TRUNC](N.unary(Op.TRUNC, x), N.const(1.0, lazygrad.float32, (3,))) == (None,)


# ---- each primitive (through the smallest tensor op that builds it) vs float64 finite differences ----

UNARY_CASES = {
    "EXP2": (lambda x: x.exp2(), arr(2, 3)),
    "LOG2": (lambda x: x.log2(), arr(2, 3, low=0.5, high=3.0)),
    "SQRT": (lambda x: x.sqrt(), arr(2, 3, low=0.5, high=3.0)),
    "SIN": (lambda x: x.sin(), arr(2, 3)),
    "RECIP": (lambda x: x.reciprocal(), arr(2, 3, low=0.5, high=2.0)),
    "NEG": (lambda x: -x, arr(2, 3)),
    "exp": (lambda x: x.exp(), arr(4)),
    "log": (lambda x: x.log(), arr(4, low=0.1, high=4.0)),
    "cos": (lambda x: x.cos(), arr(4)),
    "sigmoid": (lambda x: x.sigmoid(), arr(4)),
    "tanh": (lambda x: x.tanh(), arr(4)),
    "abs": (lambda x: x.abs(), arr(5)),
    "pow": (lambda x: x ** 3, arr(5)),
    "pow_fractional": (lambda x: x ** 2.5, arr(5, low=0.2, high=2.0)),
    "rsqrt": (lambda x: x.rsqrt(), arr(5, low=0.2, high=2.0)),
    "cumsum": (lambda x: x.cumsum(0), arr(5)),
    "clamp": (lambda x: x.clamp(-0.5, 0.7), arr(6)),
}


@pytest.mark.parametrize("name", sorted(UNARY_CASES))
def test_unary_gradient(name):
    fn, x = UNARY_CASES[name]
    gradcheck(fn, x)


def test_trunc_has_zero_gradient():
    x = lazygrad.tensor([0.3, 1.7, -2.5], requires_grad=True)
    x.trunc().sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 0.0])


def test_cast_gradient_goes_back_to_the_source_dtype():
    x = lazygrad.tensor([1.0, 2.0, 3.0], dtype=lazygrad.float64, requires_grad=True)
    (x.float() * lazygrad.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert x.grad.dtype is lazygrad.float64
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 2.0, 3.0])


BINARY_CASES = {
    "ADD": (lambda a, b: a + b, arr(2, 3), arr(2, 3)),
    "MUL": (lambda a, b: a * b, arr(2, 3), arr(2, 3)),
    "MAX": (lambda a, b: a.maximum(b), arr(3, 3), arr(3, 3)),
    "MOD": (lambda a, b: a.fmod(b), arr(6, low=0.1, high=0.9) + 3.0, arr(6, low=1.1, high=1.4)),
    "div": (lambda a, b: a / b, arr(2, 3), arr(2, 3, low=0.5, high=2.0)),
    "sub": (lambda a, b: a - b, arr(2, 3), arr(2, 3)),
    "minimum": (lambda a, b: a.minimum(b), arr(3, 3), arr(3, 3)),
}


@pytest.mark.parametrize("name", sorted(BINARY_CASES))
def test_binary_gradient(name):
    fn, a, b = BINARY_CASES[name]
    gradcheck(fn, a, b)


def test_pow_with_a_tensor_exponent():
    gradcheck(lambda x, e: x ** e, arr(4, low=0.5, high=2.0), arr(4))


def test_empty_tensors_get_empty_gradients():
    x = lazygrad.zeros(0, 3, requires_grad=True)
    (x.sum(0) * 2.0).sum().backward()
    assert x.grad.shape == (0, 3)
    y = lazygrad.randn(4, 3, requires_grad=True)
    y[4:].sum().backward()   # an empty slice: the gradient is all zeros
    np.testing.assert_array_equal(y.grad.numpy(), np.zeros((4, 3)))


def test_where_and_comparisons():
    # CMPLT / CMPEQ give no gradient; WHERE routes it to the chosen side
    gradcheck(lambda a, b: lazygrad.where(a < b, a * 2.0, b * b), arr(3, 4), arr(3, 4))
    gradcheck(lambda a, b: lazygrad.where(a == a, a, b), arr(3), arr(3))


def test_integer_division_and_comparisons_are_not_differentiable():
    x = lazygrad.tensor([1.5, 2.5], requires_grad=True)
    (x < 2.0).float().sum()  # builds, but no gradient path
    y = (x * 2).floor_divide(2.0) + x
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0])


def test_max_ties_split_half_and_half_like_torch_maximum():
    a = lazygrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = lazygrad.tensor([1.0, 5.0, 0.0], requires_grad=True)
    a.maximum(b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [0.5, 0.0, 1.0])
    np.testing.assert_allclose(b.grad.numpy(), [0.5, 1.0, 0.0])


def test_relu_gives_no_gradient_at_zero_like_torch():
    x = lazygrad.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    x.relu().sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 0.0, 1.0])


REDUCE_CASES = {
    "sum_all": (lambda x: x.sum(), arr(3, 4)),
    "sum_dim": (lambda x: x.sum(1), arr(3, 4)),
    "sum_keepdim": (lambda x: x.sum((0, 2), keepdim=True), arr(2, 3, 4)),
    "mean": (lambda x: x.mean(0), arr(3, 4)),
    "amax": (lambda x: x.amax(1), arr(3, 5)),
    "amax_all": (lambda x: x.amax(), arr(3, 5)),
    "max_dim": (lambda x: x.max(0).values, arr(4, 3)),
    "amin": (lambda x: x.amin(0), arr(4, 3)),
    "var": (lambda x: x.var(1), arr(3, 4)),
    "PROD": (lambda x: x.prod(1), arr(3, 4, low=0.5, high=1.5)),
    "prod_all": (lambda x: x.prod(), arr(2, 3, low=-1.5, high=1.5)),
    "prod_keepdim": (lambda x: x.prod(0, keepdim=True), arr(3, 2, low=-1.5, high=1.5)),
}


@pytest.mark.parametrize("name", sorted(REDUCE_CASES))
def test_reduction_gradient(name):
    fn, x = REDUCE_CASES[name]
    gradcheck(fn, x)


def test_amax_splits_the_gradient_among_ties():
    x = lazygrad.tensor([[1.0, 3.0, 3.0], [2.0, 0.0, -1.0]], requires_grad=True)
    x.amax(1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])


def test_prod_gradient_around_zeros_matches_torch():
    """No zero: P / x_i. One zero: the product of the others at the zero, 0 elsewhere. Two zeros: 0."""
    rows = [[2.0, -3.0, 0.5, 4.0], [2.0, 0.0, -3.0, 4.0], [0.0, 2.0, 0.0, 5.0], [0.0, 0.0, 0.0, 0.0]]
    x = lazygrad.tensor(rows, dtype=lazygrad.float64, requires_grad=True)
    x.prod(1).sum().backward()
    want = [[-6.0, 4.0, -24.0, -3.0], [0.0, -24.0, 0.0, 0.0], [0.0] * 4, [0.0] * 4]
    np.testing.assert_allclose(x.grad.numpy(), want)
    # a second derivative through the zero handling stays finite (no 0 * inf from a discarded branch)
    y = lazygrad.tensor([0.0, 2.0, 3.0], dtype=lazygrad.float64, requires_grad=True)
    (g,) = lazygrad.grad(y.prod(), y, create_graph=True)
    (h,) = lazygrad.grad(g.sum(), y)
    np.testing.assert_allclose(g.detach().numpy(), [6.0, 0.0, 0.0])
    np.testing.assert_allclose(h.numpy(), [5.0, 3.0, 2.0])


MOVEMENT_CASES = {
    "RESHAPE": (lambda x: x.reshape(4, 3), arr(2, 6)),
    "PERMUTE": (lambda x: x.permute(2, 0, 1), arr(2, 3, 4)),
    "transpose": (lambda x: x.t(), arr(2, 3)),
    "EXPAND": (lambda x: x.expand(3, 4, 5), arr(3, 1, 5)),
    "broadcast_rank": (lambda x: x.expand(2, 3, 4), arr(4)),
    "PAD": (lambda x: x.pad((1, 2, 0, 3)), arr(2, 3)),
    "negative_pad": (lambda x: x.pad((-1, 1)), arr(2, 4)),
    "SHRINK": (lambda x: x[1:3, 2:], arr(4, 5)),
    "SHRINK_step2": (lambda x: x[::2], arr(7)),
    "SHRINK_step3_offset": (lambda x: x[1:, 2:9:3], arr(3, 10)),
    "SHRINK_step_mixed": (lambda x: x[1::2, :, 0:4:3], arr(6, 2, 5)),
    "index_int": (lambda x: x[1, :, -1], arr(3, 4, 2)),
    "FLIP": (lambda x: x.flip(0, 2), arr(2, 3, 4)),
    "squeeze_unsqueeze": (lambda x: x.unsqueeze(1).squeeze(), arr(3, 4)),
}


@pytest.mark.parametrize("name", sorted(MOVEMENT_CASES))
def test_movement_gradient(name):
    fn, x = MOVEMENT_CASES[name]
    gradcheck(fn, x)


def test_gather_gradient_is_a_scatter_add():
    src = lazygrad.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    index = lazygrad.tensor([[0, 0, 2, 0], [1, 2, 2, 2]])
    out = lazygrad.Tensor._make(N.gather(src._node, index._node, 1), src)
    (g,) = lazygrad.grad((out * lazygrad.tensor([[1.0, 2.0, 3.0, 4.0]])).sum(), src)
    assert g._node.src[0].op is Op.SCATTER  # the rule itself: a scatter with reduce='add'
    try:
        value = g.numpy()
    except NotImplementedError as e:
        pytest.skip(f"SCATTER lowering not available yet: {e}")
    np.testing.assert_allclose(value, [[7.0, 0.0, 3.0], [0.0, 1.0, 9.0]])


INDEX = np.array([[0, 2, 2, 1], [1, 1, 0, 3]])


def test_gather_and_index_select_gradients():
    index = lazygrad.tensor(INDEX)
    gradcheck(lambda x: x.gather(1, index), arr(2, 4))
    gradcheck(lambda x: x.index_select(0, lazygrad.tensor([2, 0, 2])), arr(3, 2))


def test_scatter_gradients():
    index = lazygrad.tensor(np.array([[0, 2, 1], [3, 1, 0]]))   # no repeats within a row
    gradcheck(lambda base, src: base.scatter(1, index, src), arr(2, 4), arr(2, 3))
    repeated = lazygrad.tensor(INDEX)
    gradcheck(lambda base, src: base.scatter_add(1, repeated, src), arr(2, 4), arr(2, 4))
    gradcheck(lambda base, src: base.scatter(1, repeated, src, reduce="add"), arr(2, 5), arr(3, 4))


def test_indexing_gradients_match_torch():
    torch = pytest.importorskip("torch")
    x_np, src_np = arr(2, 4).astype(np.float32), arr(2, 4).astype(np.float32)
    results = []
    for lib in (lazygrad, torch):
        x = lib.tensor(x_np, requires_grad=True)
        src = lib.tensor(src_np, requires_grad=True)
        index = lib.tensor(INDEX)
        out = x.gather(1, index) * 2.0 + x.scatter_add(1, index, src * src)
        (out * lib.tensor(np.arange(8.0, dtype=np.float32).reshape(2, 4))).sum().backward()
        results.append((x.grad.numpy(), src.grad.numpy()))
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_scatter_rule_builds_gather_for_src_and_masks_base():
    base = N.buffer(N.Buffer("cpu", lazygrad.float32, 6), (2, 3))
    index = N.buffer(N.Buffer("cpu", lazygrad.int64, 2), (2, 1))
    src = N.buffer(N.Buffer("cpu", lazygrad.float32, 4), (2, 2))
    out = N.scatter(base, index, src, 1, None)
    g_base, g_index, g_src = autodiff.RULES[Op.SCATTER](out, N.const(1.0, lazygrad.float32, (2, 3)))
    assert g_index is None
    assert g_base.op is Op.SCATTER and g_base.src[0].shape == (2, 3)
    assert g_src.shape == (2, 2) and g_src.op is Op.PAD and g_src.src[0].op is Op.GATHER
    g_base, _, _ = autodiff.RULES[Op.SCATTER](N.scatter(base, index, src, 1, "add"),
                                              N.const(1.0, lazygrad.float32, (2, 3)))
    assert g_base.op is Op.CONST


# ---- compositions: broadcasting, views, slices, reuse ----

def test_broadcasting_gradients_sum_over_broadcast_axes():
    gradcheck(lambda a, b: a * b + a, arr(3, 1), arr(4))
    gradcheck(lambda a, b: (a - b) ** 2, arr(2, 1, 3), arr(4, 1))


def test_matmul_and_linear_layer_gradients():
    gradcheck(lambda x, w, b: x @ w.t() + b, arr(4, 3), arr(2, 3), arr(2))
    gradcheck(lambda a, b: a @ b, arr(2, 3, 4), arr(4, 2))


def test_reused_node_gradients_add_up():
    gradcheck(lambda x: x * x, arr(5))
    gradcheck(lambda x: (x + 1) * (x + 1) + (x + 1), arr(5))
    x = lazygrad.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3.0
    (y * y + y).sum().backward()  # d/dx (9x^2 + 3x) = 18x + 3
    np.testing.assert_allclose(x.grad.numpy(), [21.0, 39.0])


def test_softmax_style_composition():
    def f(x):
        m = x.amax(1, keepdim=True).detach()
        e = (x - m).exp()
        return e / e.sum(1, keepdim=True)
    gradcheck(f, arr(3, 4))


def test_gradient_walks_through_realized_nodes():
    w = lazygrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = w * 2.0
    y.realize()  # y's node now has a buffer, but keeps its sources
    assert y._node.realized is not None
    (y * y).sum().backward()  # 4 w^2 -> 8 w
    np.testing.assert_allclose(w.grad.numpy(), [8.0, 16.0, 24.0])


# ---- the Tensor API around the gradient ----

def test_grad_is_none_before_backward_and_accumulates():
    w = lazygrad.tensor([1.0, -2.0], requires_grad=True)
    assert w.grad is None
    (w * w).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [2.0, -4.0])
    first = w.grad
    (3.0 * w).sum().backward()
    assert w.grad is first  # accumulated into the same tensor, like PyTorch
    np.testing.assert_allclose(w.grad.numpy(), [5.0, -1.0])
    assert not w.grad.requires_grad


def test_backward_with_explicit_gradient_and_non_scalar_error():
    x = lazygrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * x
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar outputs"):
        y.backward()
    y.backward(gradient=lazygrad.tensor([1.0, 0.5, 0.0]))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0, 0.0])
    with pytest.raises(RuntimeError, match="Mismatch in shape"):
        y.backward(gradient=lazygrad.tensor([1.0, 2.0]))


def test_backward_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        lazygrad.tensor([1.0, 2.0]).sum().backward()


def test_requires_grad_flags_and_is_leaf():
    a = lazygrad.tensor([1.0, 2.0])
    assert not a.requires_grad and a.is_leaf
    a.requires_grad_()
    assert a.requires_grad and a.is_leaf
    b = a * 2
    assert b.requires_grad and not b.is_leaf
    with pytest.raises(RuntimeError, match="only Tensors of floating point dtype"):
        lazygrad.tensor([1, 2]).requires_grad_()
    with pytest.raises(RuntimeError, match="leaf variables"):
        b.requires_grad_(False)


def test_requires_grad_on_lazy_leaf_gets_its_own_buffer():
    base = lazygrad.tensor([1.0, 2.0])
    w = base * 0.5
    w.requires_grad_()
    other = base * 0.5  # the same interned node as w had: must not count as w
    (w * other).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [0.5, 1.0])


def test_detach_cuts_the_gradient():
    w = lazygrad.tensor([1.0, 2.0], requires_grad=True)
    d = w.detach()
    assert not d.requires_grad and d.is_leaf
    (d * w).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [1.0, 2.0])  # not 2w


def test_no_grad_context_and_decorator():
    w = lazygrad.tensor([1.0, 2.0], requires_grad=True)
    with lazygrad.no_grad():
        frozen = w * 3.0
    assert not frozen.requires_grad

    @lazygrad.no_grad()
    def scaled(t):
        return t * 3.0

    assert not scaled(w).requires_grad
    assert (w * 3.0).requires_grad
    (frozen * w).sum().backward()  # frozen is a constant here
    np.testing.assert_allclose(w.grad.numpy(), [3.0, 6.0])


def test_inplace_update_under_no_grad_and_leaf_error():
    w = lazygrad.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        w += 1.0
    for _ in range(3):
        loss = ((w - 5.0) ** 2).sum()
        loss.backward()
        with lazygrad.no_grad():
            w -= 0.25 * w.grad
        w.grad.zero_()
    # each step halves the distance to 5
    np.testing.assert_allclose(w.detach().numpy(), [5 - 4 / 8, 5 - 3 / 8], rtol=1e-6)
    assert w.is_leaf and w.requires_grad


def test_backward_realizes_all_gradients_in_one_schedule():
    x = lazygrad.randn(8, 3)
    w = lazygrad.randn(3, 2).requires_grad_()
    b = lazygrad.zeros(2).requires_grad_()
    loss = ((x @ w + b) ** 2).mean()
    lazygrad.stats(reset=True)
    loss.backward()
    counts = lazygrad.stats()
    assert counts["schedules_built"] + counts["schedule_cache_hits"] == 1
    assert w.grad._node.op is Op.BUFFER and b.grad._node.op is Op.BUFFER
    loss.item()  # computed in the same schedule: no new work
    assert lazygrad.stats()["kernels_launched"] == counts["kernels_launched"]


def test_retain_grad_keeps_intermediate_gradients():
    x = lazygrad.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2.0
    y.retain_grad()
    (y * y).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), [4.0, 8.0])
    np.testing.assert_allclose(x.grad.numpy(), [8.0, 16.0])


def test_grad_returns_lazy_tensors():
    x = lazygrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (x ** 3).sum()
    (g,) = lazygrad.grad(y, x)
    assert g._node.realized is None and g._node.op is not Op.BUFFER  # a graph, not yet run
    assert x.grad is None
    np.testing.assert_allclose(g.numpy(), [3.0, 12.0, 27.0])


def test_grad_of_grad():
    x = lazygrad.tensor([1.0, 2.0], requires_grad=True)
    (g,) = lazygrad.grad((x ** 3).sum(), x, create_graph=True)
    assert g.requires_grad
    (h,) = lazygrad.grad(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), [6.0, 12.0])


def test_grad_errors_and_allow_unused():
    x = lazygrad.tensor([1.0], requires_grad=True)
    z = lazygrad.tensor([1.0], requires_grad=True)
    y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="appears to not have been used"):
        lazygrad.grad(y, [x, z])
    gx, gz = lazygrad.grad(y, [x, z], allow_unused=True)
    assert gz is None and gx.item() == 2.0
    with pytest.raises(RuntimeError, match="does not require grad"):
        lazygrad.grad(y, lazygrad.tensor([1.0]))


def test_gradient_of_an_intermediate_tensor():
    x = lazygrad.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3.0
    y = (h * h).sum()
    gh, gx = lazygrad.grad(y, [h, x])
    np.testing.assert_allclose(gh.numpy(), [6.0, 12.0])
    np.testing.assert_allclose(gx.numpy(), [18.0, 36.0])


def test_gradients_match_torch_for_a_small_network():
    torch = pytest.importorskip("torch")
    x = arr(6, 4).astype(np.float32)
    w1, b1 = arr(5, 4).astype(np.float32), arr(5).astype(np.float32)
    w2 = arr(3, 5).astype(np.float32)

    def run(lib, tensor):
        p = [tensor(a, requires_grad=True) for a in (w1, b1, w2)]
        h = (tensor(x) @ p[0].t() + p[1]).tanh()
        out = (h @ p[2].t()).sigmoid()
        loss = (out.amax(1) - out.mean(1)).sum() + (h.relu() * 0.5).sum()
        loss.backward()
        return [t.grad.numpy() for t in p]

    ours = run(lazygrad, lambda a, requires_grad=False: lazygrad.tensor(a, requires_grad=requires_grad))
    theirs = run(torch, lambda a, requires_grad=False: torch.tensor(a, requires_grad=requires_grad))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
