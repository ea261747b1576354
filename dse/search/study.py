"""Optuna studies: storage, fresh start, workers with resume, and the trial table.

* **Storage**: Optuna's journal file (the study's ``journal.log``, see
  :class:`dse.pipeline.layout.Layout`) by default, for workers on one machine; an RDB URL
  (``postgresql://...``) from ``search.{study}.storage`` for workers spread over a cluster, with
  Optuna's heartbeat so trials of dead workers are retried (credentials, heartbeat and connection
  errors: :mod:`dse.search.storage`).
* **Fresh start**: :func:`init_study` (the Snakemake ``search_init`` job) deletes the study of
  the same name and recreates it. The Optuna study name carries a hash of the search space, so a
  changed space is always a new study; ``--forceall`` reruns ``search_init`` and starts afresh.
* **Workers**: :func:`run_worker` joins the study and runs trials until ``trials`` are complete.
  Worker ``k`` seeds its sampler from the study seed (stream ``sampler.{k}.{restart}``); a
  single worker is exactly reproducible, several are not (they interleave asynchronously,
  Optuna FAQ).
* **Resume**: every finished trial is in the storage the moment it ends, so a killed worker (kill
  −9 included) loses only the trial it was running. On an RDB storage its trial stops beating
  and is failed and re-queued by the next worker that looks (Optuna's heartbeat). Journal storage
  has no heartbeat: a trial left RUNNING is stale only when its worker's process is gone (same
  host, pid and process start time: :mod:`dse.search.workers`); it is marked FAIL and its
  parameters are enqueued again, and such failures do not count toward a worker's failure cap.
  Two workers with the same number are refused (a lock per worker number, the wiring's).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from dse import seeds
from dse.errors import DseError
from dse.search.journal import check_records, mend_torn_record
from dse.search.space import StudySpec
from dse.search.storage import fail_stale_trials, has_heartbeat, open_rdb, public_url
from dse.search.workers import own_failures, recover_stale_trials, stamp

log = logging.getLogger(__name__)

SAMPLERS = ("tpe", "nsga2", "random", "gp")


def make_sampler(spec: StudySpec, worker: int = 0, restart: int = 0) -> optuna.samplers.BaseSampler:
    """The study's sampler, seeded from the study seed by worker and restart (stream
    ``sampler.{worker}.{restart}`` of :mod:`dse.seeds`: a worker restarting on a study that
    already has its trials does not replay the suggestions it made before)."""
    seed = seeds.seed_for(spec.seed, f"sampler.{worker}.{restart}") % 2**32
    if spec.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if spec.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed,
                                             population_size=max(4, min(50, spec.trials // 2)))
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    raise DseError(f"search.{spec.name}.sampler: unknown sampler '{spec.sampler}' "
                   f"(known: {', '.join(SAMPLERS)})")


def open_storage(spec: StudySpec, journal: Path) -> optuna.storages.BaseStorage:
    """The journal file ``journal`` (default) or the configured RDB URL."""
    if spec.storage:
        return open_rdb(spec)
    from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

    journal.parent.mkdir(parents=True, exist_ok=True)
    lock = JournalFileSymlinkLock(str(journal))
    lock.acquire()  # the writers' own lock: no record is half-written while we look
    try:
        mend_torn_record(journal)
        check_records(journal)
    finally:
        lock.release()
    return optuna.storages.JournalStorage(JournalFileBackend(str(journal), lock_obj=lock))


def init_study(spec: StudySpec, journal: Path) -> dict[str, Any]:
    """Create the study afresh (dropping an old one of the same name); returns its description."""
    if not spec.storage:
        journal.unlink(missing_ok=True)
    storage = open_storage(spec, journal)
    if spec.storage:
        try:
            optuna.delete_study(study_name=spec.optuna_name, storage=storage)
        except KeyError:
            pass
    study = optuna.create_study(study_name=spec.optuna_name, storage=storage,
                                directions=list(spec.objectives.values()))
    with warnings.catch_warnings():  # set_metric_names is marked experimental in Optuna 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(spec.objectives))
    study.set_user_attr("dse_study", spec.name)
    study.set_user_attr("space", spec.raw)
    return {"study": spec.name, "optuna_study": spec.optuna_name,
            "space_hash": spec.space_hash(),
            "storage": public_url(spec) if spec.storage else str(journal),
            "trials": spec.trials,
            "workers": spec.workers, "objectives": spec.objectives, "seed": spec.seed}


def _suggest(trial: optuna.Trial, spec: StudySpec) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for p in spec.params:
        if p.choices is not None:
            params[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        elif p.kind.kind == "int":
            params[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log,
                                               step=int(p.step or 1))
        else:
            params[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log, step=p.step)
    return params


@dataclass
class WorkerReport:
    worker: int
    trials_run: int
    trainings: int
    seconds: float


@dataclass
class TrialOutcome:
    """What evaluating one trial's design returns to the worker loop."""

    metrics: dict[str, float]
    trained_now: bool
    training_key: str


Evaluate = Callable[[dict[str, Any], int], TrialOutcome]


def _objective(spec: StudySpec, study: optuna.Study, worker: int, evaluate: Evaluate,
               counts: dict[str, int],
               heartbeat: bool) -> Callable[[optuna.Trial], tuple[float, ...]]:
    """The Optuna objective of worker ``worker``: stamps the trial with the worker, host and
    pid, suggests the parameters, evaluates the design and records metrics and constraints
    (on a storage with a heartbeat, a trial beyond the total is pruned before it is sampled)."""
    def objective(trial: optuna.Trial) -> tuple[float, ...]:
        stamp(trial, worker)  # before the parameters are drawn (dse.search.workers)
        if heartbeat and _surplus(study, trial.number, spec.trials):
            trial.set_user_attr("surplus", True)
            raise optuna.TrialPruned("the study's trials are complete or running")
        params = _suggest(trial, spec)
        outcome = evaluate(params, trial.number)
        metrics = outcome.metrics
        missing = [m for m in (*spec.objectives, *(c.metric for c in spec.constraints))
                   if m not in metrics]
        if missing:
            raise DseError(f"search.{spec.name}: the design gives no {', '.join(missing)} "
                           "(latency metrics need the chip card's digital.clock and a sense "
                           "or ADC time)")
        trial.set_user_attr("metrics", metrics)
        trial.set_user_attr("trained", bool(outcome.trained_now))
        trial.set_user_attr("training_key", outcome.training_key)
        for c in spec.constraints:
            for key, value in c.violations(metrics).items():
                trial.set_constraint(key, value)
        counts["run"] += 1
        counts["trained"] += int(outcome.trained_now)
        log.info("trial %d %s -> %s", trial.number, params,
                 {k: round(v, 4) for k, v in metrics.items() if k in spec.objectives})
        return tuple(float(metrics[m]) for m in spec.objectives)

    return objective


def run_worker(spec: StudySpec, journal: Path, worker: int, evaluate: Evaluate) -> WorkerReport:
    """Join the study and run trials until ``trials`` of them are complete.

    ``evaluate(params, trial_number)`` measures one design (the wiring's recipe, which also
    writes the trial's files); a :class:`DseError` it raises fails that trial only.
    """
    if not spec.storage and not journal.is_file():
        raise DseError(f"study '{spec.name}' is not initialised ({journal} missing); "
                       f"run `dse search --config ... --study {spec.name} --init` first")
    storage = open_storage(spec, journal)
    try:
        study = optuna.load_study(study_name=spec.optuna_name, storage=storage)
    except KeyError:
        raise DseError(f"study '{spec.name}' ({spec.optuna_name}) not found in its storage; "
                       "the search space changed since --init, run --init again") from None
    heartbeat = has_heartbeat(storage)
    _recover(study, worker, heartbeat)
    mine = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("worker") == worker]
    study.sampler = make_sampler(spec, worker, restart=len(mine))
    counts = {"run": 0, "trained": 0}
    objective = _objective(spec, study, worker, evaluate, counts, heartbeat)
    t0 = time.perf_counter()
    max_attempts = 3 * spec.trials
    waiting_since: float | None = None
    while counts["run"] < max_attempts:
        _recover(study, worker, heartbeat)
        complete = _n_state(study, TrialState.COMPLETE)
        running = _n_state(study, TrialState.RUNNING)
        if complete >= spec.trials:
            break
        if complete + running >= spec.trials:
            # Other workers are finishing the last trials: wait for them instead of starting
            # one more than the total. With a heartbeat, a dead worker's trial fails by itself;
            # without one, not forever (a worker on another host may have died without a
            # heartbeat to tell; one extra trial is better than a hung job).
            waiting_since = waiting_since or time.monotonic()
            if heartbeat or time.monotonic() - waiting_since < _patience(study):
                time.sleep(_POLL_SECONDS)
                continue
        waiting_since = None
        study.optimize(objective, n_trials=1, catch=(DseError,), show_progress_bar=False)
        failed = own_failures(study, worker)  # not the trials of workers that died
        if failed >= max_attempts:
            raise DseError(f"study '{spec.name}': {failed} trials failed; see the log")
    return WorkerReport(worker, counts["run"], counts["trained"], time.perf_counter() - t0)


_POLL_SECONDS = 0.5


def _recover(study: optuna.Study, worker: int, heartbeat: bool) -> None:
    """Fail and re-queue the trials of dead workers: by heartbeat (RDB storages), else by
    worker id and process (journal)."""
    if heartbeat:
        fail_stale_trials(study)
    else:
        recover_stale_trials(study)


def _surplus(study: optuna.Study, number: int, total: int) -> bool:
    """Whether trial ``number`` would go beyond ``total``: the complete trials and the trials
    before it that may still complete (running or queued) fill the study already. Trial numbers
    follow creation, so of two workers starting the last trial at the same instant exactly one
    goes ahead (the other's trial is PRUNED, unevaluated, with user attribute ``surplus``)."""
    trials = study.get_trials(deepcopy=False)
    done = sum(t.state == TrialState.COMPLETE for t in trials)
    ahead = sum(t.state in (TrialState.RUNNING, TrialState.WAITING) and t.number < number
                for t in trials)
    return done + ahead >= total


def _n_state(study: optuna.Study, state: TrialState) -> int:
    return len(study.get_trials(deepcopy=False, states=(state,)))


def _patience(study: optuna.Study) -> float:
    """How long to wait for other workers' last trials: 3 x the slowest complete trial (at
    least a minute)."""
    durations = [t.duration.total_seconds() for t in
                 study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.duration]
    return max(60.0, 3.0 * max(durations, default=0.0))


def load_study(spec: StudySpec, journal: Path) -> optuna.Study:
    """The study as stored (for aggregation and the report)."""
    storage = open_storage(spec, journal)
    try:
        return optuna.load_study(study_name=spec.optuna_name, storage=storage)
    except KeyError:
        raise DseError(f"study '{spec.name}' not found; run its workers first") from None


def trials_frame(spec: StudySpec, study: optuna.Study) -> pd.DataFrame:
    """One row per finished trial: number, state, worker, params, metrics, feasibility."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state not in (TrialState.COMPLETE, TrialState.FAIL):
            continue
        row: dict[str, Any] = {"number": t.number, "state": t.state.name,
                               "worker": t.user_attrs.get("worker"),
                               "trained": t.user_attrs.get("trained"),
                               "training_key": t.user_attrs.get("training_key"),
                               "seconds": t.duration.total_seconds() if t.duration else None}
        row.update({f"param_{k}": v for k, v in t.params.items()})
        row.update(t.user_attrs.get("metrics", {}))
        cons = t.constraints or {}
        row["feasible"] = all(v <= 0 for v in cons.values()) if t.state == TrialState.COMPLETE \
            else False
        rows.append(row)
    return pd.DataFrame(rows).sort_values("number").reset_index(drop=True) if rows else \
        pd.DataFrame(columns=["number", "state"])
