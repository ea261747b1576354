"""Calibration of ``weak_reset`` (Majumdar et al. 2021): per-device hinge fits, then the D2D
distributions by maximum likelihood."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from dse.devices.cards import validate_card
from dse.devices.fitting import (
    CalibrationResult,
    entry_from_spec,
    provenance,
    r_squared,
    smooth,
    smoothing_window,
)
from dse.devices.measurements import Measurements
from dse.devices.params import TruncDist, param_entry
from dse.devices.plausibility import Assessment, FitLimits, finish
from dse.devices.weak_reset import WeakReset, fit_weak_reset_devices
from dse.errors import DseError

_G_SCALE = {"S": 1.0, "mS": 1e3, "uS": 1e6, "µS": 1e6, "nS": 1e9}


def _dist_from_values(kind: str, v: np.ndarray) -> TruncDist | float:
    v = np.asarray(v, dtype=float)
    lo, hi = float(v.min()), float(v.max())
    if len(v) < 3 or hi <= lo:
        return float(np.median(v))
    if kind == "expon":
        loc = max(lo, 0.0) if lo >= 0 else lo
        scale = max(float(v.mean()) - loc, 1e-12 * max(abs(hi), 1e-30))
        return TruncDist("expon", (("loc", loc), ("scale", scale)), lo, hi)
    if kind == "lognorm":
        lv = np.log(np.clip(v, 1e-300, None))
        return TruncDist("lognorm", (("s", max(float(lv.std(ddof=1)), 1e-6)), ("loc", 0.0),
                                     ("scale", float(math.exp(lv.mean())))), lo, hi)
    return TruncDist("norm", (("mean", float(v.mean())), ("std", max(float(v.std(ddof=1)),
                                                                      1e-12 * abs(hi)))), lo, hi)


def _resistances(data: Measurements) -> tuple[list[Any], np.ndarray, np.ndarray, float]:
    """(RESET series, pulse counts, R per series and count (NaN where not read), the factor
    from the file's conductance unit to S)."""
    if data.kind != "pulses":
        raise DseError("weak_reset needs pulse measurements (long format: device, cycle, "
                       "direction, pulse, conductance)", source=data.path)
    scale = _G_SCALE.get(data.unit)
    if scale is None:
        raise DseError(f"weak_reset calibration needs conductances in S, mS, uS or nS (header "
                       f"'# unit: uS'); the file says unit '{data.unit}'", source=data.path)
    series = [s for s in data.series if s.direction < 0]
    if not series:
        raise DseError("no down (RESET) series: weak-RESET pulses lower the conductance",
                       source=data.path)
    t_all = np.unique(np.concatenate([s.pulses for s in series]))
    R = np.full((len(series), len(t_all)), np.nan)
    for i, s in enumerate(series):
        R[i, np.searchsorted(t_all, s.pulses)] = scale / s.conductance
    return series, t_all, R, scale


def _card(data: Measurements, cls: type[WeakReset], name: str, base: Mapping[str, Any] | None,
          fits: dict[str, np.ndarray], n_series: int) -> dict[str, Any]:
    """The card: D2D distributions by ML on the per-device fits, the rest from the base card
    (or the family's defaults)."""
    dists = {"m1": _dist_from_values("expon", fits["m1"]),
             "t_star": _dist_from_values("lognorm", fits["t_star"]),
             "c1": _dist_from_values("norm", fits["c1"]),
             "m2": _dist_from_values("expon", np.clip(fits["m2"], 0.0, None)),
             "R0": _dist_from_values("norm", fits["R0"])}
    prov = provenance(data)
    model_base = cls(base) if base is not None else None
    params: dict[str, Any] = {}
    for k, v in dists.items():
        params[k] = param_entry(v, cls.PARAMS[k].unit or "1",
                                source=f"{prov}; per-device hinge fits of ln(R/R0) "
                                f"({n_series} series), distribution by ML on the "
                                "per-device values, truncated to their range")
    for k, spec in cls.PARAMS.items():
        if k in params:
            continue
        if base is not None and k in (base.get("params") or {}):
            params[k] = dict(base["params"][k])
        else:
            v = model_base.values[k] if model_base is not None else spec.default
            params[k] = entry_from_spec(spec, v, spec.unit or "1")
    card: dict[str, Any] = {
        "name": name, "family": cls.family,
        "description": f"weak_reset calibrated from {data.path} ({n_series} RESET series)",
        "source": prov, "synthetic": data.synthetic, "params": params,
        "imperfections": {k: True for k in cls.IMPERFECTIONS},
    }
    validate_card(card, source=data.path)
    return card


def _responses(model: WeakReset, t_all: np.ndarray, fits: dict[str, np.ndarray], scale: float,
               n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fitted mean, simulated) conductance of each device at every read point: the simulation
    runs the card's model from each device's fitted parameters (vectorised over devices, a loop
    over read points)."""
    t = torch.as_tensor(t_all, dtype=torch.float64)
    w = model.mean_log_ratio(t[None, :], torch.as_tensor(fits["m1"])[:, None],
                             torch.as_tensor(fits["t_star"])[:, None],
                             torch.as_tensor(fits["c1"])[:, None],
                             torch.as_tensor(fits["m2"])[:, None])
    g_fit = (scale / (torch.as_tensor(fits["R0"])[:, None] * torch.exp(w))).numpy()
    gen = torch.Generator().manual_seed(seed)
    st = model.sample_devices((n,), gen, dtype=torch.float64)
    for k in ("m1", "t_star", "c1", "m2"):
        st[k] = torch.as_tensor(fits[k])
    st["r0"] = torch.as_tensor(fits["R0"])
    sim = np.full((n, len(t_all)), np.nan)
    sim[:, 0] = (scale / model.resistance(st)).numpy() if t_all[0] == 0 else np.nan
    for j in range(len(t_all)):
        if j == 0 and t_all[0] == 0:
            continue
        step = t_all[j] - (t_all[j - 1] if j else 0.0)
        model.apply_pulses(st, torch.full((n,), step), gen)
        sim[:, j] = (scale / model.resistance(st)).numpy()
    return g_fit, sim


def calibrate_weak_reset(data: Measurements, cls: type[WeakReset], name: str,
                         base: Mapping[str, Any] | None, seed: int,
                         limits: FitLimits | None = None) -> CalibrationResult:
    """Per-device hinge fits of ln(R/R0) of the RESET series, then the D2D distributions."""
    series, t_all, R, scale = _resistances(data)
    fits = fit_weak_reset_devices(t_all, R)
    card = _card(data, cls, name, base, fits, len(series))
    g_fit, sim = _responses(cls(card), t_all, fits, scale, len(series), seed)
    ok = np.isfinite(R)
    y = (scale / R)[ok]
    fitted = g_fit[ok]
    idx = np.nonzero(ok)[0]
    window = smoothing_window(int(ok.sum(axis=1).mean()))
    sm = np.concatenate([smooth((scale / R)[i][ok[i]], window) for i in range(len(series))])
    lnres = (np.log(R) - np.log(scale / g_fit))[ok]
    card["fit"] = {
        "method": "per-device least-squares hinge fits of ln(R/R0); ML distributions",
        "r2": r_squared(sm, fitted, idx), "r2_raw": r_squared(y, fitted, idx),
        "smoothing_window": window,
        "residual_sigma": float(np.std(y - fitted)), "residual_sigma_lnR": float(np.std(lnres)),
        "n_points": int(ok.sum()), "n_series": len(series), "n_devices": len(series),
        "median_m1": float(np.median(fits["m1"])), "median_t_star":
        float(np.median(fits["t_star"])), "source_file": data.path, "sha256": data.sha256,
        "format": data.format, "synthetic": data.synthetic,
    }
    a = Assessment(limits or FitLimits(), data.path, cls.family)
    for w in data.warnings:
        a.flag(w)
    a.r2(float(card["fit"]["r2"]))
    finish(a, card["fit"])
    curves = pd.DataFrame({"series": [series[i].label for i in idx],
                           "device": [series[i].device for i in idx], "direction": "down",
                           "pulse": np.broadcast_to(t_all, R.shape)[ok], "measured": y,
                           "smoothed": sm, "fitted": fitted, "simulated": sim[ok]})
    return CalibrationResult(card=card, family=cls.family, kind="pulses", curves=curves,
                             extra={"per_device": fits})
