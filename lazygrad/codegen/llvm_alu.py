"""ALU ops, casts and counted loops as LLVM IR: the part both renderers emit the same way.

The CPU renderer (`llvm.py`) and the GPU renderer (`ptx/`, LLVM IR for the
NVPTX target) both turn a Program's `alu` instructions into LLVM IR with
llvmlite. For the same op and dtype they emit the same instructions, so
that a model computes the same numbers on both; this module is that one
table. What differs between the targets stays in each renderer, as a hook:

* `float_math(op, x)`: SQRT, TRUNC, EXP, EXP2, LOG2, SIN. The CPU declares
  `llvm.sqrt`/`llvm.trunc` freely and uses the polynomials of `llvm_math.py`
  for the rest; the GPU checks every intrinsic against its allow-list (an
  intrinsic NVPTX cannot select aborts the process) and uses the hardware's
  `ex2.approx` for float32 exp/exp2.
* reduction updates (`r_update` on the CPU, `combine` on the GPU): the CPU
  adds fast-math flags that let the loop vectoriser work and `llvm.maximum`
  for max; the GPU reduces across threads itself.

The renderer mixing in `AluRenderer` provides `self.b` (the IRBuilder),
`self.values` (instruction index -> LLVM value) and `self.p` (the Program).
"""
from __future__ import annotations

from llvmlite import ir

from .program import INDEX

I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
F32, F64 = ir.FloatType(), ir.DoubleType()


# ---- types ----

def value_type(dtype):
    """The LLVM type a value of `dtype` has in registers."""
    if dtype == INDEX:
        return I64
    return {"bool": I1, "int32": I32, "int64": I64, "float32": F32, "float64": F64}[dtype.name]


def memory_type(dtype):
    """The LLVM type of one element in a buffer (bool is a byte, as in NumPy and PyTorch)."""
    return I8 if is_bool(dtype) else value_type(dtype)


def is_float(dtype) -> bool:
    return dtype != INDEX and dtype.is_floating_point


def is_bool(dtype) -> bool:
    return dtype != INDEX and dtype.is_bool


def constant(value, dtype):
    """An LLVM constant of `dtype` (bool as i1)."""
    if is_bool(dtype):
        return ir.Constant(I1, int(bool(value)))
    return ir.Constant(value_type(dtype), value)


def to_memory(b: ir.IRBuilder, v, dtype):
    """A register value as it is stored: bool widened to a byte."""
    return b.zext(v, I8) if is_bool(dtype) else v


def from_memory(b: ir.IRBuilder, v, dtype):
    """A loaded element as a register value: a bool byte compared with 0."""
    return b.icmp_unsigned("!=", v, ir.Constant(I8, 0)) if is_bool(dtype) else v


# ---- counted loops ----

def open_counted_loop(fn: ir.Function, b: ir.IRBuilder, counter, start, end, name: str):
    """`for i in [start, end)`, the counter in the stack slot `counter` (mem2reg makes it a register).

    Branches to a header block that tests i < end and leaves the builder in the
    body. Returns (i, header, exit) for `close_counted_loop`.
    """
    b.store(start, counter)
    header = fn.append_basic_block(f"{name}_head")
    body = fn.append_basic_block(f"{name}_body")
    exit_ = fn.append_basic_block(f"{name}_exit")
    b.branch(header)
    b.position_at_end(header)
    i = b.load(counter)
    b.cbranch(b.icmp_signed("<", i, end), body, exit_)
    b.position_at_end(body)
    return i, header, exit_


def close_counted_loop(b: ir.IRBuilder, counter, header, exit_, step) -> None:
    """The end of a loop's body: i += step, back to the header; the builder continues after the loop."""
    b.store(b.add(b.load(counter), step), counter)
    b.branch(header)
    b.position_at_end(exit_)


# ---- the ALU ----

class AluRenderer:
    """`r_alu` for both renderers; each supplies `float_math(op, x)` (see the module docstring)."""

    def r_alu(self, ins):
        b = self.b
        op, dtype = ins.arg, ins.dtype
        srcs = [self.values[s] for s in ins.src]
        src_dtype = self.p.instrs[ins.src[0]].dtype if ins.src else dtype
        if op == "CAST":
            return self.cast(srcs[0], src_dtype, dtype)
        if op == "WHERE":
            return b.select(*srcs)
        if op == "AND":
            return b.and_(*srcs)
        if op == "MAX":
            return self.max(dtype, *srcs)
        if op in ("CMPLT", "CMPEQ"):
            return self.compare(op, src_dtype, *srcs)
        if is_float(dtype):
            return self.float_op(op, *srcs)
        if is_bool(dtype):
            if op == "ADD":
                return b.or_(*srcs)
            if op == "MUL":
                return b.and_(*srcs)
            raise NotImplementedError(f"{op} on bool")   # the GPU's allow-list refuses it earlier
        return self.int_op(op, dtype, *srcs)

    def max(self, dtype, a, c):
        b = self.b
        if is_float(dtype):
            # NaN-propagating like torch.maximum: pick a when a > c or a is NaN
            pick_a = b.or_(b.fcmp_ordered(">", a, c), b.fcmp_unordered("uno", a, a))
        elif is_bool(dtype):
            return b.or_(a, c)
        else:
            pick_a = b.icmp_signed(">", a, c)
        return b.select(pick_a, a, c)

    def compare(self, op, dtype, a, c):
        b = self.b
        if is_float(dtype):
            return b.fcmp_ordered("<" if op == "CMPLT" else "==", a, c)
        if is_bool(dtype):
            return b.icmp_unsigned("<" if op == "CMPLT" else "==", a, c)
        return b.icmp_signed("<" if op == "CMPLT" else "==", a, c)

    def float_op(self, op, *srcs):
        # Elementwise ADD/MUL carry no fast-math flags: results match NumPy and PyTorch
        # bit for bit (only reductions get flags, in each renderer's update).
        b = self.b
        if op == "ADD":
            return b.fadd(*srcs)
        if op == "MUL":
            return b.fmul(*srcs)
        if op == "NEG":
            return b.fneg(srcs[0])
        if op == "RECIP":
            return b.fdiv(ir.Constant(srcs[0].type, 1.0), srcs[0])
        if op == "DIV":
            return b.fdiv(*srcs)
        if op == "MOD":
            return b.frem(*srcs)
        return self.float_math(op, srcs[0])

    def float_math(self, op, x):
        """SQRT, TRUNC, EXP, EXP2, LOG2, SIN: target-specific (intrinsics differ), in each renderer."""
        raise NotImplementedError(f"{op} on floating point")

    def int_op(self, op, dtype, *srcs):
        b = self.b
        t = srcs[0].type
        zero, one, minus_one = ir.Constant(t, 0), ir.Constant(t, 1), ir.Constant(t, -1)
        if op == "ADD":
            return b.add(*srcs)
        if op == "MUL":
            return b.mul(*srcs)
        if op == "NEG":
            return b.sub(zero, srcs[0])
        if op in ("IDIV", "MOD"):
            a, d = srcs
            if dtype == INDEX:  # index arithmetic: divisor is a positive constant, values non-negative
                return b.udiv(a, d) if op == "IDIV" else b.urem(a, d)
            # division by 0 and INT_MIN / -1 are undefined in LLVM (and trap on x86): avoid both
            bad = b.or_(b.icmp_signed("==", d, zero), b.icmp_signed("==", d, minus_one))
            safe_d = b.select(bad, one, d)
            if op == "IDIV":
                q = b.sdiv(a, safe_d)
                return b.select(b.icmp_signed("==", d, minus_one), b.sub(zero, a), q)
            r = b.srem(a, safe_d)
            return b.select(bad, zero, r)
        if op == "TRUNC":
            return srcs[0]
        raise NotImplementedError(f"{op} on integers")

    def cast(self, v, src, dst):
        b = self.b
        st, dt = value_type(src), value_type(dst)
        if st == dt:
            return v
        if is_bool(dst):
            if is_float(src):
                return b.fcmp_unordered("!=", v, ir.Constant(st, 0.0))
            return b.icmp_unsigned("!=", v, ir.Constant(st, 0))
        if is_bool(src):
            return b.uitofp(v, dt) if is_float(dst) else b.zext(v, dt)
        if is_float(src) and is_float(dst):
            return b.fpext(v, dt) if dt == F64 else b.fptrunc(v, dt)
        if is_float(src):
            return b.fptosi(v, dt)
        if is_float(dst):
            return b.sitofp(v, dt)
        return b.sext(v, dt) if dt.width > st.width else b.trunc(v, dt)
