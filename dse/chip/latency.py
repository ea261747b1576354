"""Latency and throughput of a mapped network: per layer, per inference, TOPS, TOPS/W, TOPS/mm².

Pure functions over a :class:`~dse.chip.mapping.Mapping`, its :class:`~dse.chip.card.ChipCard`
and a :class:`Timing` (the durations of one sense, read, conversion and clock cycle). The model
(weight-stationary, as the mapping: every layer has its own arrays):

* the tiles of a layer work in parallel, so a layer takes the time of its fullest tile:
  r = min(R, R_a) rows and c = min(C, ⌊C_a/k⌋) weight columns (k·c physical columns);
* output positions (P, 1 for a fully connected layer) are processed one after the other, by
  each of the layer's d copies (``dataflow.speed_up``, :func:`dse.chip.dataflow.duplication`):
  ⌈P/d⌉ positions per copy;
* ``dataflow.schedule: sequential`` (default): layers run one after the other, latency = Σ
  layers = the cycle between images; ``pipelined``: the layers overlap (each has its own
  arrays), the slowest layer sets the cycle (:func:`dse.chip.dataflow.cycle_ns`), latency of
  one image still Σ layers; inferences/s = 1/cycle;
* the digital accumulation (popcount of XNOR results, or shift-add of ADC outputs) takes one
  clock cycle T_clk per value and overlaps the next sense/conversion (pipelined), so each step
  costs max(t_step, T_clk), plus one T_clk to drain the pipeline; partial sums of the
  ⌈R/R_a⌉ row tiles are added by an adder tree of ⌈log₂ tiles_rows⌉ clock cycles.

``pcsa``: one word line at a time, every sense amplifier senses one weight per row
(``cols_per_sense_amp`` weight columns share one PCSA and are sensed in turn, default 1; the
XNOR with the input happens in the sense, Hirtzlin et al. 2020)::

    n_sa = ⌈⌊C_a/k⌋ / cols_per_sense_amp⌉,   steps = r · ⌈c / n_sa⌉
    t_position = steps·max(t_sense, T_clk) + T_clk + ⌈log₂ tiles_rows⌉·T_clk

``adc``: bit-serial inputs (b_in cycles), ``parallel_rows`` rows per read, each ADC converts its
``cols_per_adc`` physical columns in turn (DNN+NeuroSim's column multiplexing)::

    groups = ⌈r / parallel_rows⌉,   n_adc = ⌈C_a / cols_per_adc⌉,   conv = ⌈k·c / n_adc⌉
    t_position = b_in·groups·(t_read + conv·max(t_adc, T_clk)) + T_clk + ⌈log₂ tiles_rows⌉·T_clk

Operations: 2 per multiply-accumulate (MAC = P·R·C per layer), the usual convention of
TOPS figures (e.g. DNN+NeuroSim's). TOPS = ops/cycle; TOPS/W = ops/energy per inference;
TOPS/mm² = TOPS/area.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from dse.chip.adc_mlsa import column_of
from dse.chip.card import ChipCard
from dse.chip.dataflow import cycle_ns, duplication
from dse.chip.mapping import LayerMapping, Mapping
from dse.chip.sensing import Timing
from dse.errors import DseError

__all__ = ["COLUMNS", "Timing", "latency", "layer_latency", "pcsa_timing", "throughput",
           "timing"]

COLUMNS = ["layer", "positions", "copies", "steps_per_position", "step_ns", "accumulate_ns",
           "reduce_ns", "latency_ns", "macs", "ops", "schedule"]


def timing(chip: ChipCard, sense_cycle_s: float | None = None,
           logic_delay_scale: float = 1.0) -> Timing:
    """The chip's :class:`Timing`.

    ``sense_cycle_s`` (one PCSA sense: precharge + window, e.g. from a ``pcsa_physical``
    model's ``cycle_time`` at the operating point) overrides the card's ``sensing.sense_time``;
    ``logic_delay_scale`` divides the card's ``digital.clock`` (given at ``supply_ref``) for
    another supply (e.g. ``pcsa_physical.logic_delay_scale``).
    """
    src = chip.origin or f"chip card '{chip.name}'"
    if chip.clock_hz is None:
        raise DseError("digital.clock: missing; latency needs the clock of the digital "
                       "accumulation (add {value: ..., unit: MHz, source: ...})", source=src)
    if not logic_delay_scale > 0:
        raise DseError(f"logic delay scale {logic_delay_scale!r} must be > 0", source=src)
    clock = chip.clock_hz / logic_delay_scale
    if sense_cycle_s is not None and not sense_cycle_s > 0:
        raise DseError(f"sense cycle {sense_cycle_s!r} s must be > 0", source=src)
    t, missing = chip.sensing.timing(clock, chip.read_pulse_s, sense_cycle_s, chip.node_nm,
                                     column_of(chip))
    if t is None:
        raise DseError(f"{missing}: missing; the latency of a '{chip.sensing.kind}' chip needs "
                       "it (add {value: ..., unit: ns, source: ...})", source=src)
    return t


def pcsa_timing(chip: ChipCard, sense_model: Any, **op: Any) -> Timing:
    """:func:`timing` of a PCSA chip with a physical sense model (``pcsa_physical``) at ``op``:
    its cycle (precharge + window) and its logic delay at ``vdd`` relative to ``supply_ref``."""
    vdd = float(op.get("vdd", chip.supply_v))
    op = {**op, "vdd": vdd}
    cycle = float(sense_model.cycle_time(**op))
    scale = float(sense_model.logic_delay_scale(vdd, chip.supply_ref_v,
                                                op.get("temperature", 300.0),
                                                op.get("dvth", 0.0)))
    return timing(chip, sense_cycle_s=cycle, logic_delay_scale=scale)


def _reduce_cycles(lm: LayerMapping) -> int:
    return math.ceil(math.log2(lm.tiles_rows)) if lm.tiles_rows > 1 else 0


def layer_latency(lm: LayerMapping, chip: ChipCard, t: Timing,
                  copies: int = 1) -> dict[str, Any]:
    """Latency of one layer with ``copies`` copies of its arrays (see the module docstring), in
    ns, with its parts."""
    r = min(lm.rows, chip.rows)
    c = min(lm.cols, chip.weight_cols)
    clk = t.clock_s
    steps, step, array = chip.sensing.array_time(r, c, chip.weight_cols, chip.cells_per_weight,
                                                 lm.in_bits, t, chip.differential_pairs)
    reduce = _reduce_cycles(lm) * clk
    per_position = array + clk + reduce
    macs = lm.positions * lm.rows * lm.cols
    p = math.ceil(lm.positions / copies)  # positions per copy
    return {"layer": lm.name, "positions": lm.positions, "copies": copies,
            "steps_per_position": steps, "step_ns": step * 1e9, "accumulate_ns": p * clk * 1e9,
            "reduce_ns": p * reduce * 1e9, "latency_ns": p * per_position * 1e9, "macs": macs,
            "ops": 2 * macs, "schedule": chip.schedule}


def latency(mapping: Mapping, chip: ChipCard, t: Timing) -> pd.DataFrame:
    """One row per layer (columns :data:`COLUMNS`); the inference latency is the sum."""
    mapping.check_chip(chip)
    dup = duplication(mapping.layers, chip)
    return pd.DataFrame([layer_latency(lm, chip, t, dup[lm.name]) for lm in mapping.layers],
                        columns=COLUMNS)


def throughput(table: pd.DataFrame, energy_per_inference_pj: float | None = None,
               area_mm2: float | None = None) -> dict[str, float]:
    """Latency per inference (ns), the cycle between images (ns; = latency unless the layers
    are pipelined), inferences/s, TOPS and, given energy and area, TOPS/W and TOPS/mm² (energy
    from :func:`dse.chip.estimate.totals`: ``energy_per_inference_pJ``)."""
    lat_ns = float(table["latency_ns"].sum())
    schedule = str(table["schedule"].iloc[0]) if "schedule" in table and len(table) \
        else "sequential"
    cyc = cycle_ns(table["latency_ns"].tolist(), schedule)
    ops = float(table["ops"].sum())
    out = {"latency_ns": lat_ns, "cycle_ns": cyc, "inferences_per_s": 1e9 / cyc,
           "ops_per_inference": ops, "tops": ops / (cyc * 1e-9) * 1e-12}
    if energy_per_inference_pj is not None:
        out["tops_per_w"] = ops / (energy_per_inference_pj * 1e-12) * 1e-12
        out["power_w"] = energy_per_inference_pj * 1e-12 / (cyc * 1e-9)
    if area_mm2 is not None:
        out["tops_per_mm2"] = out["tops"] / area_mm2
    return out
