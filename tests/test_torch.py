"""torch.compile(model, backend="systolica"): int8 matmuls on the device, bit-exact against a
NumPy int8 reference of the same computation (written from docs/pytorch.md), fallbacks, and
examples/torch_*.py end to end."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import systolica.torch as st  # noqa: E402


@pytest.fixture(autouse=True)
def fresh():
    torch._dynamo.reset()
    st.reset()
    yield
    torch._dynamo.reset()


# --- the NumPy int8 reference (docs/pytorch.md, "Numerics") -------------------------------------

F32 = np.float32


def tensor_scale(x):
    s = F32(np.abs(x).max()) / F32(127)
    return F32(1) if s == 0 else s


def channel_scales(w_kn):
    s = np.abs(w_kn).max(axis=0).astype(F32) / F32(127)
    return np.where(s == 0, F32(1), s).astype(F32)


def quantize(x, s):
    return np.clip(np.rint(x / s), -127, 127).astype(np.int8)


def linear_ref(x, w_kn, bias, s_x):
    s_w = channel_scales(w_kn)
    acc = quantize(x, s_x).astype(np.int64) @ quantize(w_kn, s_w).astype(np.int64)
    return acc.astype(F32) * (s_x * s_w) + bias


def mlp(k=16, hidden=12, n=5, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(k, hidden), nn.ReLU(), nn.Linear(hidden, n)).eval()


def mlp_ref(model, x, scales=None):
    """The quantised MLP in NumPy; ``scales``: the activation scales calibrated on the first
    call (None: calibrate on ``x``)."""
    l1, l2 = model[0], model[2]
    w1, b1 = l1.weight.detach().numpy().T, l1.bias.detach().numpy()
    w2, b2 = l2.weight.detach().numpy().T, l2.bias.detach().numpy()
    s1 = tensor_scale(x) if scales is None else scales[0]
    h = np.maximum(linear_ref(x, w1, b1, s1), F32(0))
    s2 = tensor_scale(h) if scales is None else scales[1]
    return linear_ref(h, w2, b2, s2), (s1, s2)


def test_registered():
    assert "systolica" in torch._dynamo.list_backends()
    from torch._dynamo.backends.registry import lookup_backend
    assert lookup_backend("systolica") is st.backend


def test_mlp_bit_exact_against_numpy_int8_reference():
    model = mlp()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 16)).astype(F32)
    compiled = torch.compile(model, backend="systolica")
    with torch.no_grad():
        y = compiled(torch.from_numpy(x)).numpy()
    expected, scales = mlp_ref(model, x)
    assert np.array_equal(y, expected)
    # later calls keep the scales calibrated on the first (example) inputs; out-of-range
    # values saturate
    x2 = (3 * rng.standard_normal((4, 16))).astype(F32)
    with torch.no_grad():
        y2 = compiled(torch.from_numpy(x2)).numpy()
    assert np.array_equal(y2, mlp_ref(model, x2, scales)[0])
    layers = st.report().layers
    assert [layer.op for layer in layers] == ["addmm", "addmm"]
    assert all(layer.exact and layer.rhs == "weight" and layer.fallback is None
               for layer in layers)
    assert layers[0].saturated > 0
    # documented tolerance against eager fp32 (docs/pytorch.md)
    err = st.compare(model, compiled, torch.from_numpy(x))
    assert err["rel_error"] < 0.03


def test_report_shapes_cycles_plan():
    model = mlp()
    compiled = torch.compile(model, backend="systolica")
    with torch.no_grad():
        compiled(torch.randn(4, 16))
    rep = st.report()
    first, second = rep.layers
    assert (first.batch, first.m, first.k, first.n) == (1, 4, 16, 12)
    assert (second.m, second.k, second.n) == (4, 12, 5)
    for layer in rep.layers:
        assert layer.cycles > 0 and 0 < layer.utilization <= 1
        assert layer.plan.m == layer.m and layer.plan.n == layer.n
        assert layer.macs == layer.m * layer.k * layer.n
    text = str(rep)
    assert "addmm" in text and "4x16x12" in text and "-bound" in text
    assert "relu" in rep.graphs[0].pytorch_ops
    assert rep.cycles == first.cycles + second.cycles
    json.dumps(rep.to_dict())


def check_layers(layers):
    """Every layer: operands quantised per the docs, int32 result == NumPy's int8 matmul."""
    for layer in layers:
        t = layer.tensors
        a, b = t["a"].numpy(), t["b"].numpy()
        s_a = F32(layer.scale_a)
        assert np.array_equal(t["aq"], quantize(a, s_a))
        s_b = channel_scales(b[0]) if layer.rhs == "weight" else F32(layer.scale_b)
        assert np.array_equal(t["bq"], quantize(b, s_b))
        expected = np.einsum("bmk,bkn->bmn", t["aq"].astype(np.int64), t["bq"].astype(np.int64))
        assert np.array_equal(t["acc"], expected)


def encoder(d_model=16, nhead=2, ff=32):
    torch.manual_seed(3)
    return nn.TransformerEncoderLayer(d_model, nhead, ff, batch_first=True, dropout=0.0).eval()


@pytest.mark.parametrize("grad", [False, True], ids=["fused-fast-path", "sdpa-path"])
def test_encoder_layer_attention_matmuls_on_device(grad):
    layer = encoder()
    x = torch.randn(2, 4, 16)
    compiled = torch.compile(layer, backend="systolica", options={"keep_tensors": True})
    with torch.set_grad_enabled(grad):
        y = compiled(x)
        reference = layer(x)
    layers = st.report().layers
    # QKV projection, q k^T, weights v, output projection, two feed-forward layers
    bmms = [layer for layer in layers if layer.op == "bmm"]
    linears = [layer for layer in layers if layer.op != "bmm"]
    assert len(bmms) == 2 and len(linears) == 4, [layer.op for layer in layers]
    assert all(b.rhs == "activation" and b.batch == 2 * 2 for b in bmms)
    assert all(lin.rhs == "weight" for lin in linears)
    assert sorted((lin.k, lin.n) for lin in linears) == [(16, 16), (16, 32), (16, 48), (32, 16)]
    assert all(layer.exact for layer in layers)
    check_layers(layers)
    rel = float((y - reference).detach().norm() / reference.detach().norm())
    assert rel < 0.03


def test_dynamic_shapes():
    model = mlp()
    compiled = torch.compile(model, backend="systolica", dynamic=True)
    rng = np.random.default_rng(5)
    scales = None
    for batch in (3, 5, 7):       # one graph (batch 1 would be a new, specialised graph)
        x = rng.standard_normal((batch, 16)).astype(F32)
        with torch.no_grad():
            y = compiled(torch.from_numpy(x)).numpy()
        expected, s = mlp_ref(model, x, scales)
        scales = scales or s
        assert np.array_equal(y, expected)
    assert len(st.report().graphs) == 1


def test_matmul_of_two_activations_per_tensor():
    def f(a, b):
        return (a @ b) * 2

    a, b = torch.randn(5, 9), torch.randn(9, 3)
    y = torch.compile(f, backend="systolica")(a, b)
    (layer,) = st.report().layers
    assert layer.op == "mm" and layer.rhs == "activation"
    sa, sb = tensor_scale(a.numpy()), tensor_scale(b.numpy())
    acc = quantize(a.numpy(), sa).astype(np.int64) @ quantize(b.numpy(), sb).astype(np.int64)
    assert np.array_equal(y.numpy(), (acc.astype(F32) * (sa * sb)) * F32(2))


def test_float64_falls_back_with_message():
    model = mlp().double()
    x = torch.randn(4, 16, dtype=torch.float64)
    compiled = torch.compile(model, backend="systolica")
    with pytest.warns(st.FallbackWarning, match="runs in PyTorch: dtype float64"):
        with torch.no_grad():
            y = compiled(x)
    with torch.no_grad():
        assert torch.equal(y, model(x))
    assert all("float64" in layer.fallback for layer in st.report().layers)
    assert "PyTorch: dtype float64" in str(st.report())


def test_non_finite_falls_back():
    model = mlp()
    compiled = torch.compile(model, backend="systolica")
    x = torch.randn(4, 16)
    with torch.no_grad():
        compiled(x)                                   # calibrate
        x[1, 3] = float("inf")
        with pytest.warns(st.FallbackWarning, match="non-finite"):
            y = compiled(x)
        assert torch.equal(torch.isnan(y), torch.isnan(model(x)))
        finite = ~torch.isnan(y)
        assert torch.equal(y[finite], model(x)[finite])


def test_bad_options():
    with pytest.raises(Exception, match="unknown systolica option.*colour"):
        torch.compile(mlp(), backend="systolica", options={"colour": 1})(torch.randn(2, 16))
    with pytest.raises(ValueError, match="options\\['device'\\] must be"):
        st.SystolicaBackend(device="tpu")(None, [])
    # a board needs its serial port: give a Device(backend="board", port=...) instead
    with pytest.raises(ValueError, match="backend='board' needs port="):
        st.SystolicaBackend(device="board")(None, [])
    from systolica.config import TileConfig, default_config
    from systolica.runtime import Device
    configs = default_config()
    configs["array"] = configs["array"].replace(moving_dtype="uint8")
    dev = Device(TileConfig.from_sections(configs))
    with pytest.raises(ValueError, match="moving dtype uint8 cannot hold int8"):
        st.SystolicaBackend(device=dev)(None, [])


def test_backend_instance_with_int16_device():
    from systolica.config import TileConfig, default_config
    from systolica.runtime import Device
    configs = default_config()
    configs["array"] = configs["array"].replace(rows=4, cols=4, moving_dtype="int16")
    configs["sbuf"] = configs["sbuf"].replace(partitions=4)
    backend = st.SystolicaBackend(device=Device(TileConfig.from_sections(configs)))
    model = mlp()
    x = np.random.default_rng(7).standard_normal((3, 16)).astype(F32)
    with torch.no_grad():
        y = torch.compile(model, backend=backend)(torch.from_numpy(x)).numpy()
    assert np.array_equal(y, mlp_ref(model, x)[0])
    assert backend.report().layers[0].array == (4, 4)
    assert st.report().layers == []


def test_amaranth_rtl_tiny_linear():
    torch.manual_seed(11)
    model = nn.Linear(8, 4).eval()
    x = np.random.default_rng(11).standard_normal((2, 8)).astype(F32)
    compiled = torch.compile(model, backend="systolica", options={"device": "amaranth"})
    with torch.no_grad():
        y = compiled(torch.from_numpy(x)).numpy()
    w, b = model.weight.detach().numpy().T, model.bias.detach().numpy()
    assert np.array_equal(y, linear_ref(x, w, b, tensor_scale(x)))
    (layer,) = st.report().layers
    assert layer.measured and layer.cycles > 0 and layer.exact


# --- examples/torch_*.py end to end (model backend), within the documented tolerance --------------

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
