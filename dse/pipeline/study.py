"""The co-design study wiring: initialise, run a worker (one recipe per trial), aggregate."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from dse import seeds
from dse.pipeline.artifacts import write_trial
from dse.pipeline.files import write_csv, write_figure, write_json
from dse.pipeline.layout import Layout
from dse.pipeline.recipes import evaluate_design, trial_settings
from dse.search import (
    TrialOutcome,
    WorkerReport,
    aggregate,
    design_for,
    init_study,
    load_study,
    parse_study,
    run_worker,
)

log = logging.getLogger(__name__)


def init_study_files(config: Mapping[str, Any], name: str, layout: Layout) -> dict[str, Any]:
    """Create the study afresh and write its ``study.json``."""
    spec = parse_study(dict(config), name)
    info = init_study(spec, layout.journal(name))
    write_json(layout.study_json(name), info)
    return info


def run_study_worker(config: Mapping[str, Any], name: str, worker: int, layout: Layout,
                     progress: bool = False) -> WorkerReport:
    """Run worker ``worker`` of study ``name`` until the study has its trials; every trial is
    :func:`~dse.pipeline.recipes.evaluate_design` and its files go to ``layout.trial_dir``."""
    spec = parse_study(dict(config), name)

    def evaluate(params: dict[str, Any], number: int) -> TrialOutcome:
        design = design_for(spec, dict(config), params)
        seed = seeds.trial_seed(spec.seed, params)
        result = evaluate_design(config, design, layout, layout.model_cache(name),
                                 trial_settings(config, spec.repeats, seed), study=name,
                                 progress=progress)
        record = {"params": params, "metrics": result.metrics, "inject_seed": seed,
                  "training_key": result.training_key, "model_dir": str(result.model_dir),
                  "trained_now": result.trained_now}
        write_trial(layout.trial_dir(name, number), record, result.mapping, result.inject,
                    result.estimate)
        return TrialOutcome(result.metrics, result.trained_now, result.training_key)

    report = run_worker(spec, layout.journal(name), worker, evaluate)
    write_json(layout.worker_json(name, worker), report)
    return report


def aggregate_study(config: Mapping[str, Any], name: str, layout: Layout) -> dict[str, Any]:
    """Write the study's ``trials.csv``, ``pareto.csv``, ``hypervolume.csv``, its front and
    convergence figures and ``summary.json``; returns the summary."""
    from dse.report.front import front_figure, hypervolume_figure

    spec = parse_study(dict(config), name)
    result = aggregate(spec, load_study(spec, layout.journal(name)))
    write_csv(layout.study_file(name, "trials.csv"), result.trials)
    write_csv(layout.study_file(name, "pareto.csv"), result.front)
    write_csv(layout.study_file(name, "hypervolume.csv"), result.hypervolume)
    write_figure(layout.study_file(name, "pareto.png"),
                 front_figure(result.trials, result.front, spec.objectives))
    write_figure(layout.study_file(name, "hypervolume.png"),
                 hypervolume_figure(result.hypervolume))
    write_json(layout.study_file(name, "summary.json"), result.summary)
    return result.summary
