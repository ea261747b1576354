"""Which worker runs a trial, and when a RUNNING trial is a dead worker's (journal storages).

A worker stamps each trial it starts with its worker number, host, pid and the process's start
time (:func:`stamp`) before it draws the trial's parameters. On a journal storage (no
heartbeat) a RUNNING trial is stale only when its worker's process is gone: same host and the
pid not running, or running with another start time (the pid was reused). A RUNNING trial
without a stamp older than :data:`UNSTAMPED_GRACE` belongs to a worker killed between Optuna's
``ask`` and its first attribute: a live worker stamps it within milliseconds. A stale trial is
failed and its parameters are queued again, marked ``retry_of``; such failures are the dead
worker's, not the study's, and do not count toward a worker's failure cap
(:func:`own_failures`). RDB storages use Optuna's heartbeat instead (:mod:`dse.search.storage`).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import socket
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

log = logging.getLogger(__name__)

UNSTAMPED_GRACE = 30.0  # seconds: a live worker stamps its trial at once (assumption)


def process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (Linux: field 22 of /proc/PID/stat, clock ticks since
    boot), or None when it is not running or the system does not tell."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # fields after the command name; 22nd overall


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if start is None:
        return True
    now = process_start(pid)
    return now is None or now == start


def stamp(trial: optuna.Trial, worker: int) -> None:
    """Record who runs ``trial`` (first thing after Optuna created it)."""
    pid = os.getpid()
    trial.set_user_attr("worker", worker)
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", pid)
    start = process_start(pid)
    if start is not None:
        trial.set_user_attr("pid_start", start)


def is_stale(t: optuna.trial.FrozenTrial, host: str, now: _dt.datetime) -> bool:
    """Whether RUNNING trial ``t`` belongs to a dead worker (see the module docstring)."""
    attrs = t.user_attrs
    if "pid" not in attrs:
        started = t.datetime_start
        return started is not None and (now - started).total_seconds() > UNSTAMPED_GRACE
    if attrs.get("host") != host:
        return False  # another host: only a heartbeat (RDB storage) can tell
    return not _alive(int(attrs["pid"]), attrs.get("pid_start"))


def recover_stale_trials(study: optuna.Study) -> list[int]:
    """Fail the RUNNING trials of dead workers and enqueue their parameters again."""
    host, now = socket.gethostname(), _dt.datetime.now()
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not is_stale(t, host, now):
            continue
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
        if t.params:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        failed.append(t.number)
        log.warning("trial %d of a dead worker marked FAIL%s", t.number,
                    " and re-queued" if t.params else "")
    return failed


def own_failures(study: optuna.Study, worker: int) -> int:
    """Failed trials of ``worker`` that it failed itself: trials failed because their worker
    died (re-queued with ``retry_of``, or retried after a missed heartbeat) are left out."""
    trials = study.get_trials(deepcopy=False)
    recovered: set[Any] = {t.user_attrs.get("retry_of") for t in trials}
    with warnings.catch_warnings():  # marked experimental in Optuna 5, public and documented
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        recovered |= {optuna.storages.RetryFailedTrialCallback.retried_trial_number(t)
                      for t in trials}
    return sum(t.state == TrialState.FAIL and t.user_attrs.get("worker") == worker
               and t.number not in recovered for t in trials)
