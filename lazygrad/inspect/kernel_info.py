"""Kernels with their code: the loop program and the LLVM IR generated for it."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class KernelInfo:
    index: int                 # position in the schedule
    name: str                  # e.g. "r_4_1": r(educe)/e(lementwise)/s(catter) and the output shape
    kernel: object             # the scheduled lazygrad.ir.schedule.Kernel
    program: object            # the loop Program (lazygrad.codegen.program)
    llvm_ir: str               # LLVM IR text as handed to the optimiser
    symbol: str | None = None  # the compiled function's name, once it ran
    compile_ms: float | None = None      # lowering + LLVM + loading, when the plan was built
    launch_ms: list = field(default_factory=list)   # one entry per launch recorded
    optimized_ir: str | None = None      # LLVM IR after O3 and vectorisation, when asked for
    ptx: str | None = None               # PTX for NVIDIA GPUs, when asked for (no GPU needed)

    @property
    def program_text(self) -> str:
        return self.program.text()

    def summary(self) -> str:
        out = self.kernel.output
        parts = [f"kernel {self.index} {self.name}: {out.op.name} {out.dtype.name}{list(out.shape)}",
                 f"{len(self.kernel.inputs)} input{'s' if len(self.kernel.inputs) != 1 else ''}",
                 f"{len(self.kernel.nodes)} op{'s' if len(self.kernel.nodes) != 1 else ''}"]
        if self.compile_ms is not None:
            parts.append(f"compiled in {self.compile_ms:.2f} ms")
        if self.launch_ms:
            total = sum(self.launch_ms)
            parts.append(f"{len(self.launch_ms)} launch{'es' if len(self.launch_ms) != 1 else ''}, "
                         f"{total:.3f} ms total")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        return {"index": self.index, "name": self.name, "symbol": self.symbol, "compile_ms": self.compile_ms,
                "launch_ms": list(self.launch_ms), "program": self.program_text, "llvm_ir": self.llvm_ir,
                "optimized_ir": self.optimized_ir, "ptx": self.ptx, "summary": self.summary()}


def ptx_text(program) -> str:
    """PTX for a loop program from the GPU renderer (lazygrad/codegen/ptx), or why there is none."""
    try:
        from ..codegen import ptx
        kernel = ptx.render(program)
    except Exception as error:   # the renderer refuses what it does not support: show why
        return f"// no PTX for this kernel: {type(error).__name__}: {error}"
    return f"// strategy: {kernel.strategy.name.lower()}, {kernel.arch}\n{kernel.ptx}"


def describe(kernels, optimized: bool = False, ptx: bool = False) -> list[KernelInfo]:
    """Lower and render each scheduled kernel (nothing is compiled to machine code or run)."""
    from ..codegen.llvm import optimized_ir, render_ir
    from ..codegen.lower import lower
    infos = []
    for i, kernel in enumerate(kernels):
        program = lower(kernel)
        ir_text = render_ir(program, kernel.name)
        infos.append(KernelInfo(i, kernel.name, kernel, program, ir_text,
                                optimized_ir=optimized_ir(ir_text) if optimized else None,
                                ptx=ptx_text(program) if ptx else None))
    return infos


def from_plan(plan, optimized: bool = False, ptx: bool = False) -> list[KernelInfo]:
    """The kernels of a realisation plan, with the code that was actually compiled."""
    from ..codegen.llvm import optimized_ir
    infos = []
    for i, step in enumerate(plan.steps):
        compiled = step.compiled
        program = getattr(step, "program", None) or compiled.program   # the step's own loop program
        gpu_ptx = getattr(compiled, "ptx", None)   # a GPU kernel: its LLVM IR is for nvptx64, and PTX ran
        infos.append(KernelInfo(i, step.kernel.name, step.kernel, program, compiled.ir_text,
                                symbol=compiled.name, compile_ms=getattr(step.kernel, "compile_ms", None),
                                optimized_ir=optimized_ir(compiled.ir_text) if optimized and not gpu_ptx else None,
                                ptx=gpu_ptx or (ptx_text(program) if ptx else None)))
    return infos
