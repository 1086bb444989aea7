"""The CPU renderer: loop Program -> LLVM IR -> optimised object code.

Each program becomes one function

    void name(T0* noalias out, T1* noalias in1, ..., i64 start, i64 end)

whose outermost loop runs from `start` to `end`, so that the runtime can hand
slices of it to several threads. Mutable state (loop counters,
accumulators) lives in `alloca`s; LLVM's mem2reg turns them into registers
and the loop vectoriser then works on the result, including reductions
(which carry the `reassoc` fast-math flag for that).
"""
from __future__ import annotations

import functools
import re

import llvmlite.binding as llvm
from llvmlite import ir

from ..ir.dtypes import DType
from . import llvm_math
from .program import INDEX, Program

I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
F32, F64 = ir.FloatType(), ir.DoubleType()
# Elementwise ADD/MUL carry no fast-math flags: results match NumPy and PyTorch
# bit for bit. Reductions may reassociate (that is what lets them vectorise) and
# a multiply feeding a sum becomes one fused multiply-add.
#
# Only flags that cannot turn a nan into a number are used. `reassoc` on the sum's
# fadd is all the loop vectoriser needs. `nsz` is left out on purpose: with
# `reassoc` + `nsz` on the fadds, InstCombine factors a common multiplier out of
# the (unrolled) sum, x0*c + x1*c -> (x0 + x1)*c, so sum([1, -1, 1] * inf) became
# (1 - 1 + 1)*inf = inf instead of inf - inf + inf = nan.
FAST = ()
REDUCE_FLAGS = ("reassoc", "contract")
# A multiply feeding a sum gets only `contract` (fuse into an FMA, which rounds once
# instead of twice and changes no inf/nan result); never `reassoc`.
PRODUCT_FLAGS = ("contract",)
# Inside a "blocked" loop (register blocking, see lower.py) each accumulator is
# updated in order: without `reassoc` the loop vectoriser leaves the loop alone
# (it would otherwise vectorise it as a reduction, along the loop), and the SLP
# vectoriser packs the block's independent updates into vector FMAs instead.
BLOCKED_FLAGS = ("contract",)


def value_type(dtype):
    """The LLVM type a value of `dtype` has in registers."""
    if dtype == INDEX:
        return I64
    return {"bool": I1, "int32": I32, "int64": I64, "float32": F32, "float64": F64}[dtype.name]


def memory_type(dtype: DType):
    """The LLVM type of one element in a buffer (NumPy stores bool as a byte)."""
    return I8 if dtype.is_bool else value_type(dtype)


def _is_float(dtype) -> bool:
    return dtype != INDEX and dtype.is_floating_point


def _is_bool(dtype) -> bool:
    return dtype != INDEX and dtype.is_bool


@functools.lru_cache(maxsize=None)
def host_target_machine():
    """The target machine that emits kernels' object code for this CPU.

    The "large" code model makes every address in the object a full 64-bit
    absolute one. The JIT places an object's code and its constants in separate
    memory mappings that can end up more than 2 GB apart once the process has
    allocated a lot; the default model's 32-bit PC-relative references then
    overflow and LLVM aborts the whole process while loading the object.
    """
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(cpu=llvm.get_host_cpu_name(),
                                        features=llvm.get_host_cpu_features().flatten(),
                                        opt=3, codemodel="large", reloc="static")


def host_description() -> str:
    """Identifies the CPU the code is compiled for; part of every cache key."""
    host_target_machine()
    return f"{llvm.get_process_triple()}|{llvm.get_host_cpu_name()}|{llvm.get_host_cpu_features().flatten()}"


class _Renderer:
    def __init__(self, program: Program, name: str):
        self.p = program
        self.module = ir.Module(name=name)
        self.module.triple = llvm.get_process_triple()
        arg_types = [memory_type(dt).as_pointer() for dt, _ in program.params] + [I64, I64]
        self.fn = ir.Function(self.module, ir.FunctionType(ir.VoidType(), arg_types), name=name)
        for i, arg in enumerate(self.fn.args[:len(program.params)]):
            arg.add_attribute("noalias")
        self.entry = self.fn.append_basic_block("entry")
        self.b = ir.IRBuilder(self.fn.append_basic_block("body"))
        self.entry_builder = ir.IRBuilder(self.entry)
        self.values: dict[int, object] = {}
        self.loops: dict[int, tuple] = {}
        self.blocked_depth = 0  # how many enclosing loops carry the "blocked" hint

    def alloca(self, typ):
        return self.entry_builder.alloca(typ)

    def render(self) -> str:
        b = self.b
        for i, ins in enumerate(self.p.instrs):
            self.values[i] = getattr(self, "r_" + ins.op)(ins)
        b.ret_void()
        self.entry_builder.branch(self.fn.blocks[1])
        return str(self.module)

    # ---- statements ----
    def r_arg(self, ins):
        return self.fn.args[len(self.p.params) + (0 if ins.arg == "start" else 1)]

    def r_const(self, ins):
        typ = value_type(ins.dtype)
        if _is_bool(ins.dtype):
            return ir.Constant(I1, int(bool(ins.arg)))
        return ir.Constant(typ, ins.arg)

    def r_loop(self, ins):
        b = self.b
        counter = self.alloca(I64)
        b.store(self.values[ins.src[0]], counter)
        end = self.values[ins.src[1]]
        header = self.fn.append_basic_block(f"{ins.arg}_head")
        body = self.fn.append_basic_block(f"{ins.arg}_body")
        exit_ = self.fn.append_basic_block(f"{ins.arg}_exit")
        b.branch(header)
        b.position_at_end(header)
        i = b.load(counter)
        b.cbranch(b.icmp_signed("<", i, end), body, exit_)
        b.position_at_end(body)
        self.loops[id(ins)] = (counter, header, exit_)
        if self.p.loop_hints.get(ins.arg) == "blocked":
            self.blocked_depth += 1
        return i

    def r_endloop(self, ins):
        b = self.b
        loop_ins = self.p.instrs[ins.src[0]]
        counter, header, exit_ = self.loops[id(loop_ins)]
        if self.p.loop_hints.get(loop_ins.arg) == "blocked":
            self.blocked_depth -= 1
        b.store(b.add(b.load(counter), ir.Constant(I64, 1)), counter)
        b.branch(header)
        b.position_at_end(exit_)

    def r_load(self, ins):
        b = self.b
        ptr = b.gep(self.fn.args[ins.src[0]], [self.values[ins.src[1]]], inbounds=True)
        v = b.load(ptr, align=ins.dtype.itemsize)
        if _is_bool(ins.dtype):
            v = b.icmp_unsigned("!=", v, ir.Constant(I8, 0))
        return v

    def r_store(self, ins):
        b = self.b
        dtype = self.p.params[ins.src[0]][0]
        v = self.values[ins.src[2]]
        if _is_bool(dtype):
            v = b.zext(v, I8)
        ptr = b.gep(self.fn.args[ins.src[0]], [self.values[ins.src[1]]], inbounds=True)
        b.store(v, ptr, align=dtype.itemsize)

    def r_acc(self, ins):
        slot = self.alloca(value_type(ins.dtype))
        init = self.r_const(ins)
        self.b.store(init, slot)
        return slot

    def r_update(self, ins):
        b = self.b
        slot = self.values[ins.src[0]]
        acc_dtype = self.p.instrs[ins.src[0]].dtype
        old, v = b.load(slot), self.values[ins.src[1]]
        if ins.arg == "ADD":
            producer = self.p.instrs[ins.src[1]]
            flags = BLOCKED_FLAGS if self.blocked_depth else REDUCE_FLAGS
            if _is_float(acc_dtype) and producer.op == "alu" and producer.arg == "MUL":
                x, y = (self.values[s] for s in producer.src)
                # The product carries only `contract`: LLVM may fuse it with the sum into an FMA,
                # but nothing lets it factor a constant out, sum(x*c) -> c*sum(x), which would
                # make sum([1,-1,1]*inf) inf instead of nan (see REDUCE_FLAGS).
                new = b.fadd(old, b.fmul(x, y, flags=PRODUCT_FLAGS), flags=flags)
            elif _is_float(acc_dtype):
                new = b.fadd(old, v, flags=flags)
            elif _is_bool(acc_dtype):
                new = b.or_(old, v)
            else:
                new = b.add(old, v)
        elif ins.arg == "MUL":  # a product: integers wrap (two's complement), bool is AND
            if _is_float(acc_dtype):
                new = b.fmul(old, v, flags=BLOCKED_FLAGS if self.blocked_depth else REDUCE_FLAGS)
            elif _is_bool(acc_dtype):
                new = b.and_(old, v)
            else:
                new = b.mul(old, v)
        elif ins.arg == "OR":
            new = b.or_(old, v)
        else:
            new = self.max_reduce(acc_dtype, old, v)
        b.store(new, slot)

    def r_read(self, ins):
        return self.b.load(self.values[ins.src[0]])

    # ---- arithmetic ----
    def max(self, dtype, a, c):
        b = self.b
        if _is_float(dtype):
            # NaN-propagating like torch.maximum: pick a when a > c or a is NaN
            pick_a = b.or_(b.fcmp_ordered(">", a, c), b.fcmp_unordered("uno", a, a))
        elif _is_bool(dtype):
            return b.or_(a, c)
        else:
            pick_a = b.icmp_signed(">", a, c)
        return b.select(pick_a, a, c)

    def max_reduce(self, dtype, acc, v):
        """acc = max(acc, v) in a reduction. For floats `llvm.maximum` (NaN-propagating, like
        torch.max): the loop vectoriser recognises it as a max reduction, which it does not for
        the compare-and-select of `max`."""
        if not _is_float(dtype):
            return self.max(dtype, acc, v)
        t = acc.type
        name = f"llvm.maximum.{'f64' if t == F64 else 'f32'}"
        fn = self.module.globals.get(name) or ir.Function(self.module, ir.FunctionType(t, [t, t]), name=name)
        return self.b.call(fn, [acc, v])

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
        if _is_float(dtype):
            return self.float_op(op, *srcs)
        if _is_bool(dtype):
            if op == "ADD":
                return b.or_(*srcs)
            if op == "MUL":
                return b.and_(*srcs)
            raise NotImplementedError(f"{op} on bool")
        return self.int_op(op, dtype, *srcs)

    def compare(self, op, dtype, a, c):
        b = self.b
        if _is_float(dtype):
            return b.fcmp_ordered("<" if op == "CMPLT" else "==", a, c)
        if _is_bool(dtype):
            if op == "CMPEQ":
                return b.icmp_unsigned("==", a, c)
            return b.icmp_unsigned("<", a, c)
        return b.icmp_signed("<" if op == "CMPLT" else "==", a, c)

    def float_op(self, op, *srcs):
        b = self.b
        t = srcs[0].type
        if op == "ADD":
            return b.fadd(*srcs, flags=FAST)
        if op == "MUL":
            return b.fmul(*srcs, flags=FAST)
        if op == "NEG":
            return b.fneg(srcs[0])
        if op == "RECIP":
            return b.fdiv(ir.Constant(t, 1.0), srcs[0])
        if op == "DIV":
            return b.fdiv(*srcs)
        if op == "MOD":
            return b.frem(*srcs)
        if op in ("SQRT", "TRUNC"):
            name = {"SQRT": "llvm.sqrt", "TRUNC": "llvm.trunc"}[op]
            return b.call(self.module.declare_intrinsic(name, [t]), [srcs[0]])
        if op == "EXP":
            return llvm_math.exp(b, srcs[0])
        if op == "EXP2":
            return llvm_math.exp2(b, srcs[0])
        if op == "LOG2":
            return llvm_math.log2(b, srcs[0])
        if op == "SIN":
            return llvm_math.sin(b, srcs[0])
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
        if op in ("TRUNC",):
            return srcs[0]
        raise NotImplementedError(f"{op} on integers")

    def cast(self, v, src, dst):
        b = self.b
        st, dt = value_type(src), value_type(dst)
        if st == dt:
            return v
        if _is_bool(dst):
            if _is_float(src):
                return b.fcmp_unordered("!=", v, ir.Constant(st, 0.0))
            return b.icmp_unsigned("!=", v, ir.Constant(st, 0))
        if _is_bool(src):
            return b.uitofp(v, dt) if _is_float(dst) else b.zext(v, dt)
        if _is_float(src) and _is_float(dst):
            return b.fpext(v, dt) if dt == F64 else b.fptrunc(v, dt)
        if _is_float(src):
            return b.fptosi(v, dt)
        if _is_float(dst):
            return b.sitofp(v, dt)
        return b.sext(v, dt) if dt.width > st.width else b.trunc(v, dt)


def render_ir(program: Program, name: str) -> str:
    """LLVM IR text for a program, with the function named `name`."""
    text = _Renderer(program, name).render()
    # llvmlite.ir cannot attach string attributes: add one by editing the text. It lets the
    # vectoriser use the widest vectors the CPU has.
    text = re.sub(r'(define void @"?%s"?\([^)]*\))' % re.escape(name), r"\1 #0", text, count=1)
    return text + '\nattributes #0 = { nounwind "prefer-vector-width"="512" }\n'


def optimize_and_emit(ir_text: str) -> bytes:
    """Parse, optimise at O3 with vectorisation, and return object code for the host."""
    tm = host_target_machine()
    mod = llvm.parse_assembly(ir_text)
    mod.verify()
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)
    return tm.emit_object(mod)


def optimized_ir(ir_text: str) -> str:
    """The IR after optimisation, for inspection (LAZYGRAD_DEBUG=4)."""
    tm = host_target_machine()
    mod = llvm.parse_assembly(ir_text)
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)
    return str(mod)
