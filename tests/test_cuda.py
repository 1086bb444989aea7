"""Tensors on "cuda": ops, a backward pass and an optimizer step, compared with the CPU.

Where a GPU works, these tests run on it (real driver, PTX, launches). Everywhere else they
run on an *emulated* GPU: the same realiser, device plumbing and runtime launch code
(lazygrad/runtime/cuda.py: flags, scratch buffers, grid sizes, stream-ordered frees), with
host memory standing in for device memory and each kernel rendered by the PTX renderer for
the host (lazygrad.codegen.ptx.emulation: one OS thread per GPU thread, real barriers and
warp shuffles). What the emulation cannot check is checked elsewhere: the PTX text itself by
ptxas (tests/test_ptx.py), the driver calls only on a real GPU (bench/gpu_check.py runs this
file there).
"""
import ctypes
import gc
import types

import numpy as np
import pytest

import lazygrad as lg
from lazygrad import devices as lg_devices
from lazygrad.codegen import ptx
from lazygrad.runtime import cuda as runtime
from lazygrad.runtime import realize as realize_mod

RNG = np.random.default_rng(0)
REAL_GPU = lg.cuda.is_available()


# ---- the emulated GPU (only where there is no real one) ----

class _HostMemoryDriver:
    """The driver calls the runtime makes for memory, served from host memory."""

    def __init__(self):
        self.blocks = {}

    def call(self, name, *args):
        if name == "cuMemAlloc_v2":
            out, size = args
            block = ctypes.create_string_buffer(int(size))
            self.blocks[ctypes.addressof(block)] = block
            out._obj.value = ctypes.addressof(block)
        elif name == "cuMemFree_v2":
            self.blocks.pop(args[0], None)
        elif name in ("cuMemcpyHtoD_v2", "cuMemcpyDtoH_v2", "cuMemcpyDtoD_v2"):
            ctypes.memmove(args[0], args[1], args[2])
        elif name == "cuMemsetD8_v2":
            ctypes.memset(args[0], args[1], args[2])
        elif name not in ("cuCtxSetCurrent", "cuCtxSynchronize"):
            raise NotImplementedError(f"the emulated GPU has no {name}")


def _emulated_compile(program):
    from lazygrad.codegen.ptx import emulation
    kernel = emulation.compile_program(program, ptx.Options(threads=32, sm_count=2))
    rendered = types.SimpleNamespace(name=f"emulated_{id(kernel)}", llvm_ir="", ptx="", arch="emulated",
                                     strategy=kernel.strategy, stages=kernel.stages, scratch=kernel.scratch)
    return runtime.CudaKernel(program, rendered, None, kernel.fns)


def _emulated_launch(function, grid, block, values):
    from lazygrad.codegen.ptx import emulation
    emulation._run_grid(function, [v.value for v in values], block, min(grid, 2))


@pytest.fixture(scope="module")
def gpu():
    """"cuda": the real GPU, or an emulated one installed for this module."""
    if REAL_GPU:
        yield "cuda"
        return
    fake_device = types.SimpleNamespace(name="emulated GPU", capability=(8, 0), sm_count=2, arch="sm_80",
                                        total_memory=1 << 30, make_current=lambda: None, synchronize=lambda: None)
    driver = _HostMemoryDriver()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runtime, "driver", lambda: driver)
        mp.setattr(runtime, "current", lambda: fake_device)
        mp.setattr(runtime, "pool", runtime.DevicePool())
        mp.setattr(runtime, "compile_program", _emulated_compile)
        mp.setattr(runtime, "launch_function", _emulated_launch)
        mp.setattr(lg.cuda, "_driver_status", lambda: None)
        try:
            yield "cuda"
        finally:
            gc.collect()  # emulated device arrays go back to the emulated pool
            for key in [k for k in realize_mod._plans if isinstance(k, tuple) and k and k[0] == "cuda"]:
                del realize_mod._plans[key]
            lg_devices.state.cuda_used = False


def on(arr, device):
    return lg.tensor(arr, device=device)


def both(fn, *arrays):
    """fn applied to CPU tensors and to GPU tensors of the same data: (cpu result, gpu result)."""
    return fn(*[on(a, "cpu") for a in arrays]), fn(*[on(a, "cuda") for a in arrays])


def check(cpu, gpu_result, rtol=1e-5, atol=1e-6):
    assert gpu_result.device.type == "cuda", gpu_result.device
    assert gpu_result.dtype is cpu.dtype
    a, b = cpu.numpy(), gpu_result.numpy()
    assert a.shape == b.shape
    if a.dtype.kind in "biu":
        np.testing.assert_array_equal(b, a)
    else:
        np.testing.assert_allclose(b, a, rtol=rtol, atol=atol, equal_nan=True)


# ---- the device itself ----

def test_factories_and_transfers(gpu):
    x = lg.ones(2, 3, device=gpu)
    assert x.device == lg.device("cuda", 0) and x.is_cuda and str(x.device) == "cuda:0"
    np.testing.assert_array_equal(x.numpy(), np.ones((2, 3), np.float32))
    assert "device='cuda:0'" in repr(x)
    for t in (lg.zeros(4, device=gpu), lg.full((2, 2), 7, device=gpu), lg.arange(5, device=gpu),
              lg.eye(3, device=gpu), lg.rand(3, device=gpu), lg.randn(2, 2, device=gpu),
              lg.tensor([[1, 2], [3, 4]], device=gpu), lg.zeros_like(x), lg.ones_like(x)):
        assert t.device.type == "cuda"
    np.testing.assert_array_equal(lg.full((2, 2), 7, device=gpu).numpy(), np.full((2, 2), 7))
    a = RNG.standard_normal((3, 5)).astype(np.float32)
    t = lg.tensor(a).cuda()
    assert t.is_cuda
    back = t.cpu()
    assert back.device.type == "cpu" and not back.is_cuda
    np.testing.assert_array_equal(back.numpy(), a)
    np.testing.assert_array_equal(lg.tensor(a).to("cuda").to("cpu").numpy(), a)
    assert lg.tensor(a).to(t).is_cuda                   # to(other) takes its device too
    assert t.sum().item() == pytest.approx(float(a.sum()), rel=1e-5)
    # a constant is the same node on every device: realising it on one must not move the other
    cpu_ones = lg.ones(3)
    cpu_ones.numpy()
    assert (lg.ones(3, device=gpu) + 1).is_cuda and (cpu_ones + 1).device.type == "cpu"


def test_mixing_devices_raises_like_pytorch(gpu):
    x, y = lg.ones(3, device=gpu), lg.tensor([1.0, 2.0, 3.0])
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device, but found at least "
                                           "two devices, cuda:0 and cpu!"):
        x + y
    with pytest.raises(RuntimeError, match="same device"):
        lg.randn(2, 3) @ lg.ones(3, 2, device=gpu)
    # Python numbers and 0-d CPU tensors combine with GPU tensors, as in PyTorch. (Unlike PyTorch, so
    # does a lazy constant like lg.ones(3): lazygrad's constants belong to no device.)
    z = x * 2 + lg.tensor(1.5)
    assert z.is_cuda
    np.testing.assert_allclose(z.numpy(), np.full(3, 3.5, np.float32))


# ---- ops against the CPU ----

UNARY = {
    "neg": lambda t: -t, "exp": lambda t: t.exp(), "log": lambda t: (t.abs() + 0.1).log(),
    "sqrt": lambda t: t.abs().sqrt(), "sin": lambda t: t.sin(), "cos": lambda t: t.cos(),
    "tanh": lambda t: t.tanh(), "sigmoid": lambda t: t.sigmoid(), "relu": lambda t: t.relu(),
    "abs": lambda t: t.abs(), "floor": lambda t: t.floor(), "round": lambda t: t.round(),
    "reciprocal": lambda t: (t.abs() + 0.5).reciprocal(), "exp2": lambda t: t.exp2(),
    "log2": lambda t: (t.abs() + 0.1).log2(), "pow": lambda t: t.abs() ** 1.7,
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary(gpu, name, dtype):
    a = RNG.uniform(-4, 4, (3, 7)).astype(dtype)
    cpu, out = both(UNARY[name], a)
    # the GPU's float32 exp/log/sin are the hardware approximations (a few ulp)
    check(cpu, out, rtol=2e-5 if dtype == np.float32 else 1e-12, atol=2e-6 if dtype == np.float32 else 1e-12)


BINARY = {
    "add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y,
    "div": lambda x, y: x / (y.abs() + 1), "maximum": lambda x, y: x.maximum(y),
    "minimum": lambda x, y: x.minimum(y), "lt": lambda x, y: x < y, "eq": lambda x, y: x == y.round(),
    "where": lambda x, y: lg.where(x > 0, x, y), "fmod": lambda x, y: x.fmod(y.abs() + 1),
    "remainder": lambda x, y: x.remainder(y.abs() + 1),
}


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_with_broadcast_and_transpose(gpu, name):
    a = RNG.uniform(-3, 3, (4, 5)).astype(np.float32)
    b = RNG.uniform(-3, 3, (5, 1)).astype(np.float32)
    cpu, out = both(lambda x, y: BINARY[name](x.T, y), a, b)
    check(cpu, out)


def test_integer_and_bool_ops(gpu):
    a = RNG.integers(-20, 20, (3, 4))
    b = RNG.integers(1, 6, (3, 4))
    for fn in (lambda x, y: x // y, lambda x, y: x % y, lambda x, y: x * y - x, lambda x, y: (x > y) & (x < 5),
               lambda x, y: x.float() / y, lambda x, y: (x.int() + y.int()).long()):
        cpu, out = both(fn, a, b)
        check(cpu, out)


@pytest.mark.parametrize("case", ["sum_dim", "sum_all", "max_dim", "mean", "argmax", "var", "amax_cols",
                                  "softmax", "log_softmax", "bool_sum", "double_sum"])
def test_reductions(gpu, case):
    import lazygrad.nn.functional as F
    fns = {
        "sum_dim": lambda t: t.sum(1), "sum_all": lambda t: t.sum(), "max_dim": lambda t: t.max(1).values,
        "mean": lambda t: t.mean(0), "argmax": lambda t: t.argmax(1), "var": lambda t: t.var(1),
        "amax_cols": lambda t: t.amax(0), "softmax": lambda t: F.softmax(t, dim=1),
        "log_softmax": lambda t: F.log_softmax(t, dim=1), "bool_sum": lambda t: (t > 0).sum(1),
        "double_sum": lambda t: t.double().sum(1),
    }
    a = RNG.standard_normal((6, 40)).astype(np.float32)
    cpu, out = both(fns[case], a)
    check(cpu, out, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("shape", [(5, 7, 3), (2, 300, 2)])
def test_matmul(gpu, shape):
    m, k, n = shape
    a = RNG.standard_normal((m, k)).astype(np.float32)
    b = RNG.standard_normal((k, n)).astype(np.float32)
    cpu, out = both(lambda x, y: x @ y, a, b)
    check(cpu, out, rtol=1e-4, atol=1e-4)


def test_gather_index_select_scatter(gpu):
    a = RNG.standard_normal((4, 5)).astype(np.float32)
    idx = RNG.integers(0, 5, (4, 3))
    rows = np.array([3, 0, 0, 2])
    src = RNG.standard_normal((3, 5)).astype(np.float32)
    tgt = RNG.integers(0, 4, (3, 5))
    cpu, out = both(lambda x, i: x.gather(1, i), a, idx)
    check(cpu, out)
    cpu, out = both(lambda x, i: x.index_select(0, i), a, rows)
    check(cpu, out)
    cpu, out = both(lambda x, i, s: x.scatter_add(0, i, s), a, tgt, src)
    check(cpu, out, rtol=1e-5, atol=1e-6)
    distinct = np.array([[0, 1, 2, 3, 0], [1, 2, 3, 0, 1], [2, 3, 0, 1, 2]])  # no place written twice
    cpu, out = both(lambda x, i, s: x.scatter(0, i, s), a, distinct, src)
    check(cpu, out)
    with pytest.raises(IndexError, match="out of bounds"):
        on(a, gpu).gather(1, on(np.array([[0], [5], [1], [2]]), gpu)).numpy()


# ---- autograd and optimisation on the GPU ----

def _mlp_loss(x, w1, w2):
    return ((x @ w1).relu() @ w2).sigmoid().mean()


def test_backward_on_gpu(gpu):
    x = RNG.standard_normal((8, 5)).astype(np.float32)
    w1 = RNG.standard_normal((5, 6)).astype(np.float32)
    w2 = RNG.standard_normal((6, 1)).astype(np.float32)
    grads = {}
    for dev in ("cpu", gpu):
        p1 = lg.tensor(w1, device=dev, requires_grad=True)
        p2 = lg.tensor(w2, device=dev, requires_grad=True)
        loss = _mlp_loss(lg.tensor(x, device=dev), p1, p2)
        loss.backward()
        assert p1.grad is not None and p1.grad.device.type == dev
        grads[dev] = (loss.item(), p1.grad.numpy(), p2.grad.numpy())
    np.testing.assert_allclose(grads[gpu][0], grads["cpu"][0], rtol=1e-5)
    for g_gpu, g_cpu in zip(grads[gpu][1:], grads["cpu"][1:]):
        np.testing.assert_allclose(g_gpu, g_cpu, rtol=1e-4, atol=1e-6)


def test_optimizer_step_on_gpu(gpu):
    x = RNG.standard_normal((8, 5)).astype(np.float32)
    w1 = RNG.standard_normal((5, 6)).astype(np.float32)
    w2 = RNG.standard_normal((6, 1)).astype(np.float32)
    results = {}
    for dev in ("cpu", gpu):
        params = [lg.tensor(w1, device=dev, requires_grad=True), lg.tensor(w2, device=dev, requires_grad=True)]
        opt = lg.optim.SGD(params, lr=0.1)
        for _ in range(3):
            opt.zero_grad()
            _mlp_loss(lg.tensor(x, device=dev), *params).backward()
            opt.step()
        assert all(p.device.type == dev for p in params)
        results[dev] = [p.detach().numpy() for p in params]
    for a, b in zip(results[gpu], results["cpu"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_indexing_and_losses(gpu):
    import lazygrad.nn.functional as F
    a = RNG.standard_normal((5, 4)).astype(np.float32)
    for fn in (lambda t: t[1:4, ::2], lambda t: t[[0, 2, 2]], lambda t: t[lg.tensor([4, 0])], lambda t: t[:, 1],
               lambda t: t.cumsum(1)):
        cpu, out = both(fn, a)
        check(cpu, out, rtol=1e-5, atol=1e-6)
    cpu, out = both(lambda t, y: F.mse_loss(t, y), a, a[::-1].copy())
    check(cpu, out, rtol=1e-5, atol=1e-6)


def test_cross_entropy(gpu):
    import lazygrad.nn.functional as F
    a = RNG.standard_normal((5, 4)).astype(np.float32)
    labels = np.array([0, 3, 1, 1, 2])
    cpu, out = both(lambda t, y: F.cross_entropy(t, y), a, labels)
    check(cpu, out, rtol=1e-5, atol=1e-6)


def test_boolean_mask_indexing(gpu):
    a = RNG.standard_normal((5, 4)).astype(np.float32)
    cpu, out = both(lambda t: t[t > 0.5], a)
    check(cpu, out)


def test_module_to_gpu(gpu):
    model = lg.nn.Linear(3, 2).to("cuda")
    assert all(p.is_cuda for p in model.parameters())


def test_adam_step_on_gpu(gpu):
    p = lg.tensor(RNG.standard_normal(4).astype(np.float32), device=gpu, requires_grad=True)
    opt = lg.optim.Adam([p], lr=0.1)
    (p * p).sum().backward()
    opt.step()
    assert p.is_cuda
