"""The measurement formats ``updown``, ``long``, ``ramps`` and ``ber`` (user guide:
``docs/measurements.md``), registered in this order, which is the auto-detection order.

Pulse directions are checked against the data: every series' trend (the mean of its last fifth
minus the mean of its first fifth, against their standard error) must not contradict the
direction it is fitted as. ``ramps`` files are read in the direction the caller says (``up`` /
``down``: single-direction ramps; ``alternating``: set, reset, set, ...) or, by default, the one
their trends show: all ramps rising (the lookup-table layout of SET-only files) are fitted as up
ramps with a logged notice, never as alternating SET/RESET pairs.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from dse.devices.measurement_io import (
    FormatSpec,
    Measurements,
    ReadOptions,
    Series,
    TextTable,
    check_conductance,
    register_format,
)

log = logging.getLogger(__name__)

LONG_COLUMNS = ("device", "cycle", "direction", "pulse", "conductance")
DIRECTION_CHOICES = ("auto", "up", "down", "alternating")
_DIRECTIONS = {"up": 1, "+1": 1, "1": 1, "set": 1, "potentiation": 1, "ltp": 1, "pot": 1,
               "down": -1, "-1": -1, "reset": -1, "depression": -1, "ltd": -1, "dep": -1}
_NAMES = {1: "up", -1: "down"}


# ------------------------------------------------------------------------------ trends
def trend(g: np.ndarray) -> tuple[int, bool, float, float, float]:
    """(sign, significant, start, end, standard error) of a series: the means of its first and
    last fifth, significant when they differ by more than 4 standard errors (of the noise about
    a straight line through each fifth) and 2 % of the series' span."""
    k = max(3, len(g) // 5)
    a, b = g[:k], g[-k:]
    se = math.sqrt(_detrended_var(a) / k + _detrended_var(b) / k)
    delta = float(b.mean() - a.mean())
    significant = abs(delta) > 4 * se and abs(delta) > 0.02 * float(np.ptp(g))
    return (1 if delta >= 0 else -1), significant, float(a.mean()), float(b.mean()), se


def _detrended_var(y: np.ndarray) -> float:
    """Variance about a straight line through ``y`` (the noise, not the ramp within it)."""
    x = np.arange(len(y), dtype=float)
    coef = np.polyfit(x, y, 1)
    r = y - np.polyval(coef, x)
    return float(r @ r) / max(len(y) - 2, 1)


def _contradiction(t: TextTable, s: Series, why: str) -> None:
    sign, sig, a, b, _ = trend(s.conductance)
    if sig and sign != s.direction:
        verb = "rises" if sign > 0 else "falls"
        raise t.err(f"{s.where}: fitted as {_NAMES[s.direction]} but {verb} from {a:.4g} to "
                    f"{b:.4g}; {why}")


def _series_check(t: TextTable, m: Measurements, s: Series, opts: ReadOptions) -> Series:
    if len(s.conductance) < opts.min_pulses:
        raise t.err(f"{s.where}: only {len(s.conductance)} pulses (need at least "
                    f"{opts.min_pulses} per ramp to fit a trajectory)")
    if np.ptp(s.conductance) == 0:
        raise t.err(f"{s.where}: constant conductance {s.conductance[0]:g} (no pulse response "
                    "to fit; check the column)")
    warning = check_conductance(t, s, m.physical, m.unit)
    if warning:
        m.warnings.append(warning)
    return s


def _set_unit(t: TextTable, m: Measurements, column: str | None = None) -> None:
    unit, declared = t.unit(column)
    m.header["unit"] = unit
    if not declared:
        m.warnings.append(f"{t.path}: no '# unit:' header; the conductances are taken as "
                          "normalised (unit 1), so their sign is not checked")


# ------------------------------------------------------------------------------ columns
def _column_series(t: TextTable, data: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(column index, values up to the last filled cell) per column."""
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
        out.append((j, col[: last + 1]))
    return out


def _ramp_directions(t: TextTable, cols: list[tuple[int, np.ndarray]], requested: str,
                     ) -> tuple[list[int], str]:
    """Directions of the ramp columns and a description for the card.

    ``auto``: when every ramp has a significant trend, their signs decide (all alike: single
    direction; alternating; else each its own). Otherwise the pooled evidence decides between
    "all alike" and "alternating" (z = sum of the sign-weighted changes over their pooled
    standard error, |z| > 4), provided no significant ramp contradicts it; else DseError.
    """
    n = len(cols)
    if requested in ("up", "down"):
        return [1 if requested == "up" else -1] * n, f"{requested} only (as requested)"
    trends = [trend(g) for _, g in cols]
    delta = np.array([tr[3] - tr[2] for tr in trends])
    se = math.sqrt(sum(tr[4] ** 2 for tr in trends)) or 1e-300
    alt_sign = np.array([1 if j % 2 == 0 else -1 for j in range(n)])
    z_alt, z_same = float(alt_sign @ delta) / se, float(delta.sum()) / se
    alternating = [int(v) for v in alt_sign * (1 if z_alt >= 0 else -1)]
    fix = "pass --direction up, down or alternating (devices entry: direction:)"
    if requested == "alternating":
        if all(not tr[1] for tr in trends) and abs(z_alt) < 4:
            raise t.err("no ramp shows a clear trend, so the direction of the first ramp is "
                        "unknown; pass --direction up or down (every ramp alike), or reorder")
        return alternating, "alternating (as requested)"
    signs = [tr[0] for tr in trends]
    if all(tr[1] for tr in trends):
        if len(set(signs)) == 1:
            return _single(t, n, signs[0])
        if signs == alternating:
            return alternating, "alternating (detected from the ramps' trends)"
        log.warning("%s: ramp directions neither alternate nor agree; each ramp is fitted in "
                    "the direction of its own trend", t.path)
        return signs, "per ramp (detected from each ramp's trend)"
    same = [1 if z_same >= 0 else -1] * n
    for z, dirs, kind in sorted(((abs(z_same), same, "same"), (abs(z_alt), alternating, "alt")),
                                reverse=True):
        if z > 4 and all(not tr[1] or tr[0] == d for tr, d in zip(trends, dirs, strict=True)):
            if kind == "same":
                return _single(t, n, dirs[0])
            return dirs, "alternating (detected from the ramps' pooled trends)"
    raise t.err(f"the ramps' trends neither alternate nor agree clearly (pooled z: alternating "
                f"{z_alt:.1f}, all alike {z_same:.1f}): the direction of each ramp cannot be "
                f"detected; {fix}")


def _single(t: TextTable, n: int, d: int) -> tuple[list[int], str]:
    name, verb = _NAMES[d], ("rise" if d > 0 else "fall")
    log.warning("%s: all %d ramps %s: fitted as single-direction (%s only) ramps, not as "
                "alternating SET/RESET pairs (pass --direction %s to say so)", t.path, n, verb,
                name, name)
    return [d] * n, f"{name} only (detected: all {n} ramps {verb})"


def _make_series(t: TextTable, m: Measurements, cols: list[tuple[int, np.ndarray]],
                 dirs: list[int], opts: ReadOptions, cycles: list[int]) -> list[Series]:
    out = []
    for (j, g), d, c in zip(cols, dirs, cycles, strict=True):
        s = Series("0", c, d, np.arange(1, len(g) + 1, dtype=float), g, t.column_name(j),
                   np.array([t.line(i) for i in range(len(g))]))
        out.append(_series_check(t, m, s, opts))
    return out


# ------------------------------------------------------------------------------ updown
def _claims_updown(t: TextTable) -> bool:
    if t.names and set(t.names) & {*LONG_COLUMNS, "trials", "errors"}:
        return False
    if t.width() != 2:
        return False
    data = t.numeric()
    if np.isnan(data).any():
        return False
    (up, up_sig, *_), (dn, dn_sig, *_) = trend(data[:, 0]), trend(data[:, 1])
    return not (up_sig and up < 0) and not (dn_sig and dn > 0)  # else: ramps, by their trends


def _read_updown(t: TextTable, m: Measurements, opts: ReadOptions) -> None:
    if t.width() != 2:
        raise t.err(f"updown format needs exactly 2 columns (up, down), found {t.width()}")
    if opts.direction == "alternating":
        raise t.err("--direction alternating is for the ramps format; an updown file is one up "
                    "then one down column")
    _set_unit(t, m)
    cols = _column_series(t, t.numeric())
    keep = {"auto": (1, -1), "up": (1,), "down": (-1,)}[opts.direction]
    series = []
    for (j, g), d in zip(cols, (1, -1), strict=True):
        if d not in keep:
            continue
        s = _make_series(t, m, [(j, g)], [d], opts, [0])[0]
        _contradiction(t, s, "the updown format is one up (SET) column then one down (RESET) "
                       "column; swap the columns, or read single-direction ramps with --format "
                       "ramps --direction up|down")
        series.append(s)
    m.series = series
    m.direction = "up and down" if len(keep) == 2 else f"{opts.direction} only (as requested)"


# ------------------------------------------------------------------------------ ramps
def _claims_ramps(t: TextTable) -> bool:
    if t.names and set(t.names) & {*LONG_COLUMNS, "trials", "errors", *_FOREIGN}:
        return False
    return t.width() >= 2


def _read_ramps(t: TextTable, m: Measurements, opts: ReadOptions) -> None:
    _set_unit(t, m)
    cols = _column_series(t, t.numeric())
    dirs, how = _ramp_directions(t, cols, opts.direction)
    if how.startswith("alternating"):
        cycles = [j // 2 for j in range(len(cols))]
    else:
        cycles = list(range(len(cols)))
    m.series = _make_series(t, m, cols, dirs, opts, cycles)
    for s in m.series:
        _contradiction(t, s, "check the column, or set the direction of every ramp with "
                       "--direction up|down|alternating (or split the file)")
    m.direction = how


# ------------------------------------------------------------------------------ long
def _claims_long(t: TextTable) -> bool:
    return bool(t.names) and bool(set(t.names) & set(LONG_COLUMNS))


def _long_frame(t: TextTable) -> pd.DataFrame:
    assert t.names is not None
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
    return pd.DataFrame({"device": [c[idx["device"]] for _, c in t.rows],
                         "cycle": num[:, 0].astype(int), "direction": direction,
                         "pulse": num[:, 1], "conductance": num[:, 2],
                         "line": [ln for ln, _ in t.rows]})


def _read_long(t: TextTable, m: Measurements, opts: ReadOptions) -> None:
    if not t.names:
        raise t.err("long format needs a header line: " + ", ".join(LONG_COLUMNS))
    if opts.direction == "alternating":
        raise t.err("--direction alternating is for the ramps format; the long format has a "
                    "direction column")
    frame = _long_frame(t)
    _set_unit(t, m, "conductance")
    if opts.direction in ("up", "down"):
        frame = frame[frame["direction"] == (1 if opts.direction == "up" else -1)]
        if frame.empty:
            raise t.err(f"no {opts.direction} series in the file (--direction {opts.direction})")
    out = []
    for (dev, cyc, d), grp in frame.groupby(["device", "cycle", "direction"], sort=True):
        grp = grp.sort_values("pulse")
        dup = grp["pulse"].duplicated()
        if dup.any():
            raise t.err(f"row {int(grp['line'][dup].iloc[0])}: pulse {grp['pulse'][dup].iloc[0]:g}"
                        f" repeated for device '{dev}', cycle {cyc}")
        where = f"device '{dev}', cycle {cyc}, {_NAMES[int(d)]}"
        s = Series(str(dev), int(cyc), int(d), grp["pulse"].to_numpy(float),
                   grp["conductance"].to_numpy(float), where, grp["line"].to_numpy(int))
        s = _series_check(t, m, s, opts)
        _contradiction(t, s, "check the direction column of these rows")
        out.append(s)
    m.series = out
    present = sorted({_NAMES[s.direction] for s in out})
    m.direction = " and ".join(present) if len(present) == 2 else f"{present[0]} only"
    if opts.direction in ("up", "down"):
        m.direction += " (as requested)"
    _flag_short_series(t, m)


def _flag_short_series(t: TextTable, m: Measurements) -> None:
    for d in (1, -1):
        lengths = [len(s.pulses) for s in m.series if s.direction == d]
        if len(lengths) < 2:
            continue
        med = float(np.median(lengths))
        for s in m.series:
            if s.direction == d and len(s.pulses) < 0.5 * med:
                m.warnings.append(f"{t.path}: {s.where} has {len(s.pulses)} pulses, the median "
                                  f"series {med:g}: a truncated series? check the file")


# ------------------------------------------------------------------------------ ber
def _claims_ber(t: TextTable) -> bool:
    return bool(t.names) and bool({"trials", "errors"} & set(t.names))


def _read_ber(t: TextTable, m: Measurements, opts: ReadOptions) -> None:
    from dse.devices.domains import check_knob

    if not t.names:
        raise t.err("ber format needs a header line: <operating-point columns>, trials, errors")
    missing = [c for c in ("trials", "errors") if c not in t.names]
    if missing:
        raise t.err(f"missing column(s) {', '.join(missing)} (found: {', '.join(t.names)}; the "
                    "ber format needs <operating-point columns>, trials, errors)")
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
        for j, name in enumerate(t.names):
            if j not in (jt, je):
                check_knob(name, data[i, j], f"row {t.line(i)}, {t.column_name(j)}", t.path)
    frame["trials"] = frame["trials"].astype(np.int64)
    frame["errors"] = frame["errors"].astype(np.int64)
    m.table = frame


# Header names of quantities no format reads (a resistance or current trace, a time axis...).
_FOREIGN = ("time", "t", "resistance", "r", "current", "i", "voltage", "v", "temperature",
            "temp", "power", "energy", "ohm", "read_current", "read_voltage")

for _spec in (
    FormatSpec("ber", "ber", "a header with the operating-point columns (the family's knobs, "
               "SI units: i_prog, t_prog, vdd, i_write, t_write), trials, errors",
               _claims_ber, _read_ber),
    FormatSpec("long", "pulses", "a header with device, cycle, direction (up/down), pulse, "
               "conductance, one row per read", _claims_long, _read_long),
    FormatSpec("updown", "pulses", "2 numeric columns, no gaps: the conductance after each up "
               "pulse, then after each down pulse", _claims_updown, _read_updown),
    FormatSpec("ramps", "pulses", "2 or more numeric columns, one ramp per column (empty or NaN "
               "cells after a ramp's end), alternating or single-direction",
               _claims_ramps, _read_ramps),
):
    register_format(_spec)
