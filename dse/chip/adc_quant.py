"""ADC quantization of partial sums: the accuracy side of chips whose sensing is an ADC.

A chip with ADC sensing (``sensing.kind: adc``, e.g. ``rram-1t1r-adc``) never delivers the exact
product ``x · w`` of a layer: it sums the currents of ``parallel_rows`` word lines at a time on
each bit line, converts that analog partial sum with an N-bit ADC, and adds the converted values
in its digital periphery. This module models that read-out, laid out as :mod:`dse.chip.mapping`
lays the weights out; the inject stage applies it to every evaluation on such a chip (the
noise-free rows and every fault map), and the search does through the inject stage.

**Row groups.** A layer's weight matrix (im2col rows = fan-in, ordered as ``weight[0].flatten()``
i.e. input channel, kernel row, kernel column) is tiled onto arrays of R_a rows; each tile is read
in groups of ``parallel_rows`` rows (:func:`row_groups`; the same G as the conversion count of
:class:`dse.chip.sensing.Adc`). Every group's partial sum on every physical column is converted
on its own, and the converted values of all groups are added exactly (digital shift-add).

**Columns and sign.** A weight's k cells sit on k adjacent bit lines (k converted columns, or
k/2 with analog pair subtraction, as the map stage counts them). Cell levels l in [0, 1] come
from the chip's encoding (:mod:`dse.chip.encoding`; per layer w_max = max |w| of the clean
weights), or, for a fault map, from the programmed/stuck cells themselves (``cell_levels`` of
the inject stage, passed to the layer as ``cell_columns``), so a stuck or noisy "off" cell of a
pair loads its own column as it would on the chip.

* k = 2 (differential pair): column currents ∝ Σ x (ρ + l+) and Σ x (ρ + l−), ρ the current
  of a cell at the floor of its range, which real cells cannot switch off (NeuroSim: ``lower =
  1/onoffratio``, ``remainderQ`` in ``Training_pytorch/modules/quantization_cpu_np_infer.py`` of
  neurosim/DNN_NeuroSim_V2.1). How the pair is read is the chip card's
  ``sensing.pair_subtraction`` (:data:`dse.chip.sensing.PAIR_SUBTRACTION`, the map stage counts
  the conversions from the same key): ``digital`` (default, NeuroSim V2.1: positive and negative
  parts converted separately): both columns converted, subtracted digitally, y = w_max ·
  Σ_groups (ADC(p+) − ADC(p−)) — ρ and any common level of the pair cancel but take up ADC
  range; ``analog`` (sandialabs/cross-sim ``BalancedCoreParameters.subtract_current_in_xbar``):
  the currents subtracted on the bit line, one conversion of the difference, y = w_max ·
  Σ_groups ADC(p+ − p−) — the floor and common levels cancel before conversion.
  **Whose cells.** ρ is the floor of the cells actually read, per layer (``LayerReadout.
  offset``): for the chip's own idealised cells (encoding levels, stuck-at maps without a device
  card) the chip card's ρ = g_min/(g_max − g_min) = 1/(R_off/R_on − 1) (1/16 for 100 kΩ /
  1.7 MΩ; 0, an ideal off state, without r_on / r_off); for cells of a device card (programmed
  by the inject stage, or deployed by :mod:`dse.chip.deploy`) the card's own g_min in the
  layer's level units, so a column current is Σ x·G of the cells themselves.
* k = 1 (offset encoding, l = (1 + w/w_max)/2): the column is read against a mid-range reference
  column subtracted before conversion (assumption: in analog, as the map stage counts no
  conversions of a reference column): y = 2 w_max · Σ_groups ADC(Σ x (l − 1/2)).

**ADC and its full-scale range.** Uniform, 2^N codes from lo to hi, round to nearest, clipped
(:func:`quantize_uniform`). The range follows NeuroSim's rule — the converter spans the minimum
to the maximum of the partial sums it sees (``LinearQuantizeOut`` in ``Training_pytorch/utee/
wage_quantizer.py`` of DNN_NeuroSim_V2.1, applied per sub-array of ``subArray`` rows) — but is
**calibrated once** per layer and row group on the clean model's partial sums over a calibration
batch (both columns of a pair share it: they share an ADC, ``cols_per_adc``), then frozen, as a
chip's ADC references are (CrossSim ``ADCRangeLimits.CALIBRATED``, sandialabs/cross-sim
``simulator/parameters/adc/adc.py``). NeuroSim instead re-ranges on every call (the batch being
evaluated), which makes a result depend on the batch and lets faults re-range the ADC; and it
rounds down (``floor``, step range/2^N, a −½-step bias) where this model rounds to nearest (step
range/(2^N − 1)). The calibration batch defaults to the evaluated images (what NeuroSim's
per-batch rule sees); pass training images to keep the test set out of it. With N → ∞ the read
equals the ideal product (tested); with 16 bits the accuracy is the clean one within one image.

**Inputs.** The chip card's ``sensing.inputs`` is the one source of truth for how a b-bit
input is applied, here and in the energy/latency counts (:data:`dse.chip.sensing.INPUTS`):
``bit_serial`` (one read per bit plane, each converted and shift-added) or ``dac`` (one read of
the quantized input), both quantizing inputs to the mapping's ``in_bits`` over a calibrated
full scale (:mod:`dse.chip.adc_read`). Without the key (the shipped cards) the input is applied
whole and unquantized (CrossSim ``adc_per_ibit = False``) while the counts stay bit-serial, the
legacy disagreement. Bit-sliced weights (:mod:`dse.chip.slicing`) convert every slice column
(or slice pair) on its own and shift-add. Not modelled: ADC noise/offset/non-linearity, IR drop.
Vectorised: called from the layers' forward (:mod:`dse.nn.layers` hook), so it runs inside
``torch.vmap(functional_call(...))`` over stacked fault maps; Python loops over row groups only.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F

from dse.chip.adc_read import (  # noqa: F401 (quantize_uniform: re-exported)
    STEP_FLOOR,
    quantize_uniform,
    quantized_inputs,
    read_sliced,
)
from dse.chip.encoding import ENCODINGS
from dse.chip.mapping import Mapping
from dse.chip.sensing import PAIR_SUBTRACTION
from dse.chip.slicing import Slicing, mapping_slicing
from dse.errors import DseError


def row_groups(rows: int, array_rows: int, parallel_rows: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of the row groups read together: tiles of ``array_rows`` rows, each read
    ``parallel_rows`` word lines at a time (the last read of a tile may be shorter)."""
    if min(rows, array_rows, parallel_rows) < 1:
        raise ValueError(f"rows {rows}, array rows {array_rows} and parallel rows "
                         f"{parallel_rows} must be >= 1")
    out = []
    for t0 in range(0, rows, array_rows):
        t1 = min(t0 + array_rows, rows)
        out += [(a, min(a + parallel_rows, t1)) for a in range(t0, t1, parallel_rows)]
    return out


@dataclass(frozen=True)
class AdcSpec:
    """How a chip reads partial sums (from its mapping, :meth:`from_mapping`)."""

    bits: int
    array_rows: int
    parallel_rows: int
    cells_per_weight: int
    encoding: str
    offset: float = 0.0  # rho = g_min / (g_max - g_min), in cell-level units
    slicing: Slicing | None = None  # bit-sliced weights (dse.chip.slicing)
    inputs: str | None = None  # sensing.inputs: bit_serial | dac | None (legacy: whole input)
    pair_subtraction: str = "digital"  # sensing.pair_subtraction: digital | analog

    def __post_init__(self) -> None:
        if self.bits < 1:
            raise DseError(f"adc_bits: {self.bits} must be >= 1")
        if self.pair_subtraction not in PAIR_SUBTRACTION:
            raise DseError(f"sensing.pair_subtraction: unknown pair subtraction "
                           f"'{self.pair_subtraction}' (known: {', '.join(PAIR_SUBTRACTION)})")
        if self.slicing is not None:
            if self.cells_per_weight != self.slicing.cells:
                raise DseError(f"cells_per_weight: {self.cells_per_weight} is not the "
                               f"{self.slicing.cells} cells of {self.slicing}")
        elif self.cells_per_weight not in (1, 2):
            raise DseError(f"cells_per_weight: the ADC read-out model handles 1 or 2 cells per "
                           f"weight, not {self.cells_per_weight}")

    @property
    def analog_pairs(self) -> bool:
        """True when differential pairs are subtracted on the bit line (one conversion each)."""
        if self.pair_subtraction != "analog":
            return False
        sl = self.slicing
        return self.cells_per_weight == 2 if sl is None else sl.signing == "differential"

    @classmethod
    def from_mapping(cls, mapping: Mapping, bits: int | None = None,
                     offset: float | None = None) -> AdcSpec | None:
        """The read-out of ``mapping``'s chip, or None when it has no ADCs; ``offset``: the
        floor of the cells read (a device card's), default the chip card's own cells'."""
        if mapping.adc_bits is None:
            return None
        assert mapping.parallel_rows is not None
        ratio = mapping.on_off_ratio
        if ratio is not None and ratio <= 1:
            raise DseError(f"chip '{mapping.chip}': cell.r_off / cell.r_on = {ratio:g} must be "
                           "> 1 (the HRS resistance is the larger one)")
        return cls(bits=int(mapping.adc_bits if bits is None else bits),
                   array_rows=mapping.array_rows, parallel_rows=int(mapping.parallel_rows),
                   cells_per_weight=mapping.cells_per_weight, encoding=mapping.encoding,
                   offset=offset if offset is not None else
                   (0.0 if ratio is None else 1.0 / (ratio - 1.0)),
                   slicing=mapping_slicing(mapping), inputs=mapping.extra.get("inputs"),
                   pair_subtraction=mapping.extra.get("pair_subtraction", "digital"))


class LayerReadout:
    """One weight layer read through the ADCs; called as ``readout(layer, x, weight)`` by the
    layer's forward hook. ``lo``/``hi`` (per row group) are set by calibration or by hand."""

    def __init__(self, spec: AdcSpec, rows: int, weight_dim: int, w_max: float,
                 kernel: int = 1, in_bits: int = 1) -> None:
        self.spec = spec
        self.in_bits = int(in_bits)  # bits per input element (the mapping's in_bits)
        self.x_max = math.nan        # input full scale, set by calibration (inputs: ...)
        self.signed = False          # inputs seen negative in calibration: x+ and x- passes
        self._x_calib = 0.0
        self.groups = row_groups(rows, spec.array_rows, spec.parallel_rows)
        self.weight_dim = int(weight_dim)
        self.w_max = float(w_max)
        self.offset = spec.offset  # the floor of this layer's cells, in its level units
        self.kernel = int(kernel)  # rows per input channel (kh * kw) of a convolution
        self.lo = torch.full((len(self.groups),), math.nan)
        self.hi = torch.full((len(self.groups),), math.nan)
        self.quantize = True
        self._calib: tuple[list[float], list[float]] | None = None
        self._masks: dict[tuple[int, Any, Any], torch.Tensor | None] = {}

    # -- cells -> columns ---------------------------------------------------------------------
    def columns(self, w: torch.Tensor, levels: torch.Tensor | None = None) -> torch.Tensor:
        """The level matrix of the converted columns, ``(..., k*C, R)``: row j*C + c holds what
        column j of output c sums per unit input (offset rho, or minus the reference); with
        analog pair subtraction one column per pair, (l+ + rho) - (l- + rho)."""
        k = self.spec.cells_per_weight
        sl = self.spec.slicing
        if levels is None:
            levels = ENCODINGS[self.spec.encoding].to_levels(w, k, self.w_max) if sl is None \
                else sl.to_levels(w, self.w_max)
        lv = levels.flatten(-self.weight_dim, -2).movedim(-1, -3).flatten(-3, -2)
        if k == 1 and sl is None:
            return lv - 0.5
        lv = lv + self.offset  # every cell carries its floor current
        if self.spec.analog_pairs:  # the bit line carries the pair's difference
            pos, neg = lv.chunk(2, dim=-2)
            return pos - neg
        if sl is not None and sl.signing == "offset":  # + the reference column
            lv = torch.cat([lv, torch.ones_like(lv[..., :1, :])], dim=-2)
        return lv

    def read(self, p: torch.Tensor, g: int, dim: int) -> torch.Tensor:
        """Convert group ``g``'s partial sums ``p`` (k*C physical columns along ``dim`` < 0) and
        combine each weight's columns: -> the group's contribution to the layer output."""
        if self.spec.slicing is not None:
            return read_sliced(self, p, g, dim)
        pair = self.spec.analog_pairs  # one converted column per pair, its difference
        k = 1 if pair else self.spec.cells_per_weight
        mult = self.w_max * (2.0 if k == 1 and not pair else 1.0)
        scale, shift = mult, None
        if self._calib is not None:
            lo, hi = self._calib
            lo[g] = min(lo[g], float(p.min()))
            hi[g] = max(hi[g], float(p.max()))
        elif self.quantize:
            # the converter's integer codes, (p - lo) / step rounded and clipped; the value is
            # lo + step * code (a pair's lo cancels): fused in-place passes, this runs on
            # every partial sum of every fault map
            top = float(2 ** self.spec.bits - 1)
            lo_g = self.lo[g]
            step = ((self.hi[g] - lo_g) / top).clamp(min=STEP_FLOOR)
            p = torch.addcmul(-lo_g / step, p, 1.0 / step).round_().clamp(0.0, top)
            scale, shift = scale * step, lo_g
        p = p.unflatten(dim, (k, -1))
        if k == 2:
            return (p.select(dim - 1, 0) - p.select(dim - 1, 1)).mul_(scale)
        out = p.select(dim - 1, 0) * scale
        return out if shift is None else out.add_(mult * shift)

    # -- forward ------------------------------------------------------------------------------
    def __call__(self, layer: Any, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        cols = getattr(layer, "cell_columns", None)
        return self.read_columns(layer, x, self.columns(w) if cols is None else cols)

    def read_columns(self, layer: Any, x: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """The layer's output read through the ADCs from the column levels ``cols``."""
        run = self._linear if self.weight_dim == 2 else \
            (lambda xi, c: self._conv(layer, xi, c))
        if not self.serial:  # applied whole (a 1-bit input as is)
            return run(x, cols)
        return quantized_inputs(self, run, x, cols)

    @property
    def serial(self) -> bool:
        """True when this layer's inputs are quantized / applied bit by bit."""
        return self.spec.inputs is not None and self.in_bits > 1

    def _linear(self, x: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        out = None
        for g, (a, b) in enumerate(self.groups):
            y = self.read(x[..., a:b] @ cols[..., a:b].transpose(-1, -2), g, -1)
            out = y if out is None else out + y
        assert out is not None
        return out

    def _mask(self, g: int, ref: torch.Tensor) -> torch.Tensor | None:
        """Zeros for the rows of the channel slice of group g that belong to other groups."""
        key = (g, ref.device, ref.dtype)
        if key not in self._masks:
            a, b = self.groups[g]
            kk = self.kernel
            c0, c1 = a // kk, (b - 1) // kk + 1
            mask = None
            if a != c0 * kk or b != c1 * kk:
                mask = torch.zeros((c1 - c0) * kk, dtype=ref.dtype, device=ref.device)
                mask[a - c0 * kk:b - c0 * kk] = 1.0
            self._masks[key] = mask
        return self._masks[key]

    def _conv(self, layer: Any, x: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        kk = self.kernel
        kh, kw = layer.kernel_size
        out = None
        for g, (a, b) in enumerate(self.groups):
            c0, c1 = a // kk, (b - 1) // kk + 1  # the input channels the group's rows touch
            wg = cols[..., c0 * kk:c1 * kk]
            mask = self._mask(g, cols)
            if mask is not None:
                wg = wg * mask
            p = F.conv2d(x[..., c0:c1, :, :], wg.unflatten(-1, (c1 - c0, kh, kw)), None,
                         layer.stride, layer.padding, layer.dilation)
            y = self.read(p, g, -3)
            out = y if out is None else out + y
        assert out is not None
        return out

    # -- calibration --------------------------------------------------------------------------
    def start_calibration(self) -> None:
        n = len(self.groups)
        self._calib = ([math.inf] * n, [-math.inf] * n)

    def finish_calibration(self, device: torch.device | None = None) -> None:
        assert self._calib is not None
        lo, hi = self._calib
        self._calib = None
        if not all(math.isfinite(v) for v in lo + hi):
            raise DseError("ADC calibration saw no partial sums (empty calibration batch?)")
        self.lo = torch.tensor(lo, device=device)
        self.hi = torch.tensor(hi, device=device)
        self.x_max = self._x_calib


class AdcReadout:
    """The ADC read-out of every weight layer of a model on one chip.

    ``with readout.attached(model): ...`` makes the model's forward pass (plain or inside
    ``vmap(functional_call(...))``) read its layers through the ADCs.
    """

    def __init__(self, spec: AdcSpec, layers: dict[str, LayerReadout]) -> None:
        self.spec = spec
        self.layers = layers

    @property
    def bits(self) -> int:
        return self.spec.bits

    @contextlib.contextmanager
    def attached(self, model: Any) -> Iterator[AdcReadout]:
        mods = dict(model.quant_layers())
        missing = [n for n in self.layers if n not in mods]
        if missing:
            raise DseError(f"the ADC read-out has layers {missing} the model does not have")
        try:
            for name, ro in self.layers.items():
                mods[name].readout = ro
            yield self
        finally:
            for name in self.layers:
                if "readout" in vars(mods[name]):
                    del mods[name].readout

    def calibrate(self, model: Any, x: torch.Tensor, batch_size: int = 1000) -> None:
        """Set every group's range to [min, max] of the clean model's partial sums on ``x``."""
        if len(x) == 0:
            raise DseError("ADC calibration needs at least one image")
        was_training = model.training
        model.eval()
        for ro in self.layers.values():
            ro.start_calibration()
        try:
            with torch.no_grad(), self.attached(model):
                for i in range(0, len(x), batch_size):
                    model(x[i:i + batch_size])
        finally:
            model.train(was_training)
        for ro in self.layers.values():
            ro.finish_calibration(x.device)

    def ranges(self) -> pd.DataFrame:
        """The calibrated full-scale ranges: one row per layer and row group."""
        rows = []
        for name, ro in self.layers.items():
            for g, (a, b) in enumerate(ro.groups):
                rows.append({"layer": name, "group": g, "row_start": a, "row_stop": b,
                             "lo": float(ro.lo[g]), "hi": float(ro.hi[g]),
                             "step": float(ro.hi[g] - ro.lo[g]) / (2 ** self.bits - 1)})
        return pd.DataFrame(rows)


def layer_readouts(model: Any, spec: AdcSpec, in_bits: dict[str, int] | None = None,
                   cls: type[LayerReadout] = LayerReadout) -> dict[str, LayerReadout]:
    """Uncalibrated readouts (``cls``) of ``model``'s weight layers (w_max from the clean
    weights; ``in_bits``: bits per input element of each layer, from the mapping)."""
    out = {}
    with torch.no_grad():
        for name, layer in model.quant_layers():
            wq = layer.quantized_weight().detach()
            if wq.dim() == 4 and (layer.groups != 1 or layer.padding_mode != "zeros"):
                raise DseError(f"layer {name}: the ADC read-out handles ungrouped, zero-padded "
                               "convolutions only")
            w_max = float(wq.abs().max().clamp(min=torch.finfo(wq.dtype).tiny))
            rows = int(wq[0].numel())
            kernel = int(math.prod(wq.shape[2:])) if wq.dim() == 4 else 1
            out[name] = cls(spec, rows, wq.dim(), w_max, kernel, (in_bits or {}).get(name, 1))
    return out


def build_readout(model: Any, mapping: Mapping, calibration: torch.Tensor,
                  bits: int | None = None, batch_size: int = 1000,
                  offset: float | None = None) -> AdcReadout | None:
    """The calibrated ADC read-out of ``model`` on ``mapping``'s chip (None without ADCs).

    ``calibration``: images whose clean partial sums set the full-scale ranges; ``bits``
    overrides the chip's ADC resolution; ``offset``: the floor g_min / (g_max - g_min) of the
    cells read when they are a device card's (default: the chip card's own cells).
    """
    spec = AdcSpec.from_mapping(mapping, bits, offset)
    if spec is None:
        return None
    bits_in = {lm.name: lm.in_bits for lm in mapping.layers}
    readout = AdcReadout(spec, layer_readouts(model, spec, bits_in))
    readout.calibrate(model, calibration, batch_size)
    return readout
