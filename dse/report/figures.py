"""Figures of the report: plain functions from tables (DataFrames) to matplotlib Figures.

Figures are built on :class:`matplotlib.figure.Figure` directly, never through pyplot: no global
figure manager, nothing to close, and ``fig.savefig(path)`` renders with the Agg canvas whatever
backend (if any) the process has, so the functions are safe headless, in Snakemake jobs and in
worker processes, and importing this module does not switch a notebook's backend.
"""

from __future__ import annotations

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from dse.errors import DseError

TASK_COLUMNS = ("after_task", "task", "name", "test_acc")


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
