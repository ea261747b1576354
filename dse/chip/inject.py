"""The ``inject`` stage: Monte-Carlo weight faults per operating point, vectorised over fault maps.

For every operating point (a BER, from device cards or given directly) R fault maps are drawn
and the test accuracy of each is measured. Many maps go through the network in one pass: the
weights of M maps are stacked along a leading dimension and evaluated with
``torch.vmap(torch.func.functional_call(...))``; the input images are shared. A fully connected
first layer sees the same input in every map, so it is computed once clean plus one sparse
product over the changed weights of all maps (when few changed). No Python loop runs over
weights or maps (only over layers and chunks of maps/images).

Faults, in order:

1. bit errors of binary/ternary weights at the point's BER (:mod:`dse.nn.faults`; Hirtzlin
   et al., AICAS 2019, arXiv 1904.03652): binary sign flips; ternary 0↔±1 errors, p0 per layer and
   map;
2. analog chips (encoding ``analog``): each weight's cells are programmed to conductances
   g_min + level·(g_max − g_min) with the device card's one-shot programming noise
   (``program(target, generator)``) and, where the model offers ``set_conductance``, read once
   through ``read(state, generator)`` (read noise drawn once per map, frozen over the test set);
   a card with an ``inference:`` block is instead deployed by :mod:`dse.chip.deploy` (the inject
   recipe, :func:`dse.pipeline.recipes.inject_chip`: programming scheme, fresh or trained
   devices, relaxation over time, drift compensation);
3. optional stuck-at cells (:class:`StuckAt`): each cell is stuck in its low-conductance state
   with probability ``sa0`` and in its high-conductance state with ``sa1``; the weight is decoded
   from its cells by the chip's encoding (:mod:`dse.chip.encoding`).

Chips whose sensing is an ADC (the mapping has ``adc_bits``) are read through their ADCs
(:mod:`dse.chip.adc_quant`, switch: ``adc``): every row group's partial sums are quantized to
``adc_bits`` over a full-scale range calibrated on the clean model (calibration images: ``x``,
or ``adc_calibration``), in the noise-free rows and in every fault map (the maps' cell levels
are passed on, so a faulty cell loads its own column; cells programmed from a device card carry
that card's floor g_min, the chip card's r_on/r_off only the chip's own idealised cells).
Other chips are evaluated exactly as before.

A map without any fault (BER 0, no stuck-at, no analog noise) is the model itself: its accuracy
is the clean accuracy, exactly (on an ADC chip: the clean model read through the ADCs,
``table.attrs["adc_accuracy"]``). Every draw comes from the one generator passed in, in order of
passes and layers: the same seed and ``batch`` give the same numbers (another batch size draws
other, statistically equivalent, maps).

``results/inject/{exp}/{chip}.csv``: one row per map::

    <knob columns, e.g. i_prog, vdd (empty for a direct BER)>, ber, stuck_sa0, stuck_sa1,
    noise (none | program | program+read), [adc_bits], repeat, accuracy

``adc_bits`` only for chips with ADC sensing: the resolution the partial sums were quantized to
(empty when the quantization was switched off: ideal read-out).

``results/inject/{exp}/{chip}.summary.csv`` (:func:`summarize`): per operating point
``n, mean, std, sem, ci95_low, ci95_high`` (Student t interval, ``scipy.stats.t.interval``),
``clean_accuracy`` and ``drop`` (= clean − mean). A task stream evaluated task by task
(:func:`dse.pipeline.recipes.inject_chip`) has a ``task`` column in both tables; its clean
accuracy is then each task's (``attrs["clean_by_task"]``).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from dse.chip.ber import OperatingPoint
from dse.chip.encoding import ENCODINGS
from dse.chip.fault_eval import map_accuracies
from dse.chip.inject_summary import summarize
from dse.chip.mapping import Mapping
from dse.chip.slicing import mapping_slicing
from dse.errors import DseError
from dse.nn import evaluate
from dse.nn.faults import apply_weight_confusion, apply_weight_errors

log = logging.getLogger(__name__)
__all__ = ["AnalogNoise", "StuckAt", "fault_passes", "inject", "perturbed_weights", "summarize"]

GROUP = ["ber", "stuck_sa0", "stuck_sa1", "noise"]


@dataclass(frozen=True)
class StuckAt:
    """Cell-level stuck-at faults: probabilities of a cell stuck at HRS (sa0) / LRS (sa1)."""

    sa0: float = 0.0
    sa1: float = 0.0

    def __post_init__(self) -> None:
        if self.sa0 < 0 or self.sa1 < 0 or self.sa0 + self.sa1 > 1:
            raise DseError(f"inject.stuck_at: sa0={self.sa0}, sa1={self.sa1} must be >= 0 and "
                           "sum to at most 1")

    @property
    def active(self) -> bool:
        return self.sa0 > 0 or self.sa1 > 0


@dataclass
class AnalogNoise:
    """Programming (and read) noise of an analog device model (``dse.devices`` DeviceModel)."""

    model: Any
    read: bool = True

    @property
    def label(self) -> str:
        return "program+read" if self.read and hasattr(self.model, "set_conductance") \
            else "program"


def check_layers(model: Any, mapping: Mapping) -> list[tuple[str, Any]]:
    """The model's weight layers on the arrays (its digital layers left out), checked against
    the mapping."""
    digital = {d["name"] for d in mapping.extra.get("digital_layers", [])}
    layers = [(n, m) for n, m in model.quant_layers() if n not in digital]
    names = [n for n, _ in layers]
    mapped = [lm.name for lm in mapping.layers]
    if names != mapped:
        raise DseError(f"the mapping's layers {mapped} are not the model's {names}; re-run "
                       "`dse map` for this model")
    for (n, layer), lm in zip(layers, mapping.layers, strict=True):
        if tuple(layer.matrix_shape) != (lm.rows, lm.cols) or layer.precision != lm.precision:
            raise DseError(f"layer {n}: the mapping has a {lm.rows}x{lm.cols} {lm.precision} "
                           f"matrix, the model a {layer.matrix_shape} {layer.precision} one; "
                           "re-run `dse map` for this model")
    return layers


def _analog_levels(levels: torch.Tensor, analog: AnalogNoise,
                   generator: torch.Generator) -> torch.Tensor:
    """Levels in [0, 1] -> programmed (and read) conductances -> levels."""
    m = analog.model
    g_min, g_max = float(m.g_min), float(m.g_max)
    span = g_max - g_min
    g = m.program(g_min + levels * span, generator)
    if analog.read and hasattr(m, "set_conductance"):
        state = m.sample_devices(tuple(g.shape), generator, dtype=g.dtype)
        state = m.set_conductance(state, g)
        g = m.read(state, generator)
    return (g - g_min) / span


def _cell_floor(analog: AnalogNoise | None) -> float | None:
    """The floor g_min / (g_max - g_min) of the device card's cells (the ADC read-out's
    offset: the programmed cells carry their own HRS current, not the chip card's)."""
    if analog is None:
        return None
    g_min, g_max = float(analog.model.g_min), float(analog.model.g_max)
    return g_min / (g_max - g_min)


def _check_levels(bits: int, model: Any, chip: str) -> None:
    """Warn when the device card's programming spread blurs the 2^b levels of a b-bit cell
    (σ above half the level spacing: neighbouring levels overlap at ±1σ)."""
    sigma = getattr(model, "program_sigma", None)
    if sigma is None:
        return
    spacing = (float(model.g_max) - float(model.g_min)) / (2 ** bits - 1)
    if float(sigma) > spacing / 2:
        log.warning("chip %s: %d-bit cells need %d conductance levels %.3g apart, but the "
                    "device card programs them with sigma %.3g: neighbouring levels overlap",
                    chip, bits, 2 ** bits, spacing, float(sigma))


def perturbed_weights(model: Any, mapping: Mapping, ber: torch.Tensor,
                      generator: torch.Generator, *, stuck_at: StuckAt | None = None,
                      analog: AnalogNoise | None = None, noise: torch.Tensor | None = None,
                      cell_levels: bool = False,
                      confusion: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The weights of M fault maps, ``{"<layer>.weight": tensor (M, *weight.shape)}``.

    ``ber`` has shape (M,); ``noise`` (bool, (M,)) says which maps get analog noise (default all).
    ``confusion`` (M, k, k), NaN for maps without one: those maps read their binary/ternary
    weights through their per-stored-value matrix instead of the BER.
    ``cell_levels``: also return the cell levels where cells were programmed or stuck,
    ``{"<layer>.cell_levels": (M, *weight.shape, cells_per_weight)}`` (for the ADC read-out).
    Keys are relative to ``model.body`` (what :func:`map_accuracies` feeds functional_call).
    """
    layers = check_layers(model, mapping)
    enc = ENCODINGS[mapping.encoding]
    k = mapping.cells_per_weight
    sl = mapping_slicing(mapping)  # bit-sliced weights: every slice cell programmed and read
    if sl is not None and analog is not None:
        _check_levels(sl.bits_per_cell, analog.model, mapping.chip)
    m = int(ber.shape[0])
    stuck = stuck_at if stuck_at is not None and stuck_at.active else None
    use_analog = analog is not None and mapping.encoding == "analog"
    out: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name, layer in layers:
            wq = layer.quantized_weight().detach()
            w = wq.unsqueeze(0).expand(m, *wq.shape)
            if layer.precision in ("binary", "ternary"):
                w = _bit_errors(w, layer.precision, ber, confusion, generator)
            if use_analog or stuck is not None or sl is not None:
                w_max = wq.abs().max().clamp(min=torch.finfo(wq.dtype).tiny)
                levels = enc.to_levels(w, k, w_max) if sl is None else sl.to_levels(w, w_max)
                if use_analog:
                    assert analog is not None
                    noisy = _analog_levels(levels, analog, generator)
                    if noise is not None:
                        mask = noise.view(m, *([1] * (levels.dim() - 1)))
                        noisy = torch.where(mask, noisy, levels)
                    levels = noisy
                if stuck is not None:
                    u = torch.rand(levels.shape, generator=generator, dtype=levels.dtype,
                                   device=levels.device)
                    levels = torch.where(u < stuck.sa0, 0.0,
                                         torch.where(u < stuck.sa0 + stuck.sa1, 1.0, levels))
                w = enc.from_levels(levels, k, w_max, generator) if sl is None \
                    else sl.from_levels(levels, w_max)
                if cell_levels:
                    out[f"{name}.cell_levels"] = levels
            out[f"{name}.weight"] = w
    return out


def _bit_errors(w: torch.Tensor, precision: str, ber: torch.Tensor,
                confusion: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
    """Binary/ternary read errors of M maps: by BER, or by a confusion matrix where given."""
    m, d = w.shape[0], w.dim() - 1
    use = None if confusion is None else ~torch.isnan(confusion[:, 0, 0])
    plain = torch.ones(m, dtype=torch.bool, device=w.device) if use is None else ~use
    out = w
    if bool((ber[plain] > 0).any()):
        b = ber[plain].to(w.dtype)
        b = b.view(-1, *([1] * d)) if precision == "binary" else b
        out = out.clone() if use is not None else out
        part = apply_weight_errors(w[plain], precision, b, d, generator)
        out = part if use is None else out.index_put((plain,), part)
    if use is not None and bool(use.all()):  # every map by its matrix: no gather and scatter
        assert confusion is not None
        return apply_weight_confusion(w, precision, confusion.to(w.dtype), generator)
    if use is not None and bool(use.any()):
        assert confusion is not None
        part = apply_weight_confusion(w[use], precision, confusion[use].to(w.dtype), generator)
        out = out.index_put((use,), part)
    return out


def as_points(points: Sequence[float | OperatingPoint]) -> list[OperatingPoint]:
    """Operating points from BERs (floats) or points, checked."""
    out = []
    for p in points:
        out.append(p if isinstance(p, OperatingPoint) else OperatingPoint(ber=float(p)))
    if not out:
        raise DseError("no operating points to inject (give inject.ber or operating_points)")
    return out


def prepare(model: Any, mapping: Mapping, points: Sequence[float | OperatingPoint],
            repeats: int, batch: int, stuck_at: StuckAt | None, analog: AnalogNoise | None,
            ) -> tuple[list[OperatingPoint], StuckAt | None, bool]:
    """The checks and set-up every injection shares: (points, the active stuck-at rates or
    None, whether analog noise applies); the model is put in eval mode."""
    if repeats < 1:
        raise DseError(f"inject.repeats: {repeats} must be >= 1")
    if batch < 1:
        raise DseError(f"inject.batch: {batch} must be >= 1")
    pts = as_points(points)
    check_layers(model, mapping)
    model.eval()
    stuck = stuck_at if stuck_at is not None and stuck_at.active else None
    use_analog = analog is not None and mapping.encoding == "analog"
    if mapping.encoding == "analog" and analog is None and any(p.noise for p in pts):
        log.warning("analog chip %s without a device card: no programming noise injected",
                    mapping.chip)
    return pts, stuck, use_analog


def inject(model: Any, mapping: Mapping, x: torch.Tensor, y: torch.Tensor,
           points: Sequence[float | OperatingPoint], repeats: int,
           generator: torch.Generator, *, batch: int = 25, stuck_at: StuckAt | None = None,
           analog: AnalogNoise | None = None, progress: bool = False,
           max_elements: float = 8e6, adc: bool = True,
           adc_calibration: torch.Tensor | None = None) -> pd.DataFrame:
    """Accuracy of ``repeats`` fault maps at each operating point (see the module docstring).

    ``points`` are :class:`OperatingPoint` s or plain BERs; ``generator`` (on the model's device)
    draws every fault; ``batch`` fault maps are evaluated per pass. The clean accuracy (ideal
    read-out) is in ``table.attrs["clean_accuracy"]``.

    ``adc``: on chips with ADC sensing, quantize the partial sums to the mapping's ``adc_bits``
    (False: ideal read-out); ``adc_calibration``: images that set the ADC ranges (default ``x``).
    The accuracy of the fault-free model read through the ADCs is in
    ``table.attrs["adc_accuracy"]``.
    """
    pts, stuck, use_analog = prepare(model, mapping, points, repeats, batch, stuck_at, analog)
    encoder = model.encoder
    if hasattr(encoder, "reseed"):  # stochastic input bits: reproducible from the generator
        encoder.reseed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    clean = evaluate(model, x, y)
    noise_label = analog.label if use_analog and analog is not None else "none"
    readout = None
    if adc and mapping.adc_bits is not None:
        from dse.chip.adc_quant import build_readout

        cal = x if adc_calibration is None else adc_calibration.to(x.device)
        readout = build_readout(model, mapping, cal, offset=_cell_floor(analog)
                                if use_analog else None)

    maps = [(i, r) for i in range(len(pts)) for r in range(repeats)]
    with readout.attached(model) if readout is not None else contextlib.nullcontext():
        reference = clean if readout is None else evaluate(model, x, y)
        acc = _map_accuracies(model, mapping, x, y, pts, maps, generator, batch, stuck,
                              analog if use_analog else None, readout is not None, reference,
                              progress, max_elements)
    table = result_table(pts, maps, acc, stuck, noise_label if use_analog else None,
                         None if readout is None else readout.bits, mapping.adc_bits is not None)
    table.attrs["clean_accuracy"] = clean
    if readout is not None:
        table.attrs["adc_accuracy"] = reference
        log.info("%s: %d-bit ADC read-out, fault-free accuracy %.4f (ideal %.4f)",
                 mapping.chip, readout.bits, reference, clean)
    return table


def _map_accuracies(model: Any, mapping: Mapping, x: torch.Tensor, y: torch.Tensor,
                    pts: list[OperatingPoint], maps: list[tuple[int, int]],
                    generator: torch.Generator, batch: int, stuck: StuckAt | None,
                    analog: AnalogNoise | None, cell_levels: bool, reference: float,
                    progress: bool, max_elements: float) -> np.ndarray:
    """Accuracy of every map (point i, repeat r): ``reference`` for maps without any fault, the
    others drawn and evaluated ``batch`` at a time, in order (one generator)."""
    acc = np.full(len(maps), reference)
    for chunk, weights, changed in fault_passes(model, mapping, pts, maps, generator, batch,
                                                stuck, analog, cell_levels, progress, x.device):
        acc[chunk] = map_accuracies(model, weights, x, y, max_elements, changed).cpu().numpy()
    return acc


def fault_passes(model: Any, mapping: Mapping, pts: list[OperatingPoint],
                 maps: list[tuple[int, int]], generator: torch.Generator, batch: int,
                 stuck: StuckAt | None, analog: AnalogNoise | None, cell_levels: bool,
                 progress: bool, device: torch.device,
                 ) -> Iterator[tuple[list[int], dict[str, torch.Tensor], float]]:
    """(map indices, their stacked weights, expected changed fraction) of every pass over the
    faulty maps (point i, repeat r), ``batch`` at a time, drawn in order from ``generator``."""
    faulty = [j for j, (i, _) in enumerate(maps)
              if pts[i].ber > 0 or stuck is not None or (analog is not None and pts[i].noise)]
    chunks = [faulty[s:s + batch] for s in range(0, len(faulty), batch)]
    for chunk in tqdm(chunks, desc=f"inject {mapping.chip}", disable=not progress,
                      leave=False, unit="pass"):
        ber = torch.tensor([pts[maps[j][0]].ber for j in chunk], dtype=torch.float32,
                           device=device)
        noise = torch.tensor([pts[maps[j][0]].noise for j in chunk], device=device)
        weights = perturbed_weights(model, mapping, ber, generator, stuck_at=stuck,
                                    analog=analog, noise=noise, cell_levels=cell_levels,
                                    confusion=_confusions([pts[maps[j][0]] for j in chunk],
                                                          device))
        changed = 1.0 if analog is not None and bool(noise.any()) else (
            float(ber.mean()) + (stuck.sa0 + stuck.sa1 if stuck is not None else 0.0))
        yield chunk, weights, changed


def _confusions(pts: list[OperatingPoint], device: torch.device) -> torch.Tensor | None:
    """(M, k, k) matrices of the maps' points (NaN where a point has none), or None."""
    ks = {len(p.confusion) for p in pts if p.confusion is not None}
    if not ks:
        return None
    if len(ks) > 1:
        raise DseError("operating points of one chip carry confusion matrices of different "
                       f"sizes {sorted(ks)}")
    k = ks.pop()
    nan = [[math.nan] * k] * k
    return torch.tensor([p.confusion if p.confusion is not None else nan for p in pts],
                        dtype=torch.float32, device=device)


def result_table(pts: list[OperatingPoint], maps: list[tuple[int, int]], acc: np.ndarray,
                 stuck: StuckAt | None, noise_label: str | None, adc_bits: int | None,
                 adc_chip: bool) -> pd.DataFrame:
    """One row per fault map: the point's knobs, BER, stuck-at rates, noise, ADC bits, repeat
    and accuracy (the columns of the module docstring)."""
    knob_names = sorted({k for p in pts for k in p.knobs})
    group = [*GROUP, "adc_bits"] if adc_chip else GROUP
    rows = []
    for j, (i, r) in enumerate(maps):
        p = pts[i]
        row: dict[str, Any] = {k: p.knobs.get(k, np.nan) for k in knob_names}
        row.update(ber=p.ber, stuck_sa0=stuck.sa0 if stuck else 0.0,
                   stuck_sa1=stuck.sa1 if stuck else 0.0,
                   noise=noise_label if (noise_label is not None and p.noise) else "none",
                   adc_bits=np.nan if adc_bits is None else adc_bits,
                   repeat=r, accuracy=float(acc[j]))
        rows.append(row)
    return pd.DataFrame(rows, columns=[*knob_names, *group, "repeat", "accuracy"])
