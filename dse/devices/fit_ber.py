"""Calibration of the binary-cell families (``rram_1t1r``, ``rram_2t2r``, ``pcsa``,
``stt_mram``): binomial maximum likelihood of a BER table over the family's ``BER_FIT``
parameters."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from dse.devices.bit_error import BitErrorModel
from dse.devices.cards import validate_card
from dse.devices.domains import knob_domain
from dse.devices.fitting import (
    CalibrationResult,
    entry_from_spec,
    hessian,
    provenance,
    safe_inv,
)
from dse.devices.measurements import Measurements
from dse.devices.params import ParamSpec, param_entry
from dse.devices.plausibility import Assessment, FitLimits, finish
from dse.errors import DseError


def _transform(spec: ParamSpec) -> tuple[Callable[[float], float], Callable[[float], float]]:
    """(to_z, from_z) keeping a parameter inside its allowed range."""
    lo, hi = spec.low, spec.high
    if lo is not None and hi is not None:
        span = hi - lo
        return (lambda v: float(special.logit(np.clip((v - lo) / span, 1e-9, 1 - 1e-9))),
                lambda z: lo + span * float(special.expit(z)))
    if lo is not None:
        return (lambda v: math.log(max(v - lo, 1e-300)), lambda z: lo + math.exp(z))
    return (lambda v: float(v), lambda z: float(z))


def _operating_range(data: Measurements, knob_cols: list[str]) -> dict[str, Any]:
    """The card's calibrated range: each knob's span in the BER table."""
    tab = data.table
    assert tab is not None
    out = {}
    for c in knob_cols:
        dom = knob_domain(c)
        out[c] = {"low": float(tab[c].min()), "high": float(tab[c].max()),
                  "unit": dom.unit if dom is not None else "1",
                  "source": f"span of the BER table {data.path} (sha256 {data.sha256[:12]})"}
    return out


def _dense_curve(cls: type[BitErrorModel], tab: pd.DataFrame, knob_cols: list[str],
                 fitted_model: BitErrorModel) -> pd.DataFrame:
    """The fitted BER on a dense grid of the first knob, one curve per value of the others."""
    # a dense curve over the first knob, one per value of the others
    first = cls.knobs[0]
    others = [c for c in knob_cols if c != first]
    grid = np.linspace(tab[first].min(), tab[first].max(), 120)
    rows = []
    groups = tab.groupby(others) if others else [((), tab)]
    for key, _ in groups:
        key = key if isinstance(key, tuple) else (key,)
        op = {first: grid, **{c: np.full_like(grid, v) for c, v in zip(others, key,
                                                                       strict=True)}}
        rows.append(pd.DataFrame({**op, "fitted": fitted_model.ber(**op)}))
    curve = pd.concat(rows, ignore_index=True)
    return curve


def _check_table(data: Measurements, cls: type[BitErrorModel]) -> list[str]:
    """The knob columns of a BER table that fits ``cls`` (DseError naming what is wrong)."""
    if data.kind != "ber" or data.table is None:
        raise DseError(f"family {cls.family} needs a BER table (format ber: operating-point "
                       "columns, trials, errors)", source=data.path)
    tab = data.table
    knob_cols = [c for c in tab.columns if c not in ("trials", "errors")]
    allowed = list(cls.knobs) + list(cls.optional_knobs)
    bad = [c for c in knob_cols if c not in allowed]
    if bad:
        raise DseError(f"column(s) {', '.join(bad)} are not operating-point variables of "
                       f"{cls.family} (knobs: {', '.join(allowed)})", source=data.path)
    missing = [k for k in cls.knobs if k not in knob_cols]
    if missing:
        raise DseError(f"missing operating-point column(s) {', '.join(missing)} for "
                       f"{cls.family}", source=data.path)
    if len(tab) <= len(cls.BER_FIT):
        raise DseError(f"{len(tab)} operating points cannot determine {len(cls.BER_FIT)} "
                       f"parameters ({', '.join(cls.BER_FIT)}); measure more points",
                       source=data.path)
    return knob_cols


def _start(cls: type[BitErrorModel], name: str,
           base: Mapping[str, Any] | None) -> BitErrorModel:
    """The model the fit starts from: the base card's values (not its calibrated range: the new
    table sets that), else the family's defaults."""
    if base is not None:
        return cls({k: v for k, v in base.items() if k != "operating_range"})
    params = {k: entry_from_spec(s, s.default, s.unit or "1")
              for k, s in cls.PARAMS.items() if s.default is not None}
    return cls({"name": name, "family": cls.family, "source": "defaults", "params": params})


def _maximum_likelihood(start: BitErrorModel, ops: dict[str, np.ndarray], k_err: np.ndarray,
                        n_tr: np.ndarray) -> tuple[BitErrorModel, dict[str, float]]:
    """Binomial maximum likelihood of the family's ``BER_FIT`` parameters (Nelder-Mead from
    three starts, polished by BFGS) and their standard errors (inverse Hessian)."""
    fitted_names = list(start.BER_FIT)
    tr = [_transform(start.PARAMS[p]) for p in fitted_names]

    def model_at(z: np.ndarray) -> BitErrorModel:
        return start.replace(**{p: f(zz) for p, (_, f), zz in zip(fitted_names, tr, z,
                                                                  strict=True)})

    def nll(z: np.ndarray) -> float:
        try:
            p = np.clip(model_at(z).ber(**ops), 1e-300, 1 - 1e-16)
        except DseError:  # a trial point where the model has no finite BER
            return 1e300
        return -float(np.sum(stats.binom.logpmf(k_err, n_tr, p)))

    z0 = np.array([to(start.values[p]) for p, (to, _) in zip(fitted_names, tr, strict=True)])
    best = None
    for scale in (0.0, 0.5, -0.5):
        res = optimize.minimize(nll, z0 + scale, method="Nelder-Mead",
                                options={"xatol": 1e-7, "fatol": 1e-9, "maxiter": 6000})
        res = optimize.minimize(nll, res.x, method="BFGS")
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None
    z = best.x
    cov = safe_inv(hessian(nll, z, 1e-4))
    se = {}
    for i, (p, (_, f)) in enumerate(zip(fitted_names, tr, strict=True)):
        dz = 1e-6
        deriv = (f(z[i] + dz) - f(z[i] - dz)) / (2 * dz)
        se[p] = float(abs(deriv) * math.sqrt(max(cov[i, i], 0.0)))
    return model_at(z), se


def _card_params(cls: type[BitErrorModel], fitted: BitErrorModel, se: dict[str, float],
                 prov: str, base: Mapping[str, Any] | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    base_params = (base or {}).get("params") or {}
    for k, spec in cls.PARAMS.items():
        unit = spec.unit or "1"
        if k in cls.BER_FIT:
            params[k] = param_entry(fitted.values[k], unit, source=f"{prov}; binomial "
                                    "maximum likelihood", stderr=se[k])
        elif k in base_params:
            params[k] = dict(base_params[k])
        else:
            params[k] = entry_from_spec(spec, spec.default, unit)
    return params


def _quality(k_err: np.ndarray, n_tr: np.ndarray, p_hat: np.ndarray) -> dict[str, float]:
    """Probit-scale R², residual σ and deviance of a fitted BER table."""
    rate = k_err / n_tr
    inner = (k_err > 0) & (k_err < n_tr)
    r2 = float("nan")
    a = special.ndtri(rate[inner])
    b = special.ndtri(np.clip(p_hat[inner], 1e-300, 1))
    if inner.sum() >= 2:
        r2 = float(1 - np.sum((a - b) ** 2) / np.sum((a - a.mean()) ** 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        dev = 2 * np.sum(np.where(k_err > 0, k_err * np.log(k_err / (n_tr * p_hat)), 0.0)
                         + np.where(n_tr - k_err > 0, (n_tr - k_err)
                                    * np.log((n_tr - k_err) / (n_tr * (1 - p_hat))), 0.0))
    return {"r2": r2, "deviance": float(dev),
            "residual_sigma": float(np.std(a - b)) if inner.any() else float("nan")}


def calibrate_ber(data: Measurements, cls: type[BitErrorModel], name: str,
                  base: Mapping[str, Any] | None, seed: int,
                  limits: FitLimits | None = None) -> CalibrationResult:
    """Fit a binary-cell family's ``BER_FIT`` parameters to a BER table (binomial likelihood)."""
    knob_cols = _check_table(data, cls)
    tab = data.table
    assert tab is not None
    ops = {c: tab[c].to_numpy(float) for c in knob_cols}
    k_err, n_tr = tab["errors"].to_numpy(float), tab["trials"].to_numpy(float)
    fitted_model, se = _maximum_likelihood(_start(cls, name, base), ops, k_err, n_tr)
    prov = provenance(data)
    p_hat = fitted_model.ber(**ops)
    q = _quality(k_err, n_tr, p_hat)
    card: dict[str, Any] = {
        "name": name, "family": cls.family,
        "description": f"{cls.family} calibrated from the BER table {data.path} "
                       f"({len(tab)} operating points)",
        "source": prov, "synthetic": data.synthetic,
        "params": _card_params(cls, fitted_model, se, prov, base),
        "operating_points": [{c: float(tab[c].iloc[i]) for c in knob_cols}
                             for i in range(len(tab))],
        "operating_range": _operating_range(data, knob_cols),
    }
    validate_card(card, source=data.path)
    card["fit"] = {
        "method": "binomial maximum likelihood", "fitted": list(cls.BER_FIT), "r2": q["r2"],
        "r2_scale": "probit", "deviance": q["deviance"], "n_points": len(tab),
        "trials": int(n_tr.sum()), "errors": int(k_err.sum()), "stderr": se,
        "residual_sigma": q["residual_sigma"], "source_file": data.path,
        "sha256": data.sha256, "format": data.format, "synthetic": data.synthetic,
    }
    a = Assessment(limits or FitLimits(), data.path, cls.family)
    for w in data.warnings:
        a.flag(w)
    a.r2(q["r2"], "probit R²")
    a.stderrs({k: float(fitted_model.values[k]) for k in cls.BER_FIT}, se)
    finish(a, card["fit"])
    from dse.devices.binary import binomial_ci

    lo, hi = binomial_ci(k_err, n_tr)
    table = tab.assign(rate=k_err / n_tr, lo=lo, hi=hi, fitted=p_hat)
    curve = _dense_curve(cls, tab, knob_cols, fitted_model)
    return CalibrationResult(card=card, family=cls.family, kind="ber", curves=pd.DataFrame(),
                             ber_table=table, ber_curve=curve)
