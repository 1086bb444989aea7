"""Matrix products: mm, matmul / @, bmm, mv, dot, outer against NumPy (and PyTorch when installed)."""
import numpy as np
import pytest

import lazygrad as lg
from gradcheck import gradcheck
from helpers import assert_close

RNG = np.random.default_rng(7)


def arr(shape, dtype="float32"):
    if np.dtype(dtype).kind == "f":
        return RNG.standard_normal(shape).astype(dtype)
    return RNG.integers(-4, 5, size=shape).astype(dtype)


# (shape a, shape b) for matmul, covering every dispatch path: dot, mv, 1-D @ 2-D, mm, folded, batched
MATMUL_SHAPES = [
    ((5,), (5,)), ((3, 5), (5,)), ((5,), (5, 4)), ((3, 5), (5, 4)), ((2, 3, 5), (5, 4)), ((2, 3, 5), (5,)),
    ((5,), (2, 5, 4)), ((3, 5), (2, 5, 4)), ((2, 3, 5), (2, 5, 4)), ((2, 1, 3, 5), (4, 5, 2)), ((1, 3, 5), (6, 5, 2)),
    ((1, 1), (1, 1)), ((17, 33), (33, 19)),
]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
def test_matmul_matches_numpy(sa, sb):
    a, b = arr(sa), arr(sb)
    ta, tb = lg.tensor(a), lg.tensor(b)
    expected = np.matmul(a.astype(np.float64), b.astype(np.float64))
    assert_close(lg.matmul(ta, tb), expected, rtol=1e-4, atol=1e-4)
    assert_close(ta @ tb, expected, rtol=1e-4, atol=1e-4)
    assert (ta @ tb).dtype is lg.float32


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
def test_products_keep_the_dtype(dtype):
    a, b, v = arr((3, 4), dtype), arr((4, 2), dtype), arr((4,), dtype)
    batch = arr((2, 3, 4), dtype)
    ta, tb, tv, tbatch = lg.tensor(a), lg.tensor(b), lg.tensor(v), lg.tensor(batch)
    exact = np.dtype(dtype).kind == "i"
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(rtol=1e-5, atol=1e-5)
    for got, want in [(lg.mm(ta, tb), a @ b), (lg.mv(ta, tv), a @ v), (lg.dot(tv, tv), v @ v),
                      (lg.matmul(tbatch, tb), batch @ b), (lg.bmm(tbatch, tbatch.transpose(1, 2)),
                                                           batch @ batch.transpose(0, 2, 1)),
                      (lg.outer(tv, tv), np.outer(v, v))]:
        assert got.dtype.name == dtype
        if exact:
            np.testing.assert_array_equal(got.numpy(), want)
        else:
            assert_close(got, want, **tol)


def test_non_contiguous_operands():
    a, b = arr((6, 4)), arr((5, 6))
    ta, tb = lg.tensor(a), lg.tensor(b)
    cases = [
        (ta.t() @ tb.t(), a.T @ b.T),                                   # permuted
        (ta[::2, 1:] @ tb[:3, ::2].t()[:3], a[::2, 1:] @ b[:3, ::2].T[:3]),  # sliced with steps
        (ta.flip(0) @ ta.t(), a[::-1] @ a.T),                           # flipped
        (lg.tensor(a[0]).expand(3, 4) @ ta.t(), np.broadcast_to(a[0], (3, 4)) @ a.T),  # expanded
        (lg.matmul(ta.t().unsqueeze(0).expand(2, 4, 6), tb.t()), np.broadcast_to(a.T, (2, 4, 6)) @ b.T),
    ]
    for got, want in cases:
        assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_matmul_is_one_kernel_and_fuses_an_epilogue():
    ta, tb = lg.tensor(arr((8, 16))), lg.tensor(arr((16, 4)))
    assert len((ta @ tb).schedule()) == 1
    assert len(((ta @ tb) * 2 + 1).schedule()) == 1
    assert len((ta.t().t() @ tb).schedule()) == 1  # views of the operands are index arithmetic


# the messages are PyTorch's, word for word
ERRORS = [
    (lambda: lg.mm(lg.zeros(2, 3), lg.zeros(2, 3)), RuntimeError,
     r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 2x3\)"),
    (lambda: lg.mm(lg.zeros(2, 3), lg.zeros(3)), RuntimeError, "mat2 must be a matrix"),
    (lambda: lg.mm(lg.zeros(3), lg.zeros(3, 2)), RuntimeError, "self must be a matrix"),
    (lambda: lg.mm(lg.zeros(2, 3), lg.zeros(3, 2, dtype=lg.float64)), RuntimeError,
     "expected m1 and m2 to have the same dtype, but got: float != double"),
    (lambda: lg.mm(lg.zeros(2, 3), lg.zeros(3, 2, dtype=lg.int64)), RuntimeError,
     "expected m1 and m2 to have the same dtype, but got: float != long int"),
    (lambda: lg.mm(lg.zeros(2, 3, dtype=lg.bool), lg.zeros(3, 2, dtype=lg.bool)), NotImplementedError,
     "\"addmm_impl_cpu_\" not implemented for 'Bool'"),
    (lambda: lg.matmul(lg.zeros(2, 3), lg.zeros(2)), RuntimeError,
     r"size mismatch, got input \(2\), mat \(2x3\), vec \(2\)"),
    (lambda: lg.matmul(lg.zeros(2), lg.zeros(3, 2)), RuntimeError,
     r"mat1 and mat2 shapes cannot be multiplied \(1x2 and 3x2\)"),
    (lambda: lg.matmul(lg.zeros(4, 2, 3), lg.zeros(5, 3)), RuntimeError,
     r"mat1 and mat2 shapes cannot be multiplied \(8x3 and 5x3\)"),
    (lambda: lg.matmul(lg.zeros(4, 2, 3), lg.zeros(4)), RuntimeError,
     r"size mismatch, got input \(8\), mat \(8x3\), vec \(4\)"),
    (lambda: lg.matmul(lg.zeros(4, 2, 3), lg.zeros(4, 2, 3)), RuntimeError,
     r"Expected size for first two dimensions of batch2 tensor to be: \[4, 3\] but got: \[4, 2\]\."),
    (lambda: lg.matmul(lg.zeros(3), lg.zeros(4, 2, 3)), RuntimeError,
     r"Expected size for first two dimensions of batch2 tensor to be: \[4, 3\] but got: \[4, 2\]\."),
    (lambda: lg.matmul(lg.zeros(4, 2, 3), lg.zeros(3, 3, 2)), RuntimeError,
     r"The size of tensor a \(4\) must match the size of tensor b \(3\) at non-singleton dimension 0"),
    (lambda: lg.matmul(lg.tensor(3.0), lg.zeros(4)), RuntimeError,
     "both arguments to matmul need to be at least 1D, but they are 0D and 1D"),
    (lambda: lg.matmul(lg.zeros(4, 2, 3), lg.zeros(4, 3, 2, dtype=lg.int64)), RuntimeError,
     "expected scalar type Float but found Long"),
    (lambda: lg.matmul(lg.zeros(2, 3), 2), TypeError,
     r"matmul\(\): argument 'other' \(position 2\) must be Tensor, not int"),
    (lambda: lg.zeros(2, 3) @ 2, TypeError, "unsupported operand type"),
    (lambda: lg.dot(lg.zeros(3), lg.zeros(4)), RuntimeError,
     r"inconsistent tensor size, expected tensor \[3\] and src \[4\] to have the same number of elements, "
     r"but got 3 and 4 elements respectively"),
    (lambda: lg.dot(lg.zeros(3, 1), lg.zeros(3)), RuntimeError, "1D tensors expected, but got 2D and 1D tensors"),
    (lambda: lg.dot(lg.zeros(3), lg.zeros(3, dtype=lg.float64)), RuntimeError,
     "dot : expected both vectors to have same dtype, but found Float and Double"),
    (lambda: lg.bmm(lg.zeros(2, 3, 4), lg.zeros(2, 5, 4)), RuntimeError,
     r"Expected size for first two dimensions of batch2 tensor to be: \[2, 4\] but got: \[2, 5\]\."),
    (lambda: lg.bmm(lg.zeros(3, 4), lg.zeros(3, 4, 4)), RuntimeError, "batch1 must be a 3D tensor"),
    (lambda: lg.bmm(lg.zeros(2, 3, 4), lg.zeros(4, 4)), RuntimeError, "batch2 must be a 3D tensor"),
    (lambda: lg.mv(lg.zeros(2, 3), lg.zeros(4)), RuntimeError,
     r"size mismatch, got input \(2\), mat \(2x3\), vec \(4\)"),
    (lambda: lg.mv(lg.zeros(2, 3), lg.zeros(3, 1)), RuntimeError,
     "vector \\+ matrix @ vector expected, got 1, 2, 2"),
    (lambda: lg.mv(lg.zeros(2, 3), lg.zeros(3, dtype=lg.int64)), RuntimeError,
     "addmv input tensors must have the same dtype, but got Long, Float, and Long"),
    (lambda: lg.outer(lg.zeros(2, 3), lg.zeros(4)), RuntimeError, "outer: Expected 1-D argument self, but got 2-D"),
]


@pytest.mark.parametrize("fn,exc,message", ERRORS)
def test_misuse_raises_pytorchs_error(fn, exc, message):
    with pytest.raises(exc, match=message):
        fn()


def test_outer_promotes_dtypes():
    out = lg.outer(lg.tensor([1.0, 2.0]), lg.tensor([1, 2, 3]))
    assert out.dtype is lg.float32 and tuple(out.shape) == (2, 3)
    assert_close(out, np.outer([1.0, 2.0], [1, 2, 3]))


@pytest.mark.parametrize("fn,shapes", [
    (lambda a, b: a @ b, [(3, 4), (4, 2)]),
    (lambda a, b: lg.matmul(a, b), [(2, 3, 4), (4,)]),
    (lambda a, b: lg.matmul(a, b), [(4,), (2, 4, 3)]),
    (lambda a, b: lg.bmm(a, b), [(2, 3, 4), (2, 4, 2)]),
    (lambda a, b: lg.mv(a, b), [(3, 4), (4,)]),
    (lambda a, b: lg.dot(a, b), [(4,), (4,)]),
    (lambda a, b: lg.outer(a, b), [(3,), (2,)]),
])
def test_gradients(fn, shapes):
    gradcheck(fn, *[RNG.standard_normal(s) for s in shapes])


def test_against_pytorch():
    torch = pytest.importorskip("torch")
    fns = ["matmul", "mm", "bmm", "mv", "dot", "outer"]
    for sa, sb in MATMUL_SHAPES + [((2, 3), (2, 3)), ((3,), (4,)), ((4, 2, 3), (3, 3, 2))]:
        a, b = arr(sa), arr(sb)
        for fn in fns:
            results = []
            for mod in (lg, torch):
                try:
                    results.append(getattr(mod, fn)(mod.tensor(a), mod.tensor(b)).numpy())
                except Exception as e:  # noqa: BLE001  (the error itself is compared)
                    results.append((type(e).__name__, str(e).splitlines()[0]))
            ours, theirs = results
            if isinstance(theirs, tuple):
                assert ours == theirs, (fn, sa, sb)
            else:
                assert not isinstance(ours, tuple), (fn, sa, sb, ours)
                np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def test_empty_operands():
    assert lg.mm(lg.zeros(2, 3), lg.zeros(3, 0)).numpy().shape == (2, 0)
    assert lg.matmul(lg.zeros(0, 3), lg.zeros(3)).numpy().shape == (0,)
    assert_close(lg.mm(lg.ones(2, 0), lg.ones(0, 3)), np.zeros((2, 3), dtype=np.float32))  # an empty sum is 0


def _uses_gemm_nest(t) -> bool:
    """Whether the product kernel of `t` is lowered to the cache-blocked GEMM nest (lower/gemm.py, structure 5):
    its A panel, B panel and partial sums are three scratch buffers."""
    from lazygrad.codegen.lower import lower
    return any(len(lower(k).scratch) == 3 for k in t.schedule() if k.reduce is not None)


# (batch, rows, columns): the reduced axis is the batch, the outer axis of both operands;
# sizes around the block sizes (6 rows, 16 columns, 256 reduction steps) and ragged ones
TRANSPOSED_PRODUCT_SHAPES = [(512, 128, 128), (300, 37, 50), (1000, 100, 17), (257, 13, 1000), (600, 7, 200),
                             (6, 6, 16), (513, 97, 333)]


@pytest.mark.parametrize("k,n,m", TRANSPOSED_PRODUCT_SHAPES)
def test_weight_gradient_shaped_products(k, n, m):
    """`g.T @ x` (the weight gradient of a Linear layer, g an elementwise chain fused into the product)
    goes through the GEMM nest: packed panels, partial sums over steps of the reduced axis, an epilogue."""
    g, x, bias, y = arr((k, n)), arr((k, m)), arr((n,)), arr((k, n))
    tg, tx, tb, ty = (lg.tensor(v) for v in (g, x, bias, y))
    chain = ((g + bias - y) * 2.0).astype(np.float64)
    cases = [
        (((tg + tb - ty) * 2.0).T @ tx, chain.T @ x),
        ((tg.T @ tx) * 3.0 + 1.0, (g.T.astype(np.float64) @ x) * 3.0 + 1.0),   # an epilogue on the sums
        ((tx.T @ tg).relu(), np.maximum(x.T.astype(np.float64) @ g, 0.0)),     # the other orientation
    ]
    for got, want in cases:
        assert _uses_gemm_nest(got) or got.shape[-1] < 8  # (fewer than 8 columns: the plain nest)
        assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_gemm_nest_batched_and_float64():
    a, b = arr((3, 300, 20)), arr((3, 300, 40))
    ta, tb = lg.tensor(a), lg.tensor(b)
    got = ta.transpose(1, 2) @ tb
    assert _uses_gemm_nest(got)
    assert_close(got, a.transpose(0, 2, 1).astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
    a64, b64 = arr((700, 30), "float64"), arr((700, 50), "float64")
    got = lg.tensor(a64).T @ lg.tensor(b64)
    assert got.dtype is lg.float64 and _uses_gemm_nest(got)
    assert_close(got, a64.T @ b64, rtol=1e-10, atol=1e-10)
