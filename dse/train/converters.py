"""The training read-out of :mod:`dse.train.mixed_precision`: the DAC of each layer's input and
the ADC of its output (abs-max ranged per sample, aihwkit's ``PresetIOParameters``), with the
error δ quantized with stochastic rounding in the backward pass, installed as forward hooks that
act only in training mode; and a fast threshold test (:func:`indices_above`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

Tensor = torch.Tensor


def absmax_quantize(x: Tensor, bits: int, generator: torch.Generator | None = None,
                    out: Tensor | None = None) -> Tensor:
    """Quantize each sample (dim 0) to 2^bits − 1 levels over [−absmax, absmax], i.e. steps of
    2·absmax/(2^bits − 2) (aihwkit's ``inp_res``/``out_res`` = 1/(2^bits − 2) of the signed
    range); stochastic rounding when a generator is given. ``out``: write the result there
    (``out`` may be ``x`` itself: the same numbers, in place)."""
    dims = tuple(range(1, x.dim()))
    amax = x.abs().amax(dim=dims, keepdim=True) if dims else x.abs().amax()
    step = amax.clamp_min_(torch.finfo(x.dtype).tiny).mul_(2.0 / float(2 ** bits - 2))
    q = torch.div(x, step, out=out)
    if generator is None:
        q = q.round_()
    else:
        q = q.add_(torch.rand(q.shape, generator=generator, dtype=q.dtype,
                              device=q.device)).floor_()
    return q.mul_(step)


class Converter(torch.autograd.Function):
    """Forward: ADC quantization of the layer output; backward: quantized error δ."""

    @staticmethod
    def forward(ctx: Any, y: Tensor, adc_bits: int | None, err_bits: int | None,
                generator: torch.Generator | None) -> Tensor:
        ctx.err_bits, ctx.generator = err_bits, generator
        return absmax_quantize(y, adc_bits) if adc_bits else y.view_as(y)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None]:
        if ctx.err_bits:
            grad = absmax_quantize(grad, ctx.err_bits, ctx.generator)
        return grad, None, None, None


class Dac(torch.autograd.Function):
    """Forward: DAC quantization of the layer input; backward: straight through."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, bits: int) -> Tensor:
        return absmax_quantize(x, bits)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


def indices_above(x: Tensor, level: float, strict: bool = False) -> Tensor:
    """Ascending int64 indices of the elements of a 1-d ``x`` with x ≥ ``level`` (x > ``level``
    when ``strict``). On the CPU through NumPy, which compares in the same precision (a Python
    float against a float32 array is a float32 comparison in both): this torch build's comparison
    ops and ``torch.nonzero`` take ~3× as long (~2 ms against ~0.6 ms for 400k floats)."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return torch.nonzero(x > level if strict else x >= level).squeeze(1)
    a = x.detach().numpy()
    return torch.from_numpy(np.flatnonzero(a > level if strict else a >= level))


def _dac(x: Tensor, bits: int) -> Tensor:
    """:class:`Dac` without an autograd node of its own: the quantized values in a clone of ``x``
    (the clone's backward is the identity, the straight-through gradient of :class:`Dac`)."""
    if not x.requires_grad:
        return absmax_quantize(x, bits)
    q = x.clone()
    with torch.no_grad():
        return absmax_quantize(q, bits, out=q)


def _adc_(y: Tensor, bits: int) -> None:
    """:class:`Converter`'s forward without ``error_bits``, in place on the layer's output (its
    backward is the identity; the weight layer's backward needs its inputs, not its output, so
    autograd's version check would object if it did)."""
    with torch.no_grad():
        absmax_quantize(y, bits, out=y)


def install_converters(layers: Sequence[nn.Module], dac_bits: int | None, adc_bits: int | None,
                       error_bits: int | None, generator: torch.Generator | None) -> list[Any]:
    """Forward hooks putting a DAC before and an ADC (and the δ quantizer) after each layer in
    training mode; returns the hook handles. Without ``error_bits`` the converters add no
    autograd nodes (:func:`_dac`, :func:`_adc_`: the same numbers, fewer Python calls a step)."""
    hooks = []
    for layer in layers:
        if dac_bits:
            def pre(mod: nn.Module, args: tuple[Tensor, ...], bits: int = dac_bits) -> Any:
                return (_dac(args[0], bits),) if mod.training else None
            hooks.append(layer.register_forward_pre_hook(pre))
        if error_bits:
            def post(mod: nn.Module, args: Any, out: Tensor) -> Any:
                return Converter.apply(out, adc_bits, error_bits, generator) if mod.training \
                    else None
            hooks.append(layer.register_forward_hook(post))
        elif adc_bits:
            def post_adc(mod: nn.Module, args: Any, out: Tensor, bits: int = adc_bits) -> Any:
                if mod.training:
                    _adc_(out, bits)
            hooks.append(layer.register_forward_hook(post_adc))
    return hooks
