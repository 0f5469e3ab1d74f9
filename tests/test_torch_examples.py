"""examples/torch_*.py run end to end with every matmul on the device (model backend), within
the documented tolerance against eager fp32 (docs/pytorch.md)."""

import importlib.util
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import systolica.torch as st  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def fresh():
    torch._dynamo.reset()
    st.reset()
    yield
    torch._dynamo.reset()


def test_mlp_example(capsys):
    error = load("torch_mlp").main(["--batch", "2"])
    out = capsys.readouterr().out
    assert "8x784x128" not in out and "2x784x128" in out and "vs eager fp32" in out
    layers = st.report().layers
    assert [(layer.m, layer.k, layer.n) for layer in layers] == [(2, 784, 128), (2, 128, 10)]
    assert all(layer.exact and layer.fallback is None for layer in layers)
    assert error["rel_error"] < 0.03 and error["argmax_agreement"] == 1.0


def test_transformer_example(capsys):
    error = load("torch_transformer").main(["--batch", "1", "--seq", "4"])
    assert "bmm" in capsys.readouterr().out
    layers = st.report().layers
    assert sorted(layer.op for layer in layers).count("bmm") == 2 and len(layers) == 6
    assert all(layer.exact and layer.fallback is None for layer in layers)
    assert error["rel_error"] < 0.03
