"""The chip's ADC read-out inside the training forward pass (issue 12, "one read-out model").

``mixed_precision`` with ``chip: <name>`` trains through the read-out the inject stage uses on
that chip (:mod:`dse.chip.adc_quant`): the same row groups of ``parallel_rows`` word lines, the
same ADC resolution, the same rule for the inputs (``sensing.inputs``) and the same read of a
differential pair (``sensing.pair_subtraction``), with the trainer's device pairs as the cells
(``layer.cell_levels``: their conductances, floor included, in units of the full swing
g_max − g_min, the pair's read noise on its G⁺ cell; ``layer.level_weight``: the weight of one
unit of level, s·(g_max − g_min)), so a column current is Σ x·G of the cells themselves, as at
deployment. Two differences from deployment, both as a chip trained in situ would behave:

* **Range per batch.** The weights move during training, so every row group's full-scale range
  is re-set on every call from that batch's partial sums (NeuroSim's training rule,
  ``LinearQuantizeOut`` in ``Training_pytorch/utee/wage_quantizer.py`` of
  neurosim/DNN_NeuroSim_V2.1, per sub-array) instead of being calibrated once and frozen; the
  input full scale likewise (``inputs: dac | bit_serial``; that one is a host read per layer).
* **Gradients straight through.** The forward value is the converted read; the backward pass
  sees the ideal product's gradient (y + (ADC(y) − y).detach()), the estimator of the
  quantization-aware training of NeuroSim's and aihwkit's forward converters.

In evaluation mode the layer computes the ideal product of its weights (the trainer's in-situ
test accuracy is the noise-free devices read ideally; reading the trained devices through the
chip's ADC is what ``inject.devices: trained`` measures).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F

from dse.chip.adc_quant import AdcSpec, LayerReadout, layer_readouts
from dse.chip.card import ChipCard
from dse.chip.mapping import map_model
from dse.errors import DseError

log = logging.getLogger(__name__)


class TrainingReadout(LayerReadout):
    """One layer's chip read-out in training (module docstring): ``readout(layer, x, w)``."""

    def read(self, p: torch.Tensor, g: int, dim: int) -> torch.Tensor:
        if self.quantize and self._calib is None:  # this batch's range (no host read)
            if self.lo.device != p.device or self.lo.dtype != p.dtype:
                self.lo = self.lo.to(p.device, p.dtype)
                self.hi = self.hi.to(p.device, p.dtype)
            self.lo[g] = p.detach().amin()
            self.hi[g] = p.detach().amax()
        return super().read(p, g, dim)

    def __call__(self, layer: Any, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        ideal = F.linear(x, w) if self.weight_dim == 2 else layer._conv_forward(x, w, None)
        if not layer.training:
            return ideal
        levels, scale = layer.cell_levels, layer.level_weight
        if levels is None or scale is None:
            raise DseError(f"the training read-out of a {type(layer).__name__} needs the "
                           "trainer's cell levels (layer.cell_levels / level_weight)")
        self.w_max = float(scale)
        self.offset = 0.0  # the floor is in the levels: the cells' own conductances
        with torch.no_grad():
            xd = x.detach()
            if self.serial:  # this batch's input full scale
                self.x_max = float(xd.abs().max())
                self.signed = bool(xd.min() < 0)
            read = self.read_columns(layer, xd, self.columns(w.detach(), levels.detach()))
        return ideal + (read - ideal).detach()


def training_readouts(model: Any, chip: ChipCard) -> dict[str, TrainingReadout]:
    """The training read-out of every weight layer of ``model`` on ``chip`` (module docstring);
    DseError when the chip does not read analog differential pairs through ADCs."""
    mapping = map_model(model, chip)
    spec = AdcSpec.from_mapping(mapping)
    where = f"chip '{chip.name}'"
    if spec is None:
        raise DseError(f"{where}: mixed_precision.chip needs a chip whose sensing is an ADC "
                       "(sensing.kind: adc); this one has none")
    if spec.encoding != "analog" or spec.cells_per_weight != 2 or spec.slicing is not None:
        raise DseError(f"{where}: mixed_precision.chip needs analog weights in one differential "
                       f"pair (encoding: analog, cells_per_weight: 2, no bit slicing); it has "
                       f"encoding {spec.encoding}, {spec.cells_per_weight} cells per weight")
    in_bits = {lm.name: lm.in_bits for lm in mapping.layers}
    log.info("training through the read-out of %s: %d-bit ADC, %d rows read in parallel, "
             "inputs %s, ranges per batch", chip.name, spec.bits, spec.parallel_rows,
             spec.inputs or "whole")
    return layer_readouts(model, spec, in_bits, TrainingReadout)  # type: ignore[return-value]
