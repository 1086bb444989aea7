"""The GPU's arithmetic: what differs from the CPU's (`llvm_alu.py` holds what both emit alike).

* `float_math`: every intrinsic goes through the allow-list (`_call`);
  float32 exp2 is the hardware's `ex2.approx` and float32 exp is
  `exp_f32` (ex2.approx of an argument reduced with an FMA); log2, sin and
  float64 exp/exp2 use the pure-arithmetic polynomials of `llvm_math.py`
  (NVPTX cannot select f64 `llvm.exp2`/`llvm.log2`).
* `combine`, the update of a reduction (per thread and across a block):
  float `ADD` carries only `contract`, `MUL` no flag, and max is a
  compare-and-select. The CPU's update (`llvm.py`, `r_update`) adds
  `reassoc` for its loop vectoriser and uses `llvm.maximum`, which is not
  on the allow-list.
"""
from __future__ import annotations

import math

from ...ir import dtypes
from .. import llvm_math
from ..llvm_alu import F32, F64, AluRenderer, is_bool, is_float

LOG2E = math.log2(math.e)


class GPUAlu(AluRenderer):
    """Mixed into `_Entry` (entry.py), which provides `_call` (an allow-listed intrinsic call)."""

    def combine(self, op: str, dtype, a, c):
        b = self.b
        if op == "ADD":
            if is_float(dtype):
                return b.fadd(a, c, flags=("contract",))
            return b.or_(a, c) if is_bool(dtype) else b.add(a, c)
        if op == "MUL":  # a product: integers wrap, bool is AND
            if is_float(dtype):
                return b.fmul(a, c)
            return b.and_(a, c) if is_bool(dtype) else b.mul(a, c)
        if op == "OR":
            return b.or_(a, c)
        return self.max(dtype, a, c)

    def float_math(self, op, x):
        b = self.b
        t = x.type
        name = "f32" if t == F32 else "f64"
        if op == "SQRT":
            return self._call(f"llvm.sqrt.{name}", t, [x])
        if op == "TRUNC":
            return self._call(f"llvm.trunc.{name}", t, [x])
        if op == "LOG2":
            return llvm_math.log2(b, x)
        if op == "SIN":
            return llvm_math.sin(b, x)      # float32 is reduced and evaluated in float64
        if t == F64:
            # pure arithmetic (plus llvm.rint): f64 exp2/log2 intrinsics abort LLVM on NVPTX
            return (llvm_math.exp if op == "EXP" else llvm_math.exp2)(b, x)
        if op == "EXP":
            return self.exp_f32(x)
        if op == "EXP2":
            return self._call("llvm.exp2.f32", F32, [x])
        raise NotImplementedError(f"{op} on floating point")

    def exp_f32(self, x):
        """e**x = 2**n * 2**f with n = round(x*log2 e) and f = x*log2 e - n computed with an FMA and a
        second constant (so f keeps the bits a plain x*log2e would round away), 2**f by ex2.approx
        (|f| <= 1/2), and 2**n assembled in two exponent-field halves so results near the ends of
        the range neither overflow early nor flush early."""
        b = self.b
        m = llvm_math._Math(b, F32)
        hi = float(dtypes.float32.np.type(LOG2E))
        lo = float(dtypes.float32.np.type(LOG2E - hi))
        xc = m.select_cmp("olt", x, m.c(-104.0), m.c(-104.0), m.select_cmp("ogt", x, m.c(89.0), m.c(89.0), x))
        n = self._call("llvm.rint.f32", F32, [b.fmul(xc, m.c(hi))])
        f = self._call("llvm.fma.f32", F32, [xc, m.c(hi), b.fneg(n)])
        f = self._call("llvm.fma.f32", F32, [xc, m.c(lo), f])
        p = self._call("llvm.exp2.f32", F32, [f])
        out = m.scale(p, n)
        return b.select(b.fcmp_unordered("uno", x, x), x, out)
