"""The loop program: a small, target-independent description of one kernel.

`lower/` turns a scheduled Kernel into a Program; each renderer (LLVM for
the CPU, PTX for NVIDIA GPUs) turns a Program into machine code. A Program
is a flat list of instructions in SSA form; each instruction's result is
referred to by its position in the list.

Instruction kinds (`Instr.op`):
  param   arg=(index, dtype, is_output)     a buffer pointer
  const   arg=value                          a constant of `dtype`
  loop    src=(start, end) arg=name          opens a loop; the result is the loop variable
  endloop src=(loop,)                        closes the loop
  alu     src=operands arg=op name           arithmetic (see ALU_OPS)
  load    src=(param, index)                 buffer[index]
  store   src=(param, index, value)          buffer[index] = value
  acc     arg=initial value                  a mutable accumulator
  update  src=(acc, value) arg=ADD|MAX|MUL|OR  acc = op(acc, value)
  read    src=(acc,)                         the accumulator's current value
  arg     arg="start"|"end"                  the kernel's start/end arguments (see below)
The dtype "index" is a 64-bit signed integer used for loop variables and
addresses. Every program takes two extra index arguments, `start` and `end`,
bounding its outermost loop, so the runtime can split it across threads.

Scratch parameters (`Program.scratch`, parameter -> element count) are
buffers the kernel writes and reads itself (e.g. a packed panel of a matmul
operand). The runtime gives every slice of a launch its own scratch memory of
that many elements, contents undefined. `lower(kernel, scratch=False)` makes
programs without them.

Loop hints (`Program.loop_hints`, loop name -> hint) tell a renderer how a
loop was built; a renderer may ignore them, the program means the same:
  "blocked"  the loop's body updates a block of independent accumulators
             (register blocking, see lower/upcast.py): keep each accumulator's
             updates in loop order and vectorise across the block, not along
             this loop.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..ir import dtypes
from ..ir.dtypes import DType

INDEX = "index"

# ALU op names a renderer must implement. Most are the IR's elementwise ops;
# EXP (natural exponent) is recognised from EXP2(x * log2(e)) and DIV from
# a * RECIP(b) so that both can be computed accurately; AND combines masks.
ALU_OPS = frozenset({
    "EXP2", "LOG2", "SQRT", "SIN", "RECIP", "NEG", "TRUNC", "CAST", "EXP", "DIV",
    "ADD", "MUL", "MAX", "CMPLT", "CMPEQ", "IDIV", "MOD", "WHERE", "AND",
})


@dataclass(frozen=True)
class Instr:
    op: str
    dtype: object  # DType, INDEX, or None for statements
    src: tuple = ()
    arg: object = None


@dataclass
class Program:
    name: str
    params: list = field(default_factory=list)   # [(dtype, is_output)]
    instrs: list = field(default_factory=list)
    outer_size: int = 1                          # trip count of the outermost loop
    error_param: int | None = None               # index of the int64 error-flag parameter
    work: int = 0                                # rough count of element operations, for threading
    error_sites: tuple = ()                      # (axis, size) per index check, to explain an error flag
    loop_hints: dict = field(default_factory=dict)  # loop name -> hint (see the module docstring)
    scratch: dict = field(default_factory=dict)     # scratch parameter -> element count (see the docstring)

    def text(self) -> str:
        """A readable listing; also the key the kernel cache hashes."""
        lines = [f"program {self.name} outer={self.outer_size}"]
        for i, (dtype, is_out) in enumerate(self.params):
            role = "error" if i == self.error_param else ("out" if is_out else "in")
            if i in self.scratch:
                role = f"scratch[{self.scratch[i]}]"
            lines.append(f"  param {i}: {dtype.name if isinstance(dtype, DType) else dtype}* {role}")
        depth = 1
        for i, ins in enumerate(self.instrs):
            if ins.op == "endloop":
                depth -= 1
            dt = ins.dtype.name if isinstance(ins.dtype, DType) else (ins.dtype or "")
            src = " ".join(f"%{s}" for s in ins.src)
            arg = "" if ins.arg is None else f" [{_arg_text(ins.arg)}]"
            hint = f"  ; {self.loop_hints[ins.arg]}" if ins.op == "loop" and ins.arg in self.loop_hints else ""
            lines.append(f"{'  ' * depth}%{i} = {ins.op} {dt} {src}{arg}".rstrip() + hint)
            if ins.op == "loop":
                depth += 1
        return "\n".join(lines)


def _arg_text(arg) -> str:
    if isinstance(arg, tuple):
        return ", ".join(_arg_text(a) for a in arg)
    if isinstance(arg, DType):
        return arg.name
    if isinstance(arg, float):
        return repr(arg)
    return str(arg)


def zero_of(dtype):
    if dtype == INDEX or dtype.is_int:
        return 0
    if dtype.is_bool:
        return False
    return 0.0


def one_of(dtype):
    """The identity of a product: 1, 1.0 or True."""
    if dtype.is_bool:
        return True
    return 1 if dtype.is_int else 1.0


def identity_of(update_op: str, dtype):
    """The value an accumulator starts from for the update `update_op` (ADD, MAX, MUL or OR)."""
    if update_op == "MAX":
        return lowest_of(dtype)
    if update_op == "MUL":
        return one_of(dtype)
    return zero_of(dtype)


def lowest_of(dtype: DType):
    """The identity of max: -inf for floats, the smallest integer, False."""
    if dtype.is_floating_point:
        return float("-inf")
    if dtype.is_bool:
        return False
    return -(2 ** 31) if dtype is dtypes.int32 else -(2 ** 63)
