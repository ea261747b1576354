"""Chip cards: target chips as data (``config/chips/*.yaml``).

A card is YAML (or JSON). Every number is a mapping ``{value, unit, source: ...}`` or
``{value, unit, assumption: ...}`` (both keys may be given); strings and lists are plain. Layout::

    name: rram-2t2r-pcsa-130nm          # defaults to the file name
    description: ...
    source: the paper(s) the chip follows
    encoding: binary                    # binary | ternary | analog   (dse.chip.encoding)
    technology:
      node:        {value: 130, unit: nm, source: ...}
      supply:      {value: 1.2, unit: V, assumption: ...}     # operating supply (= knob vdd)
      supply_ref:  {value: 1.2, unit: V, ...}   # optional (default: supply): supply at which the
                                                # sense/digital energies are given; they scale as
                                                # (supply/supply_ref)^2
      temperature: {value: 300, unit: K, ...}   # optional (NeuroSim SAR temperature factor)
    array:
      rows: {value: 128, unit: "1", ...}
      cols: {value: 128, unit: "1", ...}        # physical bit lines; a weight's cells sit on
                                                # adjacent columns (BL/BLb of a 2T2R pair)
    cell:
      cells_per_weight: {value: 2, unit: "1", ...}
      area: {value: 48, unit: F2, ...}          # per cell (F2, um2 or transistors)
      read_energy: {value: 0, unit: fJ, ...}    # either this, or the ohmic model below:
      r_on / r_off: {unit: ohm|kohm|Mohm}       # E = V_read^2 * t_read *
      read_voltage: {unit: V}                   #     (f_LRS/R_on + (1 - f_LRS)/R_off)
      read_pulse: {unit: s|ns}
      lrs_fraction: {value: 0.5, unit: "1"}
      read_energy_model: sensed | full_pulse   # ADC chips (dse.chip.array_energy): sensed (default)
                                # = V^2 G t_sense for the rows whose input bit is 1 plus bit-
                                # and word-line charging; full_pulse = the old upper bound
      input_activity: {value: 0.5, unit: "1"}   # fraction of rows whose input bit is 1 per read
      height / width: {value: 4, unit: F}       # optional cell pitch (line lengths); default
                                                # sqrt(area) each
      weight_bits: {value: 8, unit: "1"}       # optional (analog chips): N-bit fixed-point
      bits_per_cell: {value: 1, unit: "1"}     #   weights sliced over b-bit cells, shift-added
      signing: differential | offset           #   (dse.chip.slicing); cells_per_weight must be
                                               #   2 ceil((N-1)/b) (differential, the default)
                                               #   or ceil(N/b) (offset + a reference column)
    sensing:
      kind: pcsa | adc                          # (dse.chip.sensing)
      # pcsa: sense_energy (per sense at supply_ref), sense_amp_area; optional sense_time
      #       {unit: s|ns} (one sense cycle, when no physical sense model gives it) and
      #       cols_per_sense_amp (weight columns multiplexed on one PCSA, default 1)
      # adc:  adc_model (neurosim_sar | neurosim_mlsa | murmann_survey), adc_roadmap (lp |
      #       hp), adc_bits, cols_per_adc, parallel_rows, optional adc_area (overrides the
      #       model's area), optional adc_time {unit: s|ns} (one conversion; default the
      #       model's: NeuroSim's SAR (bits+1) ns, the MLSA's column latency)
      #       optional inputs: bit_serial | dac (how b-bit inputs are applied, in the counts and
      #       in the accuracy path alike; dac needs dac_energy {unit: fJ}; left out: legacy,
      #       see dse.chip.sensing.INPUTS)
      #       optional pair_subtraction: digital | analog (how a differential pair is read:
      #       each column converted and the codes subtracted, or the currents subtracted on
      #       the bit line and one conversion per pair; in the counts and the accuracy path
      #       alike; left out: digital, see dse.chip.sensing.PAIR_SUBTRACTION)
    digital:
      add_energy:    {unit: fJ}   # one partial-sum addition / popcount accumulate (supply_ref)
      buffer_energy: {unit: fJ}   # one bit read from or written to the activation buffer
                                  # (either left out: the default of dse.chip.technology at the
                                  # card's node and supply_ref, with its source)
      clock:         {unit: Hz|MHz|GHz}   # optional: accumulation clock at supply_ref (latency)
      accumulator_area: {unit: transistors}  # optional: shift-add unit per ADC (area only)
    dataflow:                     # optional (dse.chip.dataflow); default sequential, speed_up 1
      schedule: sequential | pipelined    # layers one after another, or overlapped
      speed_up: {value: 8, unit: "1"}     # NeuroSim speedUpDegree: early layers duplicated
    periphery:
      row_area:    {unit: F2 | um2 | transistors}   # per array row (word-line decoder/driver)
      column_area: {unit: F2 | um2 | transistors}   # per array column (mux, accumulator)
    programming:
      write_energy: {unit: pJ}    # per cell write pulse (used when no device card gives one)
    errors:
      sources:                    # device cards whose bit errors the chip's weights suffer
        - {card: hfo2-2t2r, role: cell}        # role cell: also gives the write energy
        - {card: pcsa-130nm, role: sense}
      operating_point:            # nominal knob values (SI units) of those cards' BER models
        i_prog: {value: 2.0e-4, unit: A, ...}
      analog_card: reram-es-gong2018   # analog chips: programming-noise card used when the
                                       # experiment has no device card of its own

In code the card is a frozen :class:`ChipCard` with flat fields in fixed units (fJ, pJ, F², V,
s, Ω) and its sensing parameters in ``chip.sensing``, a dataclass of the sensing scheme
(:mod:`dse.chip.sensing`); change it with ``chip.replace(supply_v=0.8, adc_bits=6, rows=256)``
(sensing fields are routed to ``chip.sensing``) — the replacement is validated like a loaded
card. ``chip.sources`` keeps each field's provenance. Reading a card file is the wiring's job
(:func:`dse.pipeline.artifacts.load_chip`); this module turns a parsed mapping into a card.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dse.chip.adc_mlsa import column_of
from dse.chip.card_fields import _FIELD_PATH, INTEGER_FIELDS, NUMBER_FIELDS
from dse.chip.encoding import ENCODINGS
from dse.chip.sensing import SENSING, Sensing
from dse.chip.slicing import SIGNINGS, Slicing
from dse.devices.domains import check_knob
from dse.errors import DseError


@dataclass(frozen=True)
class ErrorSource:
    """A device card whose bit errors a chip's weights suffer."""

    card: str
    role: str = "cell"


@dataclass(frozen=True)
class ChipCard:
    """A target chip (see the module docstring for the YAML layout and units)."""

    name: str
    encoding: str
    sensing: Sensing
    node_nm: float
    supply_v: float
    rows: int
    cols: int
    cells_per_weight: int
    cell_area_f2: float
    add_fj: float
    buffer_fj: float
    periphery_row_f2: float
    periphery_col_f2: float
    description: str = ""
    source: str = ""
    supply_ref_v: float | None = None
    temperature_k: float = 300.0
    cell_read_energy_fj: float | None = None
    r_on_ohm: float | None = None
    r_off_ohm: float | None = None
    read_voltage_v: float | None = None
    read_pulse_s: float | None = None
    lrs_fraction: float = 0.5
    read_energy_model: str = "sensed"   # sensed | full_pulse (dse.chip.array_energy)
    input_activity: float = 0.5
    cell_height_f: float | None = None
    cell_width_f: float | None = None
    schedule: str = "sequential"        # sequential | pipelined (dse.chip.dataflow)
    speed_up: int = 1
    weight_bits: int | None = None
    bits_per_cell: int | None = None
    signing: str | None = None
    write_pj: float | None = None
    clock_hz: float | None = None
    accumulator_area_f2: float = 0.0    # shift-add of one ADC's outputs (area, F²)
    error_sources: tuple[ErrorSource, ...] = ()
    operating_point: Mapping[str, float] = field(default_factory=dict)
    analog_card: str | None = None
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    origin: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.supply_ref_v is None:  # energies are given at the card's own supply
            object.__setattr__(self, "supply_ref_v", self.supply_v)
        validate(self)

    # -- derived quantities -------------------------------------------------------------------
    @property
    def f_um(self) -> float:
        """Feature size F in µm."""
        return self.node_nm * 1e-3

    @property
    def weight_cols(self) -> int:
        """Weight columns per array (physical columns / cells per weight)."""
        return self.cols // self.cells_per_weight

    @property
    def sliced(self) -> bool:
        """True when the card stores N-bit weights over several b-bit cells (bit slicing)."""
        return self.weight_bits is not None

    @property
    def slicing(self) -> Slicing | None:
        """The bit slicing of the weights (None: one analog value per cell or pair)."""
        if self.weight_bits is None or self.bits_per_cell is None:
            return None
        return Slicing(self.weight_bits, self.bits_per_cell, self.signing or "differential")

    @property
    def slices(self) -> int:
        """Cells per weight and sign (1 without bit slicing)."""
        sl = self.slicing
        return 1 if sl is None else sl.slices

    @property
    def differential_pairs(self) -> bool:
        """True when a weight's cells are differential pairs (two cells, or bit slices signed
        ``differential``): what ``sensing.pair_subtraction`` acts on."""
        sl = self.slicing
        if sl is not None:
            return sl.signing == "differential"
        return self.cells_per_weight == 2

    @property
    def supply_scale(self) -> float:
        """(supply / supply_ref)^2: the C·V² factor of sense and digital energies."""
        assert self.supply_ref_v is not None
        return (self.supply_v / self.supply_ref_v) ** 2

    @property
    def cell_read_fj(self) -> float:
        """Energy of one cell read (fJ): the card's value or V²·t·(f/R_on + (1−f)/R_off)."""
        if self.cell_read_energy_fj is not None:
            return self.cell_read_energy_fj
        assert self.read_voltage_v and self.read_pulse_s and self.r_on_ohm and self.r_off_ohm
        g = self.lrs_fraction / self.r_on_ohm + (1 - self.lrs_fraction) / self.r_off_ohm
        return self.read_voltage_v ** 2 * g * self.read_pulse_s * 1e15

    @property
    def adc_fj(self) -> float:
        """Energy of one ADC conversion (fJ), from the sensing scheme (0 without ADCs)."""
        return self.sensing.conversion_energy_fj(self.node_nm, self.temperature_k,
                                                 column_of(self))

    @property
    def adc_area_um2(self) -> float:
        """Area of one ADC (µm²), from the sensing scheme (0 without ADCs)."""
        return self.sensing.adc_area_um2(self.node_nm, column_of(self))

    def knob_values(self) -> dict[str, float]:
        """The nominal operating point: the card's knobs plus ``vdd`` = the supply."""
        return {**dict(self.operating_point), "vdd": float(self.supply_v)}

    def at(self, op: Mapping[str, float] | None) -> ChipCard:
        """The chip at an operating point: ``vdd`` sets the supply, other knobs are recorded."""
        if not op:
            return self
        op = dict(op)
        supply = float(op.pop("vdd", self.supply_v))
        return dataclasses.replace(self, supply_v=supply,
                                   operating_point={**dict(self.operating_point), **op})

    def replace(self, **changes: Any) -> ChipCard:
        """A validated copy with ``changes``; fields of the sensing scheme (``adc_bits``,
        ``parallel_rows``, ...) go to ``chip.sensing``."""
        own = {f.name for f in dataclasses.fields(self)}
        sensing = {k: v for k, v in changes.items() if k in self.sensing.field_names()}
        unknown = sorted(set(changes) - own - set(sensing))
        if unknown:
            raise DseError(f"chip '{self.name}' has no field {', '.join(unknown)} (sensing "
                           f"'{self.sensing.kind}' fields: "
                           f"{', '.join(sorted(self.sensing.field_names()))})")
        rest = {k: v for k, v in changes.items() if k not in sensing}
        if sensing:
            rest["sensing"] = self.sensing.replace(**sensing)
        return dataclasses.replace(self, **rest)

    def to_dict(self) -> dict[str, Any]:
        """Plain mapping of the fields (what a mapping/estimate records as provenance)."""
        d = dataclasses.asdict(self)
        d.pop("sources")
        d.pop("origin")
        d["sensing"] = {"kind": self.sensing.kind, **dataclasses.asdict(self.sensing)}
        d["operating_point"] = dict(self.operating_point)
        return d


# ----------------------------------------------------------------------------------- validation
def _check_number(v: Any, integer: bool) -> str | None:
    if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
        return f"value {v!r} is not a finite number"
    if integer and (v != int(v) or v < 1):
        return f"value {v!r} must be a whole number >= 1"
    if v < 0:
        return f"value {v!r} must be >= 0"
    return None


def validate(chip: ChipCard) -> None:
    """Check a card's values (called on construction and on every replacement)."""
    src = chip.origin or f"chip card '{chip.name}'"

    def fail(path: str, what: str) -> None:
        raise DseError(f"{path}: {what}", source=src)

    if chip.encoding not in ENCODINGS:
        fail("encoding", f"unknown encoding '{chip.encoding}' (known: "
             f"{', '.join(sorted(ENCODINGS))})")
    if not isinstance(chip.sensing, Sensing):
        fail("sensing.kind", f"not a sensing scheme (known: {', '.join(sorted(SENSING))})")
    for name in NUMBER_FIELDS:
        v = getattr(chip, name)
        if v is not None and (what := _check_number(v, name in INTEGER_FIELDS)):
            fail(_FIELD_PATH[name], what)
    scheme = type(chip.sensing)
    for name, (key, _dim, _f, _req) in scheme.FIELDS.items():
        v = getattr(chip.sensing, name)
        if v is not None and (what := _check_number(v, name in scheme.INTEGERS)):
            fail(f"sensing.{key}", what)
    for name in ("node_nm", "supply_v", "supply_ref_v", "clock_hz"):
        if getattr(chip, name) is not None and getattr(chip, name) <= 0:
            fail(_FIELD_PATH[name], "must be > 0")
    enc = ENCODINGS[chip.encoding]
    if not _check_slicing(chip, fail) and chip.cells_per_weight not in enc.cells:
        fail("cell.cells_per_weight", f"{chip.cells_per_weight} cells per weight is not "
             f"possible with encoding {chip.encoding} (allowed: {', '.join(map(str, enc.cells))})")
    if chip.cols % chip.cells_per_weight:
        fail("array.cols", f"{chip.cols} columns do not hold whole weights of "
             f"{chip.cells_per_weight} cells; use a multiple of {chip.cells_per_weight}")
    for name in ("lrs_fraction", "input_activity"):
        if not 0 <= getattr(chip, name) <= 1:
            fail(_FIELD_PATH[name], "must be between 0 and 1")
    for name, known in (("read_energy_model", ("sensed", "full_pulse")),
                        ("schedule", ("sequential", "pipelined"))):
        if getattr(chip, name) not in known:
            fail(_FIELD_PATH[name], f"unknown value '{getattr(chip, name)}' (known: "
                 f"{', '.join(known)})")
    if chip.cell_read_energy_fj is None:
        missing = [f for f in ("r_on_ohm", "r_off_ohm", "read_voltage_v", "read_pulse_s")
                   if not getattr(chip, f)]
        if missing:
            fail("cell.read_energy", "give cell.read_energy or all of cell.r_on, r_off, "
                 f"read_voltage, read_pulse (missing: "
                 f"{', '.join(_FIELD_PATH[f] for f in missing)})")
    for fld, what in chip.sensing.problems(chip.rows, chip.cols, chip.cells_per_weight):
        key = scheme.FIELDS.get(fld, scheme.STRINGS.get(fld, (fld,)))[0]
        fail(f"sensing.{key}", what)
    for k, v in chip.operating_point.items():
        if not isinstance(v, int | float) or not math.isfinite(v):
            fail(f"errors.operating_point.{k}", f"value {v!r} is not a finite number")
        check_knob(k, v, f"errors.operating_point.{k}", src)  # physical domain (issue 18)


def _check_slicing(chip: ChipCard, fail: Any) -> bool:
    """Validate the bit-slicing keys; True when the card slices its weights."""
    given = [f for f in ("weight_bits", "bits_per_cell", "signing") if getattr(chip, f)]
    if not given:
        return False
    if ENCODINGS[chip.encoding].native != "float":
        fail(_FIELD_PATH[given[0]], f"bit slicing needs encoding analog (this card is "
             f"{chip.encoding}); remove {_FIELD_PATH[given[0]]} or use encoding analog")
    for f in ("weight_bits", "bits_per_cell"):
        if getattr(chip, f) is None:
            fail(_FIELD_PATH[f], "missing: bit slicing needs both cell.weight_bits and "
                 "cell.bits_per_cell (add {value: ..., unit: \"1\", source: ...})")
    sl = chip.slicing
    assert sl is not None
    for key, what in sl.problems():
        fail(key, what)
    if chip.cells_per_weight != sl.cells:
        stored = "N-1" if sl.signing == "differential" else "N"
        fail("cell.cells_per_weight", f"{chip.cells_per_weight} cells per weight do not hold "
             f"{sl.weight_bits}-bit weights in {sl.bits_per_cell}-bit cells signed by "
             f"{sl.signing}: use {sl.cells} (= ceil({stored}/b) x {SIGNINGS[sl.signing]})")
    return True
