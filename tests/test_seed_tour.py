"""examples/seed_tour.py runs and prints what PyTorch prints; the seed's device snippets."""
import io
import pathlib
import re
import subprocess
import sys

import pytest

import lazygrad as lg

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def _tour_output(torch_module, functional) -> list[str]:
    sys.path.insert(0, str(EXAMPLES))
    try:
        import seed_tour
    finally:
        sys.path.pop(0)
    buffer = io.StringIO()
    seed_tour.tour(torch_module, functional, print=lambda *a, **k: print(*a, **k, file=buffer))
    return buffer.getvalue().splitlines()


def test_tour_runs_as_a_script():
    result = subprocess.run([sys.executable, str(EXAMPLES / "seed_tour.py")], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for expected in ["x.unsqueeze(0) shape: (1, 2, 2)", "x.unsqueeze(1) shape: (2, 1, 2)",
                     "torch.mm(a, a) raises: mat1 and mat2 shapes cannot be multiplied (2x3 and 2x3)",
                     "torch.matmul(a, vec) (the vector is a column): tensor([-2., -2.]) shape (2,)",
                     "torch.dot(p, q): tensor(7.) shape ()", "flattened: tensor([1., 4.]) shape (2,)",
                     "torch.arange(6).chunk(4) gives 3 chunks", "torch.numel(t): 24", "returns z itself: True",
                     "t.device: cpu", "t.sum(axis=0): tensor([5, 7, 9])",
                     "t shape (2, 3, 4) -> t.swapdims(0, 2) shape (4, 3, 2)"]:
        assert expected in out, expected


def test_tour_prints_what_pytorch_prints():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as torch_F

    import lazygrad.nn.functional as F

    def normalize(lines):
        # the module's own name appears in dtypes ("torch.float32"); lines about this machine's GPU may differ
        return [re.sub(r"\blazygrad\.", "torch.", line) for line in lines if "(this machine)" not in line]

    ours = normalize(_tour_output(lg, F))
    theirs = normalize(_tour_output(torch, torch_F))
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a == b


# ---- device (issue 4, requirement 5) ----

def test_device_attributes_and_moves():
    t = lg.tensor([1.0, 2.0])
    assert str(t.device) == "cpu" and t.device == "cpu" and t.device == lg.device("cpu")
    assert repr(t.device) == "device(type='cpu')" and t.device.type == "cpu"
    assert t.cpu() is t and t.to("cpu") is t and t.to(lg.device("cpu")) is t and not t.is_cuda
    assert t.to("cpu", lg.float64).dtype is lg.float64 and t.to(device="cpu", dtype=lg.int64).dtype is lg.int64
    for factory in (lambda: lg.zeros(2, device="cpu"), lambda: lg.ones(2, device=lg.device("cpu")),
                    lambda: lg.tensor([1], device="cpu"), lambda: lg.arange(3, device="cpu"),
                    lambda: lg.randn(2, device="cpu"), lambda: lg.full((2,), 3.0, device="cpu"),
                    lambda: lg.eye(2, device="cpu"), lambda: lg.empty(2, device="cpu")):
        assert str(factory().device) == "cpu"
    assert isinstance(lg.cuda.is_available(), bool)


@pytest.mark.skipif(lg.cuda.is_available(), reason="this machine has a usable GPU")
def test_cuda_without_a_gpu_raises_a_clear_error():
    t = lg.tensor([1.0])
    assert lg.cuda.is_available() is False and lg.cuda.device_count() == 0
    for attempt in (lambda: t.cuda(), lambda: t.to("cuda"), lambda: t.to(lg.device("cuda", 0)),
                    lambda: lg.zeros(2, device="cuda"), lambda: lg.tensor([1.0], device="cuda:0")):
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            attempt()
    assert str(lg.device("cuda")) == "cuda"  # naming a device is fine; using it is what fails
    with pytest.raises(RuntimeError, match="Expected one of cpu, cuda device type at start of device string: tpu"):
        t.to("tpu")


def test_seed_snippets_run_unchanged():
    # the seed's snippets as a learner types them, with `import lazygrad as torch`
    source = """
import lazygrad as torch
import lazygrad.nn.functional as F
x = torch.tensor([[1, 2], [3, 4]])
assert x.unsqueeze(0).shape == (1, 2, 2) and x.unsqueeze(1).shape == (2, 1, 2)
A = torch.tensor([[1., 2.], [3., 4.]])
assert torch.gather(A, 1, torch.tensor([[0], [1]])).flatten().tolist() == [1.0, 4.0]
assert torch.index_select(A, 0, torch.tensor([1])).tolist() == [[3.0, 4.0]]
assert torch.numel(A) == 4 and len(torch.arange(6).chunk(4)) == 3
assert all(abs(s - 1.0) <= 1e-6 for s in F.softmax(A, dim=0).sum(dim=0).tolist())  # torch: 0.99999994 each
assert torch.dot(torch.tensor([2., 3.]), torch.tensor([2., 1.])).item() == 7.0
assert torch.matmul(torch.ones(2, 3), torch.ones(3)).tolist() == [3.0, 3.0]
assert A.swapdims(0, 1).tolist() == [[1.0, 3.0], [2.0, 4.0]]
z = torch.zeros(2, 2)
assert z.scatter_(1, torch.tensor([[1], [0]]), 5.0) is z and z.tolist() == [[0.0, 5.0], [5.0, 0.0]]
"""
    namespace = {}
    exec(compile(source, "<seed>", "exec"), namespace)
