"""Stores made safe for many threads: the error flag, scatter's atomics and masked stores, thread 0.

* The error flag (bad index, division by zero): many threads may report;
  each does an atomic max of its code, as the CPU keeps the max.
* PHASES (scatter): the analysis (`_Analysis._store_plan`) says how each
  store of a nest is made thread-safe: a read-modify-write of the output
  (`out[i] = where(ok, out[i] + v, out[i])`) becomes an atomic add, a
  conditional overwrite a masked store.
* BLOCK and the SPLIT finish launch: a value computed outside a shared loop
  is the same in every thread of the block, and thread 0 alone writes it.
"""
from __future__ import annotations

from llvmlite import ir

from ..llvm_alu import I64, is_float


class Stores:
    """Mixed into `_Entry` (entry.py)."""

    def r_store(self, ins):
        b = self.b
        param, _, value = ins.src
        dtype = self.p.params[param][0]
        if param == self.p.error_param:
            # many threads report errors: keep the largest code seen (the CPU keeps the max too)
            v = self.values[value]
            v = b.zext(v, I64) if v.type != I64 else v
            self.when(b.icmp_signed("!=", v, ir.Constant(I64, 0)),
                      lambda: b.atomic_rmw("max", self.pointer(param, ins.src[1]), v, "monotonic"))
            return None
        planned = self.store_plan.get(self.current)
        if planned is not None and planned[0] != "plain":
            return self.planned_store(planned, param, ins.src[1], dtype)

        def store():
            b.store(self.to_memory(self.values[value], dtype), self.pointer(param, ins.src[1]), align=dtype.itemsize)
        if self.phase == "finish" or (self.phase == "block" and not self.shared_loops):
            # outside a shared loop every thread of the block holds the same value: thread 0 writes it
            self.when(b.icmp_unsigned("==", self.tid, ir.Constant(I64, 0)), store)
        else:
            store()
        return None

    def planned_store(self, planned, param, index, dtype):
        """A store the PHASES analysis made thread-safe (see _Analysis._store_plan)."""
        b = self.b
        kind = planned[0]
        if kind == "skip":
            return None
        cond = self.values[planned[1]] if planned[1] is not None else None
        value = self.values[planned[2]]
        if kind == "masked":
            self.when(cond, lambda: b.store(self.to_memory(value, dtype), self.pointer(param, index),
                                            align=dtype.itemsize))
            return None
        op = "fadd" if is_float(dtype) else "add"
        if cond is not None:
            value = b.select(cond, value, ir.Constant(value.type, 0.0 if is_float(dtype) else 0))
        b.atomic_rmw(op, self.pointer(param, index), value, "monotonic")
        return None
