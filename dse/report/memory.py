"""Report items of the ECG and on-chip continual-learning studies (issue 17): the weight memory
of every experiment against its accuracy, and the retention of every task of a task stream under
the chips' bit errors (the inject stage's per-task rows)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from dse.report.data import ReportData
from dse.report.items import Builder

BITS = {"float": 32, "binary": 1, "ternary": 2}  # as dse.nn.memory (report never imports nn)


def weight_bits(meta: dict[str, Any]) -> int | None:
    """Weight bits of a model.json: its layers' ``weight_bits`` (or, for a model.json written
    before they were recorded, the experiment's precision x the weight counts)."""
    layers = meta.get("layers") or []
    if not layers:
        return None
    precision = meta.get("experiment", {}).get("precision", "binary")
    return int(sum(ly.get("weight_bits", BITS.get(precision, 32) * math.prod(ly["shape"]))
                   for ly in layers))


def memory_frame(data: ReportData) -> pd.DataFrame:
    rows = []
    for exp, meta in data.models.items():
        bits = weight_bits(meta)
        if bits is None:
            continue
        e = meta.get("experiment", {})
        precisions = sorted({ly.get("precision", e.get("precision")) for ly in meta["layers"]})
        rows.append({"experiment": exp, "model": e.get("model"),
                     "binarize": e.get("binarize", "whole"),
                     "layer precisions": "/".join(str(p) for p in precisions),
                     "weight bits": bits, "weight kB": bits / 8 / 1024,
                     "test accuracy": meta.get("test_accuracy")})
    return pd.DataFrame(rows)


def memory_figure(table: pd.DataFrame) -> Figure:
    fig = Figure(figsize=(6.0, 3.8))
    ax = fig.subplots()
    sns.scatterplot(data=table, x="weight kB", y="test accuracy", hue="model", ax=ax, s=60)
    for _, r in table.iterrows():
        ax.annotate(r["experiment"], (r["weight kB"], r["test accuracy"]), fontsize=7,
                    textcoords="offset points", xytext=(4, 3))
    ax.set_xscale("log")
    ax.set(xlabel="weight memory (kB, 32 bits per float weight, 1 per binary, 2 per ternary)",
           ylabel="clean test accuracy")
    fig.tight_layout()
    return fig


def weight_memory(b: Builder, data: ReportData) -> None:
    """The weight-memory table and figure of the training section."""
    table = memory_frame(data)
    if table.empty:
        return
    b.table("Weight memory", table, formats={"weight kB": ".2f", "test accuracy": ".4f"})
    b.figure("Weight memory vs accuracy", lambda: memory_figure(table),
             "Bits of the weights each network stores (BatchNorm and biases left out) against "
             "its clean test accuracy; binarize: which part of an ecg-cnn is binary (whole, "
             "classifier = the fully connected layers only, none = float).")


def deployed(summary: pd.DataFrame) -> pd.DataFrame:
    """The rows of the deployed (last) task of a per-task inject summary; others unchanged."""
    if "task" not in summary.columns:
        return summary
    return summary[summary["task"] == summary["task"].max()].drop(columns="task")


def retention_frame(data: ReportData) -> pd.DataFrame:
    """The per-task inject summaries (direct BERs), one row per experiment, chip, task, BER."""
    parts = []
    for (exp, chip), s in data.inject.items():
        if "task" in s.columns:
            direct = s if "i_prog" not in s.columns else s[s["i_prog"].isna()]
            parts.append(direct[["task", "ber", "mean", "ci95_low", "ci95_high",
                                 "clean_accuracy"]].assign(experiment=exp, chip=chip))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def retention_figure(table: pd.DataFrame, title: str) -> Figure:
    fig = Figure(figsize=(6.0, 3.8))
    ax = fig.subplots()
    floor = table.loc[table["ber"] > 0, "ber"].min() / 3 if (table["ber"] > 0).any() else 1e-4
    for task, d in table.groupby("task"):
        d = d.groupby("ber", as_index=False)[["mean", "ci95_low", "ci95_high"]].mean()
        x = d["ber"].where(d["ber"] > 0, floor)
        line, = ax.plot(x, d["mean"], marker="o", label=f"task {task}")
        ax.fill_between(x, d["ci95_low"], d["ci95_high"], color=line.get_color(), alpha=0.2)
    ax.set_xscale("log")
    ax.set(xlabel="bit error rate (BER 0 at the left)", ylabel="test accuracy", title=title)
    ax.legend(title="after the last task")
    fig.tight_layout()
    return fig


def chip_retention(b: Builder, data: ReportData) -> None:
    """Retention of every task under the chips' bit errors (continual-learning section)."""
    table = retention_frame(data)
    if table.empty:
        return
    for (exp, chip), t in table.groupby(["experiment", "chip"], sort=False):
        b.figure(f"{exp} on {chip}: retention under bit errors",
                 lambda t=t, e=exp, c=chip: retention_figure(t, f"{e} on {c}"),
                 "Every task tested with its own BatchNorm (running statistics, the deployed "
                 "thresholds) on the same fault maps; band: 95 % confidence interval of the "
                 "mean over the maps.")
    wide = table.pivot_table(index=["experiment", "chip", "ber"], columns="task",
                             values="mean").reset_index()
    wide.columns = [c if isinstance(c, str) else f"task {c}" for c in wide.columns]
    b.table("Retention on the chips (mean accuracy per task)", wide,
            formats={c: ".4f" for c in wide.columns if c.startswith("task")} | {"ber": ".3g"})
