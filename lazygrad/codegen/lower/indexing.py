"""Indexing: gather, the scatter kernel, and the error flag that reports bad indices.

A gather is rendered inside whichever structure its kernel uses: it loads
its index and uses it as one entry of the source's index (`render_gather`);
kernels with a gather are never blocked or streamed. A SCATTER output gets
its own loop structure, `lower_scatter` (two nests, one thread), chosen by
`lowerer.py` before anything else.

Kernels never read or write out of bounds. An index out of range (gather,
scatter) or an integer division by zero is recorded, without branching, in
an int64 error flag parameter; the runtime raises after the launch
(`decode_index_error` turns the flag back into an index value and a check
site).
"""
from __future__ import annotations

from ...ir import dtypes
from ...ir.node import Node
from ...ir.ops import Op
from .. import symbolic
from ..program import INDEX, Instr, Program
from .common import flat_index

_ERROR_ACC = -1  # placeholder reference to the error accumulator, fixed up by _hoist_error_flag
ZERO_DIVISION = "ZeroDivisionError"  # the `axis` of an error site that checks an integer divisor
ERROR_SITES = 256              # error codes are magnitude * ERROR_SITES + site
ERROR_VALUE_LIMIT = 1 << 52    # index values reported in errors are clamped to +-2**52


class Indexing:
    """Mixed into `Lowerer` (lowerer.py) over `LowererBase` (base.py)."""

    def render_gather(self, node: Node, idx: tuple, gate) -> int:
        src, index = node.src
        axis = node.arg
        size = src.shape[axis]
        iv = self.render(index, idx, gate)
        _, checked = self.checked_index(iv, size, axis, gate)
        new_idx = list(idx)
        new_idx[axis] = checked
        return self.render(src, tuple(new_idx), gate)

    def checked_index(self, iv: int, size: int, axis: int, gate):
        """(ok, index) for an index value `iv` loaded from a tensor, to be used along an axis of `size`.

        ok is 0 <= iv < size. Where it is false the error flag records iv (see
        `flag_error`) and the index is 0 instead, so nothing is read or written
        out of bounds; the index comes back as a symbolic value in [0, size).
        """
        b = self.b
        ok = b.alu("AND", dtypes.bool_,
                   b.alu("CMPLT", dtypes.bool_, b.const(-1, dtypes.int64), iv),
                   b.alu("CMPLT", dtypes.bool_, iv, b.const(size, dtypes.int64)))
        self.flag_error(ok, gate, iv, axis, size)
        safe = b.alu("WHERE", INDEX, ok, iv, b.const(0, INDEX))
        return ok, symbolic.value(safe, 0, max(size - 1, 0))

    # ---- the error flag ----
    def check_divisor(self, divisor: Node, ref: int, gate) -> None:
        """Integer division or remainder by zero: PyTorch raises `RuntimeError: ZeroDivisionError`.
        Flag it like an index error (site axis ZERO_DIVISION); the renderer still avoids the trap."""
        if divisor.op is Op.CONST and divisor.arg != 0:
            return
        b = self.b
        zero = b.alu("CMPEQ", dtypes.bool_, ref, b.const(0, divisor.dtype))
        ok = b.alu("CMPEQ", dtypes.bool_, zero, b.const(False, dtypes.bool_))
        self.flag_error(ok, gate, ref, ZERO_DIVISION, 0)

    def flag_error(self, ok: int, gate, value: int, axis: int, size: int) -> None:
        """Record (without branching) that index `value` was out of range; the runtime raises after the launch.

        The int64 error flag keeps the max of `encode_index_error(value, site)` over the bad
        elements (0: no error), so the error message can name an offending index and the
        dimension and size it was checked against (`self.error_sites[site]`).
        """
        b = self.b
        if self.error_acc is None:
            self.error_param = len(self.params)
            self.params.append((dtypes.int64, True))
            # the accumulator must be defined before every loop: insert it at the top
            self.error_acc = _ERROR_ACC
        bad = b.alu("CMPEQ", dtypes.bool_, ok, b.const(False, dtypes.bool_))
        if gate is not None:
            bad = b.alu("AND", dtypes.bool_, bad, gate)
        site = len(self.error_sites) % ERROR_SITES
        self.error_sites.append((axis, size))
        code = self.encode_index_error(value, site)
        b.emit("update", None, (self.error_acc, b.alu("WHERE", dtypes.int64, bad, code, b.const(0, dtypes.int64))),
               "MAX", dedup=False)

    def encode_index_error(self, value: int, site: int) -> int:
        """A positive int64 naming an index value and its check site (see `decode_index_error`)."""
        b, i64 = self.b, dtypes.int64
        c = lambda v: b.const(v, i64)  # noqa: E731
        lt = lambda x, y: b.alu("CMPLT", dtypes.bool_, x, y)  # noqa: E731
        v = b.alu("CAST", i64, value) if self.b.instrs[value].dtype is not i64 else value
        v = b.alu("WHERE", i64, lt(v, c(-ERROR_VALUE_LIMIT)), c(-ERROR_VALUE_LIMIT), v)
        v = b.alu("WHERE", i64, lt(c(ERROR_VALUE_LIMIT), v), c(ERROR_VALUE_LIMIT), v)
        # v >= 0 -> 2v + 2 (even), v < 0 -> -2v + 1 (odd): always >= 1
        magnitude = b.alu("WHERE", i64, lt(v, c(0)), b.alu("ADD", i64, b.alu("MUL", i64, v, c(-2)), c(1)),
                          b.alu("ADD", i64, b.alu("MUL", i64, v, c(2)), c(2)))
        return b.alu("ADD", i64, b.alu("MUL", i64, magnitude, c(ERROR_SITES)), c(site))

    # ---- SCATTER ----
    def lower_scatter(self) -> Program:
        """A scatter kernel: copy `base` into the output, then write `src` at the indexed places.

            out = base                                    # loop 1, over the output
            for j in index's index space:                 # loop 2, serial
                i = index[j]                              # checked: 0 <= i < size, else flag
                pos = j with pos[axis] = i
                out[pos] = src[j]          (reduce None)
                out[pos] = out[pos] + src[j]  (reduce 'add')

        Loop 2 may hit the same output element several times, so the kernel is
        never split over threads: its outermost loop (from `start` to `end`) has
        exactly one iteration, which the runtime cannot divide. A bad index
        writes nothing (the old value is stored back) and sets the error flag.
        """
        b = self.b
        node = self.kernel.output
        base, index, src = node.src
        axis, reduce = node.arg
        if reduce not in (None, "add"):
            raise NotImplementedError(f"lowering of SCATTER with reduce={reduce!r} is not implemented")
        size = node.shape[axis]
        start_arg = b.emit("arg", INDEX, (), "start", dedup=False)
        end_arg = b.emit("arg", INDEX, (), "end", dedup=False)
        whole = self.open_loop("s", start_arg, end_arg)  # one iteration: start=0, end=1

        def loops_over(shape, prefix):
            idx, loops = [], []
            for s in shape:
                if s == 1:
                    idx.append(symbolic.Expr.of(0))
                    continue
                name, var = self.new_var(prefix, s)
                loops.append(self.open_loop(name, b.const(0, INDEX), b.const(s, INDEX)))
                idx.append(var)
            return tuple(idx), loops

        # 1. out = base
        idx, loops = loops_over(node.shape, "c")
        self.store(idx, self.render(base, idx, None))
        for loop in reversed(loops):
            self.close_loop(loop)
        # 2. out[..., index[j], ...] = src[j]  (or +=)
        idx, loops = loops_over(index.shape, "w")
        iv = self.render(index, idx, None)
        ok, checked = self.checked_index(iv, size, axis, None)
        pos = list(idx)
        pos[axis] = checked
        addr = self.render_index(flat_index(tuple(pos), node.shape))
        value = self.render(src, idx, None)
        old = b.emit("load", node.dtype, (0, addr), dedup=False)  # the output is being written: never reuse
        new = b.alu("ADD", node.dtype, old, value) if reduce == "add" else value
        b.emit("store", None, (0, addr, b.alu("WHERE", node.dtype, ok, new, old)), dedup=False)
        for loop in reversed(loops):
            self.close_loop(loop)
        self.close_loop(whole)
        instrs = b.instrs
        if self.error_acc is not None:
            instrs = _hoist_error_flag(instrs, self.error_param)
        work = max(1, node.numel) + max(1, index.numel) * max(1, self.work)
        return Program(self.kernel.name, self.params, instrs, 1, self.error_param, work)


def decode_index_error(code: int) -> tuple[int, int]:
    """(index value, site) from a nonzero error flag written by `Lowerer.flag_error`."""
    magnitude, site = divmod(code, ERROR_SITES)
    value = magnitude // 2 - 1 if magnitude % 2 == 0 else -(magnitude - 1) // 2
    return value, site


def _hoist_error_flag(instrs: list, error_param: int) -> list:
    """Put the error accumulator before everything and store it after everything.

    References are positions, so every instruction is shifted by one.
    """
    def shift(ref):
        return 0 if ref == _ERROR_ACC else ref + 1
    out = [Instr("acc", dtypes.int64, (), 0)]
    for ins in instrs:
        src = tuple(shift(s) for s in ins.src)
        if ins.op in ("load", "store"):  # the first source is a parameter number, not a reference
            src = (ins.src[0],) + src[1:]
        out.append(Instr(ins.op, ins.dtype, src, ins.arg))
    flag = len(out)
    out.append(Instr("read", dtypes.int64, (0,), None))
    out.append(Instr("const", INDEX, (), 0))
    out.append(Instr("store", None, (error_param, flag + 1, flag), None))
    return out
