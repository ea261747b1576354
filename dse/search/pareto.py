"""Pareto fronts of a study: the non-dominated feasible trials, hypervolume, figures."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from optuna._hypervolume import compute_hypervolume

LABELS = {
    "accuracy": "test accuracy",
    "energy_per_inference_pJ": "energy per inference (pJ)",
    "area_mm2": "area (mm²)",
    "area_um2": "area (µm²)",
    "training_pJ": "training energy (pJ)",
    "deployment_pJ": "programming energy (pJ)",
}


def _loss_matrix(df: pd.DataFrame, objectives: dict[str, str]) -> np.ndarray:
    """Objective values as losses (maximized ones negated), one row per trial."""
    cols = [df[m].to_numpy(float) * (-1.0 if d == "maximize" else 1.0)
            for m, d in objectives.items()]
    return np.stack(cols, axis=1)


def non_dominated(losses: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows no other row dominates (all <= and one <)."""
    le = (losses[:, None, :] <= losses[None, :, :]).all(-1)
    lt = (losses[:, None, :] < losses[None, :, :]).any(-1)
    dominated = (le & lt).any(0)
    return ~dominated


def pareto_front(trials: pd.DataFrame, objectives: dict[str, str]) -> pd.DataFrame:
    """The feasible, complete, non-dominated trials, best first in the first objective."""
    ok = trials[(trials["state"] == "COMPLETE") & trials["feasible"].astype(bool)]
    if ok.empty:
        return ok
    front = ok[non_dominated(_loss_matrix(ok, objectives))]
    first, direction = next(iter(objectives.items()))
    return front.sort_values(first, ascending=direction == "minimize").reset_index(drop=True)


def hypervolume_history(trials: pd.DataFrame, objectives: dict[str, str]) -> pd.DataFrame:
    """Hypervolume of the feasible trials completed so far, after each trial (by number).

    Losses are min-max normalised over all feasible trials and the reference point is 1.1 in
    every normalised objective, so the curve is monotone and comparable between objectives of
    different units (Optuna's WFG hypervolume, ``optuna._hypervolume``).
    """
    ok = trials[(trials["state"] == "COMPLETE") & trials["feasible"].astype(bool)]
    ok = ok.sort_values("number")
    if ok.empty:
        return pd.DataFrame(columns=["number", "hypervolume"])
    losses = _loss_matrix(ok, objectives)
    lo, hi = losses.min(0), losses.max(0)
    norm = (losses - lo) / np.where(hi > lo, hi - lo, 1.0)
    ref = np.full(losses.shape[1], 1.1)
    hv = [compute_hypervolume(norm[:i + 1], ref) for i in range(len(norm))]
    return pd.DataFrame({"number": ok["number"].to_numpy(), "hypervolume": hv})


def front_figure(trials: pd.DataFrame, front: pd.DataFrame,
                 objectives: dict[str, str]) -> plt.Figure:
    """Accuracy vs energy (or the first two objectives), coloured by precision; a pair plot
    when there are three or more objectives. Pareto-optimal trials are outlined."""
    done = trials[trials["state"] == "COMPLETE"].rename(columns={"param_precision": "precision"})
    front = front.rename(columns={"param_precision": "precision"})
    hue = "precision" if "precision" in done else None
    if "feasible" in done:  # legend entries "feasible" / "infeasible" rather than True / False
        done["constraints"] = done["feasible"].map({True: "feasible", False: "infeasible"})
    names = list(objectives)
    done["pareto"] = done["number"].isin(front["number"])
    if len(names) >= 3:
        grid = sns.pairplot(done, vars=names, hue=hue, diag_kind="hist", corner=True,
                            plot_kws={"s": 30})
        for ax in grid.axes.flat:
            if ax is not None:
                ax.set_xlabel(LABELS.get(ax.get_xlabel(), ax.get_xlabel()))
                ax.set_ylabel(LABELS.get(ax.get_ylabel(), ax.get_ylabel()))
        return grid.figure
    x, y = (names[1], names[0]) if len(names) == 2 else (names[0], names[0])
    fig, ax = plt.subplots(figsize=(6, 4.2))
    style = "constraints" if "constraints" in done else None
    sns.scatterplot(data=done, x=x, y=y, hue=hue, style=style, ax=ax, s=45, alpha=0.8)
    if len(front) > 1:
        f = front.sort_values(x)
        ax.step(f[x], f[y], where="post", color="black", lw=1, label="Pareto front")
    ax.scatter(front[x], front[y], facecolors="none", edgecolors="black", s=110, lw=1.2)
    if objectives.get(x) == "minimize" and (done[x] > 0).all() and \
            done[x].max() / max(done[x].min(), 1e-30) > 30:
        ax.set_xscale("log")
    ax.set_xlabel(LABELS.get(x, x))
    ax.set_ylabel(LABELS.get(y, y))
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def hypervolume_figure(history: pd.DataFrame) -> plt.Figure:
    """Hypervolume after each trial (convergence of the study)."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(history["number"], history["hypervolume"], marker="o", ms=3)
    ax.set_xlabel("trial")
    ax.set_ylabel("hypervolume (normalised)")
    fig.tight_layout()
    return fig


def summary(trials: pd.DataFrame, front: pd.DataFrame, spec: Any) -> dict[str, Any]:
    """Study-level figures for the closing note and the report."""
    done = trials[trials["state"] == "COMPLETE"]
    trained = int(done["trained"].fillna(False).astype(bool).sum()) if "trained" in done else 0
    return {"study": spec.name, "trials_complete": len(done),
            "trials_failed": int((trials["state"] == "FAIL").sum()),
            "trainings": trained,
            "trainings_per_trial": trained / len(done) if len(done) else None,
            "pareto_size": len(front), "objectives": spec.objectives,
            "wall_seconds_sum": float(done["seconds"].sum()) if "seconds" in done else None}
