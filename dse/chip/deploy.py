"""Deploying an analog network on a chip's devices: fresh or trained, over time after programming.

What a researcher measures when a trained network goes onto an analog chip (issue 12):

* **devices** — ``fresh``: a new chip, every pair drawn by ``sample_devices`` (its own D2D
  window) and programmed with ``programming`` (:mod:`dse.chip.programming`: ``open_loop`` or
  ``write_verify`` of the pair difference, the card's ``inference:`` physics); ``trained``: the
  very devices the network was trained on (``mixed_precision``'s saved state, the in-situ
  scenario of Wu et al., arXiv 2305.14547, 2023: the trained array *is* the inference array, no
  reprogramming). Per weight layer the target is D = w·span/w_max (fresh) and the devices hold
  W = s·(G⁺ − G⁻) (trained, s the trainer's scale).
* **time after programming** — t = 0 and each of ``times`` (s): the card's relaxation model
  (:meth:`dse.devices.relaxation.RelaxationModel.sample`, the same cells followed in time,
  clipped at the card's HRS floor ``g_floor``); without a relaxation block only t = 0.
* **read noise** — the card's σ_read(G), one draw per cell and fault map, kept over the test
  set. The card's redraw (``per_inference``/``per_mvm``) draws anew per input; for the *mean*
  accuracy the expectation is the same (each image sees one independent draw either way), only
  the spread between maps is smaller here (documented in benchmarks/programming_decomposition.py).
* **compensation** — aihwkit's global drift compensation (:mod:`dse.chip.drift`): one
  reference read per layer right after programming (the t = 0 read, with its read noise), at t
  the layer's outputs scaled by α = Σ|W₀·1| / Σ|W_t·1|; rows with ``compensated`` True. On an
  ADC chip α multiplies the converted output (``cell_gain``), as aihwkit scales the tile's
  digital output: the ADCs convert the drifted, smaller currents with the ranges of t = 0.
* **read-out** — an ADC chip is read through its ADCs (:mod:`dse.chip.adc_quant`, the chip
  card's ``sensing.pair_subtraction``) from the deployed cells themselves: a column current is
  Σ x·G of the cells (their floor, D2D window, programming and relaxation included), in the
  layer's level units G·c/w_max (the read-out's per-layer offset is the device card's g_min·c/
  w_max, never the chip card's r_on/r_off, which describe idealised cells). Ranges calibrated
  on the clean model at the device card's floor (fresh) or on the trained array's noise-free
  cells (trained: its pairs hold a common mode a fresh chip's off cells do not, and the chip
  calibrates the references of the array it has).

Every draw comes from the one generator passed in; the loop runs over devices options, layers
and times only (vectorised over the R maps and every cell).

:func:`deploy` returns two tables: per map ``devices, programming, time_s, compensated, repeat,
accuracy`` (``programming`` = the scheme, or ``in_situ`` on the trained devices), and per layer
the :class:`dse.chip.programming.ProgrammingReport` of each fresh programming (residual,
unreachable fraction, pulses, energy, time). The per-map table's ``attrs["cell_conductance"]``
is {layer: mean conductance (S)} of the first devices deployed, at t = 0: the current the
estimate's read energy charges (:mod:`dse.chip.array_energy`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from dse.chip.drift import global_drift_factor
from dse.chip.fault_eval import map_accuracies
from dse.chip.mapping import Mapping as ChipMapping
from dse.chip.programming import SCHEMES, program, summarize
from dse.errors import DseError

log = logging.getLogger(__name__)

Tensor = torch.Tensor
DEVICES = ("trained", "fresh")
COLUMNS = ["devices", "programming", "time_s", "compensated", "repeat", "accuracy"]


@dataclass(frozen=True)
class DeploySettings:
    """How an analog network is deployed (``inject:`` keys ``devices``, ``programming``,
    ``times``, ``compensation``)."""

    devices: tuple[str, ...] = DEVICES
    programming: str = "write_verify"
    times: tuple[float, ...] = ()
    compensation: bool = True

    def __post_init__(self) -> None:
        bad = [d for d in self.devices if d not in DEVICES]
        if bad or not self.devices:
            raise DseError(f"inject.devices: {list(self.devices)} (allowed: "
                           f"{', '.join(DEVICES)}, at least one)")
        if self.programming not in SCHEMES:
            raise DseError(f"inject.programming: '{self.programming}' (allowed: "
                           f"{', '.join(SCHEMES)})")
        if any(not t > 0 for t in self.times):
            raise DseError(f"inject.times: {list(self.times)} must be > 0 (s after programming)")


@dataclass
class _Layer:
    """One layer's deployed cells: conductances (R·2N,) and their weight scale."""

    name: str
    shape: torch.Size
    g: Tensor  # (R·2N,) noise-free conductances right after programming
    c: float  # weight units per conductance unit
    w_max: float  # the read-out's w_max of the layer (clean weights)

    def offset(self, g_min: float) -> float:
        """The cells' floor g_min in the read-out's level units (G − g_min)·c/w_max."""
        return g_min * self.c / self.w_max


def _fresh_layers(model: Any, dev: Any, phys: Any, scheme: str, repeats: int,
                  generator: torch.Generator, reports: list[dict[str, Any]]) -> list[_Layer]:
    span = phys.g_max - phys.g_min
    out = []
    for name, layer in model.quant_layers():
        wq = layer.quantized_weight().detach()
        w_max = float(wq.abs().max().clamp(min=torch.finfo(wq.dtype).tiny))
        d = (wq / w_max * span).reshape(-1).repeat(repeats)  # R chips
        state = dev.sample_devices((2 * d.numel(),), generator, dtype=d.dtype)
        res = program(scheme, dev, state, d, phys, generator)
        reports.append({"devices": "fresh", "layer": name, **summarize(res, phys).as_dict()})
        out.append(_Layer(name, wq.shape, dev.read(state).to(d.dtype), w_max / span, w_max))
    return out


def _trained_layers(model: Any, dev: Any, trained: Mapping[str, Mapping[str, Any]],
                    repeats: int) -> list[_Layer]:
    out = []
    for name, layer in model.quant_layers():
        entry = trained.get(name)
        if entry is None or entry.get("scale") is None:
            raise DseError(f"layer {name}: the model has no trained device state with a weight "
                           "scale (train it with mixed_precision, or use inject.devices: "
                           "[fresh])")
        wq = layer.quantized_weight().detach()
        state = {k: v.to(wq.device) for k, v in entry["state"].items()}
        g = dev.read(state).to(wq.dtype)
        if g.numel() != 2 * wq.numel():
            raise DseError(f"layer {name}: {g.numel()} trained devices for {wq.numel()} "
                           "weights; re-run `dse train`")
        n = wq.numel()
        g = torch.cat([g[:n].repeat(repeats), g[n:].repeat(repeats)])
        w_max = float(wq.abs().max().clamp(min=torch.finfo(wq.dtype).tiny))
        out.append(_Layer(name, wq.shape, g, float(entry["scale"]), w_max))
    return out


def _weights(ly: _Layer, g: Tensor, repeats: int, g_min: float) -> tuple[Tensor, Tensor]:
    """(weights (R, *shape), cell levels (R, *shape, 2)) of conductances ``g`` (R·2N,): W =
    c·(G⁺ − G⁻) and levels (G − g_min)·c/w_max, so that W = w_max·(l⁺ − l⁻) as the read-out
    decodes a pair."""
    half = g.numel() // 2
    w = ((g[:half] - g[half:]) * ly.c).view(repeats, *ly.shape)
    lv = torch.stack([g[:half], g[half:]], -1).sub_(g_min).mul_(ly.c / ly.w_max)
    return w, lv.view(repeats, *ly.shape, 2)


def _series(layers: list[_Layer], phys: Any, times: Sequence[float], repeats: int,
            floor: float, generator: torch.Generator, later: torch.Generator,
            compensation: bool) -> dict[tuple[float, bool], dict[str, Tensor]]:
    """The weights (and cell levels) of every map at t = 0 and each time, with and without
    compensation: ``{(t, compensated): {"<layer>.weight": ..., "<layer>.cell_levels": ...}}``.
    The t = 0 reads draw from ``generator``, the relaxation and the later reads from ``later``,
    so the t = 0 rows do not depend on which times are asked."""
    out: dict[tuple[float, bool], dict[str, Tensor]] = {}
    for ly in layers:
        gs = [ly.g]
        if times:
            gs += list(phys.relaxation.sample(ly.g, list(times), later, floor=floor))
        ref = None
        for t, g in zip([0.0, *times], gs, strict=True):
            w, lv = _weights(ly, phys.read(g, generator if t == 0 else later), repeats,
                             phys.g_min)
            out.setdefault((t, False), {}).update({f"{ly.name}.weight": w,
                                                   f"{ly.name}.cell_levels": lv})
            if ref is None:
                ref = w  # the reference read right after programming
            elif compensation:  # the gain is digital: an ADC converts the drifted cells
                alpha = global_drift_factor(ref, w)
                out.setdefault((t, True), {}).update({
                    f"{ly.name}.weight": w * alpha.view(repeats, *([1] * len(ly.shape))),
                    f"{ly.name}.cell_levels": lv, f"{ly.name}.cell_gain": alpha})
    return out


def _readout(model: Any, mapping: ChipMapping, layers: list[_Layer], g_min: float,
             calibration: Tensor, on_cells: bool) -> Any:
    """The ADC read-out of the deployed cells (each layer's offset: the cells' own floor),
    ranges calibrated on the clean model (``on_cells`` False) or on the layers' own noise-free
    cells (the first map); None on a chip without ADCs."""
    from dse.chip.adc_quant import AdcReadout, AdcSpec, layer_readouts

    spec = AdcSpec.from_mapping(mapping)
    if spec is None:
        return None
    bits_in = {lm.name: lm.in_bits for lm in mapping.layers}
    readout = AdcReadout(spec, layer_readouts(model, spec, bits_in))
    mods = dict(model.quant_layers())
    by_name = {ly.name: ly for ly in layers}
    try:
        for name, ro in readout.layers.items():
            ly = by_name[name]
            ro.offset = ly.offset(g_min)
            if on_cells:
                k, half = ly.shape.numel(), ly.g.numel() // 2
                w1, lv1 = _weights(ly, torch.cat([ly.g[:k], ly.g[half:half + k]]), 1, g_min)
                mods[name].cell_columns = ro.columns(w1[0], lv1[0])
        with torch.no_grad():
            readout.calibrate(model, calibration)
    finally:
        for name in readout.layers:
            if "cell_columns" in vars(mods[name]):
                del mods[name].cell_columns
    return readout


def deploy(model: Any, mapping: ChipMapping, x: Tensor, y: Tensor, dev: Any, phys: Any,
           repeats: int, generator: torch.Generator, settings: DeploySettings, *,
           trained: Mapping[str, Mapping[str, Any]] | None = None,
           calibration: Tensor | None = None, adc: bool = True,
           max_elements: float = 8e6) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-map accuracy table, per-layer programming table): module docstring.

    ``dev``: the analog device model (fresh devices are drawn from it; the trained ones are
    read by it); ``phys``: its :class:`~dse.devices.inference.InferencePhysics`; ``trained``:
    ``{layer: {"state": ..., "scale": s}}`` (:func:`dse.train.device_state.unpack`), needed for
    ``devices: trained``; ``calibration``: the ADC calibration images (default ``x``).
    """
    if repeats < 1:
        raise DseError(f"inject.repeats: {repeats} must be >= 1")
    times = tuple(settings.times) if phys.relaxation is not None else ()
    if settings.times and not times:
        log.warning("%s: device card without inference.relaxation; times %s left out",
                    mapping.chip, list(settings.times))
    floor = float(dev.values.get("g_floor", 0.0)) if hasattr(dev, "values") else 0.0
    cal = x if calibration is None else calibration
    # the relaxation's own stream, one draw of the generator whatever the times
    later = torch.Generator(device=x.device).manual_seed(
        int(torch.randint(2 ** 62, (1,), generator=generator, device=generator.device)))
    model.eval()
    rows: list[dict[str, Any]] = []
    reports: list[dict[str, Any]] = []
    conductance: dict[str, float] = {}
    for which in settings.devices:
        if which == "trained":
            if trained is None:
                log.warning("%s: the model has no trained devices (trainer without devices); "
                            "devices: trained left out", mapping.chip)
                continue
            layers = _trained_layers(model, dev, trained, repeats)
            scheme = "in_situ"
        else:
            layers = _fresh_layers(model, dev, phys, settings.programming, repeats, generator,
                                   reports)
            scheme = settings.programming
        readout = _readout(model, mapping, layers, phys.g_min, cal, which == "trained") \
            if adc else None
        series = _series(layers, phys, times, repeats, floor, generator, later,
                         settings.compensation)
        ctx = readout.attached(model) if readout is not None else contextlib.nullcontext()
        with ctx:
            for (t, comp), weights in series.items():
                if readout is None:  # the weights carry the compensation
                    weights = {k: v for k, v in weights.items()
                               if not k.endswith((".cell_levels", ".cell_gain"))}
                acc = map_accuracies(model, weights, x, y, max_elements, 1.0).cpu().tolist()
                rows += [{"devices": which, "programming": scheme, "time_s": t,
                          "compensated": comp, "repeat": r, "accuracy": a}
                         for r, a in enumerate(acc)]
        if not conductance:  # the first devices deployed: what the estimate charges
            conductance = _mean_conductance(layers, dev)
    table = pd.DataFrame(rows, columns=COLUMNS)
    table.attrs["cell_conductance"] = conductance
    return table, pd.DataFrame(reports)


def _mean_conductance(layers: list[_Layer], dev: Any) -> dict[str, float]:
    """{layer: mean conductance (S) of its deployed cells, both cells of every pair, over the
    maps} right after programming: the cells' current the estimate's read energy charges
    (:mod:`dse.chip.array_energy`)."""
    from dse.devices.measurement_io import CONDUCTANCE_UNITS

    unit = str(getattr(dev, "unit", "") or "")
    if unit not in CONDUCTANCE_UNITS:
        log.warning("device unit %r is not a conductance unit (%s): the estimate charges the "
                    "chip card's cells", unit, ", ".join(CONDUCTANCE_UNITS))
        return {}
    return {ly.name: float(ly.g.double().mean()) * CONDUCTANCE_UNITS[unit] for ly in layers}
