"""Cost of a stochastic-computing (SC) first layer against a conventional BNN's fixed-point one.

Hirtzlin et al. (IEEE Access 7:76394, 2019, arXiv 1906.00915; abstract only) report that a BNN
whose input is binarised as stochastic bitstreams saves 62 % of the area of a conventional BNN
(whose first layer takes fixed-point pixels) on Fashion-MNIST, and ×2.1 of the energy for a 1.4 %
accuracy cost, on an ST-MRAM in-memory ASIC. Their circuit figures are NOT FOUND, so this module
is a parametric model whose every number is a stated assumption (:class:`ScAssumptions`), used to
check whether those claims follow from the chip cards, and what they would need.

Energy per inference is the estimate stage's (:func:`dse.chip.estimate.estimate`) on the mapping
of each design: the conventional first layer accumulates ``pixel_bits``-bit inputs (its mapping
has ``in_bits`` = 8: 8 bit-accumulates per weight, bit-serial), the SC first layer L one-bit
passes (``input: stochastic``: ``in_bits`` = L into the first layer only; ``input:
stochastic_output``: every layer L times), plus the stochastic number generators (SNG: one
``pixel_bits``-bit comparison against a shared LFSR per generated bit).

Area = the estimate's arrays and periphery (identical for the designs: the same binary weights
in the same arrays; the column periphery holds the popcount counter) plus what differs:

============================  =================================================================
conventional first layer      per weight column of its tiles: a ``pixel_bits``-bit conditional
                              negation (XOR per bit) and ``pixel_bits`` more accumulator bits
                              (full adder + flip-flop each) than a binary layer's popcount
SC, first-layer accumulation  per weight column of its tiles: ceil(log2 L) more counter bits
SC, output accumulation       ceil(log2 L) more bits per class score
SC, both                      one SNG per first-layer array (its rows are read one at a time)
============================  =================================================================

``per_tile=False`` puts one accumulator per first-layer output neuron instead of one per
column of every tile (a serial read-out of the tiles): the area saving then all but vanishes,
so the −62 % claim hinges on how parallel the conventional first layer is (benchmarks/README.md).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from dse.chip.adc import UNIT_TRANSISTOR_F2
from dse.chip.card import ChipCard
from dse.chip.estimate import estimate, totals
from dse.chip.layer import LayerSpec
from dse.chip.mapping import map_model


@dataclass(frozen=True)
class ScAssumptions:
    """Transistor counts and energies of the logic the designs differ by (all assumptions)."""

    pixel_bits: int = 8  # conventional input width: dse.chip.mapping.ACTIVATION_BITS
    full_adder_t: int = 28  # static CMOS mirror adder (Weste & Harris, CMOS VLSI Design, 4th ed.)
    flip_flop_t: int = 24  # as the chip cards' column_area assumption (~24 T per flip-flop)
    xor_t: int = 12  # a static CMOS XOR gate (assumption)
    sng_fa_equivalents: float = 1.0  # SNG energy per bit, in pixel_bits full-adder operations
    lfsr_bits: int = 8  # the shared LFSR of each SNG (pixel_bits comparator + lfsr flip-flops)
    per_tile: bool = True  # first-layer datapath in every tile's columns (False: one per output)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _transistors_um2(n: float, chip: ChipCard) -> float:
    return n * UNIT_TRANSISTOR_F2 * chip.f_um ** 2


def _logic_area(first: Any, classes: int, design: str, length: int, chip: ChipCard,
                a: ScAssumptions) -> tuple[float, float]:
    """(datapath µm², SNG µm²) beyond the common arrays and periphery."""
    # weight columns of the first layer's tiles, or one accumulator per output neuron
    columns = first.tiles * chip.weight_cols if a.per_tile else first.cols
    acc_bit = a.full_adder_t + a.flip_flop_t
    if design == "conventional":
        return _transistors_um2(columns * a.pixel_bits * (a.xor_t + acc_bit), chip), 0.0
    extra = math.ceil(math.log2(length)) if length > 1 else 0
    sng = first.tiles * (a.pixel_bits * a.full_adder_t + a.lfsr_bits * a.flip_flop_t)
    counters = columns * extra if design == "stochastic" else classes * extra
    return _transistors_um2(counters * acc_bit, chip), _transistors_um2(sng, chip)


def _with_input(specs: list[LayerSpec], design: str, length: int,
                pixel_bits: int) -> list[LayerSpec]:
    """The layer list of one design: the first layer's input width and the passes."""
    from dataclasses import replace

    if design == "conventional":
        return [replace(specs[0], in_bits=pixel_bits), *specs[1:]]
    if design == "stochastic":
        return [replace(specs[0], in_bits=length), *specs[1:]]
    first = replace(specs[0], in_bits=1)
    return [replace(s, positions=s.positions * length) for s in [first, *specs[1:]]]


def compare_first_layer(specs: list[LayerSpec], chip: ChipCard, lengths: list[int],
                        assumptions: ScAssumptions | None = None) -> pd.DataFrame:
    """Energy and area of the conventional BNN and of the SC designs at each L.

    ``specs``: the binary network's layers (one pass, as :func:`dse.chip.mapping.layer_specs`
    gives them; the first layer's ``in_bits`` is replaced per design). One row per design and
    L with the energy per inference (pJ: arrays, SNG, total), the area (µm²: arrays + periphery,
    first-layer datapath, SNGs, total) and the saving against the conventional BNN (energy
    factor, area change in %).
    """
    a = assumptions or ScAssumptions()
    classes = specs[-1].cols
    rows = []
    designs = [("conventional", 1)] + [(d, n) for d in ("stochastic", "stochastic_output")
                                       for n in lengths]
    for design, length in designs:
        mapping = map_model(_with_input(specs, design, length, a.pixel_bits), chip)
        t = totals(estimate(mapping, chip))
        first = mapping.layers[0]
        # generated bits: L per first-layer input (stochastic_output's positions count the L)
        bits = first.rows * first.positions * (length if design == "stochastic" else 1)
        sng_pj = 0.0 if design == "conventional" else (
            bits * a.sng_fa_equivalents * a.pixel_bits * chip.add_fj * chip.supply_scale * 1e-3)
        datapath, sng_area = _logic_area(first, classes, design, length, chip, a)
        rows.append({"design": design, "L": length if design != "conventional" else None,
                     "arrays_pJ": t["energy_per_inference_pJ"], "sng_pJ": sng_pj,
                     "energy_pJ": t["energy_per_inference_pJ"] + sng_pj,
                     "arrays_um2": t["area_um2"], "datapath_um2": datapath,
                     "sng_um2": sng_area, "area_um2": t["area_um2"] + datapath + sng_area})
    out = pd.DataFrame(rows)
    ref = out.iloc[0]
    out["energy_saving"] = ref["energy_pJ"] / out["energy_pJ"]
    out["area_change_pct"] = 100.0 * (out["area_um2"] / ref["area_um2"] - 1.0)
    return out
