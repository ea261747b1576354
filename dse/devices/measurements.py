"""Measurement files the calibrate stage reads: :func:`read_measurements` (one file, format
auto-detected) and :func:`pair_measurements` (a SET file and a RESET file fitted as one device).

The formats, the ``# unit:`` header and what each device family needs are documented for users
in ``docs/measurements.md``; in short (comma, tab, semicolon or whitespace separated; ``#`` lines
are comments, ``# key: value`` comment lines are header metadata such as ``# unit: uS``,
``# rows: 1000``, ``# synthetic: true``):

``updown``  two columns: the conductance after each of N up pulses, then after each of N down
            pulses (aihwkit's ``gong_et_al.csv``).
``long``    a header with ``device, cycle, direction, pulse, conductance``.
``ramps``   one column per ramp, empty/NaN cells after a ramp's end; alternating set/reset or
            single-direction (``direction``: auto-detected from the trends, or given).
``ber``     a header with the operating-point columns (SI units), ``trials``, ``errors``.

Every problem raises a one-line :class:`DseError` naming the file and the row (its line number)
or column, and what to do: a file that matches no format lists each format's columns; a short
last row (a truncated file), a ``# rows:`` header that disagrees with the data, a negative
conductance in a physical unit, a resistance unit, a series that falls while fitted as up (or
rises while fitted as down) are refused. A missing unit header or a missing final newline is
recorded in :attr:`Measurements.warnings` (copied into the card's ``fit.warnings``).

A new format is a :class:`~dse.devices.measurement_io.FormatSpec` registered with
:func:`~dse.devices.measurement_io.register_format` from its own module (imported below).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from dse.devices import measurement_formats  # noqa: F401  (registers the formats)
from dse.devices.measurement_formats import DIRECTION_CHOICES, LONG_COLUMNS
from dse.devices.measurement_io import (
    FORMAT_SPECS,
    Measurements,
    ReadOptions,
    Series,
    TextTable,
    formats_help,
    header_lines,
)
from dse.errors import DseError

__all__ = ["DIRECTION_CHOICES", "FORMATS", "LONG_COLUMNS", "MIN_PULSES", "Measurements",
           "Series", "header_lines", "pair_measurements", "parse_measurements"]

FORMATS = (*FORMAT_SPECS, "relaxation")  # relaxation: dse.devices.relaxation_format
MIN_PULSES = 10


def _detect(t: TextTable) -> str:
    for spec in FORMAT_SPECS.values():
        if spec.claims(t):
            return spec.name
    found = (f"header {', '.join(t.names)}" if t.names else
             f"{t.width()} numeric column{'s' if t.width() != 1 else ''}")
    raise t.err(f"no measurement format matches (found: {found}); expected {formats_help()} "
                "(docs/measurements.md)")


def parse_measurements(raw: bytes, source: str, fmt: str = "auto",
                       min_pulses: int = MIN_PULSES, direction: str = "auto") -> Measurements:
    """Parse the bytes of a measurement file named ``source`` (``fmt``: auto or one of
    :data:`FORMATS`; ``direction``: auto, up, down or alternating, for the pulse formats).
    Reading the file is the wiring's job (:func:`dse.pipeline.artifacts.read_measurements`)."""
    p = Path(source)
    if fmt not in ("auto", "relaxation", *FORMAT_SPECS):
        raise DseError(f"unknown format '{fmt}' (allowed: auto, {', '.join(FORMAT_SPECS)}, "
                       "relaxation)", source=str(p))
    if direction not in DIRECTION_CHOICES:
        raise DseError(f"unknown direction '{direction}' (allowed: "
                       f"{', '.join(DIRECTION_CHOICES)})", source=str(p))
    from dse.devices.relaxation_format import is_relaxation, parse_relaxation

    if fmt == "relaxation" or (fmt == "auto" and is_relaxation(raw)):  # reads over time
        return parse_relaxation(raw, str(p))
    t = TextTable(raw, str(p))
    if fmt == "auto":
        fmt = _detect(t)
    spec = FORMAT_SPECS[fmt]
    if spec.kind != "pulses" and direction != "auto":
        raise DseError(f"--direction {direction} is for pulse files, not the {fmt} format",
                       source=str(p))
    m = Measurements(path=str(p), format=fmt, header=dict(t.header), sha256=t.sha256,
                     kind=spec.kind)
    spec.read(t, m, ReadOptions(direction=direction, min_pulses=min_pulses))
    m.warnings[:0] = t.file_warnings()
    return m


def pair_measurements(up: Measurements, down: Measurements) -> Measurements:
    """A SET (up) file and a RESET (down) file, parsed with ``direction`` up and down, as one
    set of measurements of one device: ramp ``j`` of each file is cycle ``j`` (long files keep
    their devices and cycles)."""
    for m in (up, down):
        if m.kind != "pulses":
            raise DseError(f"a {m.format} table cannot be paired; pairing is for SET and RESET "
                           "pulse files", source=m.path)
    if up.unit != down.unit:
        raise DseError(f"unit '{up.unit}' of the SET file {up.path} differs from unit "
                       f"'{down.unit}' of the RESET file; convert one", source=down.path)
    header = {**down.header, **up.header}
    if up.synthetic or down.synthetic:
        header["synthetic"] = "true"
    digest = hashlib.sha256((up.sha256 + down.sha256).encode()).hexdigest()
    fmt_name = up.format if up.format == down.format else f"{up.format}+{down.format}"
    return Measurements(path=f"{up.path} + {down.path}", format=fmt_name, header=header,
                        series=up.series + down.series, sha256=digest, kind="pulses",
                        warnings=up.warnings + down.warnings,
                        direction=f"up from {up.path}, down from {down.path}")
