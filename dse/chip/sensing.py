"""Sensing schemes: how an array is read, its parameters, and what one inference costs.

A scheme is a frozen dataclass registered by name (a chip card's ``sensing.kind``); its fields
are the card's ``sensing:`` numbers, declared in ``FIELDS`` (field -> card key, dimension, unit
factor to the field's unit, required). The chip card parses and validates them like its other
numbers; the scheme knows nothing of the card (it is given the array geometry it needs).

For a layer whose im2col weight matrix has R rows (fan-in) and C columns (fan-out), applied at P
output positions per inference (1 for a fully connected layer), with b_in bits per input
element and b_out per output element, k cells per weight and R_a array rows:

``pcsa`` — precharge sense amplifier, row by row (Hirtzlin et al. 2020; Laborieux et al. 2020)
    One word line at a time; every weight of the row is sensed once per position, the XNOR with
    the (binary) input happens in the sense amplifier and a digital popcount accumulates.
    cell reads = P·R·C·k; sense operations = P·R·C (one per weight, also for ternary weights:
    "a single sense operation per synapse"); ADC conversions = 0; partial-sum additions =
    P·R·C·b_in, counted in 1-bit accumulate units (a b_in-bit input adds b_in bits); one PCSA
    per weight column.
``adc`` — analog current summation with an ADC shared by ``cols_per_adc`` columns (NeuroSim)
    Inputs are applied bit-serially (b_in cycles, DNN+NeuroSim's bit-serial inputs; with
    ``sensing.inputs: dac`` in one cycle instead, b_in → 1 below, plus P·R DAC conversions), with
    ``parallel_rows`` word lines active at once, so each row tile of r rows needs ceil(r /
    parallel_rows) reads per input bit. Every converted column is counted: k per weight, or
    k/2 when the weight's cells are differential pairs subtracted on the bit line
    (``sensing.pair_subtraction: analog``, :data:`PAIR_SUBTRACTION`; k_c below).
    G = Σ over row tiles of ceil(r_t / parallel_rows); ADC conversions = P·b_in·G·C·k_c;
    cell reads = P·b_in·R·C·k (every cell in every cycle; the estimate weighs each by the
    input activity and the sense window, :mod:`dse.chip.array_energy`); sense operations = 0;
    partial-sum additions = ADC conversions (one shift-add per ADC output, accumulating across
    input bits, row groups and tiles); ceil(cols / cols_per_adc) ADCs per array.

Both: buffer accesses = P·(R·b_in + C·b_out) bits (each input element read once per position,
each output written once).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

from dse.chip import adc_mlsa  # noqa: F401 (registers adc_model: neurosim_mlsa)
from dse.chip.adc import ADC_MODELS, adc_model, conversion_rate
from dse.chip.layer import LayerSpec
from dse.registry import Registry

SENSING = Registry("sensing kind", attr="kind", key="sensing.kind")

# field -> (key under sensing:, dimension, factor from SI to the field's unit, required)
FieldSpec = tuple[str, str, float, bool]


@dataclass(frozen=True)
class Timing:
    """Durations (s) of one PCSA sense cycle, array read, ADC conversion, and the digital clock
    (the latency model, :mod:`dse.chip.latency`)."""

    clock_hz: float
    sense_s: float | None = None
    read_s: float | None = None
    adc_s: float | None = None

    @property
    def clock_s(self) -> float:
        return 1.0 / self.clock_hz


register_sensing = SENSING.register  # class decorator: ``sensing.kind: <cls.kind>``


@dataclass(frozen=True)
class Sensing:
    """Parameters, operation counts and per-array hardware of one sensing scheme."""

    kind: ClassVar[str] = ""
    FIELDS: ClassVar[dict[str, FieldSpec]] = {}      # numbers (see FieldSpec)
    STRINGS: ClassVar[dict[str, tuple[str, bool]]] = {}  # field -> (key, required)
    INTEGERS: ClassVar[tuple[str, ...]] = ()

    def problems(self, rows: int, cols: int, cells_per_weight: int) -> list[tuple[str, str]]:
        """(field, what is wrong) for values inconsistent with an array of rows x cols."""
        return []

    def counts(self, layer: LayerSpec, array_rows: int, cells_per_weight: int,
               tiles_rows: int, pairs: bool = False) -> dict[str, int]:
        """Operation counts per inference (``pairs``: the k cells of a weight are k/2
        differential pairs)."""
        raise NotImplementedError

    def sense_amps_per_array(self, cols: int, cells_per_weight: int) -> int:
        return 0

    def adcs_per_array(self, cols: int) -> int:
        return 0

    def sense_energy_fj(self) -> float:
        """Energy of one sense operation at the card's reference supply (fJ)."""
        return 0.0

    def dac_energy_fj(self) -> float:
        """Energy of one input DAC conversion (fJ; 0 without DACs)."""
        return 0.0

    def conversion_energy_fj(self, node_nm: float, temperature_k: float,
                             column: object = None) -> float:
        """Energy of one ADC conversion (fJ; ``column``: :class:`dse.chip.adc_mlsa.Column`)."""
        return 0.0

    def conversion_s(self, node_nm: float, column: object = None) -> float:
        """Duration of one ADC conversion (s; 0 without ADCs)."""
        return 0.0

    def sense_amp_area_um2(self, f_um: float) -> float:
        return 0.0

    def adc_area_um2(self, node_nm: float, column: object = None) -> float:
        return 0.0

    def readout(self) -> dict[str, int | None]:
        """What the accuracy model of the read-out needs (recorded in the mapping)."""
        return {"parallel_rows": None, "adc_bits": None}

    def describe(self, node_nm: float) -> dict[str, str]:
        """Estimate-table details of the sense amplifier and ADC rows."""
        return {"sense_amps": "", "adc": ""}

    def timing(self, clock_hz: float, read_pulse_s: float | None,
               sense_cycle_s: float | None, node_nm: float | None = None,
               column: object = None) -> tuple[Timing | None, str]:
        """The scheme's :class:`Timing` (None and the card key that is missing otherwise)."""
        return None, "sensing.kind"

    def array_time(self, rows: int, weight_cols: int, array_weight_cols: int,
                   cells_per_weight: int, in_bits: int,
                   t: Timing, pairs: bool = False) -> tuple[int, float, float]:
        """(steps, step_s, array_s) to read ``rows`` x ``weight_cols`` weights of one tile for
        one output position (see :mod:`dse.chip.latency`)."""
        raise NotImplementedError

    def replace(self, **changes: object) -> Sensing:
        return dataclasses.replace(self, **changes)

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}


# sensing.inputs of an ADC chip: how a b-bit input is applied, in the energy/latency counts and
# in the accuracy path (dse.chip.adc_quant) alike
INPUTS = {
    None: "legacy: energy and latency count b bit-serial cycles, the accuracy path applies the "
          "input whole and unquantized (the two disagree; kept for the shipped cards)",
    "bit_serial": "b cycles of 1-bit inputs (DNN+NeuroSim); each cycle's partial sums converted "
                  "and shift-added; inputs quantized to b bits",
    "dac": "one cycle, the b-bit input applied by a DAC per row; inputs quantized to b bits",
}


# sensing.pair_subtraction of an ADC chip: how the two cells of a differential pair are read,
# in the energy/latency counts and in the accuracy path (dse.chip.adc_quant) alike
PAIR_SUBTRACTION = {
    "digital": "each column of a pair converted on its own, the two codes subtracted digitally "
               "(DNN+NeuroSim V2.1: positive and negative parts converted separately); the "
               "default",
    "analog": "the two cells' currents subtracted on the bit line / in the crossbar, one "
              "conversion per pair of the difference (CrossSim BalancedCoreParameters."
              "subtract_current_in_xbar)",
}


def _buffer(layer: LayerSpec) -> int:
    return layer.positions * (layer.rows * layer.in_bits + layer.cols * layer.out_bits)


@register_sensing
@dataclass(frozen=True)
class Pcsa(Sensing):
    """Precharge sense amplifier, one per weight column."""

    kind: ClassVar[str] = "pcsa"
    FIELDS: ClassVar[dict[str, FieldSpec]] = {
        "sense_fj": ("sense_energy", "energy", 1e-15, True),
        "sense_amp_area_f2": ("sense_amp_area", "area", 1.0, True),
        "sense_time_s": ("sense_time", "time", 1.0, False),
        "cols_per_sense_amp": ("cols_per_sense_amp", "count", 1.0, False),
    }
    INTEGERS: ClassVar[tuple[str, ...]] = ("cols_per_sense_amp",)
    sense_fj: float = 0.0
    sense_amp_area_f2: float = 0.0
    sense_time_s: float | None = None  # one sense cycle (latency), unless a physical model
    cols_per_sense_amp: int = 1        # weight columns multiplexed on one PCSA

    def problems(self, rows: int, cols: int, cells_per_weight: int) -> list[tuple[str, str]]:
        out = []
        if self.sense_time_s is not None and self.sense_time_s <= 0:
            out.append(("sense_time_s", "must be > 0"))
        if self.cols_per_sense_amp > cols // cells_per_weight:
            out.append(("cols_per_sense_amp", f"{self.cols_per_sense_amp} columns per sense "
                        f"amplifier exceed the {cols // cells_per_weight} weight columns of "
                        "the array"))
        return out

    def counts(self, layer: LayerSpec, array_rows: int, cells_per_weight: int,
               tiles_rows: int, pairs: bool = False) -> dict[str, int]:
        p, r, c, k = layer.positions, layer.rows, layer.cols, cells_per_weight
        return {"cell_reads": p * r * c * k, "sense_ops": p * r * c, "adc_conversions": 0,
                "partial_sum_additions": p * r * c * layer.in_bits,
                "buffer_accesses": _buffer(layer)}

    def sense_amps_per_array(self, cols: int, cells_per_weight: int) -> int:
        return math.ceil(cols // cells_per_weight / self.cols_per_sense_amp)

    def sense_energy_fj(self) -> float:
        return self.sense_fj

    def sense_amp_area_um2(self, f_um: float) -> float:
        return self.sense_amp_area_f2 * f_um ** 2

    def timing(self, clock_hz: float, read_pulse_s: float | None,
               sense_cycle_s: float | None, node_nm: float | None = None,
               column: object = None) -> tuple[Timing | None, str]:
        sense = sense_cycle_s if sense_cycle_s is not None else self.sense_time_s
        if sense is None:
            return None, "sensing.sense_time"
        return Timing(clock_hz=clock_hz, sense_s=float(sense)), ""

    def array_time(self, rows: int, weight_cols: int, array_weight_cols: int,
                   cells_per_weight: int, in_bits: int,
                   t: Timing, pairs: bool = False) -> tuple[int, float, float]:
        assert t.sense_s is not None
        n_sa = math.ceil(array_weight_cols / self.cols_per_sense_amp)
        steps = rows * math.ceil(weight_cols / n_sa)
        step = max(t.sense_s, t.clock_s)
        return steps, step, steps * step


@register_sensing
@dataclass(frozen=True)
class Adc(Sensing):
    """Analog current summation, an ADC shared by ``cols_per_adc`` columns."""

    kind: ClassVar[str] = "adc"
    FIELDS: ClassVar[dict[str, FieldSpec]] = {
        "adc_bits": ("adc_bits", "count", 1.0, True),
        "cols_per_adc": ("cols_per_adc", "count", 1.0, True),
        "parallel_rows": ("parallel_rows", "count", 1.0, True),
        "adc_area_f2": ("adc_area", "area", 1.0, False),
        "adc_time_s": ("adc_time", "time", 1.0, False),
        "dac_fj": ("dac_energy", "energy", 1e-15, False),
    }
    STRINGS: ClassVar[dict[str, tuple[str, bool]]] = {
        "adc_model": ("adc_model", True), "adc_roadmap": ("adc_roadmap", False),
        "inputs": ("inputs", False), "pair_subtraction": ("pair_subtraction", False)}
    INTEGERS: ClassVar[tuple[str, ...]] = ("adc_bits", "cols_per_adc", "parallel_rows")
    adc_model: str = "neurosim_sar"
    adc_bits: int = 5
    cols_per_adc: int = 8
    parallel_rows: int = 128
    adc_roadmap: str = "lp"
    adc_area_f2: float | None = None
    adc_time_s: float | None = None  # one conversion (latency); None: the ADC model's
    inputs: str | None = None  # bit_serial | dac (both paths); None: legacy (see INPUTS)
    dac_fj: float | None = None  # one DAC conversion (one row, one read), inputs: dac
    pair_subtraction: str = "digital"  # digital | analog (both paths, see PAIR_SUBTRACTION)

    @property
    def cycles_per_input(self) -> bool:
        """True when a b-bit input takes b read cycles (bit-serial, also the legacy default)."""
        return self.inputs != "dac"

    def problems(self, rows: int, cols: int, cells_per_weight: int) -> list[tuple[str, str]]:
        out = []
        if self.adc_time_s is not None and self.adc_time_s <= 0:
            out.append(("adc_time_s", "must be > 0"))
        if self.inputs not in INPUTS:
            out.append(("inputs", f"unknown input scheme '{self.inputs}' (known: "
                        f"{', '.join(i for i in INPUTS if i)})"))
        if self.pair_subtraction not in PAIR_SUBTRACTION:
            out.append(("pair_subtraction", f"unknown pair subtraction "
                        f"'{self.pair_subtraction}' (known: {', '.join(PAIR_SUBTRACTION)})"))
        if self.inputs == "dac" and self.dac_fj is None:
            out.append(("dac_fj", "missing: inputs: dac needs the energy of one DAC "
                        "conversion (add {value: ..., unit: fJ, source: ...})"))
        if self.adc_model not in ADC_MODELS:
            out.append(("adc_model", f"unknown ADC model '{self.adc_model}' (known: "
                        f"{', '.join(sorted(ADC_MODELS))})"))
        if self.adc_roadmap not in ("lp", "hp"):
            out.append(("adc_roadmap", f"unknown roadmap '{self.adc_roadmap}' (lp, hp)"))
        if self.parallel_rows > rows:
            out.append(("parallel_rows", f"{self.parallel_rows} parallel rows exceed the "
                        f"{rows} rows of the array"))
        if self.cols_per_adc > cols:
            out.append(("cols_per_adc", f"{self.cols_per_adc} columns per ADC exceed the "
                        f"{cols} columns of the array"))
        return out

    def converted(self, cells_per_weight: int, pairs: bool) -> int:
        """Converted columns per weight: k, or k/2 when the k cells are differential pairs
        subtracted in analog (``pair_subtraction: analog``)."""
        if pairs and self.pair_subtraction == "analog":
            return cells_per_weight // 2
        return cells_per_weight

    def counts(self, layer: LayerSpec, array_rows: int, cells_per_weight: int,
               tiles_rows: int, pairs: bool = False) -> dict[str, int]:
        p, r, c, k = layer.positions, layer.rows, layer.cols, cells_per_weight
        last = r - (tiles_rows - 1) * array_rows
        groups = ((tiles_rows - 1) * math.ceil(array_rows / self.parallel_rows)
                  + math.ceil(last / self.parallel_rows))
        cycles = layer.in_bits if self.cycles_per_input else 1
        conversions = p * cycles * groups * c * self.converted(k, pairs)
        out = {"cell_reads": p * cycles * r * c * k, "sense_ops": 0,
               "adc_conversions": conversions, "partial_sum_additions": conversions,
               "buffer_accesses": _buffer(layer)}
        if self.inputs == "dac":  # one conversion per input element and position
            out["dac_conversions"] = p * r
        return out

    def adcs_per_array(self, cols: int) -> int:
        return math.ceil(cols / self.cols_per_adc)

    def conversion_energy_fj(self, node_nm: float, temperature_k: float,
                             column: object = None) -> float:
        return adc_model(self.adc_model).energy_fj(self.adc_bits, node_nm, self.adc_roadmap,
                                                   temperature_k, **self._column(column))

    def adc_area_um2(self, node_nm: float, column: object = None) -> float:
        if self.adc_area_f2 is not None:
            return self.adc_area_f2 * (node_nm * 1e-3) ** 2
        return adc_model(self.adc_model).area_um2(self.adc_bits, node_nm,
                                                  **self._column(column))

    def readout(self) -> dict[str, int | None]:
        return {"parallel_rows": self.parallel_rows, "adc_bits": self.adc_bits}

    def dac_energy_fj(self) -> float:
        return self.dac_fj or 0.0

    def timing(self, clock_hz: float, read_pulse_s: float | None,
               sense_cycle_s: float | None, node_nm: float | None = None,
               column: object = None) -> tuple[Timing | None, str]:
        if read_pulse_s is None:
            return None, "cell.read_pulse"
        adc = self.conversion_s(node_nm, column) if node_nm is not None else \
            (self.adc_time_s or 1 / conversion_rate(self.adc_bits))
        return Timing(clock_hz=clock_hz, read_s=read_pulse_s, adc_s=adc), ""

    def _column(self, column: object) -> dict[str, object]:
        """The column argument for ADC models that need it (``neurosim_mlsa``)."""
        return {"column": column} if getattr(adc_model(self.adc_model), "needs_column",
                                             False) else {}

    def conversion_s(self, node_nm: float, column: object = None) -> float:
        """One conversion: ``adc_time`` when the card gives it, else the ADC model's."""
        if self.adc_time_s is not None:
            return self.adc_time_s
        return adc_model(self.adc_model).conversion_s(self.adc_bits, node_nm,
                                                      **self._column(column))

    def array_time(self, rows: int, weight_cols: int, array_weight_cols: int,
                   cells_per_weight: int, in_bits: int,
                   t: Timing, pairs: bool = False) -> tuple[int, float, float]:
        assert t.read_s is not None and t.adc_s is not None
        groups = math.ceil(rows / self.parallel_rows)
        n_adc = math.ceil(array_weight_cols * cells_per_weight / self.cols_per_adc)
        conv = math.ceil(self.converted(cells_per_weight, pairs) * weight_cols / n_adc)
        step = max(t.adc_s, t.clock_s)
        cycles = in_bits if self.cycles_per_input else 1
        return cycles * groups * conv, step, cycles * groups * (t.read_s + conv * step)

    def describe(self, node_nm: float) -> dict[str, str]:
        return {"sense_amps": "", "adc": f"{self.adc_model} {self.adc_bits}-bit at {node_nm:g} "
                f"nm ({self.adc_roadmap.upper()}), {self.cols_per_adc} columns per ADC"}
