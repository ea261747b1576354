"""The mixed-precision backward VMM through the array (dse/train/backward_read.py): exact with
ideal converters and no noise, noisy otherwise, the weight gradient (the update) untouched."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from dse.train.backward_read import install_backward_reads


class _Dev:
    """Reads a state's conductances noise-free (what pair_sigma needs of a device model)."""

    def read(self, state):
        return state["x"]


def _net(conv: bool) -> tuple[nn.Module, list[nn.Module]]:
    torch.manual_seed(0)
    if conv:
        layers = [nn.Conv2d(1, 3, 3), nn.Conv2d(3, 4, 3, padding=1, stride=2)]
        net = nn.Sequential(layers[0], nn.ReLU(), layers[1], nn.Flatten(), nn.Linear(36, 5))
        layers.append(net[-1])
    else:
        layers = [nn.Linear(6, 8), nn.Linear(8, 5), nn.Linear(5, 3)]
        net = nn.Sequential(layers[0], nn.Tanh(), layers[1], nn.Tanh(), layers[2])
    return net, layers


def _grads(net, x) -> list[torch.Tensor]:
    net.zero_grad()
    net(x).square().sum().backward()
    return [p.grad.clone() for p in net.parameters()]


@pytest.mark.parametrize("conv", [False, True])
def test_ideal_noise_free_transposed_read_is_autograd(conv: bool) -> None:
    net, layers = _net(conv)
    x = torch.randn(4, 1, 7, 7) if conv else torch.randn(4, 6)
    ref = _grads(net, x)
    pairs = [SimpleNamespace(layer=ly, state={"x": torch.zeros(2 * ly.weight.numel())},
                             n=ly.weight.numel(), scale=1.0) for ly in layers]
    hooks = install_backward_reads(_Dev(), pairs, 0.0, None, None, torch.Generator())
    got = _grads(net, x)
    for h in hooks:
        h.remove()
    for a, b in zip(ref, got, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_read_noise_and_converters_change_the_error_not_the_last_update() -> None:
    net, layers = _net(False)
    x = torch.randn(16, 6)
    ref = _grads(net, x)
    pairs = [SimpleNamespace(layer=ly, state={"x": torch.zeros(2 * ly.weight.numel())},
                             n=ly.weight.numel(), scale=1.0) for ly in layers]
    hooks = install_backward_reads(_Dev(), pairs, 0.05, 5, 5, torch.Generator().manual_seed(1))
    got = _grads(net, x)
    for h in hooks:
        h.remove()
    # the last layer's update uses its own input and the loss's error: unchanged
    assert torch.allclose(ref[-2], got[-2]) and torch.allclose(ref[-1], got[-1])
    # the first layer's update sees the error propagated through the noisy array
    assert not torch.allclose(ref[0], got[0], atol=1e-4)
    rel = (ref[0] - got[0]).norm() / ref[0].norm()
    assert rel < 0.5  # noisy, not garbage
