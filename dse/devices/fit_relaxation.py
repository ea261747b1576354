"""Fit of the relaxation model (:mod:`dse.devices.relaxation`) to a ``relaxation`` file.

1. Per level and time t > 0: the number of cells n, the mean and variance of ΔG = G(t) − G(0)
   and the mean/σ of G(t) (:func:`level_statistics`).
2. The time constants τ₁ < τ₂ (saturating components) and τ₃ (log-time growth) are shared by
   the levels; for given τ each level's coefficients are linear: the drift aⱼ by weighted least
   squares on the mean ΔG (weights n/Var ΔG), the variance terms by non-negative least squares
   (``scipy.optimize.nnls``) of Var ΔG = s₀² + Σⱼ sⱼ²·φⱼ(t) (weights 1/Var ΔG). The τ minimise
   the summed squared relative error of σ(G) (σ(G)² = Var G₀ + Var ΔG: ΔG is independent of G₀
   within a level, as measured) and the mean error in units of the spread
   (Nelder–Mead in log τ from a few starts). τ₁, τ₂ lie between the first read after 0 and
   1e4 s (a faster component cannot be told from the intercept), τ₃ in [1e-4 s, 100 s] so that
   φ₃ is in its log regime beyond the data.
3. Reported, not used by the model: the read-to-read part of the fluctuation as if it were
   white, σ_r² ≈ Var ΔG(tₖ) − Cov(ΔG(tₖ), ΔG(tₖ₊₁)) (consecutive reads of the same cells), to
   compare with s₀/√2 (both reads' noise would be in s₀²): on the Stanford data the first is
   larger than the second allows, i.e. the fluctuation is correlated over 10 ms (1/f-like),
   which is why the model keeps it inside V and leaves per-read noise to the card.
4. Quality (``fit:``): R² of the fitted mean and σ of ΔG over all (level, time) points, their
   RMS residuals, the largest relative errors of the mean and σ of G (the fidelity criterion),
   the points used, the levels left out (fewer than ``min_cells`` cells) and the source file.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize

from dse.devices.relaxation import N_BASIS, RelaxationModel
from dse.errors import DseError

MIN_CELLS = 20
TAU_MIN, TAU_MAX, TAU_SLOW_MAX = 1e-4, 1e4, 1e2  # s
STARTS = ((1e-2, 1.0, 1e-2), (1e-2, 1e2, 1.0), (1e-3, 10.0, 1e-1), (0.1, 1e3, 10.0))


def level_statistics(table: pd.DataFrame) -> pd.DataFrame:
    """Per (level, time > 0): n, g0 mean/var, ΔG mean/var, cov(G0, ΔG), G mean/σ, the
    consecutive-read estimate of σ_r² (``read_var_cov``)."""
    t = table.assign(dg=table["conductance"] - table["g0"])
    later = t[t["time"] > 0]
    grp = later.groupby(["level", "time"])
    out = grp.agg(n=("dg", "size"), g0_mean=("g0", "mean"), g0_var=("g0", "var"),
                  dg_mean=("dg", "mean"), dg_var=("dg", "var"),
                  g_mean=("conductance", "mean"), g_std=("conductance", "std")).reset_index()
    cov = grp.apply(lambda d: float(np.cov(d["g0"], d["dg"])[0, 1]) if len(d) > 1 else 0.0,
                    include_groups=False)
    out["cov_g0_dg"] = cov.to_numpy()
    wide = later.pivot_table(index="cell", columns="time", values="dg")
    levels = t.groupby("cell")["level"].first()
    times = sorted(wide.columns)
    est: dict[int, float] = {}
    for lev, cells in levels.groupby(levels).groups.items():
        w = wide.reindex(cells)
        vals = []
        for a, b in itertools.pairwise(times):
            x = w[[a, b]].dropna()
            if len(x) > 2:
                vals.append(float(x[a].var() - np.cov(x[a], x[b])[0, 1]))
        # Var ΔG(tₖ) − Cov(ΔG(tₖ), ΔG(tₖ₊₁)) = σ_r² (independent increments; the t = 0 read
        # is shared by both, the read at tₖ is not)
        est[lev] = max(float(np.mean(vals)), 0.0) if vals else math.nan
    out["read_var_cov"] = out["level"].map(est)
    return out


@dataclass
class _Level:
    """One level's rows of :func:`level_statistics` as arrays (the τ search calls the linear
    fits thousands of times)."""

    t: np.ndarray
    n: np.ndarray
    dg_mean: np.ndarray
    var: np.ndarray
    g0_var: np.ndarray
    cov: np.ndarray
    g_std: np.ndarray
    weight: float

    @classmethod
    def of(cls, s: pd.DataFrame) -> _Level:
        return cls(*(s[c].to_numpy(float) for c in ("time", "n", "dg_mean")),
                   np.maximum(s["dg_var"].to_numpy(float), 1e-12),
                   *(s[c].to_numpy(float) for c in ("g0_var", "cov_g0_dg", "g_std")),
                   weight=min(1.0, float(s["n"].min()) / 100))


def _basis_np(t: np.ndarray, taus: tuple[float, ...]) -> np.ndarray:
    return np.stack([-np.expm1(-t / taus[0]), -np.expm1(-t / taus[1]),
                     np.log1p(t / taus[2]) / math.log(10.0)], axis=-1)


def _inner(s: _Level, taus: tuple[float, ...], phi: np.ndarray | None = None
           ) -> dict[str, Any]:
    """One level's linear fits for given τ (module docstring, step 2)."""
    phi = _basis_np(s.t, taus) if phi is None else phi
    wm = s.n / s.var
    gram = (phi * wm[:, None]).T @ phi
    rhs = (phi * wm[:, None]).T @ s.dg_mean
    try:
        a = np.linalg.solve(gram + 1e-12 * np.trace(gram) * np.eye(N_BASIS), rhs)
    except np.linalg.LinAlgError:
        a = np.linalg.lstsq(phi * np.sqrt(wm)[:, None], s.dg_mean * np.sqrt(wm), rcond=None)[0]
    design = np.hstack([np.ones((len(s.t), 1)), phi]) / s.var[:, None]
    q = optimize.nnls(design, np.ones(len(s.t)))[0]  # (Var ΔG model) / Var ΔG = 1
    mean_fit = phi @ a
    var_fit = q[0] + phi @ q[1:]
    g_std_fit = np.sqrt(np.maximum(s.g0_var + var_fit, 0.0))
    rel_sigma = g_std_fit / np.maximum(s.g_std, 1e-300) - 1
    mean_err = (mean_fit - s.dg_mean) / np.sqrt(s.var)
    return {"a": a, "q": q, "mean_fit": mean_fit, "var_fit": var_fit, "g_std_fit": g_std_fit,
            "cost": float(np.sum(rel_sigma ** 2) + np.sum(mean_err ** 2))}


def _objective(z: np.ndarray, groups: list[_Level], bounds: list[tuple[float, float]]) -> float:
    taus = tuple(float(math.exp(v)) for v in z)
    if any(not lo <= t <= hi for t, (lo, hi) in zip(taus, bounds, strict=True)):
        return 1e12
    cache: dict[bytes, np.ndarray] = {}  # levels usually share their times: one basis
    total = 0.0
    for g in groups:
        key = g.t.tobytes()
        if key not in cache:
            cache[key] = _basis_np(g.t, taus)
        total += g.weight * _inner(g, taus, cache[key])["cost"]
    return total


def fit_relaxation(table: pd.DataFrame, unit: str, g_ref: float,
                   min_cells: int = MIN_CELLS) -> tuple[RelaxationModel, pd.DataFrame,
                                                        dict[str, Any]]:
    """Fit the model to a parsed relaxation table -> (model, per-point curves, quality)."""
    stats = level_statistics(table)
    counts = stats.groupby("level")["n"].min()
    used = sorted(int(k) for k, v in counts.items() if v >= min_cells)
    dropped = sorted(int(k) for k, v in counts.items() if v < min_cells)
    if not used:
        raise DseError(f"no level has >= {min_cells} cells with reads after time 0")
    frames = [stats[stats["level"] == lev].sort_values("time") for lev in used]
    groups = [_Level.of(f) for f in frames]
    t_first = float(stats["time"].min())
    # τ₁, τ₂ ≥ the first read after 0: a faster component is the t → 0⁺ intercept (2σ_r²)
    bounds = [(t_first, TAU_MAX), (t_first, TAU_MAX), (TAU_MIN, TAU_SLOW_MAX)]
    best = None
    for start in STARTS:
        z0 = np.log([min(max(v, lo * 1.01), hi / 1.01) for v, (lo, hi) in
                     zip(start, bounds, strict=True)])
        res = optimize.minimize(_objective, z0, args=(groups, bounds), method="Nelder-Mead",
                                options={"xatol": 1e-3, "fatol": 1e-6, "maxiter": 600})
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None
    taus = [float(math.exp(v)) for v in best.x]
    if taus[0] > taus[1]:  # the two saturating components are interchangeable: order them
        taus[0], taus[1] = taus[1], taus[0]
    fits = [_inner(g, tuple(taus)) for g in groups]
    model = RelaxationModel(
        unit=unit, g_ref=float(g_ref), taus=(taus[0], taus[1], taus[2]),
        levels=np.array([float(g["g0_mean"].mean()) for g in frames]),
        drift=np.stack([f["a"] for f in fits]),
        sigma=np.sqrt(np.stack([f["q"] for f in fits])))
    curves = pd.concat([g.assign(dg_mean_fit=f["mean_fit"], dg_std_fit=np.sqrt(f["var_fit"]),
                                 g_std_fit=f["g_std_fit"],
                                 g_mean_fit=g["g0_mean"].to_numpy() + f["mean_fit"])
                        for g, f in zip(frames, fits, strict=True)], ignore_index=True)
    return model, curves, _quality(curves, dropped, model, stats, best)


def _r2(y: np.ndarray, f: np.ndarray) -> float:
    tot = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - f) ** 2)) / tot if tot > 0 else math.nan


def _quality(c: pd.DataFrame, dropped: list[int], model: RelaxationModel, stats: pd.DataFrame,
             best: Any) -> dict[str, Any]:
    dg_std = np.sqrt(c["dg_var"].to_numpy())
    rel_mean = np.abs(c["g_mean_fit"] / c["g_mean"] - 1).to_numpy()
    rel_sigma = np.abs(c["g_std_fit"] / c["g_std"] - 1).to_numpy()
    cov = stats.drop_duplicates("level").set_index("level")["read_var_cov"]
    read_cov = np.sqrt(np.clip(cov.reindex(sorted(c["level"].unique())).to_numpy(), 0, None))
    return {
        "model": "relaxation (2 saturating + 1 log-time component, per-level tables)",
        "r2": _r2(dg_std, c["dg_std_fit"].to_numpy()),
        "r2_mean": _r2(c["dg_mean"].to_numpy(), c["dg_mean_fit"].to_numpy()),
        "residual_sigma": float(np.sqrt(np.mean((c["dg_std_fit"].to_numpy() - dg_std) ** 2))),
        "residual_mean": float(np.sqrt(np.mean((c["dg_mean_fit"] - c["dg_mean"]) ** 2))),
        "max_rel_err_mean_g": float(rel_mean.max()),
        "max_rel_err_sigma_g": float(rel_sigma.max()),
        "within_10pct_sigma_g": float(np.mean(rel_sigma <= 0.1)),
        "n_points": len(c), "n_reads": int(c["n"].sum()),
        "levels": int(c["level"].nunique()), "levels_dropped": dropped,
        "times": sorted(float(t) for t in c["time"].unique()),
        "taus": [float(t) for t in model.taus],
        "sigma_0": [float(x) for x in model.sigma[:, 0]],
        "read_sigma_white_estimate": [float(x) for x in read_cov],
        "objective": float(best.fun), "converged": bool(best.success),
    }


def calibrate_relaxation(data: Any, name: str) -> Any:
    """The ``calibrate`` stage for a relaxation file: a relaxation card + fit quality."""
    from dse.devices.fitting import CalibrationResult, provenance

    table = data.table
    g_ref = float(data.header.get("g_ref") or table.loc[table["time"] == 0, "g0"].max())
    model, curves, quality = fit_relaxation(table, data.unit, g_ref)
    prov = provenance(data)
    quality["source_file"] = data.path
    quality["sha256"] = data.sha256
    card = {"name": name, "kind": "relaxation", "unit": data.unit,
            "description": "post-programming relaxation (dse.devices.relaxation)",
            "source": prov, "relaxation": model.to_entry(prov), "fit": quality}
    return CalibrationResult(card=card, family="relaxation", kind="relaxation", curves=curves,
                             extra={"model": model})


def relaxation_figure(result: Any) -> Any:
    """Measured vs fitted mean shift and σ of G per level against time (a few levels)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    c = result.curves
    levels = sorted(c["level"].unique())
    pick = levels[:: max(1, len(levels) // 6)]
    model: RelaxationModel = result.extra["model"]
    t = np.logspace(math.log10(c["time"].min()), math.log10(3.2e8), 200)
    fig, axes = plt.subplots(1, 2, figsize=(9.2, 3.6))
    pal = sns.color_palette("viridis", len(pick))
    import torch

    for col, lev in zip(pal, pick, strict=True):
        s = c[c["level"] == lev]
        g0 = torch.tensor([float(s["g0_mean"].mean())], dtype=torch.float64)
        mu = np.array([float(model.mean_shift(g0, x)[0]) for x in t])
        var = np.array([float(model.variance(g0, x)[0]) for x in t])
        sd = np.sqrt(float(s["g0_var"].mean()) + var)
        axes[0].plot(s["time"], s["dg_mean"], "o", ms=3, color=col)
        axes[0].plot(t, mu, color=col, lw=1.2, label=f"level {lev}")
        axes[1].plot(s["time"], s["g_std"], "o", ms=3, color=col)
        axes[1].plot(t, sd, color=col, lw=1.2)
    for ax, lab in zip(axes, ("mean G(t) − G(0)", "σ of G(t)"), strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("time after programming [s]")
        ax.set_ylabel(f"{lab} [{result.card['unit']}]")
    axes[0].legend(fontsize=7)
    fit = result.fit
    fig.suptitle(f"{result.card['name']} (relaxation): R² σ {fit['r2']:.3f}, mean "
                 f"{fit['r2_mean']:.3f}; max rel. error of σ(G) {fit['max_rel_err_sigma_g']:.2f}"
                 "  (points: data, lines: model)", fontsize=9)
    fig.tight_layout()
    return fig


__all__ = ["N_BASIS", "calibrate_relaxation", "fit_relaxation", "level_statistics",
           "relaxation_figure"]
