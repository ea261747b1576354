"""Figures of a co-design study: the Pareto front and the hypervolume convergence."""

from __future__ import annotations

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

LABELS = {
    "accuracy": "test accuracy",
    "energy_per_inference_pJ": "energy per inference (pJ)",
    "area_mm2": "area (mm²)",
    "area_um2": "area (µm²)",
    "training_pJ": "training energy (pJ)",
    "deployment_pJ": "programming energy (pJ)",
}


def front_figure(trials: pd.DataFrame, front: pd.DataFrame,
                 objectives: dict[str, str]) -> Figure:
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
    fig = Figure(figsize=(6, 4.2), layout="constrained")
    ax = fig.subplots()
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
    return fig


def hypervolume_figure(history: pd.DataFrame) -> Figure:
    """Hypervolume after each trial (convergence of the study)."""
    fig = Figure(figsize=(5, 3.2), layout="constrained")
    ax = fig.subplots()
    ax.plot(history["number"], history["hypervolume"], marker="o", ms=3)
    ax.set_xlabel("trial")
    ax.set_ylabel("hypervolume (normalised)")
    return fig
