"""Measurement files the calibrate stage reads, with format auto-detection.

Formats (comma, tab, semicolon or whitespace separated; ``#`` lines are comments, and
``# key: value`` comment lines are kept as header metadata, e.g. ``# unit: uS``,
``# synthetic: true``):

``updown``
    Two columns, no header needed: conductance after each of N consecutive up (potentiation)
    pulses, then after each of N consecutive down pulses (aihwkit's ``gong_et_al.csv``).
``long``
    A header with ``device, cycle, direction, pulse, conductance`` (any order, any case;
    ``direction`` is up/down, +1/-1, set/reset, potentiation/depression or ltp/ltd).
``ramps``
    One column per ramp, NaN-padded at the end, alternating set and reset ramps (the direction of
    the first ramp is read from its trend).
``ber``
    A header with the operating-point columns (the family's knobs, SI units), ``trials`` and
    ``errors``.
``relaxation``
    Reads of programmed cells over time (``cell, time, conductance[, level]``, gzip allowed):
    its own module, :mod:`dse.devices.relaxation`.

Malformed files raise a one-line :class:`DseError` naming the file and the row (the line number
in the file) and column.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dse.errors import DseError

FORMATS = ("updown", "long", "ramps", "ber", "relaxation")
LONG_COLUMNS = ("device", "cycle", "direction", "pulse", "conductance")
MIN_PULSES = 10
_DIRECTIONS = {"up": 1, "+1": 1, "1": 1, "set": 1, "potentiation": 1, "ltp": 1, "pot": 1,
               "down": -1, "-1": -1, "reset": -1, "depression": -1, "ltd": -1, "dep": -1}


@dataclass
class Series:
    """One monotone pulse train: a device, a cycle, a direction (+1 up / −1 down)."""

    device: str
    cycle: int
    direction: int
    pulses: np.ndarray
    conductance: np.ndarray
    where: str  # "column 2 ('down')" / "device 'd1', cycle 0, down" for messages

    @property
    def label(self) -> str:
        d = "up" if self.direction > 0 else "down"
        return f"{self.device}/c{self.cycle}/{d}"


@dataclass
class Measurements:
    """A parsed measurement file: pulse series (``series``) or a BER table (``table``)."""

    path: str
    format: str
    header: dict[str, str] = field(default_factory=dict)
    series: list[Series] = field(default_factory=list)
    table: pd.DataFrame | None = None
    sha256: str = ""

    @property
    def kind(self) -> str:
        if self.format == "relaxation":  # dse.devices.relaxation
            return "relaxation"
        return "ber" if self.format == "ber" else "pulses"

    @property
    def synthetic(self) -> bool:
        return str(self.header.get("synthetic", "")).lower() in ("true", "yes", "1")

    @property
    def unit(self) -> str:
        return self.header.get("unit", "1")

    def frame(self) -> pd.DataFrame:
        """The pulse series as one long table (device, cycle, direction, pulse, conductance)."""
        rows = [pd.DataFrame({"device": s.device, "cycle": s.cycle,
                              "direction": "up" if s.direction > 0 else "down",
                              "pulse": s.pulses, "conductance": s.conductance})
                for s in self.series]
        return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
            columns=list(LONG_COLUMNS))


def _number(tok: str) -> float | None:
    t = tok.strip()
    if t == "" or t.lower() in ("nan", "na", "n/a", "null"):
        return math.nan
    try:
        return float(t)
    except ValueError:
        return None


class _Text:
    """The data lines of a file with their line numbers, split into cells."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        if not path.is_file():
            raise DseError("measurement file not found; check the path", source=self.path)
        raw = path.read_bytes()
        self.sha256 = hashlib.sha256(raw).hexdigest()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise DseError("not a UTF-8 text file (export the measurements as CSV)",
                           source=self.path) from None
        self.header: dict[str, str] = {}
        self.rows: list[tuple[int, list[str]]] = []
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
        if not self.rows:
            raise DseError("no data rows (only comments or blank lines)", source=self.path)
        first = self.rows[0][1]
        self.names: list[str] | None = None
        if any(_number(c) is None for c in first):
            self.names = [c.lower() for c in first]
            self.rows = self.rows[1:]
            if not self.rows:
                raise DseError("a header line but no data rows", source=self.path)

    def err(self, msg: str) -> DseError:
        return DseError(msg, source=self.path)

    def width(self) -> int:
        """Columns of the table; short rows are padded with empty cells (ragged NaN padding)."""
        n = len(self.names) if self.names else max(len(c) for _, c in self.rows)
        for lineno, cells in self.rows:
            if len(cells) > n:
                raise self.err(f"row {lineno}: {len(cells)} columns, expected {n} "
                               "(every row needs the same columns)")
            cells.extend([""] * (n - len(cells)))
        return n

    def column_name(self, j: int) -> str:
        return f"column {j + 1}" + (f" ('{self.names[j]}')" if self.names else "")

    def numeric(self, cols: list[int] | None = None) -> np.ndarray:
        n = self.width()
        cols = list(range(n)) if cols is None else cols
        out = np.empty((len(self.rows), len(cols)))
        for i, (lineno, cells) in enumerate(self.rows):
            for jj, j in enumerate(cols):
                v = _number(cells[j])
                if v is None or (isinstance(v, float) and math.isinf(v)):
                    raise self.err(f"row {lineno}, {self.column_name(j)}: '{cells[j]}' is not a "
                                   "number (fix or remove the cell)")
                out[i, jj] = v
        return out

    def line(self, i: int) -> int:
        return self.rows[i][0]


def _detect(t: _Text) -> str:
    if t.names:
        names = set(t.names)
        if {"trials", "errors"} <= names:
            return "ber"
        if {"conductance", "pulse"} & names or "direction" in names:
            return "long"
    n = t.width()
    if n == 1:
        raise t.err("one column: the pulse direction is unknown (use two up/down columns, one "
                    "column per ramp, or the long format with a direction column)")
    data = t.numeric()
    if n == 2 and not np.isnan(data).any():
        return "updown"
    return "ramps"


def _check_series(t: _Text, s: Series, min_pulses: int) -> Series:
    if len(s.conductance) < min_pulses:
        raise t.err(f"{s.where}: only {len(s.conductance)} pulses (need at least {min_pulses} "
                    "per ramp to fit a trajectory)")
    if np.ptp(s.conductance) == 0:
        raise t.err(f"{s.where}: constant conductance {s.conductance[0]:g} (no pulse response "
                    "to fit; check the column)")
    return s


def _columns_as_series(t: _Text, data: np.ndarray, directions: list[int],
                       min_pulses: int) -> list[Series]:
    out = []
    for j in range(data.shape[1]):
        col = data[:, j]
        finite = ~np.isnan(col)
        if not finite.any():
            raise t.err(f"{t.column_name(j)}: empty column")
        last = int(np.nonzero(finite)[0][-1])
        gap = np.nonzero(~finite[: last + 1])[0]
        if gap.size:
            raise t.err(f"row {t.line(int(gap[0]))}, {t.column_name(j)}: empty cell inside a "
                        "ramp (only trailing cells may be empty)")
        g = col[: last + 1]
        out.append(_check_series(t, Series("0", j // 2, directions[j], np.arange(1, len(g) + 1,
                                                                                  dtype=float),
                                           g, t.column_name(j)), min_pulses))
    return out


def _trend(g: np.ndarray) -> int:
    k = max(1, len(g) // 5)
    return 1 if g[-k:].mean() >= g[:k].mean() else -1


def _read_updown(t: _Text, min_pulses: int) -> list[Series]:
    if t.width() != 2:
        raise t.err(f"updown format needs exactly 2 columns (up, down), found {t.width()}")
    return _columns_as_series(t, t.numeric(), [1, -1], min_pulses)


def _read_ramps(t: _Text, min_pulses: int) -> list[Series]:
    data = t.numeric()
    first = data[:, 0][~np.isnan(data[:, 0])]
    d0 = _trend(first) if first.size else 1
    return _columns_as_series(t, data, [d0 if j % 2 == 0 else -d0 for j in range(data.shape[1])],
                              min_pulses)


def _read_long(t: _Text, min_pulses: int) -> list[Series]:
    if not t.names:
        raise t.err("long format needs a header line: " + ", ".join(LONG_COLUMNS))
    missing = [c for c in LONG_COLUMNS if c not in t.names]
    if missing:
        raise t.err(f"missing column(s) {', '.join(missing)} (found: {', '.join(t.names)}; the "
                    f"long format needs {', '.join(LONG_COLUMNS)})")
    t.width()
    idx = {c: t.names.index(c) for c in LONG_COLUMNS}
    num = t.numeric([idx["cycle"], idx["pulse"], idx["conductance"]])
    for k, c in enumerate(("cycle", "pulse", "conductance")):
        bad = np.nonzero(np.isnan(num[:, k]))[0]
        if bad.size:
            raise t.err(f"row {t.line(int(bad[0]))}, {t.column_name(idx[c])}: empty cell")
    direction = []
    for lineno, cells in t.rows:
        d = _DIRECTIONS.get(cells[idx["direction"]].lower())
        if d is None:
            raise t.err(f"row {lineno}, {t.column_name(idx['direction'])}: "
                        f"'{cells[idx['direction']]}' is not a direction (use up or down)")
        direction.append(d)
    frame = pd.DataFrame({"device": [c[idx["device"]] for _, c in t.rows],
                          "cycle": num[:, 0].astype(int), "direction": direction,
                          "pulse": num[:, 1], "conductance": num[:, 2],
                          "line": [ln for ln, _ in t.rows]})
    out = []
    for (dev, cyc, d), grp in frame.groupby(["device", "cycle", "direction"], sort=True):
        grp = grp.sort_values("pulse")
        dup = grp["pulse"].duplicated()
        if dup.any():
            raise t.err(f"row {int(grp['line'][dup].iloc[0])}: pulse {grp['pulse'][dup].iloc[0]:g}"
                        f" repeated for device '{dev}', cycle {cyc}")
        where = f"device '{dev}', cycle {cyc}, {'up' if d > 0 else 'down'}"
        out.append(_check_series(t, Series(str(dev), int(cyc), int(d),
                                           grp["pulse"].to_numpy(float),
                                           grp["conductance"].to_numpy(float), where),
                                 min_pulses))
    return out


def _read_ber(t: _Text) -> pd.DataFrame:
    if not t.names:
        raise t.err("ber format needs a header line: <operating-point columns>, trials, errors")
    missing = [c for c in ("trials", "errors") if c not in t.names]
    if missing:
        raise t.err(f"missing column(s) {', '.join(missing)} (found: {', '.join(t.names)})")
    if len(t.names) < 3:
        raise t.err("no operating-point column (e.g. i_prog, vdd, i_write and t_write)")
    data = t.numeric()
    frame = pd.DataFrame(data, columns=t.names)
    for j in range(len(t.names)):
        bad = np.nonzero(np.isnan(data[:, j]))[0]
        if bad.size:
            raise t.err(f"row {t.line(int(bad[0]))}, {t.column_name(j)}: empty cell")
    jt, je = t.names.index("trials"), t.names.index("errors")
    for i in range(len(frame)):
        n, k = data[i, jt], data[i, je]
        if n < 1 or n != int(n):
            raise t.err(f"row {t.line(i)}, {t.column_name(jt)}: trials must be a positive "
                        f"integer, got {n:g}")
        if k < 0 or k != int(k):
            raise t.err(f"row {t.line(i)}, {t.column_name(je)}: errors must be a non-negative "
                        f"integer, got {k:g}")
        if k > n:
            raise t.err(f"row {t.line(i)}, {t.column_name(je)}: {k:g} errors > {n:g} trials")
    frame["trials"] = frame["trials"].astype(np.int64)
    frame["errors"] = frame["errors"].astype(np.int64)
    return frame


def read_measurements(path: str | Path, fmt: str = "auto",
                      min_pulses: int = MIN_PULSES) -> Measurements:
    """Parse a measurement file (``fmt``: auto, updown, long, ramps or ber)."""
    p = Path(path)
    if fmt not in ("auto", *FORMATS):
        raise DseError(f"unknown format '{fmt}' (allowed: auto, {', '.join(FORMATS)})",
                       source=str(p))
    # relaxation files (issue 12): their own reader, dse/devices/relaxation.py
    from dse.devices.relaxation import is_relaxation_file, read_relaxation

    if fmt == "relaxation" or (fmt == "auto" and is_relaxation_file(p)):
        return read_relaxation(p)
    t = _Text(p)
    if fmt == "auto":
        fmt = _detect(t)
    m = Measurements(path=str(p), format=fmt, header=t.header, sha256=t.sha256)
    if fmt == "ber":
        m.table = _read_ber(t)
    elif fmt == "long":
        m.series = _read_long(t, min_pulses)
    elif fmt == "updown":
        m.series = _read_updown(t, min_pulses)
    else:
        m.series = _read_ramps(t, min_pulses)
    return m


def header_lines(meta: dict[str, Any]) -> str:
    """``# key: value`` lines for a file header."""
    return "".join(f"# {k}: {v}\n" for k, v in meta.items())
