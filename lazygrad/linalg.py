"""Matrix products, built from broadcast-multiply and sum.

`a @ b` for (N, K) x (K, M) is `(a[:, :, None] * b[None, :, :]).sum(1)`: one
kernel whose reduction runs over K (the code generator blocks and vectorises
it). Because it is an ordinary graph, its gradient comes from the rule table
like any other op.

`matmul` follows PyTorch's dispatch, which also decides the error messages a
learner sees for mismatched shapes:

    1-D @ 1-D      dot                     (K) . (K)            -> ()
    2-D @ 1-D      mv                      (N, K) @ (K)         -> (N)
    1-D @ 2-D      mm of (1, K)            (K) @ (K, M)         -> (M)
    2-D @ 2-D      mm                      (N, K) @ (K, M)      -> (N, M)
    >=3-D @ <=2-D  "folded" into mm / mv   (B.., N, K) @ (K, M) -> (B.., N, M)
    otherwise      batched: batch dims broadcast, 1-D operands get a dim added then removed
"""
from __future__ import annotations

import math

# (tensor.py imports this module at its end, once Tensor is defined)
from .autograd_state import is_grad_enabled
from .ir import node as N
from .ir.ops import Op
from .tensor import Tensor, _broadcast_node, broadcast_shapes

# PyTorch's C++ type names (in "expected m1 and m2 to have the same dtype, but got: float != long int")
_C_NAMES = {"float32": "float", "float64": "double", "int64": "long int", "int32": "int", "bool": "bool"}
# ... and its scalar type names ("expected scalar type Float but found Long")
_NAMES = {"float32": "Float", "float64": "Double", "int64": "Long", "int32": "Int", "bool": "Bool"}


def _dims(t) -> str:
    return "x".join(str(s) for s in t.shape)


def _require_tensor(op: str, x, name: str, position: int):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}(): argument '{name}' (position {position}) must be Tensor, not {type(x).__name__}")
    return x


def _no_bool(kernel_name: str, *tensors) -> None:
    if any(t.dtype.is_bool for t in tensors):
        raise NotImplementedError(f'"{kernel_name}" not implemented for \'Bool\'')


def _check_mm_dtypes(a, b) -> None:
    if a.dtype is not b.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: "
                           f"{_C_NAMES[a.dtype.name]} != {_C_NAMES[b.dtype.name]}")


def _check_mv_dtypes(mat, vec) -> None:
    if mat.dtype is not vec.dtype:
        v, m = _NAMES[vec.dtype.name], _NAMES[mat.dtype.name]
        raise RuntimeError(f"addmv input tensors must have the same dtype, but got {v}, {m}, and {v}")


def _product(a, b):
    """(..., N, K) @ (..., K, M) -> (..., N, M) as multiply-then-sum over K (in the operands' dtype)."""
    na, nb = a._node, b._node
    if len(na.shape) == 2 and len(nb.shape) == 2 and na.dtype is nb.dtype and not na.dtype.is_bool and \
            (is_grad_enabled() or not (a._requires_grad or b._requires_grad)):
        # 2-D operands (a Linear layer's forward) with gradients recorded as usual: the graph the line
        # below builds, written out without its four intermediate tensors (this runs at every step of a
        # training loop, where building the graph costs more than running a small kernel)
        (n, k), m = na.shape, nb.shape[1]
        rows = _broadcast_node(N.movement(Op.RESHAPE, na, (n, k, 1)), (n, k, m))
        cols = _broadcast_node(N.movement(Op.RESHAPE, nb, (1, k, m)), (n, k, m))
        summed = N.reduce(Op.SUM, N.binary(Op.MUL, rows, cols), (1,))
        return Tensor._make(N.movement(Op.RESHAPE, summed, (n, m)), a, b)
    return (a.unsqueeze(-1) * b.unsqueeze(-3)).sum(-2, dtype=a.dtype)


def matmul(a, b):
    """torch.matmul / `a @ b`: see the table in the module docstring."""
    _require_tensor("matmul", a, "input", 1)
    _require_tensor("matmul", b, "other", 2)
    if a.ndim == 2 and b.ndim == 2:   # the most common case first
        return mm(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are {a.ndim}D and {b.ndim}D")
    if a.ndim == 1 and b.ndim == 1:
        return dot(a, b)
    if a.ndim == 2 and b.ndim == 1:
        return mv(a, b)
    if a.ndim == 1 and b.ndim == 2:
        return mm(a.unsqueeze(0), b).squeeze(0)
    if a.ndim == 2 and b.ndim == 2:
        return mm(a, b)
    if a.ndim >= 3 and b.ndim <= 2:
        # fold the batch dims of `a` into its rows: one mm (or mv) of (B*N, K)
        folded = a.reshape(math.prod(a.shape[:-1]), a.shape[-1])  # not -1: ambiguous when K == 0
        out = mm(folded, b) if b.ndim == 2 else mv(folded, b)
        return out.reshape(tuple(a.shape[:-1]) + tuple(b.shape[1:]))
    # batched: (B.., N, K) @ (B.., K, M) with the batch dims broadcast
    n = a.shape[-2] if a.ndim > 1 else 1
    k1 = a.shape[-1]
    k2 = b.shape[-2] if b.ndim > 1 else b.shape[0]
    m = b.shape[-1] if b.ndim > 1 else 1
    batch = broadcast_shapes(tuple(a.shape[:-2]), tuple(b.shape[:-2]))
    _no_bool("bmm", a, b)
    if a.dtype is not b.dtype:
        raise RuntimeError(f"expected scalar type {_NAMES[a.dtype.name]} but found {_NAMES[b.dtype.name]}")
    if k1 != k2:
        count = math.prod(batch)
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: [{count}, {k1}] "
                           f"but got: [{count}, {k2}].")
    a3 = (a.unsqueeze(0) if a.ndim == 1 else a).expand(batch + (n, k1))
    b3 = (b.unsqueeze(-1) if b.ndim == 1 else b).expand(batch + (k2, m))
    out = _product(a3, b3)
    if a.ndim == 1:
        out = out.squeeze(-2)
    if b.ndim == 1:
        out = out.squeeze(-1)
    return out


def mm(a, b):
    """torch.mm: (N, K) @ (K, M) -> (N, M), 2-D operands only, no broadcasting."""
    _require_tensor("mm", a, "input", 1)
    _require_tensor("mm", b, "mat2", 2)
    if a.ndim != 2:
        raise RuntimeError("self must be a matrix")
    if b.ndim != 2:
        raise RuntimeError("mat2 must be a matrix")
    if a._node.shape[1] != b._node.shape[0]:
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({_dims(a)} and {_dims(b)})")
    _check_mm_dtypes(a, b)
    _no_bool("addmm_impl_cpu_", a, b)
    return _product(a, b)


def bmm(a, b):
    """torch.bmm: (B, N, K) @ (B, K, M) -> (B, N, M), 3-D operands with equal batch sizes."""
    _require_tensor("bmm", a, "input", 1)
    _require_tensor("bmm", b, "mat2", 2)
    if a.ndim != 3:
        raise RuntimeError("batch1 must be a 3D tensor")
    if b.ndim != 3:
        raise RuntimeError("batch2 must be a 3D tensor")
    if a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                           f"[{a.shape[0]}, {a.shape[2]}] but got: [{b.shape[0]}, {b.shape[1]}].")
    if a.dtype is not b.dtype:
        raise RuntimeError(f"expected scalar type {_NAMES[a.dtype.name]} but found {_NAMES[b.dtype.name]}")
    _no_bool("bmm", a, b)
    return _product(a, b)


def mv(a, v):
    """torch.mv: (N, K) @ (K) -> (N)."""
    _require_tensor("mv", a, "input", 1)
    _require_tensor("mv", v, "vec", 2)
    if a.ndim != 2 or v.ndim != 1:
        raise RuntimeError(f"vector + matrix @ vector expected, got 1, {a.ndim}, {v.ndim}")
    if a.shape[1] != v.shape[0]:
        raise RuntimeError(f"size mismatch, got input ({a.shape[0]}), mat ({_dims(a)}), vec ({v.shape[0]})")
    _check_mv_dtypes(a, v)
    _no_bool("addmv_impl_cpu", a, v)
    return (a * v.unsqueeze(0)).sum(1, dtype=a.dtype)


def dot(a, b):
    """torch.dot: the inner product of two 1-D tensors of the same size and dtype."""
    _require_tensor("dot", a, "input", 1)
    _require_tensor("dot", b, "tensor", 2)
    if a.ndim != 1 or b.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {a.ndim}D and {b.ndim}D tensors")
    if a.shape[0] != b.shape[0]:
        raise RuntimeError(f"inconsistent tensor size, expected tensor [{a.shape[0]}] and src [{b.shape[0]}] to have "
                           f"the same number of elements, but got {a.shape[0]} and {b.shape[0]} elements respectively")
    if a.dtype is not b.dtype:
        raise RuntimeError(f"dot : expected both vectors to have same dtype, but found {_NAMES[a.dtype.name]} "
                           f"and {_NAMES[b.dtype.name]}")
    _no_bool("dot", a, b)
    return (a * b).sum(dtype=a.dtype)


def outer(a, b):
    """torch.outer: out[i, j] = a[i] * b[j] (dtypes promote, as for `*`)."""
    _require_tensor("outer", a, "input", 1)
    _require_tensor("outer", b, "vec2", 2)
    if a.ndim != 1:
        raise RuntimeError(f"outer: Expected 1-D argument self, but got {a.ndim}-D")
    if b.ndim != 1:
        raise RuntimeError(f"outer: Expected 1-D argument vec2, but got {b.ndim}-D")
    return a.unsqueeze(1) * b.unsqueeze(0)


ger = outer
