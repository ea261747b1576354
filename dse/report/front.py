"""Figures of a co-design study: the Pareto front (two objectives: a scatter with the front's
staircase; three or more: every pairwise projection and a parallel-coordinates plot) and the
hypervolume convergence."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

LABELS = {
    "accuracy": "validation accuracy",
    "test_accuracy": "test accuracy",
    "latency_ns": "latency per inference (ns)",
    "inferences_per_s": "inferences per s",
    "tops": "TOPS",
    "tops_per_w": "TOPS/W",
    "tops_per_mm2": "TOPS/mm²",
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
        return projections_figure(done, front, objectives, hue)
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


def _log_axis(values: pd.Series) -> bool:
    v = values.dropna()
    return bool(len(v)) and bool((v > 0).all()) and v.max() / max(v.min(), 1e-300) > 30


def projections_figure(done: pd.DataFrame, front: pd.DataFrame, objectives: dict[str, str],
                       hue: str | None) -> Figure:
    """Every pairwise projection of three or more objectives: all complete trials (by
    precision, infeasible ones as crosses), the Pareto designs outlined, the knee starred."""
    pairs = list(itertools.combinations(list(objectives), 2))
    fig = Figure(figsize=(4.2 * len(pairs), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(pairs)))
    style = "constraints" if "constraints" in done else None
    for i, (ax, (a, b)) in enumerate(zip(axes, pairs, strict=True)):
        # the cost on x, accuracy (the first objective) on y
        x, y = (b, a) if a == next(iter(objectives)) else (a, b)
        sns.scatterplot(data=done, x=x, y=y, hue=hue, style=style, ax=ax, s=35, alpha=0.8,
                        legend=i == 0)
        ax.scatter(front[x], front[y], facecolors="none", edgecolors="black", s=110, lw=1.2,
                   label="Pareto" if i == 0 else None)
        if "knee" in front and front["knee"].astype(bool).any():
            k = front[front["knee"].astype(bool)]
            ax.scatter(k[x], k[y], marker="*", color="crimson", s=160, zorder=5,
                       label="knee" if i == 0 else None)
        for axis, col in (("x", x), ("y", y)):
            if col != "accuracy" and _log_axis(done[col]):
                getattr(ax, f"set_{axis}scale")("log")
        ax.set_xlabel(LABELS.get(x, x))
        ax.set_ylabel(LABELS.get(y, y))
    axes[0].legend(fontsize=7, loc="best")
    return fig


def parallel_figure(trials: pd.DataFrame, front: pd.DataFrame, objectives: dict[str, str],
                    params: list[str] | None = None) -> Figure:
    """Parallel coordinates of the study's parameters and objectives: one line per complete
    trial (grey), the Pareto designs in colour (the knee thicker). Every axis is min-max
    scaled over the trials (log-scaled first where the values span more than 30×);
    categorical parameters are placed at evenly spaced codes."""
    done = trials[trials["state"] == "COMPLETE"]
    params = params if params is not None else \
        [c for c in done.columns if c.startswith("param_")]
    cols = [*params, *objectives]
    scaled = pd.DataFrame(index=done.index)
    ticks: dict[str, tuple[str, str]] = {}
    for c in cols:
        v = done[c]
        if not pd.api.types.is_numeric_dtype(v):
            codes = {k: i for i, k in enumerate(sorted(v.astype(str).unique()))}
            v = v.astype(str).map(codes).astype(float)
            lo_txt, hi_txt = min(codes), max(codes)
        else:
            v = v.astype(float)
            lo_txt, hi_txt = f"{v.min():.3g}", f"{v.max():.3g}"
            if _log_axis(v):
                v = np.log10(v)
        lo, hi = v.min(), v.max()
        scaled[c] = (v - lo) / (hi - lo) if hi > lo else 0.5
        ticks[c] = (lo_txt, hi_txt)
    fig = Figure(figsize=(max(6.0, 1.5 * len(cols)), 4.0), layout="constrained")
    ax = fig.subplots()
    xs = np.arange(len(cols))
    on_front = done["number"].isin(front["number"])
    for _, row in scaled[~on_front].iterrows():
        ax.plot(xs, row[cols].to_numpy(float), color="0.75", lw=0.8, alpha=0.7)
    colours = sns.color_palette("viridis", max(int(on_front.sum()), 1))
    knees = set(front.loc[front.get("knee", pd.Series(False, index=front.index))
                          .astype(bool), "number"]) if len(front) else set()
    for colour, (idx, row) in zip(colours, scaled[on_front].iterrows(), strict=False):
        number = int(done.loc[idx, "number"])
        knee = number in knees
        ax.plot(xs, row[cols].to_numpy(float), color="crimson" if knee else colour,
                lw=2.6 if knee else 1.6, label=f"trial {number}" + (" (knee)" if knee else ""))
    ax.set_xticks(xs, [LABELS.get(c, c.removeprefix("param_")) for c in cols], rotation=20,
                  fontsize=8)
    for x, c in zip(xs, cols, strict=True):
        ax.annotate(ticks[c][0], (x, -0.04), ha="center", va="top", fontsize=7)
        ax.annotate(ticks[c][1], (x, 1.04), ha="center", va="bottom", fontsize=7)
    ax.set_ylim(-0.12, 1.12)
    ax.set_yticks([])
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def hypervolume_figure(history: pd.DataFrame) -> Figure:
    """Hypervolume after each trial (convergence of the study)."""
    fig = Figure(figsize=(5, 3.2), layout="constrained")
    ax = fig.subplots()
    ax.plot(history["number"], history["hypervolume"], marker="o", ms=3)
    ax.set_xlabel("trial")
    ax.set_ylabel("hypervolume (normalised)")
    return fig
