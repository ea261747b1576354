"""Read energy of an analog (ADC) array: the cells' current while a column is sensed, and the
charging of its bit lines and word lines (issue 14).

``cell.read_energy_model: sensed`` (the default) — per cell and read cycle::

    E_cell = a · V_read² · G · t_sense,   G = f/R_on + (1 − f)/R_off

* ``a`` = input activity, the fraction of rows whose input bit is 1 in a read cycle: a cell
  whose row carries a 0 is not driven and draws no current (DNN+NeuroSim V1.4 weighs its array
  and sense energies by ``activityRowRead``, measured from the bit planes of the real inputs:
  ``SubArray.cpp``, ``ProcessingUnit.cpp``). Measured per layer with
  :func:`dse.chip.activity.input_bit_activity` and passed to the estimate; otherwise the card's
  ``cell.input_activity`` (default 0.5: every bit of a uniformly distributed input is 1 half of
  the time — an assumption).
* ``t_sense`` = the time the column is connected to its converter: one conversion of the card's
  ADC model (``sensing.adc_time`` when given; NeuroSim's SAR (bits+1) ns; the MLSA's column
  latency). DNN+NeuroSim counts the cell current only there, as the column power of the
  converter × its latency (``SarADC.cpp`` / ``MultilevelSenseAmp.cpp`` ``GetColumnPower`` ×
  latency); the word line may stay on for the whole read pulse, but a column the multiplexer
  has not selected floats and carries no DC current.
* ``G`` = the mean conductance of the cells actually deployed when it is known (measured by
  the inject stage on the deployed devices, fresh or trained: :func:`dse.chip.deploy.deploy`,
  passed per layer as ``cell_conductance``), otherwise the chip card's cells,
  f/R_on + (1 − f)/R_off with ``f`` = ``cell.lrs_fraction`` (share of LRS cells).

Line charging, per read cycle (one input bit, one row group), as DNN+NeuroSim's
``readDynamicEnergyArray`` (``SubArray.cpp``, conventional parallel mode):

* every physical column's line, C_BL = R_a · h · F · c_w, to V_read:  count = ADC conversions'
  column reads (P · b_in · G · C · k), energy C_BL · V_read²;
* every active row's line, C_WL = C_a · w · F · c_w, to the supply, once per multiplexer phase
  (``cols_per_adc`` phases): count = a · P · b_in · R · tiles_cols · cols_per_adc, energy
  C_WL · V_dd²;

with c_w = 0.2 fF/µm (:data:`dse.chip.technology.WIRE_CAP_F_PER_M`), h × w the cell's height
and width in F (``cell.height`` / ``cell.width``; default √area each, a square cell).

``full_pulse`` — the former upper bound, kept for comparison: every cell in every cycle
(a = 1) for the whole ``cell.read_pulse``, no line charging (V_read² · G · t_read). A card's
``cell.read_energy`` (PCSA chips: counted in the sense energy) is used as given, either way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from dse.chip.adc_mlsa import column_of
from dse.chip.card import ChipCard
from dse.chip.mapping import LayerMapping
from dse.chip.technology import WIRE_CAP_F_PER_M

Activity = float | Mapping[str, float] | None
Conductance = Mapping[str, float] | None  # {layer: mean cell conductance (S)}


def sensed(chip: ChipCard) -> bool:
    """True when the chip's cell energy follows the sensed model (ADC chips, ohmic cells)."""
    return (chip.sensing.kind == "adc" and chip.cell_read_energy_fj is None
            and chip.read_energy_model == "sensed")


def activity_of(chip: ChipCard, layer: str, activity: Activity = None) -> float:
    """The input activity of ``layer``: measured (a number or {layer: value}) or the card's."""
    if isinstance(activity, Mapping):
        return float(activity.get(layer, chip.input_activity))
    return chip.input_activity if activity is None else float(activity)


def sense_window_s(chip: ChipCard) -> float:
    """t_sense: one conversion of the chip's ADC (see the module docstring)."""
    return chip.sensing.conversion_s(chip.node_nm, column_of(chip))


def cell_conductance_s(chip: ChipCard, conductance: float | None = None) -> float:
    """G of the module docstring (S): the deployed cells' measured mean, else the card's."""
    if conductance is not None:
        return float(conductance)
    assert chip.r_on_ohm and chip.r_off_ohm
    return chip.lrs_fraction / chip.r_on_ohm + (1 - chip.lrs_fraction) / chip.r_off_ohm


def cell_energy_fj(chip: ChipCard, activity: float = 1.0,
                   conductance: float | None = None) -> float:
    """Energy per cell read (fJ), the estimate's ``cells`` energy per operation
    (``conductance``: the deployed cells' mean, S; default the card's cells)."""
    if not sensed(chip):
        return chip.cell_read_fj
    assert chip.read_voltage_v
    g = cell_conductance_s(chip, conductance)
    return activity * chip.read_voltage_v ** 2 * g * sense_window_s(chip) * 1e15


def line_capacitances_f(chip: ChipCard) -> tuple[float, float]:
    """(C_BL, C_WL) in F: one column line (R_a cells of height h) and one row line (C_a cells
    of width w) of a sub-array."""
    side = math.sqrt(chip.cell_area_f2)
    h = chip.cell_height_f or side
    w = chip.cell_width_f or side
    f_m = chip.node_nm * 1e-9
    return chip.rows * h * f_m * WIRE_CAP_F_PER_M, chip.cols * w * f_m * WIRE_CAP_F_PER_M


def _row_groups(lm: LayerMapping, array_rows: int, parallel_rows: int) -> int:
    last = lm.rows - (lm.tiles_rows - 1) * array_rows
    return ((lm.tiles_rows - 1) * math.ceil(array_rows / parallel_rows)
            + math.ceil(last / parallel_rows))


def line_charges(lm: LayerMapping, chip: ChipCard, activity: float) -> dict[str, float]:
    """Per-inference counts of charged column lines and row lines of one layer."""
    s = chip.sensing
    cycles = lm.in_bits if s.cycles_per_input else 1
    groups = _row_groups(lm, chip.rows, s.parallel_rows)
    return {"bitlines": lm.positions * cycles * groups * lm.cols * chip.cells_per_weight,
            "wordlines": activity * lm.positions * cycles * lm.rows * lm.tiles_cols
            * s.cols_per_adc}


def line_energy_fj(chip: ChipCard) -> dict[str, float]:
    """fJ per charged column line (C_BL V_read²) and row line (C_WL V_dd²)."""
    c_bl, c_wl = line_capacitances_f(chip)
    assert chip.read_voltage_v
    return {"bitlines": c_bl * chip.read_voltage_v ** 2 * 1e15,
            "wordlines": c_wl * chip.supply_v ** 2 * 1e15}


def describe(chip: ChipCard, activity: float,
             conductance: float | None = None) -> dict[str, str]:
    """Estimate-table details of the cell and line rows."""
    if not sensed(chip):
        return {}
    c_bl, c_wl = line_capacitances_f(chip)
    g = cell_conductance_s(chip, conductance)
    whose = "deployed cells' mean" if conductance is not None else \
        f"card cells, f={chip.lrs_fraction:g}"
    return {"cells": f"{cell_energy_fj(chip, activity, conductance):.4g} fJ/read = a V²G "
            f"t_sense, a={activity:.3g}, V={chip.read_voltage_v:g} V, "
            f"t_sense={sense_window_s(chip):.3g} s, G={g * 1e6:.4g} uS ({whose})",
            "bitlines": f"C_BL={c_bl * 1e15:.3g} fF to V_read, per column and read",
            "wordlines": f"C_WL={c_wl * 1e15:.3g} fF to V_dd, per active row and mux phase"}
