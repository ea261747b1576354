"""The mixed-precision trainer's backward VMM through the array (``mixed_precision.backward``).

On an in-memory training chip the error δ of a layer is propagated to the layer below by the
same crossbar read *transposed*: δ enters through the column drivers (a DAC), the products
Σ δ·W are summed on the rows and digitised by the row ADCs, and every read of a cell carries
its read noise — Wu et al., arXiv 2305.14547 (2023), whose chip runs the backward pass on the
array, and aihwkit's analog tiles (``backward`` IO parameters, ``AnalogTileBackwardInputOutput``:
``inp_res``, ``out_res`` and ``w_noise`` of the backward pass apart from the forward's).

``backward: array`` installs a full backward hook on every weight layer but the first (whose
input gradient nobody uses) that replaces the input gradient by

    ADC_b( DAC_b(δ) · (W + ΔW)ᵀ ),   ΔW ~ N(0, σ_w²) drawn per mini-batch,

with DAC_b / ADC_b abs-max ranged per sample (:func:`dse.train.converters.absmax_quantize`,
``backward_dac_bits`` / ``backward_adc_bits``; None = ideal) and σ_w the weight-unit noise of
reading the pair once: s·√(σ(G⁺)² + σ(G⁻)²), σ the card's per-read noise
(``inference.read_noise``, the same numbers inject reads the deployed chip with), or, for a
card without an inference block, √2·``read_sigma``. The weight gradient δxᵀ (the update) is
unchanged: it is formed digitally, as on the chip. ``backward: digital`` (default) = autograd's
exact product with the forward weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from dse.train.converters import absmax_quantize

Tensor = torch.Tensor


def read_physics(dev: Any) -> Any:
    """The card's inference physics (its per-read noise), or None without an inference block."""
    from dse.devices.inference import inference_physics
    from dse.errors import DseError

    try:
        return inference_physics(dev)
    except DseError:
        return None


def pair_sigma(dev: Any, phys: Any, state: dict[str, Tensor], n: int, scale: float,
               fallback: float) -> Tensor:
    """σ_w per weight (N,): one read of each device of the pairs of ``state``, weight units
    (``phys`` None: √2·``fallback``·scale)."""
    g = dev.read(state)
    if phys is None:
        return torch.full((n,), math.sqrt(2.0) * fallback * scale, dtype=g.dtype,
                          device=g.device)
    s = phys.read_sigma(g)
    return (s[:n].square() + s[n:].square()).sqrt_().mul_(scale)


def _input_grad(mod: nn.Module, shape: torch.Size, w: Tensor, delta: Tensor) -> Tensor:
    if isinstance(mod, nn.Conv2d):
        return torch.nn.grad.conv2d_input(shape, w, delta, mod.stride, mod.padding,
                                          mod.dilation, mod.groups)
    return delta @ w


def install_backward_reads(dev: Any, pairs: Sequence[Any], fallback: float,
                           dac_bits: int | None, adc_bits: int | None,
                           generator: torch.Generator) -> list[Any]:
    """Full backward hooks on the layers of the trainer's ``pairs`` (``layer``, ``state``,
    ``n``, ``scale``; module docstring); ``fallback``: the card's training read sigma, for a
    card without an inference block. Returns the hook handles."""
    hooks = []
    phys = read_physics(dev)
    for p in list(pairs)[1:]:  # the first layer's input gradient is never used
        def hook(mod: nn.Module, grad_in: tuple[Tensor | None, ...],
                 grad_out: tuple[Tensor | None, ...], p: Any = p) -> Any:
            if not mod.training or grad_in[0] is None or grad_out[0] is None:
                return None
            delta = grad_out[0]
            if dac_bits:
                delta = absmax_quantize(delta.clone(), dac_bits)
            w = mod.weight.detach()
            s = pair_sigma(dev, phys, p.state, p.n, p.scale, fallback)
            if bool((s > 0).any()):
                xi = torch.randn(s.shape, generator=generator, dtype=w.dtype, device=w.device)
                w = w + (s * xi).view_as(w)
            gi = _input_grad(mod, grad_in[0].shape, w, delta)
            if adc_bits:
                gi = absmax_quantize(gi, adc_bits)
            return (gi, *grad_in[1:])
        hooks.append(p.layer.register_full_backward_hook(hook))
    return hooks
