"""The ``relaxation`` measurement format: reads of programmed cells over time (the Stanford
RRAM relaxation layout; see :mod:`dse.devices.relaxation` for the columns and the model)."""

from __future__ import annotations

import gzip
import hashlib
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from dse.devices.measurement_io import Measurements
from dse.devices.relaxation import COLUMNS, DEFAULT_LEVELS
from dse.errors import DseError


def is_relaxation(raw: bytes) -> bool:
    """True when a file's header line names the relaxation columns (for ``--format auto``)."""
    try:
        text = _text(raw, "")
    except DseError:
        return False
    for line in text.splitlines():
        s = line.strip()
        if s and not s.startswith("#"):
            names = {c.strip().strip('"').lower() for c in _split(s)}
            return set(COLUMNS) <= names
    return False


def _text(raw: bytes, src: str) -> str:
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError):
            raise DseError("a truncated or corrupt gzip file", source=src) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DseError("not a UTF-8 text file (export the measurements as TSV/CSV)",
                       source=src) from None


def _split(line: str) -> list[str]:
    for d in ("\t", ",", ";"):
        if d in line:
            return line.split(d)
    return line.split()


def parse_relaxation(raw: bytes, src: str) -> Any:
    """Parse the bytes of a relaxation file into a :class:`Measurements` (format
    ``relaxation``, ``table``: cell, level, time, conductance, g0, line; see the module)."""
    text = _text(raw, src)
    header: dict[str, str] = {}
    names: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            body = s.lstrip("#").strip()
            k, sep, v = body.partition(":")
            if sep and k.strip() and " " not in k.strip():
                header[k.strip().lower()] = v.strip()
            continue
        cells = [c.strip().strip('"') for c in _split(s)]
        if names is None:
            names = [c.lower() for c in cells]
            missing = [c for c in COLUMNS if c not in names]
            if missing:
                raise DseError(f"row {lineno}: header lacks column(s) {', '.join(missing)} (the "
                               f"relaxation format needs {', '.join(COLUMNS)} [, level])",
                               source=src)
            continue
        if len(cells) != len(names):
            raise DseError(f"row {lineno}: {len(cells)} columns, expected {len(names)}",
                           source=src)
        rows.append(cells)
        lines.append(lineno)
    if names is None or not rows:
        raise DseError("no data rows (a header line cell, time, conductance and rows below)",
                       source=src)
    if not header.get("unit"):
        raise DseError("missing '# unit: ...' header line (the conductance unit, e.g. uS)",
                       source=src)
    frame = _parse_rows(rows, lines, names, src)
    frame = _check_cells(frame, header, src)
    sha = hashlib.sha256(raw).hexdigest()
    return Measurements(path=src, format="relaxation", header=header, table=frame, sha256=sha,
                        kind="relaxation")


def _number(tok: str, lineno: int, col: str, src: str) -> float:
    try:
        v = float(tok)
    except ValueError:
        raise DseError(f"row {lineno}, column '{col}': '{tok}' is not a number",
                       source=src) from None
    if not math.isfinite(v):
        raise DseError(f"row {lineno}, column '{col}': '{tok}' is not finite", source=src)
    return v


def _parse_rows(rows: list[list[str]], lines: list[int], names: list[str],
                src: str) -> pd.DataFrame:
    ic, it, ig = (names.index(c) for c in COLUMNS)
    il = names.index("level") if "level" in names else None
    t = np.empty(len(rows))
    g = np.empty(len(rows))
    lev = np.full(len(rows), -1, dtype=np.int64)
    for i, (cells, ln) in enumerate(zip(rows, lines, strict=True)):
        t[i] = _number(cells[it], ln, "time", src)
        g[i] = _number(cells[ig], ln, "conductance", src)
        if t[i] < 0:
            raise DseError(f"row {ln}, column 'time': {t[i]:g} s is negative (time since "
                           "programming)", source=src)
        if g[i] <= 0:
            raise DseError(f"row {ln}, column 'conductance': {g[i]:g} must be > 0", source=src)
        if il is not None:
            v = _number(cells[il], ln, "level", src)
            if v < 0 or v != int(v):
                raise DseError(f"row {ln}, column 'level': {cells[il]} is not a non-negative "
                               "integer", source=src)
            lev[i] = int(v)
        if not cells[ic]:
            raise DseError(f"row {ln}, column 'cell': empty", source=src)
    return pd.DataFrame({"cell": [c[ic] for c in rows], "level": lev, "time": t,
                         "conductance": g, "line": lines})


def _check_cells(frame: pd.DataFrame, header: Mapping[str, str], src: str) -> pd.DataFrame:
    dup = frame.duplicated(["cell", "time"])
    if dup.any():
        r = frame[dup].iloc[0]
        raise DseError(f"row {r.line}: cell '{r.cell}' has a second read at time {r.time:g} s",
                       source=src)
    zero = frame[frame["time"] == 0]
    no_zero = ~frame["cell"].isin(zero["cell"])
    if no_zero.any():
        r = frame[no_zero].iloc[0]
        raise DseError(f"row {r.line}: cell '{r.cell}' has no time-0 row (the first read after "
                       "programming, which defines its level)", source=src)
    later = frame[frame["time"] > 0]
    alone = ~zero["cell"].isin(later["cell"])
    if alone.any():
        r = zero[alone].iloc[0]
        raise DseError(f"row {r.line}: cell '{r.cell}' has no read after time 0", source=src)
    if later["time"].nunique() < 2:
        raise DseError("fewer than 2 distinct times after 0: a relaxation fit needs >= 2",
                       source=src)
    g0 = zero.set_index("cell")["conductance"]
    frame["g0"] = frame["cell"].map(g0).to_numpy()
    if (frame["level"] >= 0).any():
        per = frame.groupby("cell")["level"].nunique()
        if (per > 1).any():
            cell = per[per > 1].index[0]
            r = frame[frame["cell"] == cell].iloc[1]
            raise DseError(f"row {r.line}: cell '{cell}' changes level", source=src)
    else:
        g_ref = _header_number(header, "g_ref", float(g0.max()), src)
        n = int(_header_number(header, "levels", DEFAULT_LEVELS, src))
        frame["level"] = np.clip((frame["g0"] / g_ref * n).astype(np.int64), 0, None)
    return frame


def _header_number(header: Mapping[str, str], key: str, default: float, src: str) -> float:
    if key not in header:
        return default
    try:
        v = float(header[key])
    except ValueError:
        raise DseError(f"header '# {key}: {header[key]}' is not a number", source=src) from None
    if not math.isfinite(v) or v <= 0:
        raise DseError(f"header '# {key}: {header[key]}' must be > 0", source=src)
    return v
