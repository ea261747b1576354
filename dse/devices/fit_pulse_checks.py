"""Pieces of the pulse-family calibration (:mod:`dse.devices.fit_pulses`) that keep a fit
inside physics: conductance bounds searched only near the data, the unmeasured direction of a
single-direction file (from a base card, else mirrored, and said so), and the plausibility
checks of the fitted card (:mod:`dse.devices.plausibility`)."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from dse.devices.analog import FitParam, PulseDevice
from dse.devices.measurements import Measurements
from dse.devices.plausibility import Assessment, FitLimits, assess_bounds


def bounded_params(params: list[FitParam], summary: Mapping[str, Any], limits: FitLimits,
                   physical: bool) -> list[FitParam]:
    """The family's fit parameters with g_min/g_max searched within ``bound_margin`` × the
    measured range of the data (and g_min >= 0 in a physical unit): a bound the data do not
    reach cannot run off to 36 × the largest measurement."""
    lo, hi, rng = summary["min"], summary["max"], summary["range"]
    m = limits.bound_margin
    out = []
    for p in params:
        low, high = p.low, p.high
        if p.name == "g_max":
            high = min(high, hi + m * rng)
            low = min(low, high - 1e-6 * rng)
        elif p.name == "g_min":
            low = max(low, lo - m * rng, 0.0 if physical else -math.inf)
            high = max(high, low + 1e-6 * rng)
        out.append(dataclasses.replace(p, low=low, high=high, init=min(max(p.init, low), high)))
    return out


def at_limits(free: list[FitParam], theta: np.ndarray) -> dict[str, str]:
    """Free parameters whose fitted value sits on a search limit ({name: "low"|"high"})."""
    out = {}
    for p, v in zip(free, theta, strict=False):
        span = p.high - p.low
        if v >= p.high - (1e-6 * span + 1e-4 * abs(p.high)):
            out[p.name] = "high"
        elif v <= p.low + (1e-6 * span + 1e-4 * abs(p.low)):
            out[p.name] = "low"
    return out


def display_name(pname: str) -> str:
    """'up_3' -> 'up[3]' (an entry of a step table), else the name."""
    m = re.fullmatch(r"(up|down)_(\d+)", pname)
    return f"{m.group(1)}[{m.group(2)}]" if m else pname


def _scales(theta: Mapping[str, float]) -> dict[str, float]:
    """Reference size of each fit parameter for its standard error: its own magnitude, or for a
    step-table entry the table's median (a step that vanishes at saturation has no relative
    error worth a flag)."""
    out = {}
    for k, v in theta.items():
        m = re.fullmatch(r"(up|down)_(\d+)", k)
        if m:
            table = [abs(x) for kk, x in theta.items() if kk.startswith(m.group(1) + "_")]
            out[display_name(k)] = max(abs(v), float(np.median(table)))
        else:
            out[k] = abs(v)
    return out


def card_key(cls: type[PulseDevice], pname: str) -> str:
    """The card parameter a fit parameter belongs to ('down_3' -> 'down')."""
    return pname if pname in cls.PARAMS else re.sub(r"_\d+$", "", pname)


def split_by_direction(params: list[FitParam], present: set[str],
                       ) -> tuple[list[FitParam], list[FitParam]]:
    """(free, unmeasured): parameters of a direction the file does not hold are not fitted; with
    one direction only, the up/down asymmetry is not identifiable either."""
    free, missing = [], []
    for p in params:
        unmeasured = (p.direction is not None and p.direction not in present) or \
            (len(present) == 1 and p.name == "up_down")
        (missing if unmeasured else free).append(p)
    return free, missing


def mirrored(missing: list[FitParam], fitted: Mapping[str, float], summary: Mapping[str, Any],
             ) -> dict[str, float]:
    """Values of the unmeasured direction's parameters from the measured one, as for a symmetric
    device: alpha_down = alpha_up, A_down = A_up, the step table reversed over the conductance
    range, the bound at the measured range's end, no up/down asymmetry."""
    out: dict[str, float] = {}
    n_nodes = 1 + max((int(m.group(2)) for k in fitted
                       if (m := re.fullmatch(r"(up|down)_(\d+)", k))), default=0)
    for p in missing:
        if p.name in ("g_min", "g_max"):
            out[p.name] = float(summary[p.name])
        elif p.name == "up_down":
            out[p.name] = 0.0
        elif m := re.fullmatch(r"(up|down)_(\d+)", p.name):
            other = "down" if m.group(1) == "up" else "up"
            out[p.name] = float(fitted[f"{other}_{n_nodes - 1 - int(m.group(2))}"])
        else:
            other = (p.name.replace("_down", "_up") if p.name.endswith("_down")
                     else p.name.replace("_up", "_down"))
            out[p.name] = float(fitted.get(other, p.init))
    return out


def from_base(values: dict[str, Any], keys: set[str], base: PulseDevice) -> dict[str, Any]:
    """Unmeasured parameters taken from a base card (tables interpolated onto the fit's nodes)."""
    out = dict(values)
    for k in keys:
        v = base.values.get(k)
        if v is None:
            continue
        if isinstance(v, np.ndarray) and "nodes" in values:
            out[k] = np.interp(values["nodes"], base.values["nodes"], v)
        else:
            out[k] = v
    return out


def missing_entry_note(direction: str, data: Measurements, base_name: str | None,
                       base_source: str | None) -> dict[str, str]:
    if base_name is not None:
        return {"source": f"base card {base_name} ({base_source}); the {direction} direction is "
                          f"not measured in {data.path}"}
    return {"assumption": f"the {direction} direction is not measured in {data.path}: mirrored "
                          "from the fitted opposite direction (a symmetric device); pair a file "
                          "of that direction or give a base card"}


def _typical_extremes(data: Measurements) -> tuple[float, float]:
    """Median over the devices of each device's smoothed minimum and maximum conductance."""
    from dse.devices.fitting import smooth, smoothing_window

    lows, highs = [], []
    for dev in sorted({s.device for s in data.series}):
        sm = np.concatenate([smooth(s.conductance, smoothing_window(len(s.conductance)))
                             for s in data.series if s.device == dev])
        lows.append(float(sm.min()))
        highs.append(float(sm.max()))
    return float(np.median(lows)), float(np.median(highs))


def _mean_steps(model: PulseDevice, x: float) -> tuple[float, float]:
    st = model.nominal_state(torch.float64)
    xs = torch.tensor([x], dtype=torch.float64)
    one = torch.ones(1, dtype=torch.float64)
    up = float((model._mean_step(xs, one, st) - xs)[0])
    down = float((model._mean_step(xs, -one, st) - xs)[0])
    return up, down


def assess_pulse_fit(a: Assessment, model: PulseDevice, data: Measurements,
                     summary: Mapping[str, Any], fit: Mapping[str, Any],
                     theta: Mapping[str, float], stderr: Mapping[str, float],
                     limits_hit: Mapping[str, str], limit_values: Mapping[str, float],
                     present: set[str], missing: list[FitParam]) -> None:
    """Refuse or flag a fitted pulse card (see :mod:`dse.devices.plausibility`)."""
    for w in data.warnings:
        a.flag(w)
    a.r2(float(fit["r2"]))
    unit = data.unit
    values = {k: model.values[k] for k in ("g_min", "g_max", "nodes") if k in model.values}
    lo, hi = _typical_extremes(data)
    assess_bounds(a, values, lo, hi, data.physical, unit,
                  {k: limit_values[k] for k in limits_hit if k in ("g_min", "g_max")})
    # a measured direction moves the conductance its way, at the middle of the measured range
    probe = model.replace()
    probe.imperfections.update({k: False for k in probe.imperfections if k != "nonlinearity"})
    mid = 0.5 * (summary["min"] + summary["max"])
    up, down = _mean_steps(probe, mid)
    floor = 1e-9 * summary["range"]
    for d, step, sign in (("up", up, 1), ("down", down, -1)):
        if d in present and not sign * step > floor:
            a.refuse(f"the fitted mean {d} step at G = {mid:.4g} {unit} is {step:.3g} (an {d} "
                     f"pulse must {'raise' if sign > 0 else 'lower'} the conductance): the "
                     f"{d} series do not move that way; check the pulse directions "
                     "(--direction, docs/measurements.md)")
    signal = float(fit["fitted_range"])  # the span of the fitted mean trajectories
    a.noise("read_sigma", float(fit["read_sigma"]), signal, unit)
    phi, sw = float(fit["c2c_memory"]), float(fit["c2c_sigma"])
    n_med = float(np.median([len(s.pulses) for s in data.series]))
    stationary = sw / math.sqrt(1 - phi * phi) if phi < 1 - 1e-9 else sw * math.sqrt(n_med)
    a.noise("c2c_sigma (accumulated write noise)", min(stationary, sw * math.sqrt(n_med)),
            signal, unit)
    a.stderrs({display_name(k): v for k, v in theta.items()},
              {display_name(k): v for k, v in stderr.items()}, _scales(theta))
    for k in sorted(limits_hit):
        if k in ("g_min", "g_max") or re.fullmatch(r"(up|down)_\d+", k):
            continue  # bounds: flagged above; a step-table entry may vanish (saturation)
        a.flag(f"params.{k} = {theta[k]:.4g} sits on its {limits_hit[k]} search limit (not "
               "determined by the data there)")
    if missing:
        unmeasured = "down" if present == {"up"} else "up"
        names = sorted({card_key(type(model), p.name) for p in missing})
        a.flag(f"the {unmeasured} direction is not measured (pulse directions: {data.direction}): "
               f"{', '.join('params.' + n for n in names)} are not fitted (see their "
               "source/assumption); pair a file of that direction (reset_measurements:) or "
               "give a base card")
