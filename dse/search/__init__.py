"""Co-design search: Optuna multi-objective studies over the pipeline, and their Pareto fronts.

A trial is train (cached by training-relevant settings) → map → inject → estimate, called as
Python functions with the trial's parameters (:mod:`dse.search.evaluate`). Workers share one
Optuna storage (:mod:`dse.search.study`); :func:`aggregate` writes the study's tables and figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dse.search.space import PARAMETERS, StudySpec, parse_study
from dse.search.study import init_study, load_study, run_worker, study_dir, trials_frame

__all__ = ["PARAMETERS", "StudySpec", "aggregate", "init_study", "load_study", "parse_study",
           "run_worker", "study_dir", "trials_frame"]


def aggregate(config: dict[str, Any], name: str, results: Path) -> dict[str, Any]:
    """Write ``trials.csv``, ``pareto.csv``, ``hypervolume.csv``, the front and convergence
    figures and ``summary.json`` under ``results/search/{name}/``; returns the summary."""
    import matplotlib.pyplot as plt

    from dse.ioutil import atomic_output, write_csv, write_json
    from dse.search.pareto import (
        front_figure,
        hypervolume_figure,
        hypervolume_history,
        pareto_front,
        summary,
    )

    spec, study = load_study(config, name, results)
    root = study_dir(results, name)
    trials = trials_frame(spec, study)
    if trials.empty or not (trials["state"] == "COMPLETE").any():
        from dse.errors import DseError

        raise DseError(f"study '{name}' has no complete trial to aggregate; run its workers")
    front = pareto_front(trials, spec.objectives)
    history = hypervolume_history(trials, spec.objectives)
    write_csv(root / "trials.csv", trials)
    write_csv(root / "pareto.csv", front)
    write_csv(root / "hypervolume.csv", history)
    for fname, fig in (("pareto.png", front_figure(trials, front, spec.objectives)),
                       ("hypervolume.png", hypervolume_figure(history))):
        with atomic_output(root / fname) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
        plt.close(fig)
    info = summary(trials, front, spec)
    write_json(root / "summary.json", info)
    return info
