"""The report's robustness figure: accuracy under a chip's weight errors against the bit error
rate, each operating-point knob (supply, programming current or pulse, sense window, time after
programming) and the analog noise; a plain function from the inject summary to a Figure, as in
:mod:`dse.report.figures`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from dse.report.figures import PALETTE, _grid, _require, knob_label, knob_text


def _band(ax, x: pd.Series, d: pd.DataFrame, color, label: str) -> None:
    ax.plot(x, d["mean"] * 100, marker="o", ms=3.5, color=color, label=label)
    lo = d["ci95_low"].fillna(d["mean"])
    hi = d["ci95_high"].fillna(d["mean"])
    ax.fill_between(x, lo * 100, hi * 100, color=color, alpha=0.22, lw=0)


def _ber_floor(summary: pd.DataFrame, knobs: Sequence[str]) -> float:
    """Left end of a BER axis: a decade below the smallest direct (knob-less) BER, else below
    the smallest positive BER; smaller BERs (and 0) are drawn there."""
    direct = summary[summary[list(knobs)].isna().all(axis=1)] if knobs else summary
    for ber in (direct["ber"], summary["ber"]):
        positive = ber[ber > 0]
        if len(positive):
            return 10.0 ** (math.floor(math.log10(float(positive.min()))) - 1)
    return 1e-6


def _ber_axis(ax, floor: float, top: float) -> None:
    """Log BER axis from ``floor`` (labelled "≤ floor") with at most six labelled decades."""
    lo = round(math.log10(floor))
    hi = max(lo + 1, math.ceil(math.log10(max(top, floor * 10))))
    step = max(1, math.ceil((hi - lo) / 5))
    exps = list(range(lo, hi + 1, step))
    ax.set_xscale("log")
    ax.set_xticks([10.0 ** e for e in exps],
                  [f"$\\leq 10^{{{e}}}$" if e == lo else f"$10^{{{e}}}$" for e in exps])
    ax.minorticks_off()
    ax.set_xlim(10.0 ** (lo - 0.3), 10.0 ** (hi + 0.3))
    ax.set_xlabel("bit error rate")


def _noise_panel(ax: Any, summary: pd.DataFrame, exps: list[str], pal: dict) -> None:
    """Accuracy without and with the analog programming/read noise, per experiment."""
    d = summary.assign(noise=summary["noise"].astype(str))
    for k, exp in enumerate(exps):
        e = d[d["experiment"] == exp]
        g = e.groupby("noise", sort=False)[["mean", "ci95_low", "ci95_high"]].mean()
        xs = np.arange(len(g)) + (k - (len(exps) - 1) / 2) * 0.12
        ax.errorbar(xs, g["mean"] * 100,
                    yerr=[(g["mean"] - g["ci95_low"].fillna(g["mean"])) * 100,
                          (g["ci95_high"].fillna(g["mean"]) - g["mean"]) * 100],
                    fmt="o", color=pal[exp], capsize=3, label=exp)
        ax.set_xticks(np.arange(len(g)), list(g.index))
        ax.set_xlim(-0.6, len(g) - 0.4)
    ax.set_xlabel("analog weight noise")


def _knob_panel(ax: Any, ops: pd.DataFrame, panel: str, knobs: list[str], exps: list[str],
                pal: dict, nominal: dict[str, float]) -> None:
    """Accuracy along one knob's sweep, the other knobs at the chip's nominal point (or their
    most common value when the sweep does not visit the nominal one)."""
    scale, label = knob_label(panel)
    others = [k for k in knobs if k != panel]
    for exp in exps:
        e = ops[(ops["experiment"] == exp) & ops[panel].notna()]
        for k in others:
            target = nominal.get(k)
            if target is None or not np.isclose(e[k], target, rtol=1e-6).any():
                vals = e[k].dropna()
                target = vals.mode().iloc[0] if len(vals) else None
            if target is not None:
                e = e[np.isclose(e[k], target, rtol=1e-6) | e[k].isna()]
        e = e.groupby(panel, sort=True)[["mean", "ci95_low", "ci95_high"]].mean()
        if len(e):
            _band(ax, e.index.to_series() * scale, e, pal[exp], exp)
    fixed = [knob_text(k, nominal[k]) for k in others if k in nominal]
    ax.set_xlabel(label + (f"\n({', '.join(fixed)})" if fixed else ""))
    if panel == "time_s":  # seconds after programming, 0 to 10 years
        ax.set_xscale("symlog", linthresh=1.0)
    if panel in nominal:
        ax.axvline(nominal[panel] * scale, color="0.5", ls=":", lw=1)


def robustness_figure(summary: pd.DataFrame, nominal: Mapping[str, float] | None = None,
                      title: str | None = None) -> Figure:
    """Accuracy (mean and 95 % CI band over the fault maps) of every experiment on one chip.

    ``summary``: the inject stage's ``.summary.csv`` rows of several experiments (column
    ``experiment``). Panels: accuracy vs BER (every point; BERs below the axis' first decade,
    and 0, are drawn at it);
    one panel per operating-point knob that varies (its sweep with the other knobs at the chip's
    ``nominal`` point, e.g. accuracy vs supply voltage); analog chips: accuracy without and with
    programming/read noise.
    """
    _require(summary, ("experiment", "ber", "noise", "mean", "ci95_low", "ci95_high"),
             "inject summary")
    nominal = dict(nominal or {})
    exps = list(dict.fromkeys(summary["experiment"]))
    pal = dict(zip(exps, sns.color_palette(PALETTE, len(exps)), strict=True))
    known = {"experiment", "ber", "stuck_sa0", "stuck_sa1", "noise", "n", "mean", "std", "sem",
             "ci95_low", "ci95_high", "clean_accuracy", "drop"}
    knobs = [c for c in summary.columns if c not in known]
    ops = summary.dropna(subset=knobs, how="all") if knobs else summary.iloc[0:0]
    sweeps = [k for k in knobs if ops[k].nunique(dropna=True) > 1]
    noisy = summary["noise"].astype(str).ne("none").any()
    has_ber = summary["ber"].gt(0).any()
    panels = (["ber"] if has_ber or not noisy else []) + sweeps + (["noise"] if noisy else [])
    fig, axes = _grid(len(panels), 3, 4.2, 3.2, sharey=True)
    for ax, panel in zip(axes, panels, strict=True):
        if panel == "noise":
            _noise_panel(ax, summary, exps, pal)
        elif panel == "ber":
            floor = _ber_floor(summary, knobs)
            for exp in exps:
                e = summary[summary["experiment"] == exp]
                e = e.assign(ber=e["ber"].clip(lower=floor))
                e = e.groupby("ber", sort=True)[["mean", "ci95_low", "ci95_high"]].mean()
                _band(ax, e.index.to_series(), e, pal[exp], exp)
            _ber_axis(ax, floor, float(summary["ber"].max()))
        else:
            _knob_panel(ax, ops, panel, knobs, exps, pal, nominal)
        ax.set_ylabel("test accuracy (%)")
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
