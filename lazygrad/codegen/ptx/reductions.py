"""Reductions across the threads of a block (`Strategy.BLOCK`) and across blocks (`Strategy.SPLIT`).

BLOCK: the threads of a block share the iterations of every loop inside
the output nest (`open_shared_loop`); after a reduction loop the block
combines its per-thread partial values (`block_combine`): float32 with warp
shuffles (`shfl.sync.down`) and one shared-memory step across warps, other
dtypes with a shared-memory tree. Every thread gets the result.

SPLIT: the "partial" launch reduces slices of each output's reduction
(`open_reduction`/`close_reduction`) into a scratch buffer, the "finish"
launch reduces the partial values of each output and runs the epilogue.
"""
from __future__ import annotations

from llvmlite import ir

from ..llvm_alu import F32, I32, I64, memory_type
from ..program import INDEX
from .analysis import _Nest
from .target import WARP


class BlockReductions:
    """Mixed into `_Entry` (entry.py)."""

    def open_shared_loop(self, loop_nest: _Nest, i, ins) -> None:
        """BLOCK: the threads of the block share the iterations of a loop inside the output nest."""
        r, handle = self.open_loop(self.tid, ir.Constant(I64, loop_nest.size), ir.Constant(I64, self.block), "shared")
        self.shared_loops[loop_nest.loops[0]] = handle
        self.decompose(r, loop_nest, skip_first_low=False)

    def close_shared_loop(self, loop_nest: _Nest, accs, i, ins) -> None:
        """BLOCK: after a reduction loop, combine every thread's partial values; all threads get the result."""
        self.close_loop(self.shared_loops.pop(loop_nest.loops[0]))
        for acc in accs:
            ref = self.p.instrs[acc]
            op = next(x.arg for x in self.p.instrs if x.op == "update" and x.src[0] == acc)
            slot = self.values[acc]
            combined = self.block_combine(self.b.load(slot), ref.dtype, op, self.constant(ref.arg, ref.dtype))
            self.b.store(combined, slot)

    def open_reduction(self, i, ins) -> None:
        b, red = self.b, self.an.reduction
        block = ir.Constant(I64, self.block)
        if self.phase == "finish":
            # reduce the `split` partial values of this output from the scratch buffer
            r, self.red_loop = self.open_loop(self.tid, ir.Constant(I64, self.split), block, "part")
            base = b.mul(self.out_offset, ir.Constant(I64, self.split))
            ptr = b.gep(self.fn.args[self.n_ptr - 1], [b.add(base, r)], inbounds=True)
            value = self.from_memory(b.load(ptr, align=self.scratch_dtype.itemsize), self.scratch_dtype)
            self.accumulate(red.acc, red.op, value)
            return
        if self.phase == "partial":
            start = b.add(b.mul(self.slice, block), self.tid)
            step = ir.Constant(I64, self.block * self.split)
        else:
            start, step = self.tid, block
        r, self.red_loop = self.open_loop(start, ir.Constant(I64, red.nest.size), step, "red")
        self.decompose(r, red.nest, skip_first_low=False)

    def close_reduction(self, i, ins) -> None:
        red = self.an.reduction
        self.close_loop(self.red_loop)
        dtype = self.p.instrs[red.acc].dtype
        slot = self.values[red.acc]
        identity = self.constant(self.p.instrs[red.acc].arg, dtype)
        combined = self.block_combine(self.b.load(slot), dtype, red.op, identity)
        self.b.store(combined, slot)
        if self.phase == "partial":
            def write():
                ptr = self.b.gep(self.fn.args[self.n_ptr - 1], [self.scratch_slot], inbounds=True)
                self.b.store(self.to_memory(combined, dtype), ptr, align=dtype.itemsize)
            self.when(self.b.icmp_unsigned("==", self.tid, ir.Constant(I64, 0)), write)

    # ---- block-wide combination of per-thread partial values ----
    def shared_array(self, typ, count: int):
        """A shared-memory array of `count` values of `typ`. Combines run one after another and end
        with a barrier after everyone has read the result, so one array per type serves them all
        (a kernel with many accumulators stays within the 48 KiB of static shared memory)."""
        key = (str(typ), count)
        if key in self.smem_arrays:
            return self.smem_arrays[key]
        self.smem_index += 1
        arr_t = ir.ArrayType(typ, count)
        g = ir.GlobalVariable(self.m, arr_t, f"{self.fn.name}_smem{self.smem_index}",
                              addrspace=self.target.shared_space)
        if self.target.is_nvptx:
            g.linkage = "internal"
        g.initializer = ir.Constant(arr_t, None)
        g.align = 8
        self.smem_arrays[key] = g
        return g

    def smem_ptr(self, arr, index):
        return self.b.gep(arr, [ir.Constant(I32, 0), index], inbounds=True)

    def block_combine(self, v, dtype, op: str, identity):
        """The combination of every thread's `v` in the block, returned to every thread."""
        b = self.b
        if dtype != INDEX and dtype.name == "float32" and op in ("ADD", "MAX", "MUL"):
            return self.shuffle_combine(v, dtype, op, identity)
        mem_t = memory_type(dtype)
        arr = self.shared_array(mem_t, self.block)
        tid32 = b.trunc(self.tid, I32)
        b.store(self.to_memory(v, dtype), self.smem_ptr(arr, tid32))
        self.barrier()
        half = self.block // 2
        while half >= 1:  # a tree: the first `half` threads fold in the upper half, until one value is left
            def fold(half=half):
                mine = self.from_memory(b.load(self.smem_ptr(arr, tid32)), dtype)
                other = self.from_memory(b.load(self.smem_ptr(arr, b.add(tid32, ir.Constant(I32, half)))), dtype)
                b.store(self.to_memory(self.combine(op, dtype, mine, other), dtype), self.smem_ptr(arr, tid32))
            self.when(b.icmp_unsigned("<", tid32, ir.Constant(I32, half)), fold)
            self.barrier()
            half //= 2
        result = self.from_memory(b.load(self.smem_ptr(arr, ir.Constant(I32, 0))), dtype)
        self.barrier()  # everyone has read the result before the next output reuses the array
        return result

    def shuffle_combine(self, v, dtype, op: str, identity):
        """float32: combine within each warp with shfl.sync.down, then across warps through shared memory."""
        b = self.b
        warps = self.block // WARP
        arr = self.shared_array(F32, WARP)
        tid32 = b.trunc(self.tid, I32)
        lane = b.and_(tid32, ir.Constant(I32, WARP - 1))
        warp = b.lshr(tid32, ir.Constant(I32, 5))

        def warp_reduce(x):
            offset = WARP // 2
            while offset >= 1:
                other = self._call("llvm.nvvm.shfl.sync.down.f32", F32,
                                   [ir.Constant(I32, -1), x, ir.Constant(I32, offset), ir.Constant(I32, WARP - 1)])
                x = self.combine(op, dtype, x, other)
                offset //= 2
            return x

        v = warp_reduce(v)
        if warps == 1:
            # one warp: lane 0 holds the result; hand it to every lane through shared memory
            self.when(b.icmp_unsigned("==", lane, ir.Constant(I32, 0)),
                      lambda: b.store(v, self.smem_ptr(arr, ir.Constant(I32, 0))))
            self.barrier()
            result = b.load(self.smem_ptr(arr, ir.Constant(I32, 0)))
            self.barrier()
            return result
        self.when(b.icmp_unsigned("==", lane, ir.Constant(I32, 0)), lambda: b.store(v, self.smem_ptr(arr, warp)))
        self.barrier()

        def first_warp():
            x = b.select(b.icmp_unsigned("<", lane, ir.Constant(I32, warps)),
                         b.load(self.smem_ptr(arr, b.select(b.icmp_unsigned("<", lane, ir.Constant(I32, warps)),
                                                            lane, ir.Constant(I32, 0)))), identity)
            x = warp_reduce(x)
            self.when(b.icmp_unsigned("==", lane, ir.Constant(I32, 0)),
                      lambda: b.store(x, self.smem_ptr(arr, ir.Constant(I32, 0))))
        self.when(b.icmp_unsigned("==", warp, ir.Constant(I32, 0)), first_warp)
        self.barrier()
        result = b.load(self.smem_ptr(arr, ir.Constant(I32, 0)))
        self.barrier()
        return result
