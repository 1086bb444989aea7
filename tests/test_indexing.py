"""Indexing: gather, index_select, scatter(_), scatter_add(_), index_add(_), masked_fill, tensor and mask
indexing in __getitem__, and item assignment, against NumPy (and PyTorch when installed)."""
import numpy as np
import pytest

import lazygrad as lg
from gradcheck import gradcheck
from helpers import assert_close

RNG = np.random.default_rng(11)


def arr(shape, dtype="float32"):
    if dtype == "bool":
        return RNG.random(shape) > 0.5
    if np.dtype(dtype).kind == "f":
        return RNG.standard_normal(shape).astype(dtype)
    return RNG.integers(-9, 10, size=shape).astype(dtype)


# ---- gather / index_select ----

@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64", "bool"])
@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
def test_gather_matches_numpy(dtype, dim):
    x = arr((3, 4, 5), dtype)
    d = dim % 3
    index_shape = [2, 3, 4]
    index_shape[d] = 6  # along dim the index may be longer than the input; elsewhere no larger
    index = RNG.integers(0, x.shape[d], size=index_shape)
    # reference: out[i][j][k] = x[..index..] along d, other coordinates taken directly
    expected = np.empty(index.shape, dtype=x.dtype)
    for pos in np.ndindex(*index.shape):
        src = list(pos)
        src[d] = index[pos]
        expected[pos] = x[tuple(src)]
    got = lg.gather(lg.tensor(x), dim, lg.tensor(index))
    assert got.dtype.name == dtype
    assert_close(got, expected)


def test_gather_the_seed_example():
    A = lg.tensor([[1.0, 2.0], [3.0, 4.0]])
    out = lg.gather(A, 1, lg.tensor([[0], [1]]))
    assert tuple(out.shape) == (2, 1)
    assert out.flatten().tolist() == [1.0, 4.0]
    assert str(out.flatten()) == "tensor([1., 4.])"


def test_gather_on_non_contiguous_inputs_and_int32_index():
    x = arr((4, 6))
    t = lg.tensor(x)
    idx = RNG.integers(0, 4, size=(6, 3))
    # transposed input, int32 index
    got = t.t().gather(0, lg.tensor(idx.astype(np.int32)))
    assert_close(got, np.take_along_axis(x.T[:, :3], idx, axis=0))
    # flipped, sliced and expanded inputs
    pick = np.array([[5, 0], [1, 1]])
    assert_close(t.flip(1)[::2].gather(1, lg.tensor(pick)), np.take_along_axis(x[:, ::-1][::2], pick, 1))
    row = lg.tensor(x[0]).expand(3, 6)
    assert_close(row.gather(1, lg.tensor([[0], [2], [5]])), x[0][[[0], [2], [5]]])


@pytest.mark.parametrize("dim", [0, 1, -1, -2])
@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
def test_index_select_matches_numpy(dim, dtype):
    x = arr((4, 5), dtype)
    index = np.array([3, 0, 0, 2])
    got = lg.index_select(lg.tensor(x), dim, lg.tensor(index))
    assert_close(got, np.take(x, index, axis=dim))
    assert_close(lg.tensor(x).t().index_select(dim, lg.tensor(index[:2], dtype=lg.int32)),
                 np.take(x.T, index[:2], axis=dim))


def test_gather_is_fused_into_its_reader():
    x, idx = lg.tensor(arr((8, 8))), lg.tensor(RNG.integers(0, 8, size=(8, 2)))
    assert len(x.gather(1, idx).schedule()) == 1
    assert len((x.gather(1, idx) * 2 + x[:, :2]).schedule()) == 1
    assert len((x.exp().index_select(0, lg.tensor([1, 2])) + 1).schedule()) == 1
    assert len((x[lg.tensor([3, 1])] - 1).schedule()) == 1


# ---- scatter family ----

def scatter_reference(base, dim, index, src, add=False):
    out = base.copy()
    for pos in np.ndindex(*index.shape):
        dst = list(pos)
        dst[dim] = index[pos]
        value = src[pos] if isinstance(src, np.ndarray) else src
        if add:
            out[tuple(dst)] += value
        else:
            out[tuple(dst)] = value
    return out


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_scatter_and_scatter_add_match_numpy(dtype, dim):
    base = arr((3, 5), dtype)
    d = dim % 2
    # distinct positions along dim for plain scatter (duplicates have no defined winner in PyTorch)
    index = np.stack([RNG.permutation(base.shape[d])[:2] for _ in range(3)], axis=1 - d) if d == 0 else \
        np.stack([RNG.permutation(base.shape[d])[:3] for _ in range(2)], axis=0)
    src = arr((4, 6), dtype)  # larger than index: only src[:index.shape] is used
    tb, ti, ts = lg.tensor(base), lg.tensor(index), lg.tensor(src)
    assert_close(tb.scatter(dim, ti, ts), scatter_reference(base, d, index, src))
    assert_close(lg.scatter(tb, dim, ti, 7), scatter_reference(base, d, index, 7))
    dup = RNG.integers(0, base.shape[d], size=index.shape)  # duplicates accumulate in scatter_add
    assert_close(tb.scatter_add(dim, lg.tensor(dup), ts), scatter_reference(base, d, dup, src, add=True))
    assert_close(tb.scatter(dim, lg.tensor(dup), ts, reduce="add"), scatter_reference(base, d, dup, src, add=True))


def test_scatter_scalar_value_is_cast_and_transposed_base():
    z = lg.zeros(3, 4, dtype=lg.int64)
    out = z.scatter(0, lg.tensor([[0, 1, 2, 0]]), 1.5)
    assert out.dtype is lg.int64 and out.sum().item() == 4
    base = arr((4, 3))
    got = lg.tensor(base).t().scatter(1, lg.tensor([[3], [0], [1]]), -1.0)
    assert_close(got, scatter_reference(base.T.copy(), 1, np.array([[3], [0], [1]]), -1.0))


def test_inplace_versions_rebind_the_same_object():
    z = lg.zeros(3, 5)
    alias = z
    out = z.scatter_(0, lg.tensor([[0, 1, 2, 0, 0], [2, 0, 0, 1, 2]]), lg.arange(1.0, 11.0).reshape(2, 5))
    assert out is z and alias is z
    assert z.tolist() == [[1, 7, 8, 4, 5], [0, 2, 0, 9, 0], [6, 0, 3, 0, 10]]
    assert z.scatter_add_(1, lg.tensor([[0], [0], [0]]), lg.ones(3, 1)) is z
    assert z[:, 0].tolist() == [2, 1, 7]
    assert z.index_add_(0, lg.tensor([2]), lg.ones(1, 5), alpha=-1) is z
    assert z[2].tolist() == [6, -1, 2, -1, 9]
    assert z.masked_fill_(z < 0, 0.0) is z and z.min().item() == 0


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_index_add_matches_numpy(dim):
    base = arr((4, 3))
    d = dim % 2
    index = np.array([3, 0, 3, 1, 0]) if d == 0 else np.array([2, 0, 2])
    source = arr(tuple(len(index) if i == d else s for i, s in enumerate(base.shape)))
    expected = base.copy()
    for k, i in enumerate(index):
        if d == 0:
            expected[i] += 2.0 * source[k]
        else:
            expected[:, i] += 2.0 * source[:, k]
    assert_close(lg.tensor(base).index_add(dim, lg.tensor(index), lg.tensor(source), alpha=2.0), expected)


def test_scatter_is_one_kernel_of_its_own():
    z, idx, src = lg.tensor(arr((4, 4))), lg.tensor([[0, 1, 2, 3]]), lg.tensor(arr((1, 4)))
    assert len(z.scatter(0, idx, src).schedule()) == 1
    assert len((z * 2).scatter_add(0, idx, src.exp()).schedule()) == 1          # inputs fuse into the scatter
    assert len((z.scatter(0, idx, src) + 1).schedule()) == 2                    # a scatter is a kernel boundary


# ---- out-of-range indices: the kernel never reads or writes out of bounds, the runtime raises ----

@pytest.mark.parametrize("make,message", [
    (lambda: lg.gather(lg.tensor([[1.0, 2.0], [3.0, 4.0]]), 1, lg.tensor([[0], [5]])),
     "index 5 is out of bounds for dimension 1 with size 2"),
    (lambda: lg.gather(lg.tensor([[1.0, 2.0], [3.0, 4.0]]), 1, lg.tensor([[0], [-1]])),
     "index -1 is out of bounds for dimension 1 with size 2"),
    (lambda: lg.zeros(3, 4).scatter(0, lg.tensor([[5, 1, 2, 0]]), 1.0),
     "index 5 is out of bounds for dimension 0 with size 3"),
    (lambda: lg.zeros(3, 4).scatter_add(0, lg.tensor([[7, 1, 2, 0]]), lg.ones(1, 4)),
     "index 7 is out of bounds for dimension 0 with size 3"),
    (lambda: lg.zeros(3, 4).index_add(0, lg.tensor([0, 5]), lg.ones(2, 4)),
     "index 5 is out of bounds for dimension 0 with size 3"),
    (lambda: lg.tensor([[1.0, 2.0], [3.0, 4.0]])[lg.tensor([5])],
     "index 5 is out of bounds for dimension 0 with size 2"),
    (lambda: lg.tensor([[1.0, 2.0], [3.0, 4.0]])[:, [0, 2]],
     "index 2 is out of bounds for dimension 1 with size 2"),
    (lambda: lg.index_select(lg.tensor([[1.0, 2.0], [3.0, 4.0]]), 0, lg.tensor([0, 9])),
     "index 9 is out of bounds for dimension 0 with size 2"),
])
def test_out_of_range_index_raises_after_the_launch(make, message):
    t = make()  # lazy: nothing has run yet
    with pytest.raises(IndexError, match=message):
        t.numpy()
    with pytest.raises(RuntimeError, match=message):  # PyTorch raises RuntimeError for gather and scatter
        make().numpy()


ERRORS = [
    (lambda: lg.gather(lg.zeros(2, 2), 1, lg.tensor([0, 1])), RuntimeError,
     "Index tensor must have the same number of dimensions as input tensor"),
    (lambda: lg.gather(lg.zeros(2, 2), 1, lg.tensor([[0, 1, 1], [0, 0, 0], [1, 1, 1]])), RuntimeError,
     r"Size does not match at dimension 0 expected index \[3, 3\] to be no larger than self \[2, 2\] apart from "
     r"dimension 1"),
    (lambda: lg.gather(lg.zeros(2, 2), 1, lg.tensor([[0.0], [1.0]])), RuntimeError,
     r"gather\(\): Expected dtype int32/int64 for index"),
    (lambda: lg.gather(lg.zeros(2, 2), 2, lg.tensor([[0], [1]])), IndexError,
     r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)"),
    (lambda: lg.index_select(lg.zeros(2, 2), 0, lg.tensor([[0, 1]])), IndexError,
     r"index_select\(\): Index is supposed to be a vector"),
    (lambda: lg.index_select(lg.zeros(2, 2), 0, lg.tensor([0.0])), RuntimeError,
     r"index_select\(\): Expected dtype int32 or int64 for index"),
    (lambda: lg.zeros(3, 4).scatter(0, lg.tensor([[0, 1, 2, 0]]), lg.ones(1, 4, dtype=lg.int64)), RuntimeError,
     r"scatter\(\): Expected self.dtype to be equal to src.dtype"),
    (lambda: lg.zeros(3, 4).scatter(0, lg.tensor([[0, 1, 2, 0]]), lg.ones(1, 2)), RuntimeError,
     r"Expected index \[1, 4\] to be no larger than self \[3, 4\] apart from dimension 0 and to be no larger "
     r"size than src \[1, 2\]"),
    (lambda: lg.zeros(3, 4).scatter(0, lg.tensor([0, 1]), 1.0), RuntimeError,
     "Index tensor must have the same number of dimensions as self tensor"),
    (lambda: lg.zeros(3, 4).scatter(0, lg.tensor([[0, 1, 2, 0, 0]]), 1.0), RuntimeError,
     r"Expected index \[1, 5\] to be no larger than self \[3, 4\] apart from dimension 0$"),
    (lambda: lg.zeros(3, 4).scatter(0, lg.tensor([[0]]), 1.0, reduce="foo"), RuntimeError,
     "reduce argument must be either add or multiply."),
    (lambda: lg.zeros(3, 4).scatter(0, lg.tensor([[0]]), 1.0, reduce="multiply"), NotImplementedError,
     "reduce='multiply'"),
    (lambda: lg.zeros(3, 4).scatter_add(0, lg.tensor([[0]]), 1.0), TypeError,
     r"scatter_add\(\): argument 'src' \(position 3\) must be Tensor, not float"),
    (lambda: lg.zeros(3, 4).index_add(0, lg.tensor([0, 2]), lg.ones(3, 4)), RuntimeError,
     r"index_add_\(\): Number of indices \(2\) should be equal to source.size\(dim\): \(3\), for dim: 0"),
    (lambda: lg.zeros(3, 4).index_add(0, lg.tensor([0, 2]), lg.ones(2, 5)), RuntimeError,
     r"source tensor shape must match self tensor shape, excluding the specified dimension. Got self.shape = "
     r"\[3, 4\] source.shape = \[2, 5\]"),
    (lambda: lg.zeros(3, 4).index_add(0, lg.tensor([[0, 2]]), lg.ones(2, 4)), IndexError,
     r"index_add_\(\): Index is supposed to be a vector, but got dim: 2 with type: Long and size: \[1, 2\]"),
    (lambda: lg.zeros(3, 4).index_add(0, lg.tensor([0, 2]), lg.ones(2, 4, dtype=lg.int64)), RuntimeError,
     r"index_add_\(\): self \(Float\) and source \(Long\) must have the same scalar type"),
    (lambda: lg.zeros(2, 2)[lg.tensor([0.0])], IndexError,
     "tensors used as indices must be long, int, byte or bool tensors"),
    (lambda: lg.zeros(2, 2)[lg.tensor([True, False, True])], IndexError,
     r"The shape of the mask \[3\] at index 0 does not match the shape of the indexed tensor \[2, 2\] at index 0"),
    (lambda: lg.zeros(2, 3)[[0, 1], [0, 1, 2]], IndexError,
     r"shape mismatch: indexing tensors could not be broadcast together with shapes \[2\], \[3\]"),
    (lambda: lg.zeros(2, 2)[0, 0, 0], IndexError, "too many indices for tensor of dimension 2"),
    (lambda: lg.zeros(2, 2)[3], IndexError, "index 3 is out of bounds for dimension 0 with size 2"),
]


@pytest.mark.parametrize("fn,exc,message", ERRORS)
def test_misuse_raises_pytorchs_error(fn, exc, message):
    with pytest.raises(exc, match=message):
        fn()


# ---- __getitem__ with tensors, lists and masks ----

X = np.arange(24).reshape(2, 3, 4)

# cases where PyTorch and NumPy agree (NumPy is the oracle)
NUMPY_CASES = [
    ([1, 0],), (slice(None), [0, 2], [1, 3]), ([0, 1], slice(None), [1, 3]), (Ellipsis, [1]),
    ([[0], [1]], [0, 2]), (X > 5,), (slice(None), X[0] > 3), (None, [1], 1), ([-1],), ([[1, 0], [0, 1]],),
    (X[:, 0, 0] > 5,), ([1], slice(None), 2), (1, [0, 2], slice(None, None, 2)),
    (slice(None), X[0, :, 0] > 1, X[0, 0] > 1),
]


@pytest.mark.parametrize("index", NUMPY_CASES, ids=[str(i)[:40] for i in range(len(NUMPY_CASES))])
def test_advanced_getitem_matches_numpy(index):
    t_index = tuple(lg.tensor(i) if isinstance(i, (list, np.ndarray)) else i for i in index)
    expected = X[tuple(np.array(i) if isinstance(i, list) else i for i in index)]
    assert_close(lg.tensor(X)[t_index], expected)
    # lists index like tensors
    l_index = tuple(i.tolist() if isinstance(i, np.ndarray) else i for i in index)
    if all(not isinstance(i, np.ndarray) or i.dtype != bool for i in index):
        assert_close(lg.tensor(X)[l_index], expected)


def test_getitem_follows_pytorch_where_it_differs_from_numpy():
    t = lg.tensor(X)
    # PyTorch applies the int first, so the remaining tensor index keeps its place: (3, 2), not NumPy's (2, 3)
    assert tuple(t[0, :, [1, 2]].shape) == (3, 2)
    assert_close(t[0, :, [1, 2]], X[0][:, [1, 2]])
    assert tuple(t[True].shape) == (1, 2, 3, 4) and tuple(t[False].shape) == (0, 2, 3, 4)


def test_getitem_on_non_contiguous_and_dtypes():
    for dtype in ["float32", "int32", "bool"]:
        x = arr((5, 4), dtype)
        t = lg.tensor(x)
        assert_close(t.t()[[3, 0]], x.T[[3, 0]])
        assert_close(t.flip(0)[lg.tensor([0, 4]), 1:], x[::-1][[0, 4], 1:])
        mask = x.T[:, 0] > 0 if dtype != "bool" else x.T[:, 0]
        assert_close(t.t()[lg.tensor(mask)], x.T[mask])


def test_mask_getitem_kernels():
    x = lg.tensor(arr((6, 5)))
    mask = x > 0
    count = int((x.numpy() > 0).sum())
    out = x[mask]  # runs one kernel now: the count of True elements (the output's shape depends on it)
    assert tuple(out.shape) == (count,)
    kinds = [k.output.op.name for k in out.schedule()]
    assert kinds == ["SUM", "SCATTER", "GATHER"]  # running count (cumsum), slots -> positions, the elements
    assert_close(out, x.numpy()[x.numpy() > 0])
    assert len(lg.tensor([1.0, 2.0])[lg.tensor([False, False])].shape) == 1


def test_nonzero_and_masked_select():
    x = arr((3, 4))
    t = lg.tensor(x)
    assert_close(t.nonzero(), np.argwhere(x != 0))
    assert_close(lg.nonzero(t > 0), np.argwhere(x > 0))
    rows, cols = (t > 0).nonzero(as_tuple=True)
    assert_close(rows, np.nonzero(x > 0)[0])
    assert_close(cols, np.nonzero(x > 0)[1])
    assert_close(lg.masked_select(t, t > 0.5), x[x > 0.5])
    assert_close(t.masked_select(lg.tensor([True, False, True, True])), x[:, [True, False, True, True]].reshape(-1))
    assert_close(t.masked_fill(t > 0, -1.0), np.where(x > 0, -1.0, x))


# ---- __setitem__ ----

SET_CASES = [
    ((0,), 5), ((slice(None), 1), -1), ((Ellipsis, slice(0, None, 2)), 7), ((1, slice(None, None, 2), slice(1, 4, 2)),
                                                                           [[9, 8], [7, 6]]),
    ((None, 0, 1), 3), ((X > 10,), 0), ((X[:, :, 0] > 5,), [1, 2, 3, 4]), ((X > 10,), list(range(13))),
    (([0, 1], [2, 0]), 100), (([1, 1],), 5), ((slice(None), [0, 2], 1), [[1, 2], [3, 4]]), ((0, 0, 0), 1.7),
    ((slice(5, 7),), 3), ((slice(None, None, 3),), 4),
]


@pytest.mark.parametrize("index,value", SET_CASES, ids=[str(i) for i in range(len(SET_CASES))])
def test_setitem_matches_numpy(index, value):
    t = lg.tensor(X)
    alias = t
    expected = X.copy()
    np_index = tuple(np.array(i) if isinstance(i, list) else i for i in index)
    expected[np_index] = np.array(value)
    t[tuple(lg.tensor(i) if isinstance(i, (list, np.ndarray)) else i for i in index)] = \
        lg.tensor(value) if isinstance(value, list) else value
    assert alias is t
    assert_close(t, expected)


def test_setitem_is_in_place_and_fused():
    t = lg.tensor(arr((4, 4)))
    before = t.numpy().copy()
    t[1:3, ::2] = 0.0
    before[1:3, ::2] = 0.0
    assert len(t.schedule()) == 1  # a where over the padded region: one elementwise kernel
    assert_close(t, before)
    t[t > 0] = 1.0
    before[before > 0] = 1.0
    assert_close(t, before)


def test_setitem_errors():
    t = lg.zeros(3, 4)
    with pytest.raises(RuntimeError, match="The expanded size of the tensor"):
        t[1] = lg.tensor([1.0, 2.0])
    with pytest.raises(RuntimeError, match="shape mismatch: value tensor of shape"):
        t[[0, 1]] = lg.ones(3, 4)
    leaf = lg.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place"):
        leaf[0] = 1.0


# ---- gradients: gather <-> scatter_add, index_select <-> index_add, scatter's src ----

def test_gradients():
    x = RNG.standard_normal((3, 4))
    gradcheck(lambda a: a.gather(1, lg.tensor([[0, 0], [3, 1], [2, 2]])), x)
    gradcheck(lambda a: a.index_select(0, lg.tensor([2, 0, 2])), x)
    gradcheck(lambda a: a[lg.tensor([1, 1]), 1:], x)
    gradcheck(lambda a: a[lg.tensor([[True, False, True, False]] * 3)], x)
    gradcheck(lambda a, s: a.scatter(0, lg.tensor([[2, 0, 1, 1]]), s), x, RNG.standard_normal((1, 4)))
    gradcheck(lambda a, s: a.scatter_add(1, lg.tensor([[0, 0], [1, 3], [2, 2]]), s), x, RNG.standard_normal((3, 2)))
    gradcheck(lambda a, s: a.index_add(1, lg.tensor([3, 3]), s, alpha=0.5), x, RNG.standard_normal((3, 2)))
    gradcheck(lambda a: a.masked_fill(a > 0, 2.0), x)


def test_setitem_gradient():
    x = lg.tensor(RNG.standard_normal((3, 4)), requires_grad=True)
    v = lg.tensor(RNG.standard_normal(2), requires_grad=True)
    y = x * 1.0
    y[1, ::2] = v
    (y * lg.arange(12.0).reshape(3, 4)).sum().backward()
    expected = np.arange(12.0).reshape(3, 4)
    expected[1, ::2] = 0
    assert_close(x.grad, expected)
    assert_close(v.grad, [4.0, 6.0])


# ---- PyTorch itself ----

def test_against_pytorch():
    torch = pytest.importorskip("torch")
    index_cases = NUMPY_CASES + [(0, slice(None), [1, 2]), (True,), (False,), ([],), (slice(None), [5])]
    for index in index_cases:
        results = []
        for mod in (lg, torch):
            x = mod.arange(24).reshape(2, 3, 4)
            idx = tuple(mod.tensor(i) if isinstance(i, (list, np.ndarray)) else i for i in index)
            try:
                results.append(x[idx].numpy())
            except Exception as e:  # noqa: BLE001
                results.append(e)
        ours, theirs = results
        if isinstance(theirs, Exception):
            assert isinstance(ours, type(theirs)), (index, ours, theirs)
        else:
            np.testing.assert_array_equal(ours, theirs)
    for value_index, value in SET_CASES:
        results = []
        for mod in (lg, torch):
            x = mod.arange(24).reshape(2, 3, 4)
            idx = tuple(mod.tensor(i) if isinstance(i, (list, np.ndarray)) else i for i in value_index)
            x[idx] = mod.tensor(value) if isinstance(value, list) else value
            results.append(x.numpy())
        np.testing.assert_array_equal(*results)
    a = arr((3, 4))
    i = RNG.integers(0, 3, size=(2, 4))
    s = arr((2, 4))
    for fn in (lambda m, t: t.gather(0, m.tensor(i)),
               lambda m, t: t.scatter_add(0, m.tensor(i), m.tensor(s)),
               lambda m, t: t.index_add(1, m.tensor([0, 3]), m.tensor(s.T[:3, :2].copy()), alpha=3),
               lambda m, t: t.index_select(-1, m.tensor([3, 3, 1]))):
        np.testing.assert_allclose(fn(lg, lg.tensor(a)).numpy(), fn(torch, torch.tensor(a)).numpy(), rtol=1e-6)


def test_inplace_ops_on_a_view_write_through_to_its_base():
    x = lg.zeros(3, 4)
    x[0][1] = 5.0                      # chained indexing: x[0] is a view of x
    x[1].add_(2.0)
    x[:, 3].mul_(0).add_(7.0)
    for row in x:                      # iteration gives views too
        row -= 1.0
    x.chunk(3)[2].fill_(9.0)
    expected = np.zeros((3, 4))
    expected[0, 1] = 5
    expected[1] += 2
    expected[:, 3] = 7
    expected -= 1
    expected[2] = 9
    assert_close(x, expected)
    w = lg.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad is being used in an in-place"):
        w[0].add_(1.0)
    y = x[[0, 1]]                      # advanced indexing copies, as in PyTorch: no write-through
    y[0] = 100.0
    assert x[0, 0].item() == -1.0


def test_running_count_is_a_blocked_prefix_sum():
    from lazygrad.advanced_indexing import running_count
    for n in (1, 64, 65, 4097):
        mask = RNG.random(n) > 0.3
        np.testing.assert_array_equal(running_count(lg.tensor(mask)).numpy(), np.cumsum(mask))
    x = arr((70, 90))
    assert_close(lg.tensor(x)[lg.tensor(x > 0.5)], x[x > 0.5])
