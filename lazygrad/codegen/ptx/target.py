"""The NVPTX target: architectures, address spaces, the intrinsic allow-list, LLVM target machines.

`Target` says what the generated IR is for: `NVPTX` for real PTX, or the
host CPU when `emulation.py` renders the same kernels to test them without
a GPU. `ALLOWED_INTRINSICS` is the list of every function the renderer may
declare: an intrinsic NVPTX cannot select aborts the whole process inside
LLVM, so anything else is refused before LLVM sees it.
"""
from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

import llvmlite.binding as llvm

TRIPLE = "nvptx64-nvidia-cuda"
DEFAULT_ARCH = "sm_80"
# Architectures LLVM 22's NVPTX backend and CUDA 13's ptxas were checked with (ptxas 13 dropped sm_70).
ARCHS = ("sm_75", "sm_80", "sm_86", "sm_89", "sm_90", "sm_100")
GLOBAL, SHARED = 1, 3            # NVPTX address spaces
WARP = 32
FORMAT_VERSION = "1"             # bump when the generated code changes meaning (part of cache keys)

# Every function the renderer may declare. Anything else in a finished module is refused.
ALLOWED_INTRINSICS = frozenset({
    "llvm.nvvm.read.ptx.sreg.tid.x", "llvm.nvvm.read.ptx.sreg.ntid.x",
    "llvm.nvvm.read.ptx.sreg.ctaid.x", "llvm.nvvm.read.ptx.sreg.nctaid.x",
    "llvm.nvvm.barrier0", "llvm.nvvm.shfl.sync.down.f32",
    "llvm.exp2.f32",
    "llvm.sqrt.f32", "llvm.sqrt.f64", "llvm.trunc.f32", "llvm.trunc.f64",
    "llvm.rint.f32", "llvm.rint.f64", "llvm.fabs.f32", "llvm.fabs.f64",
    "llvm.fma.f32", "llvm.fma.f64",
})

# emit_ptx parses, optimises and prints one module at a time
_llvm_lock = threading.Lock()


@functools.lru_cache(maxsize=None)
def target_machine(arch: str):
    """An NVPTX target machine for one architecture (one per arch for the process)."""
    if arch not in ARCHS:
        raise NotImplementedError(f"PTX for {arch} is not supported; choose one of {', '.join(ARCHS)}")
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    target = llvm.Target.from_triple(TRIPLE)
    return target.create_target_machine(cpu=arch, opt=3)


def arch_for_capability(major: int, minor: int) -> str:
    """The newest supported architecture a device of compute capability major.minor runs (PTX is forward
    compatible: the driver JIT-compiles it for the actual chip)."""
    cc = major * 10 + minor
    best = None
    for arch in ARCHS:
        if int(arch[3:]) <= cc:
            best = arch
    if best is None:
        raise NotImplementedError(f"compute capability {major}.{minor} is older than the oldest supported "
                                  f"architecture ({ARCHS[0]})")
    return best


@dataclass(frozen=True)
class Target:
    """What the generated IR is for. `NVPTX` is the real thing; `emulation.py` renders the same kernels
    for the host CPU (address space 0, special registers and barriers as calls into Python) to check
    the launch mapping without a GPU."""
    name: str
    global_space: int
    shared_space: int
    rename: tuple = ()        # (intrinsic, replacement) pairs

    @property
    def is_nvptx(self) -> bool:
        return self.name == "nvptx"


NVPTX = Target("nvptx", GLOBAL, SHARED)
