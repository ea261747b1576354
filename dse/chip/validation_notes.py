"""Why dse and DNN+NeuroSim V1.4 differ, by quantity: the component that makes the difference,
why, and which figure is right (the explanations of :mod:`dse.chip.validation`).

Breakdown of NeuroSim's default run used below (``Data/1.4_Release_test.csv`` row 1, columns in
the order of ``main.cpp`` ``overall_metrics``): read latency 194.2 µs = buffer latency 136.9 µs
(column 16) + interconnect latency 47.9 µs (18) + the rest 9.5 µs (ADC 8.0 µs, column 20,
accumulation 3.3 µs, 21, overlapping); energy 42.2 µJ of which buffers 0.20 µJ (17) and
interconnect 6.09 µJ (19).
"""

from __future__ import annotations

# the figures quoted below are those of the default case (128 parallel rows)
EXPLAIN: dict[str, str] = {
    "chip_area_mm2": "dse counts the sub-arrays (with NeuroSim's weight duplication), their "
    "MLSAs, a shift-add unit per MLSA (coarse, digital.accumulator_area) and 4 transistors per "
    "row / 30 per column of periphery; NeuroSim adds the PE/tile/global accumulation, buffers, "
    "interconnect, switch matrices, pooling and activation (its 'other' + 'IC' areas, 61.0 "
    "mm2, 72 % of the chip), which dse does not model (rules of Chip.cpp/Tile.cpp/"
    "ProcessingUnit.cpp not transcribed). The part both model, core_area_mm2, agrees; "
    "NeuroSim's floorplan is the right chip-level figure.",
    "accum_area_mm2": "dse: one shift-add per MLSA after NeuroSim's ShiftAdd/Adder structure "
    "(12-bit adder of 9 NAND2 per bit + 13 DFFs, 692 minimum transistors: an assumption on "
    "the gate sizes); NeuroSim also sizes the PE/tile/global accumulation trees and its "
    "transistors. NeuroSim's is right; dse's is the sub-array share.",
    "other_area_mm2": "buffers, interconnect (H-tree / X-Y bus), decoders, switch matrices, "
    "pooling and activation units are not modelled by dse beyond 4 transistors per row and 30 "
    "per column. NeuroSim's is right.",
    "energy_uJ": "(figures of the default case) the cell term: dse charges the ohmic current "
    "of the rows whose input bit is "
    "1 (activity 0.5) while each column is sensed (one MLSA conversion, 0.90 ns): a V_r^2 G "
    "t_sense = 0.72 fJ per cell and cycle, 28.5 uJ. NeuroSim has no separate cell term: the "
    "column current enters only through the MLSA's fitted column power (11.4 fJ of a "
    "conversion, 3.6 uJ), which cannot carry the ~190 uA a column of 64 active 100 kOhm..1.7 "
    "MOhm cells draws at 0.55 V. With V_read across the cells dse's term is the physical "
    "minimum, so dse's is the better figure for this term (neither is silicon-checked here). "
    "Partly offset by what dse lacks: interconnect 6.1 uJ, NeuroSim's larger MLSA energy (see "
    "adc_energy_uJ). The input activity is an assumption (0.5); NeuroSim measures it from "
    "traces (dse can, dse.chip.activity).",
    "adc_energy_uJ": "same converter (current-mode MLSA, MultilevelSenseAmp.cpp) and the same "
    "number of conversions; dse's 40.6 fJ per conversion omits NeuroSim's reference-column "
    "activation energy (reference_energy_peri, not transcribed) and takes junction = gate "
    "capacitances (assumption), so NeuroSim's 21.6 uJ is the more complete figure.",
    "accum_energy_uJ": "dse charges one 16-bit shift-add (19 fJ, assumption from Horowitz ISSCC "
    "2014) per conversion; NeuroSim models adders, shift-adds and DFFs with switching "
    "activities (calibration gamma 0.5, delta 0.15, Param.cpp). NeuroSim's is right; dse's is "
    "an assumed upper figure.",
    "other_energy_uJ": "(default case) dse: cell current (28.5 uJ, see energy_uJ), word lines "
    "5.3 uJ, bit "
    "lines 0.2 uJ and activation buffer 1.4 uJ; NeuroSim: array line charging, decoders, "
    "muxes, buffers (0.20 uJ) and interconnect (6.09 uJ), no cell current term. The cell term "
    "is the difference (see energy_uJ).",
    "compute_energy_uJ": "energy without buffers and interconnect (both sides): the cell term "
    "(see energy_uJ) is the difference.",
    "latency_us": "NeuroSim's pipeline cycle is 70 % buffer latency (136.9 us) and 25 % "
    "interconnect latency (47.9 us), which dse does not model; without them (compute_cycle_us) "
    "the two agree. NeuroSim's is the right chip figure.",
    "fps": "see latency_us: dse has no buffer or interconnect latency, 95 % of NeuroSim's "
    "pipeline cycle; the array part agrees (compute_cycle_us).",
    "tops": "see latency_us: dse has no buffer or interconnect latency, 95 % of NeuroSim's "
    "cycle (for the manual's Table VII rows too).",
    "tops_per_w": "see energy_uJ; NeuroSim also multiplies its energy by the post-layout factor "
    "zeta = 1.22, dse does not.",
    "tops_per_mm2": "the product of the two gaps: dse's cycle lacks buffer/interconnect "
    "latency (~20x faster) and its area lacks buffers, interconnect and the PE/tile "
    "accumulation (~4x smaller).",
    "adc_accum_energy_uJ": "the converters and the shift-add/accumulation: see adc_energy_uJ "
    "(dse's MLSA lacks the reference-column term) and accum_energy_uJ (assumed 19 fJ per "
    "shift-add).",
    "array_area_mm2": "same cells (48 F2, 8 per weight) and NeuroSim's weight duplication; the "
    "remainder is NeuroSim's whole-PE allocation.",
    "compute_cycle_us": "dse's slowest layer (read pulse + 8 MLSA conversions per input bit, "
    "duplicated layers) vs NeuroSim's cycle without buffer and interconnect latency.",
    "core_area_mm2": "arrays + converters, which both models have.",
    "adc_area_mm2": "the same MLSA (MultilevelSenseAmp.cpp / MultilevelSAEncoder.cpp) with "
    "every transistor a minimum one (dse's assumption).",
}
MANUAL = ("the V1.4 manual's Table VII figures (chip area ~380 mm2) are from another "
          "configuration than the release record (85 mm2, same network); see the release rows "
          "for the term-by-term comparison.")
