"""``neurosim_mlsa``: DNN+NeuroSim V1.4's default converter, the current-mode multilevel sense
amplifier (MLSA: L − 1 current sense amplifiers against reference columns, plus an encoder),
from ``Inference_pytorch/NeuroSIM/MultilevelSenseAmp.cpp`` and ``MultilevelSAEncoder.cpp``
(neurosim/DNN_NeuroSim_V1.4; ``Param.cpp``: ``SARADC = false``, ``currentMode = true``).

For L = 2^bits levels, P parallel rows, R_on, read voltage V_r, LP roadmap (the per-node fits
of those files; coefficients in :data:`_POWER` and :data:`_LATENCY`):

* references (parallel read, ``Initialize``): R_ref,i = 1 / (G_0 (1 − i/L)), G_0 = P / R_on,
  i = 0 .. L − 2;
* sensing time per conversion (``CalculateLatency``, current mode): t = max(T(R_ref,L−2),
  T(R_ref,1))) with the node's fit T(R) (``ColumnLatency_Table``; above its resistance
  threshold a column-capacitance term is added);
* energy per conversion (``CalculatePower``, current mode): (P_col(R_col) + P_ref) · t
  + (L − 1) · E_sw, with the column power fit P_col(R) = p(R · 0.5 / V_r) · (L − 1)
  (``GetColumnPower``, × (1 + 1.3e-3 (T − 300 K))), P_ref = Σ_{i=1}^{L−3} P_col(R_ref,i) / L
  (the reference columns, shared by L sense amplifiers: ``dumcolshared = levelOutput``),
  R_col = 1 / (a · P · G_mean) the sensed column (a: input activity, G_mean = f/R_on + (1−f)/
  R_off), and the switching per level E_sw = C_col (1/(L−1) + 1/L) V_r² (column interface, C_col
  the sub-array's column line) + 2 g_N (1 + 1/(L−1) + 1/L) V_r² (mirror input) + (10 g_P + 8 g_N)
  V_dd² (amplifier, latch and encoder interface), g_N, g_P the gate capacitance of a minimum
  NMOS (width ``MIN_NMOS_SIZE`` = 2 F, ``constant.h``) and PMOS (×2: pnSizeRatio, assumption),
  junction capacitance taken equal to the gate capacitance (assumption); NeuroSim's
  ``reference_energy_peri`` term is not included (not transcribed). The encoder's dynamic energy
  is 0 in NeuroSim (``MultilevelSAEncoder::CalculatePower``).
* area per converter (``CalculateArea``): 9 minimum NMOS per level, the reference column's share
  (a column of the array, R_a × h × w F², per L sense amplifiers, for L − 1 levels) and the
  encoder (an inverter and a NAND2 per level, log2 L large NANDs of L/2 inputs), every
  transistor a minimum one of :data:`dse.chip.adc.UNIT_TRANSISTOR_F2` (assumption: sizing
  ignored).

The column quantities come in a :class:`Column` (from the chip card: :func:`column_of`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dse.chip.adc import UNIT_TRANSISTOR_F2, AdcModel, register_adc
from dse.chip.technology import WIRE_CAP_F_PER_M, node
from dse.errors import DseError

MIN_NMOS_F = 2.0      # constant.h MIN_NMOS_SIZE (V1.4)
PN_RATIO = 2.0        # PMOS / NMOS width (assumption; Technology.cpp pnSizeRatio not transcribed)

# GetColumnPower, current mode, LP: per node, pieces (upper bound of R, slope, intercept, log?)
_Piece = tuple[float, float, float, bool]
_POWER: dict[int, tuple[_Piece, ...]] = {
    130: ((4832, -4.12599e-11, 1.48536e-06, False), (379269, -2.6617e-07, 3.56576e-06, True),
          (math.inf, -1.25872e-07, 1.81453e-06, True)),
    90: ((4832, -1.67004e-11, 8.54958e-07, False), (379269, -1.50719e-07, 2.0858e-06, True),
         (math.inf, -8.89685e-08, 1.3007e-06, True)),
    65: ((4832, -6.08647e-12, 4.82814e-07, False), (379269, -8.03449e-08, 1.16437e-06, True),
         (math.inf, -6.01171e-08, 8.9355e-07, True)),
    45: ((4832, -3.96471e-12, 3.44344e-07, False), (379269, -5.66235e-08, 8.27849e-07, True),
         (math.inf, -4.32673e-08, 6.46111e-07, True)),
    32: ((4832, -6.72783e-12, 4.19847e-07, False), (379269, -7.28881e-08, 1.02677e-06, True),
         (math.inf, -4.35333e-08, 6.4697e-07, True)),
    22: ((4832, -2.85373e-11, 9.16744e-07, False), (379269, -1.63133e-07, 2.1687e-06, True),
         (math.inf, -5.8712e-08, 8.64648e-07, True)),
    14: ((7847, -3.11213e-13, 5.34821e-08, False), (math.inf, -9.64978e-09, 1.44527e-07, True)),
    10: ((20691, -3.27225e-13, 5.54082e-08, False), (math.inf, -9.99199e-09, 1.49539e-07, True)),
    7: ((20691, -2.62089e-13, 4.7357e-08, False), (math.inf, -8.49198e-09, 1.27848e-07, True)),
}
# ColumnLatency_Table, current mode: pieces as above, then (refcap F, dC s, R2, threshold ohm)
_LATENCY: dict[int, tuple[tuple[_Piece, ...], tuple[float, float, float, float]]] = {
    130: (((1832, -1.18573e-10, 2.54175e-09, True), (math.inf, 3.78659e-14, 2.60629e-09, False)),
          (26.62e-15, 2.0e-9, 0.1e6, 1.95e3)),
    90: (((4832, -1.08914e-10, 2.43204e-09, True), (math.inf, 2.8688e-14, 2.31147e-09, False)),
         (18.4e-15, 1.5e-9, 0.1e6, 4.83e3)),
    65: (((4832, -8.11436e-11, 2.2554e-09, True), (math.inf, 2.12366e-14, 2.14339e-09, False)),
         (13.3e-15, 1.2e-9, 0.1e6, 4.83e3)),
    45: (((4832, -1.12976e-10, 2.16762e-09, True), (math.inf, 1.54619e-14, 1.60263e-09, False)),
         (9.21e-15, 0.81e-9, 0.1e6, 4.83e3)),
    32: (((4832, -1.31777e-10, 2.03151e-09, True), (math.inf, 1.15509e-14, 1.19475e-09, False)),
         (6.55e-15, 0.55e-9, 0.1e6, 4.83e3)),
    22: (((4832, -1.32118e-10, 1.7552e-09, True), (math.inf, 8.02517e-15, 8.51803e-10, False)),
         (4.5e-15, 0.31e-9, 0.1e6, 12.7e3)),
    14: (((812, -7.01209e-11, 1.21771e-09, True), (2962, -2.11644e-11, 8.96216e-10, True),
          (math.inf, 6.18337e-15, 8.17633e-10, False)), (2.86e-15, 0.29e-9, 0.1e6, 12.7e3)),
    10: (((1128, -7.20238e-11, 1.18578e-09, True), (4832, -1.81368e-11, 8.16065e-10, True),
          (math.inf, 4.72185e-15, 7.28474e-10, False)), (2.04e-15, 0.27e-9, 0.1e6, 12.7e3)),
    7: (((4832, -4.67061e-11, 1.03708e-09, True), (math.inf, 3.72084e-15, 7.02172e-10, False)),
        (1.43e-15, 0.13e-9, 0.1e6, 12.7e3)),
}


@dataclass(frozen=True)
class Column:
    """What the MLSA sees of the array (SI units; ``height_f``/``width_f`` in F)."""

    r_on: float
    r_off: float
    read_voltage: float
    parallel_rows: int
    rows: int
    height_f: float
    width_f: float
    lrs_fraction: float = 0.5
    activity: float = 0.5


def column_of(chip: Any) -> Column | None:
    """The :class:`Column` of a chip card (None when it has no ohmic cell model)."""
    if not (chip.r_on_ohm and chip.r_off_ohm and chip.read_voltage_v):
        return None
    side = math.sqrt(chip.cell_area_f2)
    return Column(chip.r_on_ohm, chip.r_off_ohm, chip.read_voltage_v,
                  int(getattr(chip.sensing, "parallel_rows", chip.rows)), chip.rows,
                  chip.cell_height_f or side, chip.cell_width_f or side, chip.lrs_fraction,
                  chip.input_activity)


def _piecewise(pieces: tuple[_Piece, ...], r: float) -> float:
    for upper, slope, intercept, log in pieces:
        if r < upper:
            return slope * (math.log(r) if log else r) + intercept
    raise AssertionError("the last piece is unbounded")


def _table(nm: float, table: dict[int, Any]) -> Any:
    key = round(nm)
    if key not in table or abs(key - nm) > 1e-9:
        raise DseError(f"technology.node: {nm:g} nm is not a node of NeuroSim's MLSA model "
                       f"({', '.join(str(n) for n in sorted(table, reverse=True))} nm); pick "
                       "one of them or use adc_model: neurosim_sar")
    return table[key]


def references(bits: int, col: Column) -> list[float]:
    """R_ref,i (Ω), i = 0 .. L − 2."""
    levels = 2 ** bits
    g0 = col.parallel_rows / col.r_on
    return [1.0 / (g0 * (1 - i / levels)) for i in range(levels - 1)]


def column_power_w(r: float, bits: int, nm: float, col: Column, t_k: float = 300.0) -> float:
    """GetColumnPower (W) of a column of resistance ``r``."""
    if math.isinf(r):
        return 1e-6 * (1 + 1.3e-3 * (t_k - 300.0))  # NeuroSim's value for an open column
    p = _piecewise(_table(nm, _POWER), r * 0.5 / col.read_voltage) * (2 ** bits - 1)
    return p * (1 + 1.3e-3 * (t_k - 300.0))


def _gate_caps(nm: float) -> tuple[float, float]:
    g_n = node(nm).c_gate * MIN_NMOS_F * nm * 1e-9
    return g_n, PN_RATIO * g_n


def _column_cap(nm: float, col: Column) -> float:
    return col.rows * col.height_f * nm * 1e-9 * WIRE_CAP_F_PER_M


def latency_s(bits: int, nm: float, col: Column) -> float:
    """Sensing time of one conversion (s)."""
    pieces, (refcap, d_c, r2, threshold) = _table(nm, _LATENCY)
    c_col = _column_cap(nm, col) + _gate_caps(nm)[0] * (2 ** bits - 3)

    def t(r: float) -> float:
        out = _piecewise(pieces, r)
        if r > threshold:
            out += d_c / (r2 - threshold) * (r - threshold) * (c_col - refcap) / refcap
        return out

    ref = references(bits, col)
    return max(t(ref[-1]), t(ref[1]))


def energy_parts_fj(bits: int, nm: float, col: Column, t_k: float = 300.0) -> dict[str, float]:
    """The terms of one conversion's energy (fJ): column, reference columns, switching."""
    levels = 2 ** bits
    t = latency_s(bits, nm, col)
    g = col.activity * col.parallel_rows * (col.lrs_fraction / col.r_on
                                            + (1 - col.lrs_fraction) / col.r_off)
    r_col = 1.0 / g if g > 0 else math.inf
    ref = references(bits, col)
    p_ref = sum(column_power_w(ref[i], bits, nm, col, t_k) for i in range(1, levels - 2)) / levels
    g_n, g_p = _gate_caps(nm)
    vr2, vdd2 = col.read_voltage ** 2, node(nm).vdd ** 2
    e_sw = (_column_cap(nm, col) * (1 / (levels - 1) + 1 / levels) * vr2
            + 2 * g_n * (1 + 1 / (levels - 1) + 1 / levels) * vr2 + (10 * g_p + 8 * g_n) * vdd2)
    return {"column": column_power_w(r_col, bits, nm, col, t_k) * t * 1e15,
            "references": p_ref * t * 1e15, "switching": (levels - 1) * e_sw * 1e15}


def area_f2(bits: int, col: Column) -> float:
    """Area of one MLSA with its encoder and reference-column share (F²)."""
    levels = 2 ** bits
    transistors = 9 * (levels - 1) + 6 * (levels - 1) + levels * math.log2(levels)
    ref_column = col.rows * col.height_f * col.width_f * (levels - 1) / levels
    return transistors * UNIT_TRANSISTOR_F2 + ref_column


def _need(column: Column | None) -> Column:
    if column is None:
        raise DseError("cell: the neurosim_mlsa model needs cell.r_on, r_off and read_voltage "
                       "(its references and column current follow them)")
    return column


@register_adc
class NeuroSimMlsa(AdcModel):
    """DNN+NeuroSim V1.4 current-mode multilevel sense amplifier (see the module docstring)."""

    name = "neurosim_mlsa"
    needs_column = True

    @staticmethod
    def energy_fj(bits: int, node_nm: float, roadmap: str = "lp", temperature_k: float = 300.0,
                  column: Column | None = None) -> float:
        if roadmap != "lp":
            raise DseError("sensing.adc_roadmap: the neurosim_mlsa model has NeuroSim's LP "
                           "fits only (use adc_roadmap: lp)")
        return sum(energy_parts_fj(bits, node_nm, _need(column), temperature_k).values())

    @staticmethod
    def area_um2(bits: int, node_nm: float, column: Column | None = None) -> float:
        return area_f2(bits, _need(column)) * (node_nm * 1e-3) ** 2

    @staticmethod
    def conversion_s(bits: int, node_nm: float, column: Column | None = None) -> float:
        return latency_s(bits, node_nm, _need(column))
