"""Co-design search: Optuna multi-objective studies over the pipeline, and their Pareto fronts.

* :mod:`dse.search.space` — the parameter vocabulary, :class:`StudySpec` (a validated
  ``search:`` entry) and :func:`design_for` (a trial's parameters -> :class:`Design`).
* :mod:`dse.search.study` — Optuna storage, fresh start, workers with resume; a worker is given
  the function that measures one design (the wiring's :func:`dse.pipeline.design.evaluate_design`
  through :func:`dse.pipeline.study.run_study_worker`), so this package runs no stage itself.
* :mod:`dse.search.pareto` — fronts, hypervolume, the study summary.

:func:`aggregate` computes a study's tables; the wiring writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from dse.search.pareto import knee
from dse.search.space import PARAMETERS, Design, StudySpec, design_for, parse_study
from dse.search.study import (
    TrialOutcome,
    WorkerReport,
    init_study,
    load_study,
    run_worker,
    trials_frame,
)

__all__ = ["PARAMETERS", "Aggregate", "Design", "StudySpec", "TrialOutcome", "WorkerReport",
           "aggregate", "design_for", "init_study", "knee", "load_study", "parse_study",
           "run_worker", "trials_frame"]


@dataclass
class Aggregate:
    """A study's tables: every finished trial, the Pareto front, the hypervolume history."""

    trials: pd.DataFrame
    front: pd.DataFrame
    hypervolume: pd.DataFrame
    summary: dict[str, Any]


def aggregate(spec: StudySpec, study: Any) -> Aggregate:
    """The tables of a stored study (an ``optuna.Study``)."""
    from dse.errors import DseError
    from dse.search.pareto import hypervolume_history, pareto_front, summary

    trials = trials_frame(spec, study)
    if trials.empty or not (trials["state"] == "COMPLETE").any():
        raise DseError(f"study '{spec.name}' has no complete trial to aggregate; run its workers")
    front = pareto_front(trials, spec.objectives)
    history = hypervolume_history(trials, spec.objectives)
    return Aggregate(trials, front, history, summary(trials, front, spec))
