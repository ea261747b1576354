"""The validation suite: dse's chip-level figures beside a published reference, term by term.

A :class:`Case` is one configuration (a chip card, changes to it, a network's layer shapes) and
its :class:`Reference` values, each with its source (document, table/row, column). For every
reference :func:`compare` computes the dse value the same way the ``estimate`` stage and the
latency model do, and the ratio dse / reference. A reference with a ``tolerance`` is one where
the two models are meant to agree (the same count or the same component formula): the test
suite asserts ``|ratio − 1| ≤ tolerance``. The others record the ratio; where it is off by more
than :data:`GOAL` the row carries the explanation by component (which term, why, which is right).

NeuroSim's figures come from its own regression record, ``Data/1.4_Release_test.csv`` of
neurosim/DNN_NeuroSim_V1.4 (commit 9e6742c), whose column order is the ``overall_metrics``
block at the end of ``Inference_pytorch/NeuroSIM/main.cpp`` (technode, operationmode,
memcelltype, accesstype, chipArea, CIM array, IC, ADC, accumulation and other areas (µm²),
clock period, read latency (ns), dynamic and leakage energy (pJ), ..., ADC / accumulation /
other dynamic energy (pJ), TOPS/W, TOPS, FPS, TOPS/mm², numComputation, then the
configuration: inputtoggle, numRowParallel, Ron/Roff, levelOutput, cellBit, ADC current mode,
sub-array size). Row 1 is the default configuration (22 nm RRAM, 128 parallel rows, 4-bit
ADC, 1 bit per cell), row 3 the same with 64 parallel rows. Its TOPS/W includes NeuroSim's
post-layout energy factor ζ = 1.22 (``Param.cpp`` calibration block, ``validated = true``).

NeuroSim's buckets and dse's components: "ADC" = dse ``adc``; "accumulation" (adders,
shift-adds) = dse ``accumulate``; "other" (decoders, muxes, switch matrices, buffers,
interconnect, pooling/activation; the array read energy is in it too) = dse ``cells``,
``bitlines``, ``wordlines`` + ``buffer`` (energy) and ``periphery`` + ``sense_amps`` (area).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from dse.chip import latency as lat
from dse.chip.card import ChipCard
from dse.chip.estimate import by_component, estimate, totals
from dse.chip.layer import LayerSpec
from dse.chip.mapping import map_model
from dse.chip.networks import vgg8_cifar10
from dse.chip.validation_notes import EXPLAIN, MANUAL

__all__ = ["AGREE", "CASES", "COLUMNS", "EXPLAIN", "GOAL", "Case", "Reference", "compare",
           "figures"]

GOAL = 0.25  # issue 14: chip area, energy per inference, throughput within ±25 % or explained
# the rows where the two models compute the same thing (asserted by tests/test_validation.py):
# the operation count; the cells (with NeuroSim's weight duplication), the MLSA area and their
# sum; the array-level pipeline cycle (without NeuroSim's buffer and interconnect latency)
AGREE = {"ops": 1e-4, "array_area_mm2": GOAL, "adc_area_mm2": GOAL, "core_area_mm2": GOAL,
         "compute_cycle_us": GOAL, "adc_conversion_fJ": 0.01}
COLUMNS = ["case", "quantity", "unit", "reference", "dse", "ratio", "tolerance", "within",
           "source", "explanation"]

_CSV = ("neurosim/DNN_NeuroSim_V1.4 Data/1.4_Release_test.csv (commit 9e6742c), row {row}, "
        "column {col} ({name}; order of Inference_pytorch/NeuroSIM/main.cpp overall_metrics)")
_MANUAL = ("DNN+NeuroSim V1.4 user manual (Documents/User Manual of DNN simulator_V1.4_v3_"
           "updated_1229.pdf), Table VII, row '{row}' (page not recorded in our notes; "
           "Table VI is on pp. 29-30)")



@dataclass(frozen=True)
class Reference:
    """One published value. ``tolerance``: relative, where the models are meant to agree."""

    quantity: str
    value: float
    unit: str
    source: str
    tolerance: float | None = None


@dataclass(frozen=True)
class Case:
    """One configuration: a chip card (changed by ``changes``), a network, its references."""

    name: str
    chip: str                       # file name under config/chips/ (without .yaml)
    references: tuple[Reference, ...]
    changes: Mapping[str, Any] = field(default_factory=dict)
    network: Callable[[], list[LayerSpec]] = vgg8_cifar10


def _csv(row: int, values: Mapping[str, tuple[int, str, float]]) -> list[Reference]:
    """References read from row ``row`` of NeuroSim's release record: {quantity: (column,
    NeuroSim name, value in dse's unit)}."""
    units = {"ops": "1", "latency_us": "us", "tops": "TOPS",
             "compute_cycle_us": "us",
             "tops_per_w": "TOPS/W", "tops_per_mm2": "TOPS/mm2", "fps": "1/s"}
    out = []
    for q, (col, name, v) in values.items():
        unit = units.get(q, "mm2" if q.endswith("mm2") else "uJ")
        out.append(Reference(q, v, unit, _CSV.format(row=row, col=col, name=name),
                             tolerance=AGREE.get(q)))
    return out


def _neurosim_row(row: int, r: Sequence[float], mid: Sequence[float]) -> tuple[Reference, ...]:
    area, arr, ic, adc, acc, oth, _clk, lat_ns, dyn, leak = r[:10]
    e_adc, e_acc, e_oth, topsw, tops, fps, tmm, ops = r[10:]
    _leak_uw, buf_ns, buf_pj, ic_ns, ic_pj = mid[:5]
    refs = _csv(row, {
        "ops": (30, "numComputation", ops),
        "chip_area_mm2": (5, "chipArea", area * 1e-6),
        "array_area_mm2": (6, "chipAreaArray", arr * 1e-6),
        "adc_area_mm2": (8, "chipAreaADC", adc * 1e-6),
        "accum_area_mm2": (9, "chipAreaAccum", acc * 1e-6),
        "other_area_mm2": (10, "chipAreaOther + IC (column 7)", (oth + ic) * 1e-6),
        "energy_uJ": (13, "chipReadDynamicEnergy + leakage (column 14)", (dyn + leak) * 1e-6),
        "adc_energy_uJ": (23, "chipEnergyADC", e_adc * 1e-6),
        "accum_energy_uJ": (24, "chipEnergyAccum", e_acc * 1e-6),
        "other_energy_uJ": (25, "chipEnergyOther", e_oth * 1e-6),
        "latency_us": (12, "chipReadLatency (pipeline cycle per image)", lat_ns * 1e-3),
        "core_area_mm2": (6, "chipAreaArray + chipAreaADC (column 8)", (arr + adc) * 1e-6),
        "adc_accum_energy_uJ": (23, "chipEnergyADC + chipEnergyAccum (column 24)",
                                (e_adc + e_acc) * 1e-6),
        "fps": (28, "FPS", fps),
        "tops": (27, "TOPS", tops),
        "tops_per_w": (26, "TOPS/W", topsw),
        "tops_per_mm2": (29, "TOPS/mm2", tmm),
        "compute_cycle_us": (12, "chipReadLatency - chipbufferLatency (16) - chipicLatency (18)",
                             (lat_ns - buf_ns - ic_ns) * 1e-3),
        "compute_energy_uJ": (13, "dynamic + leakage (14) - chipbufferReadDynamicEnergy (17) - "
                              "chipicReadDynamicEnergy (19)", (dyn + leak - buf_pj - ic_pj) * 1e-6),
    })
    return tuple(refs)


# Data/1.4_Release_test.csv rows 1 and 3, columns 5-14 and 23-30 (row 2 repeats row 1)
_ROW1 = (8.47747e07, 3.60536e06, 8.29649e06, 5.06475e06, 1.50639e07, 5.27443e07, 2.2312, 194225,
         4.20048e07, 177020, 2.1612e07, 3.57428e06, 1.68186e07, 23.9369, 6.3423, 5148.66,
         0.0748136, 1.23184e09)
_MID1 = (911.417, 136858, 203455, 47868.9, 6.09182e06, 8032.31, 3325.04, 184876)  # columns 15-22
_MID3 = (1010.15, 121309, 207510, 43319.9, 6.10443e06, 14239.3, 2947.24, 164761)
_ROW3 = (8.3073e07, 3.60536e06, 8.20239e06, 5.06475e06, 1.71209e07, 4.90796e07, 1.97768, 180168,
         5.01483e07, 181997, 3.11206e07, 5.34563e06, 1.36821e07, 20.0615, 6.83714, 5550.37,
         0.0823028, 1.23184e09)


# NeuroSim's SAR ADC at 22 nm LP, 4 bits: SarADC.cpp GetColumnPower (0.538·log2(levels) +
# 4.3753) µW for (bits + 1) clock cycles of 1 ns, the column-current term excluded
_SAR = Reference("adc_conversion_fJ", (0.538 * 4 + 4.3753) * 5, "fJ",
                 "neurosim/DNN_NeuroSim_V1.4 Inference_pytorch/NeuroSIM/SarADC.cpp GetColumnPower: "
                 "(0.538 log2(16) + 4.3753) uW x (4 + 1) ns at 22 nm LP, column-current term "
                 "excluded", tolerance=AGREE["adc_conversion_fJ"])


def _table_vii(row: str, area: float, tops: float, topsw: float) -> tuple[Reference, ...]:
    src = _MANUAL.format(row=row)
    return (Reference("chip_area_mm2", area, "mm2", src), Reference("tops", tops, "TOPS", src),
            Reference("tops_per_w", topsw, "TOPS/W", src))


CASES: tuple[Case, ...] = (
    Case("neurosim-v1.4-default", "neurosim-v14-rram-22nm", _neurosim_row(1, _ROW1, _MID1)),
    Case("neurosim-v1.4-64-parallel-rows", "neurosim-v14-rram-22nm", _neurosim_row(3, _ROW3, _MID3),
         changes={"parallel_rows": 64}),
    Case("neurosim-v1.4-manual-32-rows", "neurosim-v14-rram-22nm",
         _table_vii("RRAM 22 nm, on/off 17, 32 parallel rows", 381.90, 6.25, 11.25),
         changes={"parallel_rows": 32}),
    Case("neurosim-v1.4-manual-64-rows", "neurosim-v14-rram-22nm",
         _table_vii("RRAM 22 nm, on/off 17, 64 parallel rows", 378.06, 8.16, 19.88),
         changes={"parallel_rows": 64}),
    Case("neurosim-v1.4-sar-adc", "neurosim-v14-rram-22nm", (_SAR,),
         changes={"adc_model": "neurosim_sar"}),
)


def figures(chip: ChipCard, layers: Sequence[LayerSpec]) -> dict[str, float]:
    """dse's value of every quantity a :class:`Reference` can name (see the module docstring
    for how dse's components map onto NeuroSim's buckets)."""
    mapping = map_model(list(layers), chip)
    table = estimate(mapping, chip)
    tot = totals(table)
    comp = by_component(table)
    e = comp["energy_pJ"] * 1e-6
    a = comp["area_um2"] * 1e-6
    layer_lat = lat.latency(mapping, chip, lat.timing(chip))
    perf = lat.throughput(layer_lat, tot["energy_per_inference_pJ"], tot["area_mm2"])
    return {
        "ops": perf["ops_per_inference"], "chip_area_mm2": tot["area_mm2"],
        "array_area_mm2": a["cells"], "adc_area_mm2": a["adc"],
        "accum_area_mm2": a["accumulate"], "other_area_mm2": a["periphery"] + a["sense_amps"],
        "energy_uJ": tot["energy_per_inference_pJ"] * 1e-6, "adc_energy_uJ": e["adc"],
        "accum_energy_uJ": e["accumulate"],
        "other_energy_uJ": float(e.sum()) - e["adc"] - e["accumulate"],
        "latency_us": perf["cycle_ns"] * 1e-3, "fps": perf["inferences_per_s"],
        "tops": perf["tops"], "tops_per_w": perf["tops_per_w"],
        "tops_per_mm2": perf["tops_per_mm2"],
        "compute_cycle_us": perf["cycle_ns"] * 1e-3,
        "compute_energy_uJ": (tot["energy_per_inference_pJ"] * 1e-6 - e.get("buffer", 0.0)),
        # like for like: the parts of the area and energy both models have
        "core_area_mm2": a["cells"] + a["adc"], "adc_conversion_fJ": chip.adc_fj,
        "adc_accum_energy_uJ": e["adc"] + e["accumulate"],
    }


def _explain(case: Case, quantity: str) -> str:
    text = EXPLAIN.get(quantity, "")
    return f"{text} For this case: {MANUAL}" if "manual" in case.name and \
        quantity == "chip_area_mm2" else text


def compare(case: Case, chip: ChipCard) -> pd.DataFrame:
    """One row per reference of ``case`` (columns :data:`COLUMNS`); ``chip`` is the case's
    card as loaded (the case's changes are applied here)."""
    if case.changes:
        chip = chip.replace(**dict(case.changes))
    dse = figures(chip, case.network())
    rows = []
    for ref in case.references:
        v = dse[ref.quantity]
        ratio = v / ref.value if ref.value else math.nan
        tol = ref.tolerance if ref.tolerance is not None else GOAL
        within = abs(ratio - 1) <= tol
        rows.append({"case": case.name, "quantity": ref.quantity, "unit": ref.unit,
                     "reference": ref.value, "dse": v, "ratio": ratio,
                     "tolerance": ref.tolerance, "within": within, "source": ref.source,
                     "explanation": "" if ref.tolerance is not None and within
                     else _explain(case, ref.quantity)})
    return pd.DataFrame(rows, columns=COLUMNS)
