"""Physical plausibility of a fitted card: refuse the impossible, flag the doubtful.

Every fit of the calibrate stage ends here. A check either **refuses** the card (a
:class:`DseError` naming the file, the parameter and the fix: nothing is written) or **flags**
it (a line in the card's ``fit.warnings``, shown in the report and the fit figure). The limits
are :class:`FitLimits`, set per device in the config (``devices: NAME: fit: {...}``) or with
``dse calibrate --fit KEY=VALUE``; ``strict: true`` refuses every flag.

Refused: R² below ``min_r2``; a negative conductance parameter in a physical unit; bounds in the
wrong order; a fitted mean step of the wrong sign or zero in a measured direction; read or write
noise above ``max_noise_ratio`` × the measured conductance range (noise above the signal).
Flagged: R² below ``warn_r2``; a bound at its fit limit (``bound_margin`` × the range beyond the
data: not determined by the data); a parameter whose standard error exceeds ``max_rel_stderr``
× its value; a direction that was not measured; the reader's warnings (no unit header, a file
without its final newline, a short series).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from dse.errors import DseError


@dataclass(frozen=True)
class FitLimits:
    """Quality and plausibility thresholds of a calibration (all assumptions of dse, chosen so
    that the shipped Gong et al. 2018 fits pass and the issue-18 failure cases do not)."""

    min_r2: float = 0.8           # refuse below: the family does not describe the data
    warn_r2: float = 0.95         # flag below
    bound_margin: float = 0.5     # g_min/g_max searched within [min − m·range, max + m·range]
    max_noise_ratio: float = 0.5  # refuse a noise σ above this fraction of the measured range
    max_rel_stderr: float = 1.0   # flag a parameter whose standard error exceeds this × |value|
    strict: bool = False          # refuse instead of flagging

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None, source: str | None = None,
                     where: str = "fit") -> FitLimits:
        """Limits from a ``fit:`` mapping (unknown keys and bad values raise DseError)."""
        if not raw:
            return cls()
        if not isinstance(raw, Mapping):
            raise DseError(f"{where}: expected a mapping of fit limits", source=source)
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for k, v in raw.items():
            if k not in known:
                raise DseError(f"{where}.{k}: unknown fit limit (allowed: "
                               f"{', '.join(known)})", source=source)
            if k == "strict":
                if isinstance(v, str) and v.lower() in ("true", "false"):
                    v = v.lower() == "true"
                if not isinstance(v, bool):
                    raise DseError(f"{where}.strict: expected true or false", source=source)
            else:
                try:
                    v = float(v)
                except (TypeError, ValueError):
                    raise DseError(f"{where}.{k}: '{v}' is not a number", source=source) from None
                if not math.isfinite(v) or v < 0 or (k.endswith("r2") and v > 1):
                    raise DseError(f"{where}.{k}: {v:g} is out of range (>= 0"
                                   f"{', <= 1' if k.endswith('r2') else ''})", source=source)
            values[k] = v
        limits = cls(**values)
        if limits.warn_r2 < limits.min_r2:
            limits = cls(**{**values, "warn_r2": limits.min_r2})
        return limits

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Assessment:
    """Collects refusals (raised at once) and flags of one fitted card."""

    def __init__(self, limits: FitLimits, source: str, family: str) -> None:
        self.limits, self.source, self.family = limits, source, family
        self.flags: list[str] = []

    def refuse(self, msg: str) -> None:
        raise DseError(f"implausible {self.family} fit: {msg}", source=self.source)

    def flag(self, msg: str) -> None:
        if self.limits.strict:
            self.refuse(f"{msg} (refused: fit.strict is true)")
        self.flags.append(msg)

    def r2(self, r2: float, what: str = "R²") -> None:
        lim = self.limits
        if not math.isfinite(r2):
            self.flag(f"{what} is undefined (too few informative points to judge the fit)")
        elif r2 < lim.min_r2:
            self.refuse(f"fit.r2 = {r2:.3f} is below fit.min_r2 = {lim.min_r2:g}: the "
                        f"{self.family} model does not describe the data; check the file's "
                        "format and pulse directions (docs/measurements.md), try another "
                        "family, or lower fit.min_r2")
        elif r2 < lim.warn_r2:
            self.flag(f"fit.r2 = {r2:.3f} is below fit.warn_r2 = {lim.warn_r2:g}: a rough fit; "
                      "compare the fit figure with the data")

    def stderrs(self, values: Mapping[str, float], stderr: Mapping[str, float],
                scales: Mapping[str, float] | None = None) -> None:
        """Flag a parameter whose standard error exceeds ``max_rel_stderr`` × its scale (its
        magnitude unless ``scales`` says otherwise)."""
        lim = self.limits.max_rel_stderr
        for k, se in stderr.items():
            v = values.get(k)
            if v is None or not math.isfinite(se):
                continue
            ref = (scales or {}).get(k, abs(v))
            if abs(se) > lim * ref and ref > 0:
                self.flag(f"params.{k}: standard error {se:.3g} is {abs(se / v):.1f}x its value "
                          f"{v:.4g}: not determined by the data (measure a wider range, or fix "
                          "it with a base card)")

    def noise(self, name: str, sigma: float, signal: float, unit: str) -> None:
        lim = self.limits.max_noise_ratio
        if signal > 0 and sigma > lim * signal:
            self.refuse(f"params.{name} = {sigma:.4g}{_u(unit)} is {sigma / signal:.2f}x the "
                        f"span {signal:.4g} of the fitted trajectories (noise above the signal; "
                        f"fit.max_noise_ratio = {lim:g}): check the unit and the columns, or "
                        "measure more pulses per ramp")


def _u(unit: str) -> str:
    return "" if unit in ("1", "") else f" {unit}"


def assess_bounds(a: Assessment, values: Mapping[str, Any], data_min: float, data_max: float,
                  physical: bool, unit: str, at_limit: Mapping[str, float]) -> None:
    """Conductance bounds: non-negative in a physical unit, ordered, inside or near the data
    (``data_min``/``data_max``: the typical device's smoothed extremes)."""
    rng = max(data_max - data_min, 1e-300)
    unit_text = _u(unit)
    for k in ("g_min", "g_max"):
        v = values.get(k)
        if v is None:
            continue
        if physical and float(v) < 0:
            a.refuse(f"params.{k} = {float(v):.4g}{unit_text} is a negative conductance; a "
                     "physical bound is >= 0 (check the unit header and the data's baseline)")
    nodes = values.get("nodes")
    if physical and nodes is not None and min(float(x) for x in nodes) < 0:
        a.refuse(f"params.nodes: a negative conductance node in {unit}; check the data")
    lo, hi = values.get("g_min"), values.get("g_max")
    if lo is not None and hi is not None and not float(lo) < float(hi):
        a.refuse(f"params.g_min = {float(lo):.4g} is not below params.g_max = {float(hi):.4g}")
    m = a.limits.bound_margin
    for k, limit in at_limit.items():
        what = "largest" if k == "g_max" else "smallest"
        a.flag(f"params.{k} = {float(values[k]):.4g}{unit_text}: the fit pushed it to its search "
               f"limit {limit:.4g} ({what} measurement {'+' if k == 'g_max' else '−'} {m:g} × "
               "range): the ramps do not saturate, so the bound is not determined by the data; "
               "measure until the conductance saturates, or use exp_step or piecewise")
    if hi is not None and float(hi) < data_max - 0.1 * rng:
        a.flag(f"params.g_max = {float(hi):.4g}{unit_text} is below the largest smoothed "
               f"measurement {data_max:.4g} of a typical device")
    if lo is not None and float(lo) > data_min + 0.1 * rng:
        a.flag(f"params.g_min = {float(lo):.4g}{unit_text} is above the smallest smoothed "
               f"measurement {data_min:.4g} of a typical device")


def finish(a: Assessment, fit: dict[str, Any]) -> None:
    """Record the flags and the limits in the card's ``fit`` block."""
    fit["warnings"] = list(a.flags)
    fit["limits"] = a.limits.as_dict()
