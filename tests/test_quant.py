"""Quantizers: forward values and straight-through gradients; layers and models."""

from __future__ import annotations

import pytest
import torch

from dse.nn import (
    ModelSpec,
    QConv2d,
    QLinear,
    binarize_weight,
    build_model,
    sign_activation,
    ternarize_weight,
)


def test_binarize_forward_is_pm1_and_gradient_is_identity() -> None:
    w = torch.tensor([-2.0, -0.3, 0.0, 0.4, 3.0], requires_grad=True)
    out = binarize_weight(w)
    assert out.tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0]
    g = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5])
    out.backward(g)
    # latent weights are never clipped (metaplasticity needs |W_h| > 1 to keep learning)
    assert torch.equal(w.grad, g)


def test_sign_activation_passes_gradient_only_inside_unit_interval() -> None:
    x = torch.tensor([-1.5, -1.0, -0.2, 0.0, 0.7, 1.0, 1.01], requires_grad=True)
    out = sign_activation(x)
    assert out.tolist() == [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0]
    out.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]


@pytest.mark.parametrize("delta", [0.0, 0.05, 0.5])
def test_ternary_threshold(delta: float) -> None:
    w = torch.tensor([-1.0, -0.5, -0.05, -0.01, 0.0, 0.01, 0.05, 0.06, 0.5], requires_grad=True)
    out = ternarize_weight(w, delta)
    expected = torch.sign(w.detach()) * (w.detach().abs() > delta)
    assert torch.equal(out, expected)
    assert set(out.tolist()) <= {-1.0, 0.0, 1.0}
    out.backward(torch.ones_like(w))
    assert torch.equal(w.grad, torch.ones_like(w))


def test_ternary_zero_fraction_follows_threshold() -> None:
    w = torch.linspace(-1, 1, 20001)
    out = ternarize_weight(w, 0.25)
    assert (out == 0).float().mean().item() == pytest.approx(0.25, abs=1e-3)


@pytest.mark.parametrize("precision", ["float", "binary", "ternary"])
def test_layers_compute_with_quantized_weights(precision: str) -> None:
    torch.manual_seed(0)
    lin = QLinear(6, 4, precision=precision, ternary_threshold=0.1)
    x = torch.randn(3, 6)
    assert torch.allclose(lin(x), x @ lin.quantized_weight().T)
    assert lin.bias is None and lin.matrix_shape == (6, 4)
    conv = QConv2d(2, 5, 3, padding=1, precision=precision)
    img = torch.randn(1, 2, 7, 7)
    ref = torch.nn.functional.conv2d(img, conv.quantized_weight(), padding=1)
    assert torch.allclose(conv(img), ref)
    assert conv.matrix_shape == (2 * 3 * 3, 5)


def test_unknown_precision_is_rejected() -> None:
    with pytest.raises(ValueError, match="precision"):
        QLinear(2, 2, precision="int4")


@pytest.mark.parametrize(("model", "shape", "layers"), [
    ("mlp", (1, 28, 28), ["fc1", "fc2"]),
    ("lenet", (1, 28, 28), ["conv1", "conv2", "fc3", "fc4", "fc5"]),
    ("lenet", (1, 8, 8), ["conv1", "conv2", "fc3", "fc4", "fc5"]),
    ("vgg-small", (3, 32, 32),
     ["conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "fc7", "fc8"]),
])
def test_models_build_and_run(model: str, shape: tuple[int, int, int], layers: list[str]) -> None:
    spec = ModelSpec(model, shape, 10, hidden=[64], width=4)
    net = build_model(spec, torch.Generator().manual_seed(0))
    assert [n for n, _ in net.quant_layers()] == layers
    out = net(torch.rand(5, *shape))
    assert out.shape == (5, 10)
    # every hidden activation of a binary net is ±1: the layer after it sees only ±1 inputs
    seen = []
    second = net.quant_layers()[1][1]
    h = second.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    net(torch.rand(5, *shape))
    h.remove()
    assert set(torch.unique(seen[0]).tolist()) <= {-1.0, 1.0}


def test_lenet_has_classic_feature_map_on_mnist() -> None:
    net = build_model(ModelSpec("lenet", (1, 28, 28), 10))
    assert dict(net.quant_layers())["fc3"].weight.shape == (120, 16 * 5 * 5)


def test_initialisation_is_seeded() -> None:
    spec = ModelSpec("mlp", (1, 8, 8), 10, hidden=[16])
    a = build_model(spec, torch.Generator().manual_seed(3)).state_dict()
    b = build_model(spec, torch.Generator().manual_seed(3)).state_dict()
    c = build_model(spec, torch.Generator().manual_seed(4)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["body.fc1.weight"], c["body.fc1.weight"])


def test_ternary_init_starts_half_nonzero() -> None:
    spec = ModelSpec("mlp", (1, 28, 28), 10, hidden=[256], precision="ternary",
                     ternary_threshold=0.05)
    net = build_model(spec, torch.Generator().manual_seed(0))
    w = dict(net.quant_layers())["fc1"].quantized_weight()
    assert (w == 0).float().mean().item() == pytest.approx(0.5, abs=0.01)


def test_gradients_off_give_the_same_values() -> None:
    """With gradients off the quantizers skip their autograd.Function (issue 15): same bits."""
    x = torch.tensor([-2.0, -0.5, -0.0, 0.0, 0.05, 0.3, 1.5, float("inf")])
    for f in (binarize_weight, sign_activation, lambda t: ternarize_weight(t, 0.05)):
        on = f(x.clone().requires_grad_(True)).detach()
        with torch.no_grad():
            off = f(x)
        assert torch.equal(on, off) and torch.equal(on.signbit(), off.signbit())
        batched = torch.stack([x, -x])
        with torch.no_grad():
            assert torch.equal(torch.vmap(f)(batched), torch.stack([f(x), f(-x)]))
