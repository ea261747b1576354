"""Per-point summary of an inject table (:mod:`dse.chip.inject`): mean and Student t interval
of the accuracy over each operating point's fault maps."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def summarize(table: pd.DataFrame, clean_accuracy: float | None = None,
              confidence: float = 0.95) -> pd.DataFrame:
    """Mean and ``confidence`` interval (Student t, scipy.stats) of the accuracy per point."""
    clean = clean_accuracy if clean_accuracy is not None else table.attrs.get("clean_accuracy")
    keys = [c for c in table.columns if c not in ("repeat", "accuracy")]
    g = table.groupby(keys, dropna=False, sort=False)["accuracy"]
    out = g.agg(n="count", mean="mean", std="std").reset_index()
    out["std"] = out["std"].fillna(0.0)
    out["sem"] = out["std"] / np.sqrt(out["n"])
    lo, hi = [], []
    for n, mean, sem in zip(out["n"], out["mean"], out["sem"], strict=True):
        if n < 2:
            lo.append(np.nan)
            hi.append(np.nan)
        elif sem == 0:
            lo.append(mean)
            hi.append(mean)
        else:
            a, b = stats.t.interval(confidence, n - 1, loc=mean, scale=sem)
            lo.append(float(a))
            hi.append(float(b))
    tag = f"ci{round(confidence * 100)}"
    out[f"{tag}_low"] = lo
    out[f"{tag}_high"] = hi
    out["clean_accuracy"] = np.nan if clean is None else float(clean)
    by_task = table.attrs.get("clean_by_task")
    if by_task and "task" in out.columns:  # a task stream: each task's own clean accuracy
        out["clean_accuracy"] = out["task"].map(by_task).astype(float)
    out["drop"] = out["clean_accuracy"] - out["mean"]
    return out
