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
    sensing:
      kind: pcsa | adc                          # (dse.chip.sensing)
      # pcsa: sense_energy (per sense at supply_ref), sense_amp_area
      # adc:  adc_model (neurosim_sar | murmann_survey), adc_roadmap (lp | hp), adc_bits,
      #       cols_per_adc, parallel_rows, optional adc_area (overrides the model's area)
      # latency (dse.chip.latency), optional: sense_time {unit: s|ns} (one PCSA sense cycle,
      #       when no physical sense model gives it), cols_per_sense_amp (weight columns
      #       multiplexed on one PCSA, default 1), adc_time {unit: s|ns} (one conversion;
      #       default NeuroSim's SAR latency (bits + 1) ns)
    digital:
      add_energy:    {unit: fJ}   # one partial-sum addition / popcount accumulate (supply_ref)
      buffer_energy: {unit: fJ}   # one bit read from or written to the activation buffer
      clock:         {unit: Hz|MHz|GHz}   # optional: accumulation clock at supply_ref (latency)
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
s, Ω); change it with ``dataclasses.replace(chip, supply_v=0.8, adc_bits=6, rows=256)`` — the
replacement is validated like a loaded card. ``chip.sources`` keeps each field's provenance.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dse.chip.adc import ADC_MODELS, UNIT_TRANSISTOR_F2, adc_model
from dse.chip.encoding import ENCODINGS
from dse.errors import DseError

# unit symbol -> (dimension, factor to SI)
_UNITS: dict[str, tuple[str, float]] = {
    "J": ("energy", 1.0), "nJ": ("energy", 1e-9), "pJ": ("energy", 1e-12),
    "fJ": ("energy", 1e-15), "aJ": ("energy", 1e-18),
    "V": ("voltage", 1.0), "mV": ("voltage", 1e-3),
    "s": ("time", 1.0), "ms": ("time", 1e-3), "us": ("time", 1e-6), "ns": ("time", 1e-9),
    "ps": ("time", 1e-12),
    "ohm": ("resistance", 1.0), "kohm": ("resistance", 1e3), "Mohm": ("resistance", 1e6),
    "A": ("current", 1.0), "mA": ("current", 1e-3), "uA": ("current", 1e-6),
    "nA": ("current", 1e-9),
    "m": ("length", 1.0), "um": ("length", 1e-6), "nm": ("length", 1e-9),
    "K": ("temperature", 1.0),
    "1": ("count", 1.0),
    "F2": ("area", math.nan), "um2": ("area", math.nan), "mm2": ("area", math.nan),
    "transistors": ("area", math.nan),
    "W": ("power", 1.0), "Hz": ("frequency", 1.0), "MHz": ("frequency", 1e6),
    "GHz": ("frequency", 1e9),
}

# field -> (yaml path, dimension, SI factor of the field's unit, required)
_NUMBERS: dict[str, tuple[str, str, float, bool]] = {
    "node_nm": ("technology.node", "length", 1e-9, True),
    "supply_v": ("technology.supply", "voltage", 1.0, True),
    "supply_ref_v": ("technology.supply_ref", "voltage", 1.0, False),
    "temperature_k": ("technology.temperature", "temperature", 1.0, False),
    "rows": ("array.rows", "count", 1.0, True),
    "cols": ("array.cols", "count", 1.0, True),
    "cells_per_weight": ("cell.cells_per_weight", "count", 1.0, True),
    "cell_area_f2": ("cell.area", "area", 1.0, True),
    "cell_read_energy_fj": ("cell.read_energy", "energy", 1e-15, False),
    "r_on_ohm": ("cell.r_on", "resistance", 1.0, False),
    "r_off_ohm": ("cell.r_off", "resistance", 1.0, False),
    "read_voltage_v": ("cell.read_voltage", "voltage", 1.0, False),
    "read_pulse_s": ("cell.read_pulse", "time", 1.0, False),
    "lrs_fraction": ("cell.lrs_fraction", "count", 1.0, False),
    "sense_fj": ("sensing.sense_energy", "energy", 1e-15, False),
    "sense_amp_area_f2": ("sensing.sense_amp_area", "area", 1.0, False),
    "adc_bits": ("sensing.adc_bits", "count", 1.0, False),
    "cols_per_adc": ("sensing.cols_per_adc", "count", 1.0, False),
    "parallel_rows": ("sensing.parallel_rows", "count", 1.0, False),
    "adc_area_f2": ("sensing.adc_area", "area", 1.0, False),
    "add_fj": ("digital.add_energy", "energy", 1e-15, True),
    "buffer_fj": ("digital.buffer_energy", "energy", 1e-15, True),
    "periphery_row_f2": ("periphery.row_area", "area", 1.0, True),
    "periphery_col_f2": ("periphery.column_area", "area", 1.0, True),
    "write_pj": ("programming.write_energy", "energy", 1e-12, False),
    # latency (dse.chip.latency)
    "sense_time_s": ("sensing.sense_time", "time", 1.0, False),
    "cols_per_sense_amp": ("sensing.cols_per_sense_amp", "count", 1.0, False),
    "adc_time_s": ("sensing.adc_time", "time", 1.0, False),
    "clock_hz": ("digital.clock", "frequency", 1.0, False),
}
_STRINGS: dict[str, tuple[str, bool]] = {
    "encoding": ("encoding", True),
    "sensing": ("sensing.kind", True),
    "adc_model": ("sensing.adc_model", False),
    "adc_roadmap": ("sensing.adc_roadmap", False),
    "analog_card": ("errors.analog_card", False),
}
_INTEGERS = ("rows", "cols", "cells_per_weight", "adc_bits", "cols_per_adc", "parallel_rows",
             "cols_per_sense_amp")
_SECTIONS = {
    "technology": {"node", "supply", "supply_ref", "temperature"},
    "array": {"rows", "cols"},
    "cell": {"cells_per_weight", "area", "read_energy", "r_on", "r_off", "read_voltage",
             "read_pulse", "lrs_fraction"},
    "sensing": {"kind", "sense_energy", "sense_amp_area", "adc_model", "adc_roadmap", "adc_bits",
                "cols_per_adc", "parallel_rows", "adc_area", "sense_time", "cols_per_sense_amp",
                "adc_time"},
    "digital": {"add_energy", "buffer_energy", "clock"},
    "periphery": {"row_area", "column_area"},
    "programming": {"write_energy"},
    "errors": {"sources", "operating_point", "analog_card"},
}
_TOP = {"name", "description", "source", "encoding", *_SECTIONS}
_FIELD_PATH = {f: spec[0] for f, spec in _NUMBERS.items()} | {
    f: spec[0] for f, spec in _STRINGS.items()}


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
    sensing: str
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
    sense_fj: float | None = None
    sense_amp_area_f2: float | None = None
    adc_model: str | None = None
    adc_roadmap: str = "lp"
    adc_bits: int | None = None
    cols_per_adc: int | None = None
    parallel_rows: int | None = None
    adc_area_f2: float | None = None
    write_pj: float | None = None
    sense_time_s: float | None = None
    cols_per_sense_amp: int | None = None
    adc_time_s: float | None = None
    clock_hz: float | None = None
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
        """Energy of one ADC conversion (fJ), from the card's ADC model (0 without ADCs)."""
        if self.adc_model is None or self.adc_bits is None:
            return 0.0
        return adc_model(self.adc_model).energy_fj(self.adc_bits, self.node_nm, self.adc_roadmap,
                                                   self.temperature_k)

    @property
    def adc_area_um2(self) -> float:
        """Area of one ADC (µm²): the card's value or the ADC model's."""
        if self.adc_area_f2 is not None:
            return self.adc_area_f2 * self.f_um ** 2
        if self.adc_model is None or self.adc_bits is None:
            return 0.0
        return adc_model(self.adc_model).area_um2(self.adc_bits, self.node_nm)

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

    def to_dict(self) -> dict[str, Any]:
        """Plain mapping of the fields (what a mapping/estimate records as provenance)."""
        d = dataclasses.asdict(self)
        d.pop("sources")
        d.pop("origin")
        d["operating_point"] = dict(self.operating_point)
        return d


# ----------------------------------------------------------------------------------- validation
def _where(chip: ChipCard, fld: str) -> str:
    return _FIELD_PATH.get(fld, fld)


def validate(chip: ChipCard) -> None:
    """Check a card's values (called on construction and on every ``dataclasses.replace``)."""
    src = chip.origin or f"chip card '{chip.name}'"

    def fail(fld: str, what: str) -> None:
        raise DseError(f"{_where(chip, fld)}: {what}", source=src)

    if chip.encoding not in ENCODINGS:
        fail("encoding", f"unknown encoding '{chip.encoding}' (known: "
             f"{', '.join(sorted(ENCODINGS))})")
    from dse.chip.sensing import SENSING

    if chip.sensing not in SENSING:
        fail("sensing", f"unknown sensing kind '{chip.sensing}' (known: "
             f"{', '.join(sorted(SENSING))})")
    for name in _NUMBERS:
        v = getattr(chip, name)
        if v is None:
            continue
        if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
            fail(name, f"value {v!r} is not a finite number")
        if name in _INTEGERS and (v != int(v) or v < 1):
            fail(name, f"value {v!r} must be a whole number >= 1")
        if v < 0:
            fail(name, f"value {v!r} must be >= 0")
    for name in ("node_nm", "supply_v"):
        if getattr(chip, name) <= 0:
            fail(name, "must be > 0")
    if chip.supply_ref_v is not None and chip.supply_ref_v <= 0:
        fail("supply_ref_v", "must be > 0")
    for name in ("sense_time_s", "adc_time_s", "clock_hz"):
        if getattr(chip, name) is not None and getattr(chip, name) <= 0:
            fail(name, "must be > 0")
    if chip.cols_per_sense_amp is not None and chip.cols_per_sense_amp > chip.weight_cols:
        fail("cols_per_sense_amp", f"{chip.cols_per_sense_amp} columns per sense amplifier "
             f"exceed the {chip.weight_cols} weight columns of the array")
    enc = ENCODINGS[chip.encoding]
    if chip.cells_per_weight not in enc.cells:
        fail("cells_per_weight", f"{chip.cells_per_weight} cells per weight is not possible "
             f"with encoding {chip.encoding} (allowed: {', '.join(map(str, enc.cells))})")
    if chip.cols % chip.cells_per_weight:
        fail("cols", f"{chip.cols} columns do not hold whole weights of "
             f"{chip.cells_per_weight} cells; use a multiple of {chip.cells_per_weight}")
    if not 0 <= chip.lrs_fraction <= 1:
        fail("lrs_fraction", "must be between 0 and 1")
    if chip.cell_read_energy_fj is None:
        missing = [f for f in ("r_on_ohm", "r_off_ohm", "read_voltage_v", "read_pulse_s")
                   if not getattr(chip, f)]
        if missing:
            fail("cell_read_energy_fj", "give cell.read_energy or all of cell.r_on, r_off, "
                 f"read_voltage, read_pulse (missing: "
                 f"{', '.join(_where(chip, f) for f in missing)})")
    SENSING[chip.sensing].check(chip, fail)
    if chip.adc_model is not None and chip.adc_model not in ADC_MODELS:
        fail("adc_model", f"unknown ADC model '{chip.adc_model}' (known: "
             f"{', '.join(sorted(ADC_MODELS))})")
    if chip.adc_roadmap not in ("lp", "hp"):
        fail("adc_roadmap", f"unknown roadmap '{chip.adc_roadmap}' (lp, hp)")
    for k, v in chip.operating_point.items():
        if not isinstance(v, int | float) or not math.isfinite(v):
            raise DseError(f"errors.operating_point.{k}: value {v!r} is not a finite number",
                           source=src)


# ------------------------------------------------------------------------------------- loading
def _number(entry: Any, path: str, dim: str, factor: float, node_nm: float | None,
            sources: dict[str, str], key: str, src: str) -> float:
    if not isinstance(entry, Mapping):
        raise DseError(f"{path}: write numbers as {{value: ..., unit: ..., source: ...}} "
                       f"(got {entry!r})", source=src)
    extra = set(entry) - {"value", "unit", "source", "assumption", "note"}
    if extra:
        raise DseError(f"{path}: unknown key {', '.join(sorted(map(repr, extra)))} (allowed "
                       "keys: value, unit, source, assumption, note)", source=src)
    if "value" not in entry:
        raise DseError(f"{path}: missing 'value'", source=src)
    value = entry["value"]
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise DseError(f"{path}.value: {value!r} is not a finite number", source=src)
    prov = [f"{k}: {entry[k]}" for k in ("source", "assumption") if entry.get(k)]
    if not prov:
        raise DseError(f"{path}: every number needs a 'source:' (paper + table/figure, or a "
                       "repository file) or an 'assumption:' saying why", source=src)
    sources[key] = "; ".join(prov)
    unit = str(entry.get("unit", "1"))
    if unit not in _UNITS:
        raise DseError(f"{path}.unit: unknown unit '{unit}' (known: "
                       f"{', '.join(u for u, (d, _) in _UNITS.items() if d == dim)})", source=src)
    udim, ufactor = _UNITS[unit]
    if udim != dim:
        allowed = ", ".join(u for u, (d, _) in _UNITS.items() if d == dim)
        raise DseError(f"{path}.unit: '{unit}' is not a unit of {dim} (use {allowed})",
                       source=src)
    if dim == "area":
        if unit == "F2":
            return float(value)
        if unit == "transistors":
            return float(value) * UNIT_TRANSISTOR_F2
        um2 = float(value) * (1e6 if unit == "mm2" else 1.0)
        assert node_nm is not None
        return um2 / (node_nm * 1e-3) ** 2
    return float(value) * ufactor / factor


def _get(d: Mapping[str, Any], path: str) -> Any:
    cur: Any = d
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def chip_from_dict(data: Any, source: str = "chip card", name: str | None = None) -> ChipCard:
    """Build and validate a :class:`ChipCard` from a parsed card."""
    if not isinstance(data, Mapping):
        raise DseError("a chip card must be a mapping of keys to values", source=source)
    extra = set(data) - _TOP
    if extra:
        raise DseError(f"unknown key {', '.join(sorted(map(repr, extra)))} (allowed keys: "
                       f"{', '.join(sorted(_TOP))})", source=source)
    for sec, keys in _SECTIONS.items():
        body = data.get(sec)
        if body is None:
            continue
        if not isinstance(body, Mapping):
            raise DseError(f"{sec}: must be a mapping (got {body!r})", source=source)
        bad = set(body) - keys
        if bad:
            raise DseError(f"{sec}: unknown key {', '.join(sorted(map(repr, bad)))} (allowed "
                           f"keys: {', '.join(sorted(keys))})", source=source)
    sources: dict[str, str] = {}
    kw: dict[str, Any] = {}
    node_entry = _get(data, "technology.node")
    node_nm = None
    if node_entry is not None:
        node_nm = _number(node_entry, "technology.node", "length", 1e-9, None, sources,
                          "node_nm", source)
    for fld, (path, dim, factor, required) in _NUMBERS.items():
        entry = _get(data, path)
        if entry is None:
            if required:
                raise DseError(f"{path}: missing (add {{value: ..., unit: ..., source: ...}})",
                               source=source)
            continue
        v = _number(entry, path, dim, factor, node_nm, sources, fld, source)
        if fld in _INTEGERS:
            if v != int(v):
                raise DseError(f"{path}.value: {v!r} must be a whole number", source=source)
            v = int(v)
        kw[fld] = v
    for fld, (path, required) in _STRINGS.items():
        v = _get(data, path)
        if v is None:
            if required:
                raise DseError(f"{path}: missing", source=source)
            continue
        if not isinstance(v, str):
            raise DseError(f"{path}: must be a string (got {v!r})", source=source)
        kw[fld] = v
    errs = data.get("errors") or {}
    sources_list = errs.get("sources") or []
    if not isinstance(sources_list, list):
        raise DseError("errors.sources: must be a list of {card: NAME, role: cell|sense}",
                       source=source)
    err_sources = []
    for i, s in enumerate(sources_list):
        if not isinstance(s, Mapping) or not isinstance(s.get("card"), str) \
                or set(s) - {"card", "role"}:
            raise DseError(f"errors.sources[{i}]: write {{card: NAME, role: cell|sense}} "
                           f"(got {s!r})", source=source)
        err_sources.append(ErrorSource(card=s["card"], role=str(s.get("role", "cell"))))
    op: dict[str, float] = {}
    for knob, entry in (errs.get("operating_point") or {}).items():
        if not isinstance(entry, Mapping):
            raise DseError(f"errors.operating_point.{knob}: write {{value, unit, source}}",
                           source=source)
        unit = str(entry.get("unit", "1"))
        dim = _UNITS.get(unit, ("count", 1.0))[0]
        op[str(knob)] = _number(entry, f"errors.operating_point.{knob}", dim, 1.0, node_nm,
                                sources, f"operating_point.{knob}", source)
    card_name = data.get("name", name)
    if not isinstance(card_name, str) or not card_name:
        raise DseError("name: missing (give the chip a name)", source=source)
    return ChipCard(name=card_name, description=str(data.get("description", "")).strip(),
                    source=str(data.get("source", "")).strip(), error_sources=tuple(err_sources),
                    operating_point=op, sources=sources, origin=source, **kw)


def load_chip(path: str | Path) -> ChipCard:
    """Read and validate a chip card file (YAML or JSON)."""
    from dse.config import load_yaml

    p = Path(path)
    data = load_yaml(p, "chip card")
    return chip_from_dict(data, source=str(p), name=p.stem)
