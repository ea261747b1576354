"""Sensing schemes: how an array is read, and what one inference costs in operations.

A scheme is one class registered by name (a chip card's ``sensing.kind``). For a layer whose
im2col weight matrix has R rows (fan-in) and C columns (fan-out), applied at P output positions
per inference (1 for a fully connected layer), with b_in bits per input element and b_out per
output element, k cells per weight and R_a array rows:

``pcsa`` — precharge sense amplifier, row by row (Hirtzlin et al. 2020; Laborieux et al. 2020)
    One word line at a time; every weight of the row is sensed once per position, the XNOR with
    the (binary) input happens in the sense amplifier and a digital popcount accumulates.
    cell reads = P·R·C·k; sense operations = P·R·C (one per weight, also for ternary weights:
    "a single sense operation per synapse"); ADC conversions = 0; partial-sum additions =
    P·R·C·b_in, counted in 1-bit accumulate units (a b_in-bit input adds b_in bits); one PCSA
    per weight column.
``adc`` — analog current summation with an ADC shared by ``cols_per_adc`` columns (NeuroSim)
    Inputs are applied bit-serially (b_in cycles, DNN+NeuroSim's bit-serial inputs), with
    ``parallel_rows`` word lines active at once, so each row tile of r rows needs ceil(r /
    parallel_rows) reads per input bit. Every physical column (k per weight) is converted.
    G = Σ over row tiles of ceil(r_t / parallel_rows); ADC conversions = P·b_in·G·C·k;
    cell reads = P·b_in·R·C·k (every cell counted in every cycle: input activity 1, an upper
    bound); sense operations = 0; partial-sum additions = ADC conversions (one shift-add per
    ADC output, accumulating across input bits, row groups and tiles); ceil(cols /
    cols_per_adc) ADCs per array.

Both: buffer accesses = P·(R·b_in + C·b_out) bits (each input element read once per position,
each output written once).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from dse.chip.card import ChipCard
    from dse.chip.mapping import LayerSpec

SENSING: dict[str, type[Sensing]] = {}

Fail = Callable[[str, str], None]


def register_sensing(cls: type[Sensing]) -> type[Sensing]:
    """Class decorator: make a sensing scheme selectable as ``sensing.kind: <cls.name>``."""
    SENSING[cls.name] = cls
    return cls


class Sensing:
    """Operation counts and per-array hardware of one sensing scheme."""

    name: ClassVar[str] = ""
    required: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def check(cls, chip: ChipCard, fail: Fail) -> None:
        for f in cls.required:
            if getattr(chip, f) is None:
                fail(f, f"missing; sensing '{cls.name}' needs it")

    @staticmethod
    def counts(layer: LayerSpec, chip: ChipCard, tiles_rows: int) -> dict[str, int]:
        raise NotImplementedError

    @staticmethod
    def sense_amps_per_array(chip: ChipCard) -> int:
        return 0

    @staticmethod
    def adcs_per_array(chip: ChipCard) -> int:
        return 0


def _buffer(layer: LayerSpec) -> int:
    return layer.positions * (layer.rows * layer.in_bits + layer.cols * layer.out_bits)


@register_sensing
class Pcsa(Sensing):
    name = "pcsa"
    required = ("sense_fj", "sense_amp_area_f2")

    @staticmethod
    def counts(layer: LayerSpec, chip: ChipCard, tiles_rows: int) -> dict[str, int]:
        p, r, c, k = layer.positions, layer.rows, layer.cols, chip.cells_per_weight
        return {
            "cell_reads": p * r * c * k,
            "sense_ops": p * r * c,
            "adc_conversions": 0,
            "partial_sum_additions": p * r * c * layer.in_bits,
            "buffer_accesses": _buffer(layer),
        }

    @staticmethod
    def sense_amps_per_array(chip: ChipCard) -> int:
        return chip.weight_cols


@register_sensing
class Adc(Sensing):
    name = "adc"
    required = ("adc_model", "adc_bits", "cols_per_adc", "parallel_rows")

    @classmethod
    def check(cls, chip: ChipCard, fail: Fail) -> None:
        super().check(chip, fail)
        if chip.parallel_rows is not None and chip.parallel_rows > chip.rows:
            fail("parallel_rows", f"{chip.parallel_rows} parallel rows exceed the "
                 f"{chip.rows} rows of the array")
        if chip.cols_per_adc is not None and chip.cols_per_adc > chip.cols:
            fail("cols_per_adc", f"{chip.cols_per_adc} columns per ADC exceed the "
                 f"{chip.cols} columns of the array")

    @staticmethod
    def counts(layer: LayerSpec, chip: ChipCard, tiles_rows: int) -> dict[str, int]:
        p, r, c, k = layer.positions, layer.rows, layer.cols, chip.cells_per_weight
        assert chip.parallel_rows is not None
        last = r - (tiles_rows - 1) * chip.rows
        groups = ((tiles_rows - 1) * math.ceil(chip.rows / chip.parallel_rows)
                  + math.ceil(last / chip.parallel_rows))
        conversions = p * layer.in_bits * groups * c * k
        return {
            "cell_reads": p * layer.in_bits * r * c * k,
            "sense_ops": 0,
            "adc_conversions": conversions,
            "partial_sum_additions": conversions,
            "buffer_accesses": _buffer(layer),
        }

    @staticmethod
    def adcs_per_array(chip: ChipCard) -> int:
        assert chip.cols_per_adc is not None
        return math.ceil(chip.cols / chip.cols_per_adc)
