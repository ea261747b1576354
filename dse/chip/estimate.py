"""The ``estimate`` stage: energy and area per layer and component, from a mapping and a chip.

Energy = (operation count of the mapping) × (energy per operation of the chip card):

================  ==========================  ==============================================
component         count                       energy per operation
================  ==========================  ==============================================
cells             cell_reads                  card read energy, or a·V²·t_sense·(f/R_on+
                                              (1−f)/R_off) (dse.chip.array_energy)
bitlines          column lines charged        C_BL·V_read² (ADC chips, sensed model)
wordlines         active row lines charged    C_WL·V_dd² (ADC chips, sensed model)
sense_amps        sense_ops                   sensing.sense_energy · (V/V_ref)²
adc               adc_conversions             the card's ADC model (dse.chip.adc) at its bits
accumulate        partial_sum_additions       digital.add_energy · (V/V_ref)²
buffer            buffer_accesses (bits)      digital.buffer_energy · (V/V_ref)²
dac               dac_conversions             sensing.dac_energy (ADC chips with inputs: dac)
periphery         tiles (area only)           —
programming       cells (one write pulse per  write energy per pulse (deployment, once)
                  cell)
training          device pulses of training   write energy per pulse (pulses.csv/history.csv)
================  ==========================  ==============================================

V is the chip's supply (``supply_v``, the operating point's ``vdd``); V_ref the supply at which
the card gives those energies; ``a`` the layer's input activity (measured, or the card's
``cell.input_activity``). Area per layer = tiles × copies (``dataflow.speed_up``,
:mod:`dse.chip.dataflow`) × per-array area of each component (cell array, sense amplifiers,
ADCs, the shift-add unit of each ADC (``digital.accumulator_area``), periphery rows and
columns); buffers, interconnect and the accumulation beyond the arrays are not modelled.

``results/estimate/{exp}/{chip}.csv`` (tidy, one row per layer and component)::

    layer, component, scope (inference | deployment | training), count, energy_per_op_fJ,
    energy_pJ, area_um2, detail

``scope``: inference rows are per inference (one image); deployment = programming every cell once;
training = the pulses counted during training. Totals are plain sums (:func:`totals`).
"""

from __future__ import annotations

import logging

import pandas as pd

from dse.chip import array_energy
from dse.chip.card import ChipCard
from dse.chip.dataflow import duplication
from dse.chip.mapping import LayerMapping, Mapping
from dse.errors import DseError

log = logging.getLogger(__name__)

COLUMNS = ["layer", "component", "scope", "count", "energy_per_op_fJ", "energy_pJ", "area_um2",
           "detail"]
ENERGY_COMPONENTS = (("cells", "cell_reads"), ("sense_amps", "sense_ops"),
                     ("adc", "adc_conversions"), ("accumulate", "partial_sum_additions"),
                     ("buffer", "buffer_accesses"))
ALL_LAYERS = "(all)"


def energy_per_op(chip: ChipCard, activity: float | None = None,
                  conductance: float | None = None) -> dict[str, float]:
    """fJ per operation, keyed by the mapping's count names (``activity``: the layer's input
    activity, default the card's; ``conductance``: its deployed cells' mean, S, default the
    card's cells; :mod:`dse.chip.array_energy`)."""
    s = chip.supply_scale
    a = chip.input_activity if activity is None else activity
    return {
        "cell_reads": array_energy.cell_energy_fj(chip, a, conductance),
        "sense_ops": chip.sensing.sense_energy_fj() * s,
        "adc_conversions": chip.adc_fj,
        "partial_sum_additions": chip.add_fj * s,
        "buffer_accesses": chip.buffer_fj * s,
        "dac_conversions": chip.sensing.dac_energy_fj(),
    }


def array_area(chip: ChipCard) -> dict[str, float]:
    """µm² per array, by component."""
    f2 = chip.f_um ** 2
    sensing = chip.sensing
    return {
        "cells": chip.rows * chip.cols * chip.cell_area_f2 * f2,
        "sense_amps": sensing.sense_amps_per_array(chip.cols, chip.cells_per_weight)
        * sensing.sense_amp_area_um2(chip.f_um),
        "adc": sensing.adcs_per_array(chip.cols) * chip.adc_area_um2,
        "accumulate": sensing.adcs_per_array(chip.cols) * chip.accumulator_area_f2 * f2,
        "buffer": 0.0,
        "dac": 0.0,  # input DACs: area not modelled
        "periphery": (chip.rows * chip.periphery_row_f2 + chip.cols * chip.periphery_col_f2) * f2,
    }


def _details(chip: ChipCard) -> dict[str, str]:
    cell = (f"{chip.cell_read_fj:.4g} fJ/read (card value)" if chip.cell_read_energy_fj
            is not None else f"{chip.cell_read_fj:.4g} fJ/read = V²t(f/Ron+(1-f)/Roff), "
            f"V={chip.read_voltage_v:g} V, t={chip.read_pulse_s:g} s, f={chip.lrs_fraction:g}")
    adc = chip.sensing.describe(chip.node_nm)["adc"]
    return {"cells": cell, "sense_amps": f"supply {chip.supply_v:g} V", "adc": adc,
            "dac": "input DAC, one conversion per input element and position",
            "accumulate": f"supply {chip.supply_v:g} V", "buffer": f"supply {chip.supply_v:g} V",
            "periphery": ""}


def _pulse_table(pulses: pd.DataFrame) -> pd.Series:
    """Pulses per layer from a pulses.csv (layer, pulses) or history.csv (pulses_up/down)."""
    if {"layer", "pulses"} <= set(pulses.columns):
        return pulses.groupby("layer", sort=False)["pulses"].sum()
    if {"pulses_up", "pulses_down"} <= set(pulses.columns):
        total = pulses["pulses_up"].sum() + pulses["pulses_down"].sum()
        return pd.Series({ALL_LAYERS: total})
    raise DseError("pulse table needs columns layer, pulses (pulses.csv) or pulses_up, "
                   "pulses_down (history.csv); point at a directory written by `dse train`")


def _line_rows(lm: LayerMapping, chip: ChipCard, a: float) -> list[dict]:
    """Bit-line and word-line charging of an ADC chip's layer (sensed model)."""
    if not array_energy.sensed(chip):
        return []
    n = array_energy.line_charges(lm, chip, a)
    e = array_energy.line_energy_fj(chip)
    detail = array_energy.describe(chip, a)
    return [{"layer": lm.name, "component": comp, "scope": "inference", "count": n[comp],
             "energy_per_op_fJ": e[comp], "energy_pJ": n[comp] * e[comp] * 1e-3,
             "area_um2": 0.0, "detail": detail[comp]} for comp in ("bitlines", "wordlines")]


def estimate(mapping: Mapping, chip: ChipCard, pulses: pd.DataFrame | None = None,
             write_energy_pj: float | None = None,
             input_activity: array_energy.Activity = None,
             cell_conductance: array_energy.Conductance = None) -> pd.DataFrame:
    """Energy and area per layer and component (see the module docstring).

    ``write_energy_pj`` (energy of one write pulse) defaults to the card's
    ``programming.write_energy``; callers with a device card pass its ``write_energy`` here.
    ``input_activity``: measured fraction of 1s in the input bit planes (one number or {layer:
    value}, :func:`dse.chip.activity.input_bit_activity`); default the card's
    ``cell.input_activity``. ``cell_conductance``: {layer: mean conductance (S) of the deployed
    cells} (the inject stage's deployment), default the card's cells.
    """
    mapping.check_chip(chip)
    area = array_area(chip)
    w_pj = write_energy_pj if write_energy_pj is not None else chip.write_pj
    dup = duplication(mapping.layers, chip)
    rows: list[dict] = []
    for lm in mapping.layers:
        a = array_energy.activity_of(chip, lm.name, input_activity)
        g = (cell_conductance or {}).get(lm.name)
        e_op = energy_per_op(chip, a, g)
        detail = {**_details(chip), **array_energy.describe(chip, a, g)}
        tiles = lm.tiles * dup[lm.name]  # duplicated arrays (dataflow.speed_up) cost area
        comps = ENERGY_COMPONENTS + ((("dac", "dac_conversions"),) if lm.dac_conversions
                                     else ())
        for comp, count_name in comps:
            n = getattr(lm, count_name)
            rows.append({"layer": lm.name, "component": comp, "scope": "inference", "count": n,
                         "energy_per_op_fJ": e_op[count_name],
                         "energy_pJ": n * e_op[count_name] * 1e-3,
                         "area_um2": tiles * area[comp], "detail": detail[comp]})
        rows += _line_rows(lm, chip, a)
        rows.append({"layer": lm.name, "component": "periphery", "scope": "inference",
                     "count": tiles, "energy_per_op_fJ": 0.0, "energy_pJ": 0.0,
                     "area_um2": tiles * area["periphery"],
                     "detail": "word-line drivers and column circuits of each array"})
        if w_pj is not None:
            rows.append({"layer": lm.name, "component": "programming", "scope": "deployment",
                         "count": lm.cells, "energy_per_op_fJ": w_pj * 1e3,
                         "energy_pJ": lm.cells * w_pj, "area_um2": 0.0,
                         "detail": "one write pulse per cell"})
    if pulses is not None and len(pulses):
        per_layer = _pulse_table(pulses)
        if per_layer.sum() > 0 and w_pj is None:
            raise DseError(f"chip '{chip.name}' has no write energy per pulse for the training "
                           "pulses; add programming.write_energy to the card or give a device "
                           "card with write_energy")
        for layer, n in per_layer.items():
            n = int(n)
            rows.append({"layer": layer, "component": "training", "scope": "training",
                         "count": n, "energy_per_op_fJ": (w_pj or 0.0) * 1e3,
                         "energy_pJ": n * (w_pj or 0.0), "area_um2": 0.0,
                         "detail": "device programming pulses counted during training"})
    elif w_pj is None:
        log.info("chip %s: no write energy, no programming rows", chip.name)
    return pd.DataFrame(rows, columns=COLUMNS)


def totals(table: pd.DataFrame) -> dict[str, float]:
    """Energy per scope (pJ) and total area (µm², mm²) of an estimate table."""
    by_scope = table.groupby("scope")["energy_pJ"].sum()
    area = float(table["area_um2"].sum())
    return {"energy_per_inference_pJ": float(by_scope.get("inference", 0.0)),
            "deployment_pJ": float(by_scope.get("deployment", 0.0)),
            "training_pJ": float(by_scope.get("training", 0.0)),
            "area_um2": area, "area_mm2": area * 1e-6}


def by_component(table: pd.DataFrame, scope: str = "inference") -> pd.DataFrame:
    """Energy and area summed over layers, per component, for one scope."""
    t = table[table["scope"] == scope]
    return t.groupby("component", sort=False)[["energy_pJ", "area_um2"]].sum()
