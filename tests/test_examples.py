"""The examples train: their losses fall below stated bounds (run with fewer epochs to stay fast)."""
import importlib.util
import pathlib

import numpy as np
import pytest

import lazygrad

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_linear_recovers_the_true_weights():
    example = load("train_linear")
    model, losses, true_w, true_b = example.train(epochs=60, verbose=False)
    assert losses[0] > 1.0
    assert losses[-1] < 0.02          # the noise floor is 0.01 (noise std 0.1)
    assert all(b <= a * 1.0001 for a, b in zip(losses, losses[1:]))   # full-batch GD on a convex loss
    np.testing.assert_allclose(model.weights.detach().numpy(), true_w.numpy(), atol=0.05)
    np.testing.assert_allclose(model.bias.detach().numpy(), true_b.numpy(), atol=0.05)


def test_train_linear_main_prints_progress_and_weights(capsys, tmp_path):
    example = load("train_linear")
    lazygrad.stats(reset=True)
    assert example.main(["--epochs", "12", "--plot", str(tmp_path / "loss.png")]) == 0
    out = capsys.readouterr().out
    assert "epoch   12/12" in out and "learned" in out and "true" in out
    assert "epochs 2..12: 0 kernels compiled" in out
    try:
        import matplotlib  # noqa: F401
        assert (tmp_path / "loss.png").exists()
    except ImportError:
        assert "matplotlib is not installed" in out


def test_train_digits_reaches_good_accuracy():
    pytest.importorskip("sklearn")
    example = load("train_digits")
    _, losses, accuracy = example.train(epochs=3, batch_size=128, lr=1e-2, verbose=False)
    assert losses[-1] < 0.5 < losses[0]
    assert accuracy > 0.85


def test_train_digits_explains_a_missing_scikit_learn(monkeypatch, capsys):
    example = load("train_digits")
    monkeypatch.setattr(example, "load_data", lambda seed=0: None)
    assert example.main([]) == 1
    assert "scikit-learn" in capsys.readouterr().err
