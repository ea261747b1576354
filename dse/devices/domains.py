"""Physical domains of the operating-point knobs, and the calibrated range a card may declare.

Every knob of a binary-cell model (:mod:`dse.devices.binary`) has a physical domain in SI units:
a current, a pulse width or a supply is positive and below a ceiling no single memory cell of
the modelled kind reaches, so a value in the wrong unit (``200`` meaning 200 µA) or with the wrong
sign is refused before it becomes a NaN bit error rate or a negative energy. A card may also say
over which range its numbers were measured (``operating_range: {knob: {low, high, source}}``;
``dse calibrate`` writes the range of the BER table it fitted); a point outside it is refused too,
because the model there is an extrapolation nobody measured.

Used by the models (every ``ber``/``write_energy`` call), the card validation (a card's
``operating_points``), the ``ber`` measurement reader (each row) and chip cards (their nominal
operating point); :func:`knob_domain` lets a search check its parameter ranges up front.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dse.errors import DseError


@dataclass(frozen=True)
class KnobDomain:
    """The physical domain (low, high] (or [low, high]) of one knob, in SI units, with why."""

    unit: str
    low: float
    high: float  # inclusive
    what: str
    note: str
    low_inclusive: bool = False

    def text(self) -> str:
        return f"{'[' if self.low_inclusive else '('}{self.low:g}, {self.high:g}] {self.unit}"

    def contains(self, v: np.ndarray) -> np.ndarray:
        above = v >= self.low if self.low_inclusive else v > self.low
        return above & (v <= self.high)


_CURRENT = ("assumption: a programming/write current of one nanoscale RRAM or MTJ cell is "
            "microamperes to about a milliampere; 10 mA bounds every published cell and catches "
            "a value given in uA or mA instead of A")
_PULSE = ("assumption: programming/write pulses of RRAM and STT-MRAM are nanoseconds to "
          "microseconds; 1 ms bounds them and catches a value given in ns instead of s")
_SUPPLY = ("assumption: CMOS supplies from 28 nm to 130 nm (core 0.6-1.2 V, I/O up to 3.3 V) "
           "stay below 5 V; catches a value given in mV instead of V")

KNOB_DOMAINS: dict[str, KnobDomain] = {
    "i_prog": KnobDomain("A", 0.0, 1e-2, "RRAM programming (compliance) current", _CURRENT),
    "t_prog": KnobDomain("s", 0.0, 1e-3, "RRAM programming pulse width", _PULSE),
    "i_write": KnobDomain("A", 0.0, 1e-2, "MRAM write current", _CURRENT),
    "t_write": KnobDomain("s", 0.0, 1e-3, "MRAM write pulse width", _PULSE),
    "vdd": KnobDomain("V", 0.0, 5.0, "supply voltage", _SUPPLY, low_inclusive=True),
    "t_sense": KnobDomain("s", 0.0, 1e-6, "sense-amplifier window",
                          "assumption: a PCSA decides in picoseconds to nanoseconds; 1 us bounds "
                          "any read cycle of a memory array and catches a value given in ns"),
    "temperature": KnobDomain("K", 0.0, 500.0, "operating temperature",
                              "assumption: chips operate between cryogenic and ~125 C (398 K); "
                              "500 K catches a value given in degrees C plus 273 twice"),
    "time_s": KnobDomain("s", 0.0, 1e10, "time after programming",
                         "assumption: 1e10 s (300 years) bounds any retention question and "
                         "catches a value given in ns or ms", low_inclusive=True),
    "dvth": KnobDomain("V", -0.5, 0.5, "threshold-voltage shift (process corner)",
                       "assumption: corners shift V_th by tens of mV; 0.5 V exceeds any corner "
                       "and catches a value given in mV", low_inclusive=True),
}

RANGE_KEYS = ("low", "high", "unit", "source", "assumption")


def knob_domain(knob: str) -> KnobDomain | None:
    """The physical domain of ``knob`` (None for a knob dse does not know)."""
    return KNOB_DOMAINS.get(knob)


def _first_bad(values: np.ndarray, ok: np.ndarray) -> float:
    return float(values[~ok].flat[0])


def check_knob(knob: str, values: Any, where: str, source: str | None = None) -> None:
    """Refuse values of ``knob`` outside its physical domain (DseError naming ``where``)."""
    dom = KNOB_DOMAINS.get(knob)
    arr = np.asarray(values, dtype=float)
    finite = np.isfinite(arr)
    if not finite.all():
        raise DseError(f"{where}: {knob} = {_first_bad(arr, finite):g} is not a finite number",
                       source=source)
    if dom is None:
        return
    ok = dom.contains(arr)
    if not ok.all():
        v = _first_bad(arr, ok)
        hint = ("must not be negative" if v < dom.low else "must be positive" if v <= dom.low else
                f"exceeds {dom.high:g} {dom.unit}: give it in SI units ({dom.unit})")
        raise DseError(f"{where}: {knob} = {v:g} {dom.unit} is outside the physical domain "
                       f"{dom.text()} of the {dom.what} ({hint})", source=source)


def parse_operating_range(card: Mapping[str, Any], knobs: Sequence[str],
                          source: str | None = None) -> dict[str, tuple[float, float]]:
    """The card's ``operating_range`` as ``{knob: (low, high)}`` (checked; {} when absent)."""
    raw = card.get("operating_range")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise DseError("operating_range: expected a mapping knob -> {low, high, unit, source}",
                       source=source)
    out: dict[str, tuple[float, float]] = {}
    for knob, entry in raw.items():
        where = f"operating_range.{knob}"
        if knob not in knobs:
            raise DseError(f"{where}: not a knob of this family (knobs: {', '.join(knobs)})",
                           source=source)
        if not isinstance(entry, Mapping) or set(entry) - set(RANGE_KEYS):
            raise DseError(f"{where}: write {{low: ..., high: ..., unit: ..., source: ...}}",
                           source=source)
        lo, hi = entry.get("low"), entry.get("high")
        for k, v in (("low", lo), ("high", hi)):
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise DseError(f"{where}.{k}: a finite number is required", source=source)
        if not any(isinstance(entry.get(k), str) and entry[k].strip()
                   for k in ("source", "assumption")):
            raise DseError(f"{where}: give 'source:' (the measurement it was calibrated on) or "
                           "'assumption:'", source=source)
        dom = KNOB_DOMAINS.get(knob)
        if dom is not None and entry.get("unit", dom.unit) != dom.unit:
            raise DseError(f"{where}.unit: '{entry.get('unit')}' but {knob} is in {dom.unit}",
                           source=source)
        assert isinstance(lo, int | float) and isinstance(hi, int | float)
        if not lo <= hi:
            raise DseError(f"{where}: low ({lo:g}) must not exceed high ({hi:g})", source=source)
        check_knob(knob, [lo, hi], where, source)
        out[str(knob)] = (float(lo), float(hi))
    return out


def check_operating_point(model_name: str, values: Mapping[str, np.ndarray],
                          calibrated: Mapping[str, tuple[float, float]],
                          source: str | None = None) -> None:
    """Refuse an operating point outside the knobs' physical domains or the card's calibrated
    range (one line naming the card and the knob)."""
    for knob, v in values.items():
        check_knob(knob, v, f"{model_name}: operating point", source)
        if knob in calibrated:
            lo, hi = calibrated[knob]
            arr = np.asarray(v, dtype=float)
            tol = 1e-9 * max(abs(lo), abs(hi))
            ok = (arr >= lo - tol) & (arr <= hi + tol)
            if not ok.all():
                unit = KNOB_DOMAINS[knob].unit if knob in KNOB_DOMAINS else ""
                raise DseError(f"{model_name}: operating point {knob} = {_first_bad(arr, ok):g} "
                               f"{unit} is outside the card's calibrated range [{lo:g}, {hi:g}] "
                               f"(operating_range.{knob}); choose a point inside it or widen "
                               "the range with a source", source=source)


def ensure_finite(model_name: str, what: str, out: Any, op: Mapping[str, np.ndarray],
                  source: str | None = None) -> np.ndarray:
    """``out`` as an array, or a DseError naming the operating point where it is not finite."""
    arr = np.asarray(out, dtype=float)
    bad = ~np.isfinite(arr)
    if bad.any():
        i = np.unravel_index(int(np.argmax(bad)), arr.shape) if arr.ndim else ()
        point = ", ".join(f"{k} = {float(np.asarray(v)[i] if np.ndim(v) else v):g}"
                          for k, v in op.items())
        raise DseError(f"{model_name}: {what} is {float(arr[i]) if arr.ndim else float(arr)} "
                       f"at {point or 'the operating point'} (the card's parameters give no "
                       "finite value there; check them)", source=source)
    return arr
