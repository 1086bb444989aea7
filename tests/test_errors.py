"""Bad input raises a Python exception naming the operation and the shapes (PyTorch's wording)."""
import numpy as np
import pytest

import lazygrad as lg


def test_broadcast_mismatch():
    with pytest.raises(RuntimeError, match=r"The size of tensor a \(3\) must match the size of tensor b \(4\) "
                                           r"at non-singleton dimension 1"):
        lg.zeros(2, 3) + lg.zeros(2, 4)


def test_dim_out_of_range():
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)"):
        lg.zeros(2, 3).sum(2)
    with pytest.raises(IndexError, match="Dimension out of range"):
        lg.zeros(2, 3).unsqueeze(4)
    with pytest.raises(IndexError, match="Dimension out of range"):
        lg.zeros(2, 3).transpose(0, -3)


def test_reshape_to_the_wrong_size():
    with pytest.raises(RuntimeError, match=r"shape '\[4, 2\]' is invalid for input of size 6"):
        lg.zeros(2, 3).reshape(4, 2)
    with pytest.raises(RuntimeError, match="only one dimension can be inferred"):
        lg.zeros(2, 3).reshape(-1, -1)


def test_wrong_dtype_for_an_op():
    with pytest.raises(RuntimeError, match=r"mean\(\): could not infer output dtype.*Got: Long"):
        lg.tensor([1, 2]).mean()
    with pytest.raises(RuntimeError, match="Negation, the `-` operator, on a bool tensor is not supported"):
        -lg.tensor([True])
    with pytest.raises(RuntimeError, match="only Tensors of floating point dtype can require gradients"):
        lg.tensor([1, 2]).requires_grad_()


def test_expand_and_index_errors():
    with pytest.raises(RuntimeError, match=r"The expanded size of the tensor \(4\) must match the existing size \(3\)"):
        lg.zeros(3).expand(2, 4)
    with pytest.raises(IndexError, match="index 5 is out of bounds for dimension 0 with size 3"):
        lg.zeros(3)[5]
    with pytest.raises(IndexError, match="too many indices for tensor of dimension 1"):
        lg.zeros(3)[0, 0]
    with pytest.raises(ValueError, match="step must be greater than zero"):
        lg.zeros(3)[::-1]


def test_empty_reductions_raise_like_pytorch():
    with pytest.raises(RuntimeError, match="max"):
        lg.zeros(0).max()
    with pytest.raises(IndexError, match="Expected reduction dim 0 to have non-zero size"):
        lg.zeros(0, 3).argmax(0)


def test_ragged_and_non_numeric_lists():
    with pytest.raises(ValueError, match="expected sequence of length"):
        lg.tensor([[1, 2], [3]])
    with pytest.raises(TypeError):
        lg.tensor(["a", "b"])


def test_matmul_shape_error():
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 2x3\)"):
        lg.mm(lg.zeros(2, 3), lg.zeros(2, 3))


def test_errors_never_reach_codegen():
    """After an error the library still works (nothing half-built was cached)."""
    with pytest.raises(RuntimeError):
        lg.zeros(2, 3) * lg.zeros(3, 2)
    assert (lg.ones(2, 3) * 2).sum().item() == 12.0
    np.testing.assert_array_equal((lg.ones(2) + 1).numpy(), [2.0, 2.0])
