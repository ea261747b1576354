"""The pieces every measurement format shares: the parsed text table (:class:`TextTable`), the
``# unit:`` header, the result types (:class:`Series`, :class:`Measurements`) and the format
registry (:func:`register_format`). The formats themselves are in
:mod:`dse.devices.measurement_formats`; the user's guide is ``docs/measurements.md``.

A new format is one :class:`FormatSpec` (name, kind, the columns it expects, a ``claims`` test
for auto-detection and a ``read`` function) registered from its own module.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dse.errors import DseError

# conductance units -> factor to siemens; normalised data (no physical unit) say "1"
CONDUCTANCE_UNITS = {"S": 1.0, "mS": 1e-3, "uS": 1e-6, "nS": 1e-9, "pS": 1e-12}
_UNIT_ALIASES = {"µS": "uS", "μS": "uS", "us": "uS", "ms": "mS", "ns": "nS", "ps": "pS",
                 "siemens": "S", "s": "S"}
NORMALISED_UNITS = ("1", "normalized", "normalised", "a.u.", "au", "arb", "dimensionless")
_RESISTANCE_UNITS = ("ohm", "ohms", "kohm", "mohm", "gohm", "ω", "kω", "mω")


@dataclass
class Series:
    """One monotone pulse train: a device, a cycle, a direction (+1 up / −1 down)."""

    device: str
    cycle: int
    direction: int
    pulses: np.ndarray
    conductance: np.ndarray
    where: str  # "column 2 ('down')" / "device 'd1', cycle 0, down" for messages
    lines: np.ndarray | None = None  # line number in the file of every point

    @property
    def label(self) -> str:
        d = "up" if self.direction > 0 else "down"
        return f"{self.device}/c{self.cycle}/{d}"


@dataclass
class Measurements:
    """A parsed measurement file: pulse series (``series``) or a BER table (``table``).

    ``warnings``: what the reader could not rule out (a missing unit header, a file that does
    not end with a newline, ...); the calibrate stage copies them into the card's
    ``fit.warnings``. ``direction``: how the pulse directions were set (for the card).
    """

    path: str
    format: str
    header: dict[str, str] = field(default_factory=dict)
    series: list[Series] = field(default_factory=list)
    table: pd.DataFrame | None = None
    sha256: str = ""
    kind: str = ""
    warnings: list[str] = field(default_factory=list)
    direction: str = ""

    def __post_init__(self) -> None:
        if not self.kind:
            spec = FORMAT_SPECS.get(self.format)
            self.kind = spec.kind if spec is not None else "pulses"

    @property
    def synthetic(self) -> bool:
        return str(self.header.get("synthetic", "")).lower() in ("true", "yes", "1")

    @property
    def unit(self) -> str:
        return self.header.get("unit", "1")

    @property
    def physical(self) -> bool:
        """True when the conductances are in a physical unit (S, mS, uS, nS, pS)."""
        return self.unit in CONDUCTANCE_UNITS

    def frame(self) -> pd.DataFrame:
        """The pulse series as one long table (device, cycle, direction, pulse, conductance)."""
        rows = [pd.DataFrame({"device": s.device, "cycle": s.cycle,
                              "direction": "up" if s.direction > 0 else "down",
                              "pulse": s.pulses, "conductance": s.conductance})
                for s in self.series]
        return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
            columns=["device", "cycle", "direction", "pulse", "conductance"])


@dataclass(frozen=True)
class ReadOptions:
    """What the caller says about a file: the pulse direction of its ramps and the shortest
    series worth fitting."""

    direction: str = "auto"  # auto | up | down | alternating
    min_pulses: int = 10


@dataclass(frozen=True)
class FormatSpec:
    """One measurement format: how it looks (``columns``, for messages and the docs), whether a
    file looks like it (``claims``, for auto-detection, tried in registration order) and its
    reader (fills ``series`` or ``table`` of the :class:`Measurements`)."""

    name: str
    kind: str  # "pulses" | "ber" | ...
    columns: str
    claims: Callable[[TextTable], bool]
    read: Callable[[TextTable, Measurements, ReadOptions], None]


FORMAT_SPECS: dict[str, FormatSpec] = {}


def register_format(spec: FormatSpec) -> FormatSpec:
    FORMAT_SPECS[spec.name] = spec
    return spec


def formats_help() -> str:
    """Each format and its expected columns, for 'no format matches' messages."""
    return "; ".join(f"{s.name}: {s.columns}" for s in FORMAT_SPECS.values())


# ------------------------------------------------------------------------------ the text
def number(tok: str) -> float | None:
    t = tok.strip()
    if t == "" or t.lower() in ("nan", "na", "n/a", "null"):
        return math.nan
    try:
        return float(t)
    except ValueError:
        return None


_BRACKET = re.compile(r"\s*[\(\[]([^\)\]]*)[\)\]]\s*$")


def _column_name(cell: str) -> tuple[str, str | None]:
    """('conductance', 'uS') from 'Conductance (uS)' / 'conductance [uS]'."""
    m = _BRACKET.search(cell)
    unit = m.group(1).strip() if m else None
    name = cell[: m.start()] if m else cell
    return re.sub(r"[\s\-]+", "_", name.strip().lower()), unit


def canonical_unit(unit: str, source: str) -> str:
    """The unit of a ``# unit:`` header as dse spells it (DseError for a non-conductance)."""
    u = unit.strip()
    u = _UNIT_ALIASES.get(u, u)
    if u in CONDUCTANCE_UNITS:
        return u
    if u.lower() in NORMALISED_UNITS:
        return "1"
    if u.lower() in _RESISTANCE_UNITS or u.lower().endswith("ohm"):
        raise DseError(f"'# unit: {unit}' is a resistance; the pulse formats hold conductances: "
                       "convert G = 1/R and declare '# unit: S' (or mS, uS, nS)", source=source)
    raise DseError(f"'# unit: {unit}' is not a conductance unit (use S, mS, uS, nS or pS, or 1 "
                   "for normalised data)", source=source)


class TextTable:
    """The data lines of a file's bytes ``raw`` (read by the wiring, named ``source`` in
    messages) with their line numbers, split into cells; ``names``: the header line's column
    names (lower case, units in brackets removed), or None."""

    def __init__(self, raw: bytes, source: str) -> None:
        self.path = str(source)
        self.sha256 = hashlib.sha256(raw).hexdigest()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise DseError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); "
                           "export the measurements as UTF-8 CSV", source=self.path) from None
        self.ends_with_newline = raw.endswith((b"\n", b"\r"))
        self.header: dict[str, str] = {}
        self.rows: list[tuple[int, list[str]]] = []
        self._split(text)
        if not self.rows:
            raise DseError("no data rows (only comments or blank lines)", source=self.path)
        first = self.rows[0][1]
        self.names: list[str] | None = None
        self.column_units: dict[str, str] = {}
        if any(number(c) is None for c in first):
            parsed = [_column_name(c) for c in first]
            self.names = [n for n, _ in parsed]
            self.column_units = {n: u for n, u in parsed if u}
            self.rows = self.rows[1:]
            if not self.rows:
                raise DseError("a header line but no data rows", source=self.path)
        self._check_declared_rows()

    def _split(self, text: str) -> None:
        delim: str | None = ""
        for lineno, line in enumerate(text.splitlines(), 1):
            s = line.strip()
            if not s:
                continue
            if s.startswith("#"):
                body = s.lstrip("#").strip()
                if ":" in body:
                    k, v = body.split(":", 1)
                    if k.strip() and " " not in k.strip():
                        self.header[k.strip().lower()] = v.strip()
                continue
            if delim == "":
                delim = next((d for d in (",", "\t", ";") if d in s), None)
            raw_line = line.rstrip("\r\n").strip(" ")
            cells = raw_line.split(delim) if delim else s.split()
            self.rows.append((lineno, [c.strip().strip('"') for c in cells]))

    def _check_declared_rows(self) -> None:
        declared = self.header.get("rows")
        if declared is None:
            return
        try:
            n = int(declared)
        except ValueError:
            raise self.err(f"'# rows: {declared}' is not a whole number of data rows") from None
        if n != len(self.rows):
            raise self.err(f"the header says '# rows: {n}' but the file has {len(self.rows)} data "
                           "rows: it is truncated (restore the full file) or the header is stale")

    def err(self, msg: str) -> DseError:
        return DseError(msg, source=self.path)

    def width(self) -> int:
        """Columns of the table; every row must have them all (a short row is a truncated file
        or a lost cell: ramps that end early keep their empty cells, ``0.5,``, or write NaN)."""
        n = len(self.names) if self.names else max(len(c) for _, c in self.rows)
        last = self.rows[-1][0]
        for lineno, cells in self.rows:
            if len(cells) > n:
                raise self.err(f"row {lineno}: {len(cells)} columns, expected {n} "
                               "(every row needs the same columns)")
            if len(cells) < n:
                if lineno == last:
                    raise self.err(f"row {lineno} (the last line): {len(cells)} of {n} cells: "
                                   "the file looks truncated; restore the full file")
                raise self.err(f"row {lineno}: {len(cells)} of {n} cells (every row needs all "
                               "columns; write an empty cell or NaN where a ramp has ended)")
        return n

    def column_name(self, j: int) -> str:
        return f"column {j + 1}" + (f" ('{self.names[j]}')" if self.names else "")

    def numeric(self, cols: list[int] | None = None) -> np.ndarray:
        n = self.width()
        cols = list(range(n)) if cols is None else cols
        out = np.empty((len(self.rows), len(cols)))
        for i, (lineno, cells) in enumerate(self.rows):
            for jj, j in enumerate(cols):
                v = number(cells[j])
                if v is None or (isinstance(v, float) and math.isinf(v)):
                    raise self.err(f"row {lineno}, {self.column_name(j)}: '{cells[j]}' is not a "
                                   "number (fix or remove the cell)")
                out[i, jj] = v
        return out

    def line(self, i: int) -> int:
        return self.rows[i][0]

    def unit(self, conductance_column: str | None = None) -> tuple[str, bool]:
        """(canonical conductance unit, declared?) from ``# unit:`` or the column's bracket."""
        head = self.header.get("unit")
        col = self.column_units.get(conductance_column or "")
        if head is not None and col is not None and \
                canonical_unit(head, self.path) != canonical_unit(col, self.path):
            raise self.err(f"'# unit: {head}' but the column header says '{col}'; make them "
                           "agree")
        given = head if head is not None else col
        if given is None:
            return "1", False
        return canonical_unit(given, self.path), True

    def file_warnings(self) -> list[str]:
        if self.ends_with_newline:
            return []
        return [f"{self.path}: the file does not end with a newline, so its last line "
                f"(line {self.rows[-1][0]}) may be cut short; check that the file is complete"]


def check_conductance(t: TextTable, s: Series, physical: bool, unit: str) -> str | None:
    """A conductance in a physical unit is >= 0: a reading below −5 σ of the series' read noise
    (σ from the pulse-to-pulse differences, std/√2) is refused with its row; negative readings
    within that noise of a conductance near 0 are kept and returned as a warning."""
    if not physical:
        return None
    neg = s.conductance < 0
    if not neg.any():
        return None
    sigma = float(np.std(np.diff(s.conductance))) / math.sqrt(2) if len(s.conductance) > 2 else 0
    bad = np.nonzero(s.conductance < -5 * sigma)[0]
    if bad.size:
        i = int(bad[0])
        row = f"row {int(s.lines[i])}, " if s.lines is not None else ""
        raise t.err(f"{row}{s.where}: conductance {s.conductance[i]:g} {unit} is negative "
                    f"(beyond the read noise, σ ≈ {sigma:.3g} {unit}); a physical conductance "
                    "is >= 0: remove the baseline offset, or declare '# unit: 1' for normalised "
                    "data")
    return (f"{t.path}: {s.where}: {int(neg.sum())} negative reading(s) down to "
            f"{float(s.conductance.min()):.3g} {unit}, within the read noise (σ ≈ {sigma:.3g}) of "
            "a conductance near 0; kept as measured")


def header_lines(meta: dict[str, Any]) -> str:
    """``# key: value`` lines for a file header."""
    return "".join(f"# {k}: {v}\n" for k, v in meta.items())
