"""Quantized layers: the latent weight is kept in ``weight``; forward uses its quantized value.

``QLinear`` and ``QConv2d`` carry no bias (BatchNorm follows every layer, code of Laborieux et al.
2020, Laborieux-Axel/Quantized_VGG).

Readout hook: when ``layer.readout`` is set (only while :mod:`dse.chip.adc_quant` evaluates a
model on a chip with ADCs), the forward pass calls ``readout(layer, x, weight)`` instead of the
ideal product, so the partial sums can be quantized the way the chip reads them.
``layer.cell_columns`` may then carry a fault map's cell levels arranged as the array's columns
(passed in by ``torch.func.functional_call``; ``LayerReadout.columns``). A trainer whose weights
live on device pairs (``mixed_precision`` with a ``chip``) sets ``layer.cell_levels`` (the
pairs' conductances, ``(*weight.shape, 2)``, floor included, in units of a pair's full swing)
and ``layer.level_weight`` (the weight of one unit of level) for the chip's training read-out.
``layer.cell_gain`` (a fault map's digital gain, e.g. the global drift compensation factor)
multiplies the converted output: the gain acts after the ADCs, as on a chip. All default to
``None`` and are not part of the state dict.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from dse.nn.faults import apply_weight_errors
from dse.nn.quant import quantize_weight, sign_activation

PRECISIONS = ("float", "binary", "ternary")


class QuantLayer:
    """Mixin: the weight precision of a layer and the weight it computes with."""

    weight: nn.Parameter
    precision: str
    ternary_threshold: float
    training: bool
    train_ber: float
    fault_generator: torch.Generator | None
    # see the module docstring: set only during a chip readout, never saved
    readout: Callable[[QuantLayer, torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    cell_columns: torch.Tensor | None = None
    cell_levels: torch.Tensor | None = None
    level_weight: float | None = None
    cell_gain: torch.Tensor | None = None
    # set by the trainer around a training forward pass: keep the quantized weight (before any
    # error injection) so that counting level changes needs no second quantization
    record_levels: bool = False
    recorded_levels: torch.Tensor | None = None

    def _init_quant(self, precision: str, ternary_threshold: float) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r} ({', '.join(PRECISIONS)})")
        self.precision = precision
        self.ternary_threshold = float(ternary_threshold)
        self.train_ber = 0.0
        self.fault_generator = None

    def quantized_weight(self) -> torch.Tensor:
        """The binary/ternary (or float) weight used in the forward pass.

        In training mode with ``train_ber > 0`` (error-aware training, Hirtzlin et al. 2019 /
        ``Quantized_VGG``), fresh bit errors are drawn on every call; the gradient still reaches
        the latent weight unchanged (straight through the errors, as in that code).
        """
        wq = quantize_weight(self.weight, self.precision, self.ternary_threshold)
        if self.record_levels:
            self.recorded_levels = wq.detach()
        if self.training and self.train_ber > 0 and self.precision != "float":
            err = apply_weight_errors(wq.detach(), self.precision, self.train_ber,
                                      self.weight.dim(), self.fault_generator)
            wq = wq + (err - wq.detach())
        return wq

    def chip_read(self, x: torch.Tensor) -> torch.Tensor:
        """The output read through ``readout`` (the ADCs), times ``cell_gain`` when set."""
        assert self.readout is not None
        y = self.readout(self, x, self.quantized_weight())
        return y if self.cell_gain is None else y * self.cell_gain

    @property
    def matrix_shape(self) -> tuple[int, int]:
        """(rows, cols) of the weight matrix as laid out on an array: fan-in x fan-out."""
        w = self.weight
        return int(w[0].numel()), int(w.shape[0])


class QLinear(nn.Linear, QuantLayer):
    """Fully connected layer with float, binary or ternary weights and no bias."""

    def __init__(self, in_features: int, out_features: int, precision: str = "binary",
                 ternary_threshold: float = 0.05) -> None:
        super().__init__(in_features, out_features, bias=False)
        self._init_quant(precision, ternary_threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.readout is not None:
            return self.chip_read(x)
        return F.linear(x, self.quantized_weight())

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, precision={self.precision}"


class QConv2d(nn.Conv2d, QuantLayer):
    """2-D convolution with float, binary or ternary weights and no bias."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int = 1, padding: int = 0, precision: str = "binary",
                 ternary_threshold: float = 0.05) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride,
                         padding=padding, bias=False)
        self._init_quant(precision, ternary_threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.readout is not None:
            return self.chip_read(x)
        return self._conv_forward(x, self.quantized_weight(), None)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, precision={self.precision}"


class SignActivation(nn.Module):
    """Binary activation: sign forward, hardtanh straight-through gradient."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sign_activation(x)


class BinaryInput(nn.Module):
    """Deterministic binarization of [0, 1] pixels: +1 where the pixel is >= 0.5, else -1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x >= 0.5, 1.0, -1.0).to(x.dtype)
