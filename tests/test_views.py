"""Views share values with their base, as PyTorch's views share memory (lazygrad/views.py)."""
import numpy as np
import pytest

import lazygrad
from lazygrad import nn


def test_data_fill_changes_the_parameter():
    layer = nn.Linear(2, 3)
    layer.weight.data.fill_(0.5)
    layer.bias.data.zero_()
    np.testing.assert_array_equal(layer.weight.detach().numpy(), np.full((3, 2), 0.5, np.float32))
    np.testing.assert_array_equal(layer.bias.detach().numpy(), np.zeros(3, np.float32))
    assert layer.weight.requires_grad and layer.weight.is_leaf


def test_data_init_then_training_gives_gradients_to_the_parameter():
    layer = nn.Linear(2, 1)
    layer.weight.data.normal_(0.0, 0.01)
    layer.bias.data.fill_(0.25)
    x = lazygrad.tensor([[1.0, 2.0]])
    layer(x).sum().backward()
    np.testing.assert_allclose(layer.weight.grad.numpy(), [[1.0, 2.0]])
    np.testing.assert_allclose(layer.bias.grad.numpy(), [1.0])
    assert np.abs(layer.weight.detach().numpy()).max() < 0.1


def test_writing_into_a_view_changes_the_base():
    x = lazygrad.zeros(2, 3)
    x.view(6)[0] = 5
    x.t()[2, 1] = 7
    x.reshape(3, 2)[1].add_(1)          # elements 2 and 3 of the flat order
    x[1].unsqueeze(0)[0, 0] = -1
    expected = np.zeros((2, 3), np.float32)
    expected.reshape(6)[0] = 5
    expected.T[2, 1] = 7
    expected.reshape(3, 2)[1] += 1
    expected[1][0] = -1
    np.testing.assert_array_equal(x.numpy(), expected)


def test_a_view_sees_later_writes_to_its_base():
    x = lazygrad.zeros(2, 3)
    flat, column, row, detached = x.view(-1), x[:, 1], x.t()[0], x.detach()
    x.add_(1)
    x[0, 1] = 9
    np.testing.assert_array_equal(flat.numpy(), [1, 9, 1, 1, 1, 1])
    np.testing.assert_array_equal(column.numpy(), [9, 1])
    np.testing.assert_array_equal(row.numpy(), [1, 1])
    np.testing.assert_array_equal(detached.numpy(), [[1, 9, 1], [1, 1, 1]])


def test_sibling_views_see_each_others_writes():
    x = lazygrad.arange(6.0)
    a, b = x.view(2, 3), x[2:5]
    a[0, 2] = 100        # x[2]
    b.mul_(2)            # x[2:5] *= 2
    np.testing.assert_array_equal(x.numpy(), [0, 1, 200, 6, 8, 5])
    np.testing.assert_array_equal(a.numpy(), [[0, 1, 200], [6, 8, 5]])
    np.testing.assert_array_equal(b.numpy(), [200, 6, 8])


def test_copies_are_not_views():
    x = lazygrad.zeros(2, 3)
    copies = [x.clone(), x.flip(0), x.t().reshape(6), x.t().contiguous(), x * 1]
    x.fill_(1)
    for c in copies:
        assert c.numpy().sum() == 0


def test_split_chunk_unbind_narrow_select_are_views():
    x = lazygrad.zeros(4, 2)
    top, bottom = x.chunk(2)
    first, *_ = x.unbind(0)
    top.fill_(1)
    x.narrow(0, 3, 1).fill_(3)
    first.add_(10)
    x.select(1, 1)[2] = 7
    np.testing.assert_array_equal(x.numpy(), [[11, 11], [1, 1], [0, 7], [3, 3]])
    np.testing.assert_array_equal(bottom.numpy(), [[0, 7], [3, 3]])
    assert x.split(1)[2].numpy().tolist() == [[0, 7]]


def test_gradient_flows_through_a_write_into_a_view():
    w = lazygrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = w * 2
    y[1:].mul_(w[:2])          # y = [2, 4*1, 6*2]
    y.sum().backward()
    # d/dw0 = 2 + 4 (from y1 = 2*w1*w0), d/dw1 = 2*w0 + 6*... : y1 = 2 w1 w0, y2 = 2 w2 w1
    np.testing.assert_allclose(w.grad.numpy(), [2 + 2 * 2.0, 2 * 1.0 + 2 * 3.0, 2 * 2.0])


def test_in_place_on_a_view_of_a_leaf_requiring_grad_raises():
    w = lazygrad.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="view of a leaf Variable"):
        w[0:2].add_(1)
    with lazygrad.no_grad():
        w[0:2].add_(1)
    np.testing.assert_array_equal(w.detach().numpy(), [2, 2, 1])


def test_writing_a_constant_into_a_leaf_keeps_its_gradient_its_own():
    # the leaf's new value is a constant node, the same node another tensor holds:
    # its gradient must count only the leaf's own uses
    w = lazygrad.zeros(3, requires_grad=True)
    with lazygrad.no_grad():
        w.fill_(2.0)
    c = lazygrad.full((3,), 2.0)
    (w * c * c).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [4, 4, 4])
    v = lazygrad.zeros(3, requires_grad=True)
    other = lazygrad.tensor([1.0, 2.0, 3.0])
    with lazygrad.no_grad():
        v.copy_(other)
    (v * other).sum().backward()
    np.testing.assert_array_equal(v.grad.numpy(), [1, 2, 3])


def test_writing_through_a_slice_of_an_expanded_tensor_writes_the_shared_row():
    # the two rows of the expanded tensor are one row of memory: writing one changes both
    for dtype in (lazygrad.float32, lazygrad.int64):
        x = lazygrad.zeros(3, dtype=dtype)
        wide = x.expand(2, 3)
        wide[1].add_(2)
        np.testing.assert_array_equal(x.numpy(), [2, 2, 2])
        np.testing.assert_array_equal(wide.numpy(), [[2, 2, 2], [2, 2, 2]])
        wide[0, 1] = 7
        np.testing.assert_array_equal(x.numpy(), [2, 7, 2])


def test_matches_torch_when_installed():
    torch = pytest.importorskip("torch")

    def program(lib):
        x = lib.arange(12.0).reshape(3, 4)
        v, col, d = x.view(4, 3), x[:, 2], x.detach()
        x.t()[1].mul_(-1)
        v[3] += 100
        col.sub_(0.5)
        d[0, 0] = 42
        return [t.numpy().copy() for t in (x, v, col, d)]

    for ours, theirs in zip(program(lazygrad), program(torch)):
        np.testing.assert_array_equal(ours, theirs)


def test_init_functions_on_data_and_a_kept_data_view_follow_the_optimizer():
    layer = nn.Linear(3, 2)
    nn.init.constant_(layer.weight.data, 0.25)
    np.testing.assert_array_equal(layer.weight.detach().numpy(), np.full((2, 3), 0.25, np.float32))
    kept = layer.weight.data
    optimizer = lazygrad.optim.SGD(layer.parameters(), lr=0.5)
    layer(lazygrad.ones(1, 3)).sum().backward()
    optimizer.step()
    np.testing.assert_allclose(kept.numpy(), np.full((2, 3), 0.25 - 0.5, np.float32))


def test_integer_and_bool_results_do_not_require_grad():
    w = lazygrad.ones(3, requires_grad=True)
    assert not (w > 0).requires_grad
    assert not w.argmax().requires_grad
    assert not (w > 0).float().requires_grad
    assert not w.long().requires_grad
    assert w.floor().requires_grad and w.max(0).values.requires_grad
    assert not w.max(0).indices.requires_grad


def test_grad_fn_names_match_pytorch():
    F = nn.functional
    x = lazygrad.randn(3, 2, requires_grad=True)
    w = lazygrad.randn(2, 2, requires_grad=True)
    model = nn.Linear(2, 1)
    cases = {
        "SumBackward0": x.sum(), "MeanBackward1": x.mean(axis=0), "MaxBackward0": x.max(0).values,
        "MmBackward0": x @ w, "AddmmBackward0": F.linear(x, w, lazygrad.zeros(2)),
        "MseLossBackward0": nn.MSELoss()(model(x), lazygrad.zeros(3, 1)),
        "NllLossBackward0": F.cross_entropy(x, lazygrad.tensor([0, 1, 1])),
        "SelectBackward0": x[0], "TBackward0": x.t(), "ViewBackward0": x.view(6),
        "DivBackward0": x / 2, "MulBackward0": x * w[0], "SubBackward0": x - w[0], "ReluBackward0": x.relu(),
        "LogSoftmaxBackward0": x.log_softmax(1),
    }
    for name, t in cases.items():
        assert t.grad_fn.name() == name
        assert f"grad_fn=<{name}>" in repr(t)
    assert x.grad_fn is None and x.detach().grad_fn is None
    y = x * 2
    y.add_(1)
    assert y.grad_fn.name() == "AddBackward0"   # an in-place op gives the tensor a new grad_fn
    torch = pytest.importorskip("torch")
    tx = torch.tensor(x.detach().numpy(), requires_grad=True)
    assert torch.nn.functional.cross_entropy(tx, torch.tensor([0, 1, 1])).grad_fn.name() == "NllLossBackward0"


def test_transpose_and_squeeze_of_a_0d_tensor_are_views():
    # (found by tests/test_views_fuzz.py: they returned unlinked aliases, as PyTorch's are views)
    x = lazygrad.tensor(1.0)
    swapped, squeezed = x.transpose(0, -1), x.squeeze(0)
    x.zero_()
    assert swapped.item() == 0 and squeezed.item() == 0
    swapped.fill_(3)
    assert x.item() == 3 and squeezed.item() == 3
    squeezed.add_(1)
    assert x.item() == 4 and swapped.item() == 4


def test_empty_expanded_in_place_self_copy_and_flip_of_no_dims_match_pytorch():
    x = lazygrad.arange(3.0)
    x.narrow(0, 0, 0).expand(2, 0).add_(1.0)        # nothing to write: no overlap error
    e = x[:1].expand(1, 1, 2)
    e.copy_(e)                                       # the same memory: a no-op
    flipped = x.flip(())                             # no dims: a copy
    x.add_(1)
    np.testing.assert_array_equal(flipped.numpy(), [0, 1, 2])
    np.testing.assert_array_equal(x.numpy(), [1, 2, 3])
    with pytest.raises(TypeError):
        x.flip()
