"""Calibration of the pulse families (``soft_bounds``, ``exp_step``, ``piecewise``): mean
trajectory, device-to-device spread, noise and fit quality (steps 1–4 of the
:mod:`dse.devices.calibrate` docstring)."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import optimize, sparse

from dse.devices.analog import FitParam, PulseDevice
from dse.devices.cards import validate_card
from dse.devices.fit_pulse_card import card_params, d2d_terms, unmeasured_direction
from dse.devices.fit_pulse_checks import (
    assess_pulse_fit,
    at_limits,
    bounded_params,
    mirrored,
    split_by_direction,
)
from dse.devices.fitting import (
    CalibrationResult,
    fit_noise,
    long_run_inflation,
    plain,
    provenance,
    r_squared,
    safe_inv,
    smooth,
    smoothing_window,
    unit_of,
)
from dse.devices.measurements import Measurements, Series
from dse.devices.params import param_entry
from dse.devices.plausibility import Assessment, FitLimits, finish
from dse.errors import DseError

log = logging.getLogger(__name__)


@dataclass
class _Stack:
    """All series concatenated into flat arrays (one torch call evaluates every trajectory)."""

    series: list[Series]
    idx: np.ndarray      # series index of every point
    rel: np.ndarray      # pulses since the series' first point
    dirs: np.ndarray     # direction of every point
    y: np.ndarray        # measured conductance
    dev: np.ndarray      # device index of every point
    devices: list[str]

    @classmethod
    def build(cls, series: list[Series]) -> _Stack:
        devices = sorted({s.device for s in series})
        dmap = {d: i for i, d in enumerate(devices)}
        idx = np.concatenate([np.full(len(s.pulses), i) for i, s in enumerate(series)])
        rel = np.concatenate([s.pulses - s.pulses[0] for s in series])
        dirs = np.concatenate([np.full(len(s.pulses), s.direction) for s in series])
        y = np.concatenate([s.conductance for s in series])
        dev = np.concatenate([np.full(len(s.pulses), dmap[s.device]) for s in series])
        return cls(series, idx, rel, dirs, y, dev, devices)


def _summary(series: list[Series], physical: bool = False) -> dict[str, Any]:
    g = np.concatenate([s.conductance for s in series])
    sm = np.concatenate([smooth(s.conductance, smoothing_window(len(s.conductance)))
                         for s in series])
    lo, hi = float(np.min(sm)), float(np.max(sm))
    rng = max(hi - lo, float(np.ptp(g)) * 0.5, 1e-300)
    g_min = max(lo - 0.02 * rng, 0.0) if physical else lo - 0.02 * rng
    out: dict[str, Any] = {"min": lo, "max": hi, "range": rng,
                           "g_min": g_min, "g_max": hi + 0.02 * rng}
    for name, d in (("up", 1), ("down", -1)):
        slopes = []
        for s in series:
            if s.direction != d:
                continue
            k = max(1, len(s.conductance) // 10)
            span = max(s.pulses[-1] - s.pulses[0], 1.0)
            slopes.append(abs(s.conductance[-k:].mean() - s.conductance[:k].mean()) / span)
        if slopes:
            out[f"slope_{name}"] = max(float(np.median(slopes)), 1e-6 * rng)
    return out


def _fit_card(cls: type[PulseDevice], name: str, values: Mapping[str, Any],
              unit: str) -> dict[str, Any]:
    params = {}
    for k, v in values.items():
        if k in cls.PARAMS:
            params[k] = param_entry(plain(v), unit_of(cls, k, unit), assumption="fit start")
    return {"name": name, "family": cls.family, "source": "calibration in progress",
            "params": params}


def _state(model: PulseDevice, up: np.ndarray | float = 1.0, down: np.ndarray | float = 1.0,
           lo: np.ndarray | float | None = None,
           hi: np.ndarray | float | None = None) -> dict[str, torch.Tensor]:
    def t(v: Any) -> torch.Tensor:
        return torch.as_tensor(np.asarray(v, dtype=float), dtype=torch.float64)

    return {"up": t(up), "down": t(down), "lo": t(model.g_min if lo is None else lo),
            "hi": t(model.g_max if hi is None else hi)}


def _trajectories(model: PulseDevice, st: _Stack, x0: np.ndarray,
                  state: Mapping[str, torch.Tensor] | None = None) -> np.ndarray:
    s = state if state is not None else _state(model)
    x = torch.as_tensor(x0[st.idx], dtype=torch.float64)
    n = torch.as_tensor(st.dirs * st.rel, dtype=torch.float64)
    out = torch.clamp(model._mean_step(x, n, s), s["lo"], s["hi"])
    return out.numpy()


def _x0_init(series: list[Series]) -> np.ndarray:
    return np.array([float(np.mean(s.conductance[: max(3, len(s.conductance) // 50)]))
                     for s in series])


def _population_fit(model: PulseDevice, st: _Stack, free: list[FitParam],
                    summary: Mapping[str, Any], starts: list[dict[str, float]],
                    fixed: Mapping[str, float]) -> dict[str, Any]:
    cls = type(model)
    ns, k = len(st.series), len(free)
    rng = summary["range"]
    x0 = _x0_init(st.series)
    lo_b = np.concatenate([[p.low for p in free], x0 - 2 * rng])
    hi_b = np.concatenate([[p.high for p in free], x0 + 2 * rng])
    jac = sparse.lil_matrix((len(st.y), k + ns), dtype=int)
    jac[:, :k] = 1
    jac[np.arange(len(st.y)), k + st.idx] = 1

    def unpack(theta: np.ndarray) -> PulseDevice:
        vals = cls.fit_values({**fixed, **{p.name: float(v) for p, v in
                                           zip(free, theta[:k], strict=True)}}, summary)
        return model.replace(**vals)

    def resid(theta: np.ndarray) -> np.ndarray:
        m = unpack(theta)
        return _trajectories(m, st, theta[k:]) - st.y

    best = None
    for start in starts:
        th0 = np.array([start.get(p.name, p.init) for p in free] + list(x0))
        th0 = np.clip(th0, lo_b + 1e-12 * np.abs(lo_b), hi_b - 1e-12 * np.abs(hi_b))
        try:
            res = optimize.least_squares(resid, th0, bounds=(lo_b, hi_b), jac_sparsity=jac,
                                         x_scale="jac", method="trf", max_nfev=400)
        except ValueError as exc:  # pragma: no cover - numerical breakdown of one start
            log.debug("start %s failed: %s", start, exc)
            continue
        if best is None or res.cost < best.cost:
            best = res
    if best is None:  # pragma: no cover
        raise DseError("the trajectory fit did not converge")
    return {"theta": best.x, "k": k, "model": unpack(best.x), "x0": best.x[k:],
            "jac": best.jac, "resid": best.fun, "free": free}


def _device_fit(model: PulseDevice, st: _Stack, x0: np.ndarray,
                summary: Mapping[str, Any], bounds: tuple[float, float]) -> dict[str, Any]:
    """Per-device step gains (and bounds for soft bounds) with the shape fixed; one sparse fit."""
    cls = type(model)
    nd, ns = len(st.devices), len(st.series)
    per = 4 if cls.D2D_BOUNDS_FIT else 2
    rng = summary["range"]
    th0 = np.concatenate([np.tile([1.0, 1.0, model.g_min, model.g_max][:per], nd), x0])
    # per-device bounds stay within the population fit's limits (near the data, >= 0 physical)
    g_lo = max(model.g_min - 10 * rng, bounds[0])
    g_hi = min(model.g_max + 10 * rng, bounds[1])
    lo_b = np.concatenate([np.tile([1e-3, 1e-3, g_lo,
                                    model.g_max - 0.9 * (model.g_max - model.g_min)][:per], nd),
                           x0 - 2 * rng])
    hi_b = np.concatenate([np.tile([1e3, 1e3, model.g_min + 0.9 * (model.g_max - model.g_min),
                                    g_hi][:per], nd), x0 + 2 * rng])
    hi_b = np.maximum(hi_b, lo_b + 1e-9 * rng)
    th0 = np.clip(th0, lo_b, hi_b)
    rows = np.arange(len(st.y))
    jac = sparse.lil_matrix((len(st.y), per * nd + ns), dtype=int)
    for j in range(per):
        jac[rows, per * st.dev + j] = 1
    jac[rows, per * nd + st.idx] = 1

    def state(theta: np.ndarray) -> dict[str, torch.Tensor]:
        g = theta[: per * nd].reshape(nd, per)
        lo = g[st.dev, 2] if per == 4 else None
        hi = g[st.dev, 3] if per == 4 else None
        return _state(model, g[st.dev, 0], g[st.dev, 1], lo, hi)

    def resid(theta: np.ndarray) -> np.ndarray:
        return _trajectories(model, st, theta[per * nd:], state(theta)) - st.y

    res = optimize.least_squares(resid, th0, bounds=(lo_b, hi_b), jac_sparsity=jac,
                                 x_scale="jac", method="trf", max_nfev=400)
    dof = max(len(st.y) - len(res.x), 1)
    s2 = 2 * res.cost / dof
    J = res.jac.toarray() if sparse.issparse(res.jac) else res.jac
    cov = safe_inv(J.T @ J) * s2
    g = res.x[: per * nd].reshape(nd, per)
    se = np.sqrt(np.clip(np.diag(cov)[: per * nd], 0, None)).reshape(nd, per)
    has_up = np.array([any(s.direction > 0 and s.device == d for s in st.series)
                       for d in st.devices])
    has_dn = np.array([any(s.direction < 0 and s.device == d for s in st.series)
                       for d in st.devices])
    return {"gains": g, "se": se, "x0": res.x[per * nd:], "resid": res.fun, "per": per,
            "state": state(res.x), "has_up": has_up, "has_down": has_dn}


def _restoring_factor(model: PulseDevice, st: _Stack, fitted: np.ndarray,
                      state: Mapping[str, torch.Tensor] | None) -> float:
    """Mean d(G after one pulse)/dG along the fitted trajectories (the dynamics' own memory)."""
    s = state if state is not None else _state(model)
    x = torch.as_tensor(fitted, dtype=torch.float64)
    n = torch.as_tensor(st.dirs, dtype=torch.float64)
    h = 1e-4 * (model.g_max - model.g_min)
    d = (model._mean_step(x + h, n, s) - model._mean_step(x - h, n, s)) / (2 * h)
    return float(torch.clamp(d, 0.0, 1.0).mean())


def _simulate(model: PulseDevice, st: _Stack, x0: np.ndarray,
              state: Mapping[str, torch.Tensor] | None, seed: int) -> np.ndarray:
    """One noisy simulated response per series, pulse by pulse (vectorised over the series)."""
    gen = torch.Generator().manual_seed(seed)
    ns = len(st.series)
    s = dict(state) if state is not None else {}
    per_point = {k: v for k, v in s.items() if v.dim() > 0}
    dev_state = {}
    for k in ("up", "down", "lo", "hi"):
        if k in per_point:  # per point -> per series (the first point of each series)
            first = np.array([int(np.nonzero(st.idx == i)[0][0]) for i in range(ns)])
            dev_state[k] = per_point[k][first]
        else:
            dev_state[k] = torch.tensor(float(s[k]) if k in s else
                                        (1.0 if k in ("up", "down") else
                                         (model.g_min if k == "lo" else model.g_max)),
                                        dtype=torch.float64)
    sim_model = model.replace()
    sim_model.imperfections["d2d"] = False
    state_t = {**dev_state, "x": torch.zeros(ns, dtype=torch.float64)}
    sim_model.set_conductance(state_t, torch.as_tensor(x0, dtype=torch.float64))
    lengths = np.array([len(s_.pulses) for s_ in st.series])
    dirs = torch.as_tensor([s_.direction for s_ in st.series], dtype=torch.float64)
    steps = [np.diff(s_.pulses, prepend=s_.pulses[0]) for s_ in st.series]
    out = np.full((ns, lengths.max()), np.nan)
    for j in range(lengths.max()):  # a loop over pulses, vectorised over series
        n = torch.as_tensor([steps[i][j] if j < lengths[i] else 0.0 for i in range(ns)],
                            dtype=torch.float64)
        sim_model.apply_pulses(state_t, dirs * n, gen)
        out[:, j] = sim_model.read(state_t, gen).numpy()
    return np.concatenate([out[i, : lengths[i]] for i in range(ns)])


def _write_noise(model: PulseDevice, st: _Stack, fitted: np.ndarray,
                 state: Mapping[str, torch.Tensor] | None,
                 noise: Mapping[str, float]) -> dict[str, float]:
    """Per-pulse write noise σ and memory from the residual AR(1) fit (step 3)."""
    spacing = float(np.median(np.concatenate([np.diff(s.pulses) for s in st.series])))
    spacing = max(spacing, 1.0)  # pulses per sample (files that record every k-th pulse)
    restoring = _restoring_factor(model, st, fitted, state) ** spacing
    phi_dev = min(1.0, noise["phi"] / max(restoring, 1e-12))
    phi_pulse = phi_dev ** (1.0 / spacing)
    s_geo = (1 - phi_pulse ** (2 * spacing)) / (1 - phi_pulse**2) if phi_pulse < 1 else spacing
    return {"sigma_w": noise["sigma_w"] / math.sqrt(s_geo), "phi": phi_pulse,
            "restoring": restoring, "spacing": spacing}


def _shape_stderr(pop: Mapping[str, Any], free: list[FitParam], n: int,
                  noise: Mapping[str, float]) -> dict[str, float]:
    """Standard errors of the shape parameters (Jacobian covariance, long-run inflated)."""
    J = pop["jac"].toarray() if sparse.issparse(pop["jac"]) else pop["jac"]
    dof = max(n - J.shape[1], 1)
    s2 = float(pop["resid"] @ pop["resid"]) / dof
    cov = safe_inv(J.T @ J) * s2 * long_run_inflation(noise) ** 2
    return {p.name: float(math.sqrt(max(cov[i, i], 0.0))) for i, p in enumerate(free)}


def _fit_block(data: Measurements, st: _Stack, fitted: np.ndarray, fitted_pop: np.ndarray,
               resid: np.ndarray, noise: Mapping[str, float], wn: Mapping[str, float],
               sim: np.ndarray, se: Mapping[str, float]) -> tuple[np.ndarray, dict[str, Any]]:
    """(the smoothed measurements, the card's ``fit`` block: quality and provenance)."""
    window = smoothing_window(int(np.median([len(s.pulses) for s in st.series])))
    sm = np.concatenate([smooth(s.conductance, window) for s in st.series])
    sim_steps = np.concatenate([np.diff(sim[st.idx == i]) for i in range(len(st.series))])
    return sm, {
        "method": "least-squares mean trajectory per direction; AR(1)+white noise ML",
        "r2": r_squared(sm, fitted, st.idx), "r2_raw": r_squared(st.y, fitted, st.idx),
        "r2_population": r_squared(sm, fitted_pop, st.idx),
        "smoothing_window": window, "residual_sigma": float(np.std(resid)),
        "fitted_range": float(np.ptp(fitted)),
        "c2c_sigma": wn["sigma_w"], "c2c_memory": wn["phi"], "read_sigma": noise["sigma_r"],
        "residual_lag1_autocorrelation": noise["lag1"], "residual_ar1": noise["phi"],
        "step_sigma_measured": noise["step_sigma"],
        "step_sigma_simulated": float(np.std(sim_steps)),
        "pulses_per_sample": wn["spacing"],
        "n_points": len(st.y), "n_series": len(st.series), "n_devices": len(st.devices),
        "direction": data.direction or "up and down",
        "stderr": dict(se), "source_file": data.path, "sha256": data.sha256,
        "format": data.format, "synthetic": data.synthetic,
    }


def calibrate_pulses(data: Measurements, cls: type[PulseDevice], name: str,
                     base: Mapping[str, Any] | None, seed: int,
                     limits: FitLimits | None = None) -> CalibrationResult:
    """Steps 1-5 of the :mod:`dse.devices.calibrate` docstring, in order. Each step is a helper;
    what remains here is their sequence and the values passed between them (over 60 lines for
    that reason)."""
    # long: the sequence of the five fit steps (each a helper) and what passes between them
    limits = limits or FitLimits()
    if data.kind != "pulses":
        raise DseError(f"family {cls.family} needs pulse measurements (updown, long or ramps), "
                       f"not a {data.format} table", source=data.path)
    st = _Stack.build(data.series)
    summary = _summary(data.series, data.physical)
    present = {"up" if s.direction > 0 else "down" for s in data.series}
    params = bounded_params(cls.fit_params(summary), summary, limits, data.physical)
    free, missing = split_by_direction(params, present)
    fixed = {p.name: p.init for p in missing}
    init_vals = cls.fit_values({p.name: p.init for p in params}, summary)
    model = cls(_fit_card(cls, name, init_vals, data.unit))
    model.imperfections.update({k: False for k in model.imperfections if k != "nonlinearity"})
    starts: list[dict[str, float]] = [{}, *getattr(cls, "FIT_STARTS", [])]
    pop = _population_fit(model, st, free, summary, starts, fixed)
    theta = {p.name: float(v) for p, v in zip(free, pop["theta"][: pop["k"]], strict=True)}
    hit = at_limits(free, pop["theta"][: pop["k"]])
    if missing:  # the unmeasured direction: mirrored now (a base card replaces it below)
        pop["model"] = pop["model"].replace(**cls.fit_values(
            {**theta, **mirrored(missing, theta, summary)}, summary))
    model = pop["model"]
    fitted_pop = _trajectories(model, st, pop["x0"])
    g_bounds = (next((p.low for p in params if p.name == "g_min"), -math.inf),
                next((p.high for p in params if p.name == "g_max"), math.inf))
    dfit = _device_fit(model, st, pop["x0"], summary, g_bounds) if len(st.devices) > 1 else None
    if dfit is not None:
        fitted = _trajectories(model, st, dfit["x0"], dfit["state"])
        x0, state = dfit["x0"], dfit["state"]
    else:
        fitted, x0, state = fitted_pop, pop["x0"], None
    resid = st.y - fitted
    noise = fit_noise([resid[st.idx == i] for i in range(len(st.series))])
    wn = _write_noise(model, st, fitted, state, noise)
    values: dict[str, Any] = cls.fit_values({**theta, **mirrored(missing, theta, summary)},
                                            {**summary, "c2c_sigma": wn["sigma_w"]})
    se = _shape_stderr(pop, free, len(st.y), noise)
    d2d: dict[str, tuple[float, str]] = {}
    if dfit is not None:
        values, state, d2d = d2d_terms(cls, values, dfit, state, long_run_inflation(noise))
        for k, side, limit in (("g_max", "high", g_bounds[1]), ("g_min", "low", g_bounds[0])):
            if k in theta and abs(float(values[k]) - limit) <= 1e-3 * summary["range"]:
                hit[k] = side  # the per-device mean (the card's value) at the limit too
    values, unmeasured = unmeasured_direction(cls, data, missing, values, base, present)
    params_card = card_params(cls, data, values, free, se, wn, noise, d2d, len(st.devices),
                               unmeasured)
    card: dict[str, Any] = {
        "name": name, "family": cls.family,
        "description": f"{cls.family} calibrated from {data.path} ({data.format}, "
                       f"{len(st.series)} series, {len(st.devices)} device(s), "
                       f"{data.direction or 'up and down'})",
        "source": provenance(data), "unit": data.unit, "synthetic": data.synthetic,
        "params": params_card, "imperfections": {k: True for k in cls.IMPERFECTIONS},
    }
    validate_card(card, source=data.path)
    final = cls(card)
    sim = _simulate(final, st, x0, state, seed)
    sm, card["fit"] = _fit_block(data, st, fitted, fitted_pop, resid, noise, wn, sim, se)
    a = Assessment(limits, data.path, cls.family)
    hit_values = {k: g_bounds[side == "high"] if k in ("g_min", "g_max") else theta[k]
                  for k, side in hit.items()}
    assess_pulse_fit(a, final, data, summary, card["fit"], theta, se, hit, hit_values, present,
                     missing)
    finish(a, card["fit"])
    curves = pd.DataFrame({"series": [st.series[i].label for i in st.idx],
                           "device": [st.series[i].device for i in st.idx],
                           "direction": np.where(st.dirs > 0, "up", "down"),
                           "pulse": np.concatenate([s.pulses for s in st.series]),
                           "measured": st.y, "smoothed": sm, "fitted": fitted, "simulated": sim})
    return CalibrationResult(card=card, family=cls.family, kind="pulses", curves=curves,
                             extra={"noise": noise})
