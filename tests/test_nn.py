"""lazygrad.nn: Module registration, Parameter, layers, functional ops and losses (vs NumPy and PyTorch)."""
import math
import pickle

import numpy as np
import pytest

import lazygrad
import lazygrad.nn.functional as F
from lazygrad import nn
from lazygrad.ir.ops import Op

from gradcheck import gradcheck

rng = np.random.default_rng(7)


# ---- Module and Parameter ----

def test_parameter_is_a_leaf_tensor_requiring_grad():
    p = nn.Parameter(lazygrad.randn(3, 1))
    assert isinstance(p, lazygrad.Tensor) and isinstance(p, nn.Parameter)
    assert p.requires_grad and p.is_leaf and p.grad is None
    assert p.shape == (3, 1) and p.dtype is lazygrad.float32
    assert repr(p).startswith("Parameter containing:")
    frozen = nn.Parameter(lazygrad.ones(2), requires_grad=False)
    assert not frozen.requires_grad


def test_parameter_does_not_share_its_node_with_its_source():
    source = lazygrad.tensor([1.0, 2.0])
    p = nn.Parameter(source)
    assert p._node is not source._node
    (p * source).sum().backward()
    np.testing.assert_allclose(p.grad.numpy(), [1.0, 2.0])


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(lazygrad.ones(1))
        self.body = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2, bias=False))
        self.head = nn.Linear(2, 1)
        self.note = "not registered"

    def forward(self, x):
        return self.head(self.body(x)) * self.scale


def test_attribute_assignment_registers_in_order_with_dotted_names():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["scale", "body.0.weight", "body.0.bias", "body.2.weight", "head.weight", "head.bias"]
    assert len(list(net.parameters())) == 6
    assert [type(m).__name__ for m in net.children()] == ["Sequential", "Linear"]
    assert [type(m).__name__ for m in net.modules()] == ["Net", "Sequential", "Linear", "Tanh", "Linear", "Linear"]
    assert net.note == "not registered"
    assert net.body[0].weight.shape == (3, 4)
    with pytest.raises(AttributeError, match="has no attribute 'missing'"):
        net.missing
    with pytest.raises(TypeError, match="cannot assign"):
        net.scale = lazygrad.ones(1)


def test_sequential_names_and_indexing():
    seq = nn.Sequential(nn.Linear(7, 12), nn.ReLU(), nn.Linear(12, 1))
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert len(seq) == 3 and isinstance(seq[1], nn.ReLU) and isinstance(seq[-1], nn.Linear)
    assert len(seq[:2]) == 2
    assert "(0): Linear(in_features=7, out_features=12, bias=True)" in repr(seq)


def test_call_runs_forward_and_missing_forward_raises():
    net = Net()
    out = net(lazygrad.randn(5, 4))
    assert out.shape == (5, 1) and out.requires_grad

    class NoForward(nn.Module):
        pass
    with pytest.raises(NotImplementedError, match='missing the required "forward"'):
        NoForward()(1)


def test_train_eval_and_zero_grad():
    net = Net()
    assert net.training and net.body.training
    net.eval()
    assert not net.training and not net.body[0].training
    net.train()
    assert net.head.training
    net(lazygrad.randn(2, 4)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_state_dict_round_trip_and_errors():
    a, b = Net(), Net()
    state = a.state_dict()
    assert list(state) == [n for n, _ in a.named_parameters()]
    assert not state["head.weight"].requires_grad
    b.load_state_dict(state)
    for (_, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(pa.detach().numpy(), pb.detach().numpy())
    assert b.head.weight.requires_grad and b.head.weight.is_leaf
    x = lazygrad.randn(3, 4)
    np.testing.assert_allclose(a(x).detach().numpy(), b(x).detach().numpy())
    del state["scale"]
    with pytest.raises(RuntimeError, match='Missing key\\(s\\) in state_dict: "scale"'):
        b.load_state_dict(state)
    state["scale"] = lazygrad.ones(2)
    with pytest.raises(RuntimeError, match="size mismatch for scale"):
        b.load_state_dict(state)


def test_module_double_converts_parameters_in_place():
    lin = nn.Linear(3, 2)
    weight = lin.weight
    lin.double()
    assert lin.weight is weight and weight.dtype is lazygrad.float64 and weight.requires_grad
    assert lin(lazygrad.randn(4, 3, dtype=lazygrad.float64)).dtype is lazygrad.float64


def test_parameter_pickles():
    p = nn.Parameter(lazygrad.tensor([1.0, 2.0]))
    q = pickle.loads(pickle.dumps(p))
    assert isinstance(q, nn.Parameter) and q.requires_grad
    np.testing.assert_array_equal(q.detach().numpy(), [1.0, 2.0])


# ---- Linear ----

def test_linear_init_bounds_and_forward():
    lazygrad.manual_seed(0)
    lin = nn.Linear(16, 5)
    w, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    bound = 1 / math.sqrt(16)
    assert w.shape == (5, 16) and b.shape == (5,)
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert w.std() > bound / 4  # really spread over the interval
    x = rng.standard_normal((3, 16)).astype(np.float32)
    np.testing.assert_allclose(lin(lazygrad.tensor(x)).detach().numpy(), x @ w.T + b, rtol=1e-5, atol=1e-6)
    assert nn.Linear(3, 2, bias=False).bias is None


def test_linear_shape_error_names_both_shapes():
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 4x5\)"):
        nn.Linear(4, 5)(lazygrad.randn(2, 3))


# ---- functional ----

def test_activations_match_numpy():
    x = rng.uniform(-4, 4, (3, 5)).astype(np.float32)
    t = lazygrad.tensor(x)
    np.testing.assert_allclose(F.relu(t).numpy(), np.maximum(x, 0))
    np.testing.assert_allclose(F.sigmoid(t).numpy(), 1 / (1 + np.exp(-x)), rtol=1e-5)
    np.testing.assert_allclose(F.tanh(t).numpy(), np.tanh(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(nn.ReLU()(t).numpy(), np.maximum(x, 0))
    np.testing.assert_allclose(nn.Sigmoid()(t).numpy(), 1 / (1 + np.exp(-x)), rtol=1e-5)
    np.testing.assert_allclose(nn.Tanh()(t).numpy(), np.tanh(x), rtol=1e-5, atol=1e-6)


def _np_log_softmax(x, axis):
    z = x - x.max(axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis, keepdims=True))


def test_softmax_and_log_softmax_are_stable():
    x = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, 0.0, 1000.0]], dtype=np.float32)
    s = F.softmax(lazygrad.tensor(x), dim=1).numpy()
    ls = F.log_softmax(lazygrad.tensor(x), dim=1).numpy()
    assert np.isfinite(s).all() and np.isfinite(ls).all()
    np.testing.assert_allclose(ls, _np_log_softmax(x.astype(np.float64), 1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s, np.exp(_np_log_softmax(x.astype(np.float64), 1)), rtol=1e-5, atol=1e-7)
    y = rng.standard_normal((2, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(F.softmax(lazygrad.tensor(y), dim=0).numpy().sum(0), np.ones((3, 4)), rtol=1e-6)


def test_softmax_gradients():
    gradcheck(lambda x: F.softmax(x, dim=1), rng.standard_normal((3, 4)))
    gradcheck(lambda x: F.log_softmax(x, dim=0), rng.standard_normal((4, 2)))


def test_mse_and_l1_reductions():
    a = rng.standard_normal((4, 3)).astype(np.float32)
    b = rng.standard_normal((4, 3)).astype(np.float32)
    ta, tb = lazygrad.tensor(a), lazygrad.tensor(b)
    np.testing.assert_allclose(F.mse_loss(ta, tb).item(), ((a - b) ** 2).mean(), rtol=1e-5)
    np.testing.assert_allclose(F.mse_loss(ta, tb, reduction="sum").item(), ((a - b) ** 2).sum(), rtol=1e-5)
    np.testing.assert_allclose(F.mse_loss(ta, tb, reduction="none").numpy(), (a - b) ** 2, rtol=1e-5)
    np.testing.assert_allclose(F.l1_loss(ta, tb).item(), np.abs(a - b).mean(), rtol=1e-5)
    np.testing.assert_allclose(nn.L1Loss(reduction="sum")(ta, tb).item(), np.abs(a - b).sum(), rtol=1e-5)
    np.testing.assert_allclose(nn.MSELoss()(ta, tb).item(), ((a - b) ** 2).mean(), rtol=1e-5)
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        F.mse_loss(ta, tb, reduction="avg")
    gradcheck(lambda x, y: F.mse_loss(x, y), a.astype(np.float64), b.astype(np.float64))
    gradcheck(lambda x, y: F.l1_loss(x, y, reduction="sum"), a.astype(np.float64), b.astype(np.float64))


def test_l1_gradient_is_zero_where_input_equals_target():
    x = lazygrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    F.l1_loss(x, lazygrad.tensor([1.0, 0.0, 5.0]), reduction="sum").backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 1.0, -1.0])


def _np_cross_entropy(logits, target, weight=None):
    lp = _np_log_softmax(logits.astype(np.float64), 1)
    w = np.ones(logits.shape[1]) if weight is None else weight
    picked = -lp[np.arange(len(target)), target] * w[target]
    return picked.sum() / w[target].sum(), picked


def test_cross_entropy_matches_numpy():
    logits = rng.standard_normal((6, 4)).astype(np.float32)
    target = np.array([0, 3, 1, 1, 2, 3])
    want, per_sample = _np_cross_entropy(logits, target)
    got = F.cross_entropy(lazygrad.tensor(logits), lazygrad.tensor(target))
    np.testing.assert_allclose(got.item(), want, rtol=1e-5)
    np.testing.assert_allclose(nn.CrossEntropyLoss(reduction="none")(lazygrad.tensor(logits),
                                                                     lazygrad.tensor(target)).numpy(),
                               per_sample, rtol=1e-5)
    weight = np.array([1.0, 2.0, 0.5, 3.0], dtype=np.float32)
    want_w, _ = _np_cross_entropy(logits, target, weight.astype(np.float64))
    got_w = F.cross_entropy(lazygrad.tensor(logits), lazygrad.tensor(target), weight=lazygrad.tensor(weight))
    np.testing.assert_allclose(got_w.item(), want_w, rtol=1e-5)
    gradcheck(lambda x: F.cross_entropy(x, lazygrad.tensor(target)), logits.astype(np.float64))


def test_cross_entropy_ignore_index_and_errors():
    logits = rng.standard_normal((4, 3)).astype(np.float32)
    target = np.array([2, -100, 0, 1])
    keep = target != -100
    want, _ = _np_cross_entropy(logits[keep], target[keep])
    np.testing.assert_allclose(F.cross_entropy(lazygrad.tensor(logits), lazygrad.tensor(target)).item(), want,
                               rtol=1e-5)
    with pytest.raises(IndexError, match="Target 3 is out of bounds"):
        F.cross_entropy(lazygrad.tensor(logits), lazygrad.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="Expected input batch_size \\(4\\) to match target batch_size \\(2\\)"):
        F.cross_entropy(lazygrad.tensor(logits), lazygrad.tensor([0, 1]))


def test_cross_entropy_against_torch():
    torch = pytest.importorskip("torch")
    logits = rng.standard_normal((5, 4, 3)).astype(np.float32)   # (N, C, d1)
    target = rng.integers(0, 4, (5, 3))
    target[0, 0] = 1
    for kwargs in ({}, {"label_smoothing": 0.1}, {"reduction": "sum"}, {"ignore_index": 1},
                   {"weight": [1.0, 2.0, 0.5, 1.5], "label_smoothing": 0.2}):
        ours_in = lazygrad.tensor(logits, requires_grad=True)
        theirs_in = torch.tensor(logits, requires_grad=True)
        ours_kw = {k: lazygrad.tensor(v) if k == "weight" else v for k, v in kwargs.items()}
        theirs_kw = {k: torch.tensor(v) if k == "weight" else v for k, v in kwargs.items()}
        ours = F.cross_entropy(ours_in, lazygrad.tensor(target), **ours_kw)
        theirs = torch.nn.functional.cross_entropy(theirs_in, torch.tensor(target), **theirs_kw)
        ours.backward()
        theirs.backward()
        np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-5, err_msg=str(kwargs))
        np.testing.assert_allclose(ours_in.grad.numpy(), theirs_in.grad.numpy(), rtol=1e-4, atol=1e-6,
                                   err_msg=str(kwargs))


def test_cross_entropy_with_probabilities_and_nll_loss():
    logits = rng.standard_normal((3, 4)).astype(np.float32)
    probs = rng.uniform(0, 1, (3, 4)).astype(np.float32)
    probs /= probs.sum(1, keepdims=True)
    lp = _np_log_softmax(logits.astype(np.float64), 1)
    got = F.cross_entropy(lazygrad.tensor(logits), lazygrad.tensor(probs)).item()
    np.testing.assert_allclose(got, -(probs * lp).sum(1).mean(), rtol=1e-5)
    target = np.array([1, 0, 3])
    nll = nn.NLLLoss()(F.log_softmax(lazygrad.tensor(logits), 1), lazygrad.tensor(target)).item()
    np.testing.assert_allclose(nll, -lp[np.arange(3), target].mean(), rtol=1e-5)


def test_functional_ops_build_graphs_without_running_anything():
    x = lazygrad.randn(4, 3, requires_grad=True)
    loss = F.cross_entropy(F.relu(x), lazygrad.tensor([0, 1, 2, 0]))
    assert loss._node.realized is None and loss._node.op is not Op.BUFFER
