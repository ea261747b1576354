"""Figures of the report: plain functions from tables (DataFrames) to matplotlib Figures.

Figures are built on :class:`matplotlib.figure.Figure` directly, never through pyplot: no global
figure manager, nothing to close, and ``fig.savefig(path)`` renders with the Agg canvas whatever
backend (if any) the process has, so the functions are safe headless, in Snakemake jobs and in
worker processes, and importing this module does not switch a notebook's backend.

Every function takes tidy tables (one row per observation, the column names of the stage's
contract files plus ``experiment`` / ``chip`` / ``card`` columns where several files are
combined) and raises :class:`DseError` when a column it needs is missing.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from dse.errors import DseError

TASK_COLUMNS = ("after_task", "task", "name", "test_acc")

# Display units of the operating-point knobs (SI in the tables), by name prefix.
KNOB_UNITS = {"i_": (1e6, "µA"), "t_": (1e9, "ns"), "vd": (1.0, "V"), "ti": (1.0, "s")}
# Lowest BER drawn on a card's curve; smaller ones are drawn hollow on it. assumption: below
# 1e-12 no network of this framework's sizes (< 1e8 weights) sees one error in 1e4 inferences.
BER_FLOOR = 1e-12
INFERENCE_COMPONENTS = ("cells", "sense_amps", "adc", "accumulate", "buffer", "periphery")
PALETTE = "deep"


def _require(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DseError(f"{what}: missing column(s) {', '.join(missing)} (expected "
                       f"{', '.join(columns)})")
    if df.empty:
        raise DseError(f"{what}: no rows")


def knob_label(knob: str) -> tuple[float, str]:
    """(scale, axis label) of an operating-point knob: SI value × scale is shown."""
    scale, unit = KNOB_UNITS.get(knob[:2], (1.0, ""))
    return scale, f"{knob} [{unit}]" if unit else knob


def knob_text(knob: str, value: float) -> str:
    """``knob value unit`` in display units, e.g. ``t_write 5 ns``."""
    scale, unit = KNOB_UNITS.get(knob[:2], (1.0, ""))
    return f"{knob} {value * scale:g} {unit}".rstrip()


def _grid(n: int, ncols: int, width: float, height: float, **kw) -> tuple[Figure, list]:
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def figure_to_data_uri(fig: Figure, dpi: int = 100) -> str:
    """PNG ``data:`` URI of a figure (closes pyplot figures, which hold global state)."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi)
    finally:
        import matplotlib.pyplot as plt

        if plt.fignum_exists(getattr(fig, "number", -1)):
            plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def png_to_data_uri(data: bytes) -> str:
    """``data:`` URI of PNG bytes (figures written by the stages themselves)."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise DseError("not a PNG file (re-run the stage that writes it)")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


# ------------------------------------------------------------------------------ calibration
def ber_curves_figure(curves: pd.DataFrame) -> Figure:
    """BER of binary-cell device cards at their operating points, one panel per card.

    ``curves``: card, family, knob (the swept knob), value (SI), ber, and series (the value of
    the card's other knobs as a label, "" when it has one knob). Log BER axis; BERs below
    ``BER_FLOOR`` (and 0) are drawn on it with hollow markers.
    """
    _require(curves, ("card", "family", "knob", "value", "ber", "series"), "BER curves")
    cards = list(dict.fromkeys(curves["card"]))
    fig, axes = _grid(len(cards), 3, 4.2, 3.2)
    for ax, card in zip(axes, cards, strict=True):
        sub = curves[curves["card"] == card]
        knob = str(sub["knob"].iloc[0])
        scale, label = knob_label(knob)
        positive = sub["ber"][sub["ber"] > 0]
        floor = max(float(positive.min()) / 10 if len(positive) else BER_FLOOR, BER_FLOOR)
        series = list(dict.fromkeys(sub["series"]))
        pal = sns.color_palette("viridis", len(series)) if len(series) > 1 else ["C0"]
        for col, s in zip(pal, series, strict=True):
            d = sub[sub["series"] == s].sort_values("value")
            x = d["value"] * scale
            below = d["ber"] < floor
            ax.plot(x, d["ber"].clip(lower=floor), color=col, label=s or None)
            ax.plot(x[~below], d["ber"][~below], "o", ms=4, color=col)
            ax.plot(x[below], [floor] * int(below.sum()), "o", mfc="white", color=col, ms=5)
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("bit error rate")
        ax.set_title(f"{card} ({sub['family'].iloc[0]})", fontsize=9)
        if len(series) > 1:
            ax.legend(fontsize=7, title=None)
    return fig


# --------------------------------------------------------------------------------- training
def learning_curves_figure(history: pd.DataFrame) -> Figure:
    """Train / test accuracy (left axis) and loss (right axis) per epoch, one panel per
    experiment; dotted lines mark task boundaries of continual-learning runs."""
    _require(history, ("experiment", "epoch", "task", "loss", "train_acc", "test_acc"),
             "history")
    exps = list(dict.fromkeys(history["experiment"]))
    fig, axes = _grid(len(exps), 3, 4.0, 2.9)
    for ax, exp in zip(axes, exps, strict=True):
        h = history[history["experiment"] == exp].sort_values("epoch")
        ax.plot(h["epoch"], 100 * h["train_acc"], color="C0", lw=1.5, label="train")
        ax.plot(h["epoch"], 100 * h["test_acc"], color="C1", lw=1.8, label="test")
        for e in h["epoch"][h["task"].diff().fillna(0) != 0]:
            ax.axvline(e - 0.5, color="0.6", ls=":", lw=1)
        ax.set_ylim(0, 100)
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(exp, fontsize=9)
        ax2 = ax.twinx()
        ax2.plot(h["epoch"], h["loss"], color="0.4", ls="--", lw=1, label="loss")
        ax2.set_ylabel("loss", color="0.4")
        ax2.tick_params(axis="y", colors="0.4")
        ax2.set_ylim(bottom=0)
        ax2.grid(False)
        if len(h) == 1:
            for a in (ax, ax2):
                for line in a.get_lines():
                    line.set_marker("o")
        lines = ax.get_lines()[:2] + ax2.get_lines()[:1]
        ax.legend(lines, [ln.get_label() for ln in lines], fontsize=7, loc="lower right")
    return fig


def pulses_figure(pulses: pd.DataFrame) -> Figure:
    """Device programming pulses counted during training, per layer and direction (summed over
    epochs), one panel per experiment; log axis."""
    _require(pulses, ("experiment", "layer", "direction", "pulses"), "pulses")
    total = (pulses.groupby(["experiment", "layer", "direction"], sort=False)["pulses"].sum()
             .reset_index())
    exps = list(dict.fromkeys(total["experiment"]))
    fig, axes = _grid(len(exps), 3, 4.0, 3.0)
    for ax, exp in zip(axes, exps, strict=True):
        d = total[total["experiment"] == exp]
        sns.barplot(data=d, x="layer", y="pulses", hue="direction", ax=ax, palette=PALETTE,
                    hue_order=[h for h in ("up", "down") if h in set(d["direction"])] or None)
        if (d["pulses"] > 0).any():
            ax.set_yscale("log")
        ax.set_title(exp, fontsize=9)
        ax.set_ylabel("pulses (all epochs)")
        ax.legend(fontsize=7, title=None)
    return fig


def task_matrix_figure(df: pd.DataFrame, title: str | None = None) -> Figure:
    """Heatmap of a ``tasks.csv`` table: test accuracy on every task (columns) after training
    each task (rows), annotated in percent; the diagonal is each task just learnt, the lower
    triangle is retention (forgetting), the upper triangle tasks not trained yet.
    """
    missing = [c for c in TASK_COLUMNS if c not in df.columns]
    if missing:
        raise DseError(f"tasks table: missing column(s) {', '.join(missing)} (expected "
                       f"{', '.join(TASK_COLUMNS)}, as written by `dse train` in tasks.csv)")
    if df.empty:
        raise DseError("tasks table: no rows (re-run `dse train`)")
    names = (df.drop_duplicates("task").set_index("task")["name"].astype(str).sort_index())
    matrix = (df.pivot_table(index="after_task", columns="task", values="test_acc",
                             aggfunc="mean").sort_index().sort_index(axis=1))
    n_rows, n_cols = matrix.shape
    fig = Figure(figsize=(2.2 + 1.1 * n_cols, 1.4 + 0.6 * n_rows), layout="constrained")
    ax = fig.subplots()
    sns.heatmap(100.0 * matrix, ax=ax, vmin=0.0, vmax=100.0, cmap="viridis", annot=True,
                fmt=".1f", cbar_kws={"label": "test accuracy (%)"}, square=False,
                xticklabels=[f"{t}: {names.get(t, t)}" for t in matrix.columns],
                yticklabels=[str(t) for t in matrix.index])
    ax.set_xlabel("tested on task")
    ax.set_ylabel("after training task")
    ax.tick_params(axis="x", labelrotation=30)
    ax.tick_params(axis="y", labelrotation=0)
    ax.set_title(title or "Accuracy on every task after each task")
    return fig


# ---------------------------------------------------------------------------------- mapping
def mapping_figure(layers: pd.DataFrame) -> Figure:
    """Tiles (arrays) and utilisation per layer: one column of panels per chip, bars per
    experiment."""
    _require(layers, ("experiment", "chip", "layer", "tiles", "utilisation"), "mapping")
    chips = list(dict.fromkeys(layers["chip"]))
    fig = Figure(figsize=(max(4.2 * len(chips), 5.0), 5.6), layout="constrained")
    axes = fig.subplots(2, len(chips), squeeze=False, sharex="col")
    exps = list(dict.fromkeys(layers["experiment"]))
    pal = dict(zip(exps, sns.color_palette(PALETTE, len(exps)), strict=True))
    for j, chip in enumerate(chips):
        d = layers[layers["chip"] == chip]
        order = list(dict.fromkeys(d["layer"]))
        hue_order = [e for e in exps if e in set(d["experiment"])]
        for i, (col, label) in enumerate((("tiles", "tiles (arrays)"),
                                          ("utilisation", "utilisation"))):
            ax = axes[i][j]
            sns.barplot(data=d, x="layer", y=col, hue="experiment", order=order,
                        hue_order=hue_order, palette=pal, ax=ax, legend=(i == 0))
            ax.set_ylabel(label)
            if col == "utilisation":
                ax.set_ylim(0, 1.05)
            else:
                ax.set_title(chip, fontsize=9)
                if ax.get_legend() is not None:
                    ax.legend(fontsize=7, title=None)
    return fig


# --------------------------------------------------------------------------- energy / area
def energy_area_figure(table: pd.DataFrame, title: str | None = None) -> Figure:
    """Energy per inference (pJ) and area (µm²) per layer, stacked by component; one column of
    panels per experiment (the estimate stage's tables of one chip, column ``experiment``)."""
    _require(table, ("experiment", "layer", "component", "scope", "energy_pJ", "area_um2"),
             "estimate table")
    inf = table[table["scope"] == "inference"]
    if inf.empty:
        raise DseError("estimate table: no inference rows")
    exps = list(dict.fromkeys(inf["experiment"]))
    comps = [c for c in INFERENCE_COMPONENTS if c in set(inf["component"])]
    comps += [c for c in dict.fromkeys(inf["component"]) if c not in comps]
    palette = sns.color_palette("tab10", 10)  # one colour per component in every figure
    known = list(INFERENCE_COMPONENTS) + [c for c in comps if c not in INFERENCE_COMPONENTS]
    colors = {c: palette[known.index(c) % 10] for c in comps}
    fig = Figure(figsize=(max(3.4 * len(exps), 5.0), 5.8), layout="constrained")
    axes = fig.subplots(2, len(exps), squeeze=False)
    for j, exp in enumerate(exps):
        d = inf[inf["experiment"] == exp]
        layers = list(dict.fromkeys(d["layer"]))
        for i, (col, label) in enumerate((("energy_pJ", "energy per inference (pJ)"),
                                          ("area_um2", "area (µm²)"))):
            ax = axes[i][j]
            pivot = (d.pivot_table(index="layer", columns="component", values=col,
                                   aggfunc="sum").reindex(index=layers, columns=comps)
                     .fillna(0.0))
            bottom = np.zeros(len(layers))
            for comp in comps:
                vals = pivot[comp].to_numpy(float)
                if not vals.any():
                    continue
                ax.bar(layers, vals, bottom=bottom, color=colors[comp], label=comp, width=0.65)
                bottom += vals
            ax.set_ylabel(label)
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4))
            if i == 0:
                ax.set_title(exp, fontsize=9)
    found: dict[str, Any] = {}
    for ax in axes.ravel():
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            found.setdefault(lab, h)
    labels = [c for c in comps if c in found]
    handles = [found[c] for c in labels]
    fig.legend(handles, labels, loc="outside right center", fontsize=8, title="component")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
