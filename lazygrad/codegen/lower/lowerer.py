"""The Lowerer: which loop structure a kernel gets, and the Program it becomes.

`Lowerer.lower` plans the structures in this order and takes the first that
applies (each planner says when it pays, in its own file):

* a SCATTER output: `lower_scatter` (indexing.py);
* an empty output: one loop with no iteration;
* the streaming nest (stream.py, structure 4), when no rows are blocked;
* the GEMM nest (gemm.py, structure 5), a variant of the upcast nest for
  products whose row operand is strided along k;
* the register-blocked upcast nest (upcast.py, structure 3);
* otherwise the plain nest (elementwise.py, structures 1 and 2).

Reduction loops (reduce.py) and gathers (indexing.py) are rendered inside
whichever structure was chosen.
"""
from __future__ import annotations

from ...ir.ops import Op, ELEMENTWISE
from .. import symbolic
from ..program import INDEX, Program
from .base import LowererBase
from .elementwise import PlainNest
from .gemm import GemmNest
from .indexing import Indexing, _hoist_error_flag
from .reduce import Reductions
from .stream import StreamNest
from .upcast import UpcastNest


class Lowerer(PlainNest, Reductions, UpcastNest, GemmNest, StreamNest, Indexing, LowererBase):
    """One kernel's lowering: the loop structures (mixins, one file each) over the shared state of
    `LowererBase`."""

    def lower(self) -> Program:
        """Choose the loop structure (see the module docstring), emit it, and return the Program."""
        kernel, b = self.kernel, self.b
        out = kernel.output
        shape = out.shape
        if out.op is Op.SCATTER:
            return self.lower_scatter()
        self.start_arg = b.emit("arg", INDEX, (), "start", dedup=False)
        self.end_arg = b.emit("arg", INDEX, (), "end", dedup=False)
        self.outer_size = None
        self.loops: list[int] = []
        # plan with placeholder variables named after the output axes
        # (an axis of size 0 gets a loop too: it runs no iteration, so nothing is written)
        out_vars = {a: symbolic.var(f"i{a}", s) for a, s in enumerate(shape) if s != 1}
        upcast = self.plan_upcast(out_vars)
        # reductions with no rows to block (or several reductions) stream when scratch memory is allowed
        stream = self.plan_stream(out_vars) if upcast is None or upcast[2] is None else None
        if out.numel == 0:  # nothing to compute: one empty loop, so that nothing is read or written
            self.open_output_loop("i", 0)
        elif stream is not None:
            self.lower_stream(*stream)
        elif upcast is not None:
            gemm = self.plan_gemm(*upcast)
            if gemm is not None:
                self.lower_gemm(*upcast, gemm)
            else:
                self.lower_upcast(*upcast)
        else:
            self.lower_plain(out_vars)
        for loop in reversed(self.loops):
            self.close_loop(loop)
        instrs = b.instrs
        if self.error_acc is not None:
            instrs = _hoist_error_flag(instrs, self.error_param)
        # work: element operations, to decide whether threads pay (runtime/cpu.py). A register
        # block reads each source element once per R rows.
        ops = sum(1 for n in self.kernel_order() if n.op in ELEMENTWISE)
        rows = upcast[3] if upcast is not None and stream is None else 1
        work = max(1, ops) * max(1, out.numel) + sum(max(1, red.src[0].numel) for red in self.reduces) // rows
        return Program(kernel.name, self.params, instrs, 1 if self.outer_size is None else self.outer_size,
                       self.error_param, work,
                       loop_hints=self.loop_hints, scratch=self.scratch)


def lower(kernel, scratch: bool = True) -> Program:
    """The loop Program of a scheduled kernel. `scratch=False`: use no scratch parameters
    (for a renderer that cannot give each slice of a launch its own scratch memory)."""
    lowerer = Lowerer(kernel, scratch)
    program = lowerer.lower()
    program.error_sites = tuple(lowerer.error_sites)
    return program
