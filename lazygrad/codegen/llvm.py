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

from . import llvm_math
from .llvm_alu import F64, I64, AluRenderer, constant, is_bool, is_float, value_type
from .llvm_alu import close_counted_loop, from_memory, memory_type, open_counted_loop, to_memory
from .program import Program

# Elementwise ops carry no fast-math flags (see llvm_alu.py): results match NumPy
# and PyTorch bit for bit. Reductions may reassociate (that is what lets them
# vectorise) and a multiply feeding a sum becomes one fused multiply-add.
#
# Only flags that cannot turn a nan into a number are used. `reassoc` on the sum's
# fadd is all the loop vectoriser needs. `nsz` is left out on purpose: with
# `reassoc` + `nsz` on the fadds, InstCombine factors a common multiplier out of
# the (unrolled) sum, x0*c + x1*c -> (x0 + x1)*c, so sum([1, -1, 1] * inf) became
# (1 - 1 + 1)*inf = inf instead of inf - inf + inf = nan.
REDUCE_FLAGS = ("reassoc", "contract")
# A multiply feeding a sum gets only `contract` (fuse into an FMA, which rounds once
# instead of twice and changes no inf/nan result); never `reassoc`.
PRODUCT_FLAGS = ("contract",)
# Inside a "blocked" loop (register blocking, see lower/upcast.py) each accumulator is
# updated in order: without `reassoc` the loop vectoriser leaves the loop alone
# (it would otherwise vectorise it as a reduction, along the loop), and the SLP
# vectoriser packs the block's independent updates into vector FMAs instead.
BLOCKED_FLAGS = ("contract",)


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


class _Renderer(AluRenderer):
    """One program as one LLVM function for the host. The ALU ops and casts are `AluRenderer`'s
    (llvm_alu.py, shared with the GPU renderer); `float_math` and the reduction update are the CPU's."""

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
        return constant(ins.arg, ins.dtype)

    def r_loop(self, ins):
        counter = self.alloca(I64)
        i, header, exit_ = open_counted_loop(self.fn, self.b, counter, self.values[ins.src[0]],
                                             self.values[ins.src[1]], ins.arg)
        self.loops[id(ins)] = (counter, header, exit_)
        if self.p.loop_hints.get(ins.arg) == "blocked":
            self.blocked_depth += 1
        return i

    def r_endloop(self, ins):
        loop_ins = self.p.instrs[ins.src[0]]
        counter, header, exit_ = self.loops[id(loop_ins)]
        if self.p.loop_hints.get(loop_ins.arg) == "blocked":
            self.blocked_depth -= 1
        close_counted_loop(self.b, counter, header, exit_, ir.Constant(I64, 1))

    def r_load(self, ins):
        b = self.b
        ptr = b.gep(self.fn.args[ins.src[0]], [self.values[ins.src[1]]], inbounds=True)
        return from_memory(b, b.load(ptr, align=ins.dtype.itemsize), ins.dtype)

    def r_store(self, ins):
        b = self.b
        dtype = self.p.params[ins.src[0]][0]
        v = to_memory(b, self.values[ins.src[2]], dtype)
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
            if is_float(acc_dtype) and producer.op == "alu" and producer.arg == "MUL":
                x, y = (self.values[s] for s in producer.src)
                # The product carries only `contract`: LLVM may fuse it with the sum into an FMA,
                # but nothing lets it factor a constant out, sum(x*c) -> c*sum(x), which would
                # make sum([1,-1,1]*inf) inf instead of nan (see REDUCE_FLAGS).
                new = b.fadd(old, b.fmul(x, y, flags=PRODUCT_FLAGS), flags=flags)
            elif is_float(acc_dtype):
                new = b.fadd(old, v, flags=flags)
            elif is_bool(acc_dtype):
                new = b.or_(old, v)
            else:
                new = b.add(old, v)
        elif ins.arg == "MUL":  # a product: integers wrap (two's complement), bool is AND
            if is_float(acc_dtype):
                new = b.fmul(old, v, flags=BLOCKED_FLAGS if self.blocked_depth else REDUCE_FLAGS)
            elif is_bool(acc_dtype):
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

    # ---- arithmetic (the rest is AluRenderer's, llvm_alu.py) ----
    def max_reduce(self, dtype, acc, v):
        """acc = max(acc, v) in a reduction. For floats `llvm.maximum` (NaN-propagating, like
        torch.max): the loop vectoriser recognises it as a max reduction, which it does not for
        the compare-and-select of `max`."""
        if not is_float(dtype):
            return self.max(dtype, acc, v)
        t = acc.type
        name = f"llvm.maximum.{'f64' if t == F64 else 'f32'}"
        fn = self.module.globals.get(name) or ir.Function(self.module, ir.FunctionType(t, [t, t]), name=name)
        return self.b.call(fn, [acc, v])

    def float_math(self, op, x):
        """The CPU's transcendental ops: llvm.sqrt/llvm.trunc intrinsics, the rest from llvm_math.py."""
        b = self.b
        if op in ("SQRT", "TRUNC"):
            name = {"SQRT": "llvm.sqrt", "TRUNC": "llvm.trunc"}[op]
            return b.call(self.module.declare_intrinsic(name, [x.type]), [x])
        if op == "EXP":
            return llvm_math.exp(b, x)
        if op == "EXP2":
            return llvm_math.exp2(b, x)
        if op == "LOG2":
            return llvm_math.log2(b, x)
        if op == "SIN":
            return llvm_math.sin(b, x)
        raise NotImplementedError(f"{op} on floating point")


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
