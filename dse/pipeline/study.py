"""The co-design study wiring: initialise, run a worker (one recipe per trial), aggregate."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd
from filelock import FileLock, Timeout

from dse import seeds
from dse.errors import DseError
from dse.pipeline.artifacts import write_trial
from dse.pipeline.design import evaluate_design, trial_settings
from dse.pipeline.files import write_csv, write_figure, write_json
from dse.pipeline.layout import Layout
from dse.search import (
    TrialOutcome,
    WorkerReport,
    aggregate,
    design_for,
    init_study,
    knee,
    load_study,
    parse_study,
    run_worker,
)
from dse.search.study import open_storage

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
    :func:`~dse.pipeline.design.evaluate_design` and its files go to ``layout.trial_dir``."""
    spec = parse_study(dict(config), name)

    def evaluate(params: dict[str, Any], number: int) -> TrialOutcome:
        design = design_for(spec, dict(config), params)
        seed = seeds.trial_seed(spec.seed, params)
        result = evaluate_design(config, design, layout, layout.model_cache(name),
                                 trial_settings(config, spec.repeats, seed), study=name,
                                 progress=progress, validation=spec.validation)
        record = {"number": number, "worker": worker, "params": params,
                  "metrics": result.metrics, "inject_seed": seed,
                  "training_key": result.training_key, "model_dir": str(result.model_dir),
                  "trained_now": result.trained_now}
        write_trial(layout.trial_dir(name, number), record, result.mapping, result.inject,
                    result.estimate)
        return TrialOutcome(result.metrics, result.trained_now, result.training_key)

    layout.worker_lock(name, worker).parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(layout.worker_lock(name, worker)))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise DseError(f"worker {worker} of study '{name}' is already running (lock "
                       f"{layout.worker_lock(name, worker)}); give this one another --worker "
                       "number or wait for it") from None
    try:
        report = run_worker(spec, layout.journal(name), worker, evaluate)
    finally:
        lock.release()
    write_json(layout.worker_json(name, worker), report)
    return report


def aggregate_study(config: Mapping[str, Any], name: str, layout: Layout) -> dict[str, Any]:
    """Write the study's ``trials.csv``, ``pareto.csv``, ``hypervolume.csv``, its front and
    convergence figures and ``summary.json``; returns the summary."""
    from dse.report.front import front_figure, hypervolume_figure, parallel_figure

    spec = parse_study(dict(config), name)
    result = aggregate(spec, load_study(spec, layout.journal(name)))
    result.front = test_front(config, spec, result.front, layout)
    write_csv(layout.study_file(name, "trials.csv"), result.trials)
    write_csv(layout.study_file(name, "pareto.csv"), result.front)
    write_csv(layout.study_file(name, "hypervolume.csv"), result.hypervolume)
    write_figure(layout.study_file(name, "pareto.png"),
                 front_figure(result.trials, result.front, spec.objectives))
    if len(spec.objectives) >= 3:
        write_figure(layout.study_file(name, "parallel.png"),
                     parallel_figure(result.trials, result.front, spec.objectives))
    write_figure(layout.study_file(name, "hypervolume.png"),
                 hypervolume_figure(result.hypervolume))
    write_json(layout.study_file(name, "summary.json"), result.summary)
    return result.summary


def test_front(config: Mapping[str, Any], spec: Any, front: pd.DataFrame,
               layout: Layout) -> pd.DataFrame:
    """The front with its knee (``knee``, :func:`dse.search.knee`) and, for a study that
    selects on validation images, the accuracy of each Pareto design on the test images,
    measured once here (``test_accuracy``, ``test_accuracy_std``: the trial's model, seed and
    fault-map count, on the test images instead of the held-out ones)."""
    front = front.copy()
    front["knee"] = False
    if front.empty:
        return front
    front.loc[knee(front, spec.objectives), "knee"] = True
    if spec.validation <= 0:
        front["test_accuracy"] = front["accuracy"]
        front["test_accuracy_std"] = front["accuracy_std"]
        return front
    tests, stds = [], []
    for _, row in front.iterrows():
        params = {p.name: _param(row[f"param_{p.name}"], p) for p in spec.params}
        seed = seeds.trial_seed(spec.seed, params)
        result = evaluate_design(config, design_for(spec, dict(config), params), layout,
                                 layout.model_cache(spec.name),
                                 trial_settings(config, spec.repeats, seed), study=spec.name,
                                 validation=spec.validation, estimate_too=False, on_test=True)
        tests.append(result.metrics["accuracy"])
        stds.append(result.metrics["accuracy_std"])
    front["test_accuracy"] = tests
    front["test_accuracy_std"] = stds
    return front


def _param(value: Any, param: Any) -> Any:
    """A parameter value as Optuna suggested it (ints stay ints; choices as listed)."""
    if param.choices is not None:
        return next((c for c in param.choices if c == value or str(c) == str(value)), value)
    return int(value) if param.kind.kind == "int" else float(value)


def repair_study(config: Mapping[str, Any], name: str, layout: Layout) -> int:
    """Rebuild study ``name`` from its trials' files when its journal cannot be read: the old
    journal is kept beside (``journal.log.unreadable``), a fresh study is created and every
    recorded trial is added back; returns how many."""
    import optuna

    from dse.pipeline.artifacts import read_json
    from dse.search.journal import rebuild

    spec = parse_study(dict(config), name)
    if spec.storage:
        raise DseError(f"study '{name}' uses the storage {spec.storage.split('://')[0]}://...; "
                       "--repair rebuilds journal files only")
    folders = sorted((p for p in (layout.study_dir(name) / "trials").glob("*")
                      if (p / "trial.json").is_file()), key=lambda p: int(p.name))
    records = [{"number": int(p.name), **read_json(p / "trial.json", "trial record")}
               for p in folders]
    journal = layout.journal(name)
    if journal.is_file():
        journal.replace(journal.with_name(journal.name + ".unreadable"))
    init_study_files(config, name, layout)
    study = optuna.load_study(study_name=spec.optuna_name,
                              storage=open_storage(spec, journal))
    n = rebuild(study, spec, records)
    log.warning("study %s rebuilt from %d trial records (%d left out); the unreadable journal "
                "is kept as %s.unreadable", name, n, len(records) - n, journal)
    return n
