"""Matrix products, built from broadcast-multiply and sum.

`a @ b` for (N, K) x (K, M) is `(a[:, :, None] * b[None, :, :]).sum(1)`: one
kernel whose reduction runs over K. Because it is an ordinary graph, its
gradient comes from the rule table like any other op.
"""
from __future__ import annotations


def _dims(t) -> str:
    return "x".join(str(s) for s in t.shape)


def _check_dtypes(name: str, a, b) -> None:
    if a.dtype is not b.dtype:
        names = {"float32": "float", "float64": "double", "int64": "long", "int32": "int", "bool": "bool"}
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: "
                           f"{names[a.dtype.name]} != {names[b.dtype.name]}")


def _as_tensor(x):
    from .tensor import Tensor, tensor
    return x if isinstance(x, Tensor) else tensor(x)


def matmul(a, b):
    """torch.matmul: 1-D operands are promoted and the added dim removed; batch dims broadcast."""
    from .tensor import broadcast_shapes
    a, b = _as_tensor(a), _as_tensor(b)
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are {a.ndim}D and {b.ndim}D")
    _check_dtypes("matmul", a, b)
    if a.ndim == 1 and b.ndim == 1:
        return dot(a, b)
    if a.ndim == 2 and b.ndim == 2:
        return mm(a, b)
    if b.ndim == 1 and a.ndim == 2:
        return mv(a, b)
    a2 = a.unsqueeze(0) if a.ndim == 1 else a
    b2 = b.unsqueeze(-1) if b.ndim == 1 else b
    if a2.shape[-1] != b2.shape[-2]:
        if a.ndim == 1 or b.ndim == 1:
            raise RuntimeError(f"size mismatch, got input ({_dims(a)}), other ({_dims(b)})")
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                           f"[{a2.shape[0] if a2.ndim > 2 else 1}, {a2.shape[-1]}] but got: "
                           f"[{b2.shape[0] if b2.ndim > 2 else 1}, {b2.shape[-2]}].")
    try:
        batch = broadcast_shapes(tuple(a2.shape[:-2]), tuple(b2.shape[:-2]))
    except RuntimeError as e:
        raise RuntimeError(f"matmul: {e}") from None
    a3 = a2.expand(batch + tuple(a2.shape[-2:]))
    b3 = b2.expand(batch + tuple(b2.shape[-2:]))
    out = _product(a3, b3)
    if a.ndim == 1:
        out = out.squeeze(-2)
    if b.ndim == 1:
        out = out.squeeze(-1)
    return out


def _product(a, b):
    """(..., N, K) @ (..., K, M) -> (..., N, M) as multiply-then-sum over K."""
    return (a.unsqueeze(-1) * b.unsqueeze(-3)).sum(-2)


def mm(a, b):
    a, b = _as_tensor(a), _as_tensor(b)
    if a.ndim != 2:
        raise RuntimeError(f"self must be a matrix")
    if b.ndim != 2:
        raise RuntimeError(f"mat2 must be a matrix")
    if a.shape[1] != b.shape[0]:
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({_dims(a)} and {_dims(b)})")
    _check_dtypes("mm", a, b)
    return _product(a, b)


def bmm(a, b):
    a, b = _as_tensor(a), _as_tensor(b)
    if a.ndim != 3:
        raise RuntimeError(f"batch1 must be a 3D tensor")
    if b.ndim != 3:
        raise RuntimeError(f"batch2 must be a 3D tensor")
    if a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                           f"[{a.shape[0]}, {a.shape[2]}] but got: [{b.shape[0]}, {b.shape[1]}].")
    _check_dtypes("bmm", a, b)
    return _product(a, b)


def mv(a, v):
    a, v = _as_tensor(a), _as_tensor(v)
    if a.ndim != 2 or v.ndim != 1:
        raise RuntimeError(f"vector + matrix @ vector expected, got {v.ndim}, {a.ndim}, {v.ndim}")
    if a.shape[1] != v.shape[0]:
        raise RuntimeError(f"size mismatch, got input ({a.shape[0]}), mat ({_dims(a)}), vec ({v.shape[0]})")
    _check_dtypes("mv", a, v)
    return (a * v.unsqueeze(0)).sum(1)


def dot(a, b):
    a, b = _as_tensor(a), _as_tensor(b)
    if a.ndim != 1 or b.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {a.ndim}D and {b.ndim}D tensors")
    if a.shape[0] != b.shape[0]:
        raise RuntimeError(f"inconsistent tensor size, expected tensor [{a.shape[0]}] and src [{b.shape[0]}] to have "
                           f"the same number of elements, but got {a.shape[0]} and {b.shape[0]} elements respectively")
    if a.dtype is not b.dtype:
        raise RuntimeError(f"dot : expected both vectors to have same dtype, but found {a.dtype.name.capitalize()} "
                           f"and {b.dtype.name.capitalize()}")
    return (a * b).sum()


def outer(a, b):
    a, b = _as_tensor(a), _as_tensor(b)
    if a.ndim != 1 or b.ndim != 1:
        raise RuntimeError(f"outer: expected 1-D tensors, got {a.ndim}D and {b.ndim}D")
    return a.unsqueeze(1) * b.unsqueeze(0)
