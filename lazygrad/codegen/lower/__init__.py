"""Lowering: a scheduled Kernel becomes a loop Program.

The kernel computes one output node. We loop over every element of the
output and render the node's value at that element's index, walking down the
graph (elementwise ops combine their sources at the same index, movement ops
rewrite the index, leaves are loaded, a reduction opens inner loops over the
reduced axes and accumulates, a gather loads its index). Identical
instructions are emitted once per loop scope, which is how shared
subexpressions and repeated index arithmetic are computed only once.

Five loop structures are chosen from, per kernel, one file each:

* `elementwise.py`: structures 1 and 2, the plain nest (elementwise kernels,
  reductions over the contiguous axis, reductions broadcast back: softmax),
  and the value walk every structure renders with;
* `reduce.py`: the loop of a reduction, in any structure, and the cascaded
  float32 sum;
* `upcast.py`: structure 3, the register-blocked nest (matmul);
* `stream.py`: structure 4, the streaming nest (`x.sum(0)`);
* `gemm.py`: structure 5, the cache-blocked GEMM nest (`g.T @ x`);
* `indexing.py`: gathers, the scatter kernel, the error flag for bad indices.

`lowerer.py` combines them into `Lowerer` and picks the structure; `base.py`
holds what they share (state, loops, index expressions, look-ahead),
`common.py` the index helpers and the instruction builder.

The loop program stays scalar and target-independent: the blocking is only
unrolled scalar code, which a GPU renderer can take as it is. Structures 3
(its packed panel), 4 and 5 use scratch memory; `lower(kernel, scratch=False)`
avoids it (3 without the panel, 3 instead of 4 and 5).
"""
from ...ir.view import contiguous_strides
from .common import LOG2E, REDUCE_UPDATE, expr_vars, flat_index, movement_index, var_stride
from .gemm import GEMM_KC, GEMM_MB, GEMM_NB, GEMM_STRIPS
from .indexing import ERROR_SITES, ERROR_VALUE_LIMIT, ZERO_DIVISION, decode_index_error
from .lowerer import Lowerer, lower
from .reduce import SUM_BLOCK
from .stream import STREAM_CHUNK
from .upcast import PACK_LIMIT_BYTES, UPCAST_R, UPCAST_U

__all__ = ["LOG2E", "REDUCE_UPDATE", "contiguous_strides", "expr_vars", "flat_index", "movement_index", "var_stride",
           "GEMM_KC", "GEMM_MB", "GEMM_NB", "GEMM_STRIPS", "ERROR_SITES", "ERROR_VALUE_LIMIT", "ZERO_DIVISION",
           "decode_index_error", "Lowerer", "lower", "SUM_BLOCK", "STREAM_CHUNK", "PACK_LIMIT_BYTES",
           "UPCAST_R", "UPCAST_U"]
