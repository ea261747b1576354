"""Co-design studies on a real PostgreSQL server: workers in separate processes, a worker killed
with SIGKILL mid-trial (failed by Optuna's heartbeat and retried), optuna-dashboard on the same
server, credentials that never leak, and one-line errors for a wrong password or no server.

The server is the session's throwaway one (``postgres`` fixture, tests/conftest.py); every test
is skipped, with the reason, where it cannot start.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import yaml
from optuna.trial import FrozenTrial, TrialState

from dse.config import check_config
from dse.pipeline import Layout
from dse.pipeline.study import aggregate_study, init_study_files
from dse.search import load_study as _load_study
from dse.search import parse_study
from dse.search.storage import PASSWORD_ENV
from dse.tools.postgres import PostgresServer

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.postgres, pytest.mark.slow]

# Heartbeat every second, failed after 5 s without one: a killed worker's trial is retried within
# seconds (config/schema.yaml's defaults, 60 s / 120 s, suit real trials of minutes).
HEARTBEAT = {"heartbeat_interval": 1, "grace_period": 5}


def study_config(server: PostgresServer, name: str, **study: object) -> dict:
    """The test_search tiny study (vdd only: one training, trials of about a second) on the
    server; the password comes from its file unless ``study`` says otherwise."""
    cfg = {
        "seed": 0, "device": "cpu",
        "devices": {
            "hfo2-2t2r": {"card": str(REPO / "config/devices/hfo2-2t2r.yaml")},
            "pcsa-130nm": {"card": str(REPO / "config/devices/pcsa-130nm.yaml")},
            "pcsa-130nm-physical":
                {"card": str(REPO / "config/devices/pcsa-130nm-physical.yaml")},
        },
        "chips": {"rram-2t2r-pcsa-130nm": str(REPO / "config/chips/rram-2t2r-pcsa-130nm.yaml")},
        "experiments": {"tiny": {"dataset": "digits", "hidden": [32], "epochs": 1}},
        "search": {name: {
            "experiment": "tiny", "chip": "rram-2t2r-pcsa-130nm",
            "parameters": {"vdd": {"low": 0.3, "high": 1.2}},
            "objectives": {"accuracy": "maximize", "energy_per_inference_pJ": "minimize"},
            "repeats": 2, "storage": server.url,
            "storage_password_file": str(server.password_file), **HEARTBEAT, **study}},
    }
    return check_config(cfg)


def write_config(cfg: dict, folder: Path) -> Path:
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def dse_search(cfg_path: Path, name: str, results: Path, *mode: str,
               env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dse.cli", "-q", "--threads", "1", "search", "--config",
         str(cfg_path), "--study", name, "--results", str(results), *mode],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})})


def finish(procs: list[subprocess.Popen], timeout: float = 600) -> list[str]:
    """Wait for the processes; their stderr (each must exit 0)."""
    errs = []
    for p in procs:
        _, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, err[-3000:]
        errs.append(err)
    return errs


def front_by_dominance(trials: list[FrozenTrial], directions: list[str]) -> set[int]:
    """Numbers of the complete trials no other complete trial dominates (recomputed here)."""
    sign = [-1.0 if d == "maximize" else 1.0 for d in directions]
    loss = {t.number: [s * v for s, v in zip(sign, t.values, strict=True)] for t in trials}

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x <= y for x, y in zip(a, b, strict=True)) and a != b

    return {n for n, v in loss.items() if not any(dominates(w, v) for w in loss.values())}


def init_study(cfg: dict, name: str, results: Path) -> None:
    init_study_files(cfg, name, Layout.at(results))


def load_study(cfg: dict, name: str, results: Path):
    spec = parse_study(cfg, name)
    return spec, _load_study(spec, Layout.at(results).journal(name))


def aggregate(cfg: dict, name: str, results: Path) -> None:
    aggregate_study(cfg, name, Layout.at(results))


def check_study(cfg: dict, name: str, results: Path) -> tuple[list[FrozenTrial], pd.DataFrame]:
    """Exactly N complete trials, none with the parameters of another, and the aggregated front
    equal to a front recomputed from the stored trials and to Optuna's own."""
    spec, study = load_study(cfg, name, results)
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == spec.trials
    assert len({t.number for t in trials}) == len(trials)
    # vdd is continuous: two complete trials with one value would be a trial evaluated twice
    assert len({t.params["vdd"] for t in done}) == len(done)
    aggregate(cfg, name, results)
    front = pd.read_csv(results / "search" / name / "pareto.csv")
    mine = front_by_dominance(done, list(spec.objectives.values()))
    assert set(front["number"]) == mine == {t.number for t in study.best_trials}
    return trials, front


def test_three_workers_reach_exactly_the_requested_trials(postgres: PostgresServer,
                                                          tmp_path: Path) -> None:
    cfg = study_config(postgres, "three", trials=9, workers=3)
    cfg_path = write_config(cfg, tmp_path)
    results = tmp_path / "results"
    init_study(cfg, "three", results)
    finish([dse_search(cfg_path, "three", results, "--worker", str(k)) for k in range(3)])
    trials, _ = check_study(cfg, "three", results)
    workers = {t.user_attrs["worker"] for t in trials if t.state == TrialState.COMPLETE}
    assert len(workers) >= 2  # the trials really were shared
    # besides the 9: only trials a worker began when the study was already full (never run)
    extra = [t for t in trials if t.state != TrialState.COMPLETE]
    assert all(t.state == TrialState.PRUNED and t.user_attrs.get("surplus") for t in extra)


def _victim(study, worker: int) -> FrozenTrial | None:
    """A trial of ``worker`` running with its parameters drawn, after one complete trial."""
    trials = study.get_trials(deepcopy=False)
    if not any(t.state == TrialState.COMPLETE for t in trials):
        return None
    return next((t for t in trials if t.state == TrialState.RUNNING and t.params
                 and t.user_attrs.get("worker") == worker), None)


def _utc(stamp: dt.datetime) -> dt.datetime:
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)


def test_sigkilled_worker_trial_fails_by_heartbeat_and_is_retried(
        postgres: PostgresServer, tmp_path: Path) -> None:
    n = 8
    cfg = study_config(postgres, "kill", trials=n, workers=3)
    cfg_path = write_config(cfg, tmp_path)
    results = tmp_path / "results"
    init_study(cfg, "kill", results)
    procs = [dse_search(cfg_path, "kill", results, "--worker", str(k)) for k in range(3)]
    _, study = load_study(cfg, "kill", results)
    deadline, victim = time.time() + 300, None
    while time.time() < deadline and victim is None:
        victim = _victim(study, 1)
        time.sleep(0.05)
    assert victim is not None, "worker 1 never ran a trial"
    os.kill(procs[1].pid, signal.SIGKILL)
    killed_at = dt.datetime.now(dt.UTC)
    procs[1].wait()
    finish([procs[0], procs[2]])
    trials, _ = check_study(cfg, "kill", results)
    dead = study.trials[victim.number]
    assert dead.state == TrialState.FAIL
    assert "retry_of" not in dead.user_attrs  # failed by the heartbeat, not by pid
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1  # RetryHeartbeatStaleTrialCallback re-queued it once
    retry = retries[0]
    assert retry.state == TrialState.COMPLETE and retry.params == dead.params
    assert retry.user_attrs["worker"] in (0, 2)
    states = pd.Series([t.state.name for t in trials]).value_counts().to_dict()
    failed_after = (_utc(dead.datetime_complete) - killed_at).total_seconds()
    retried_after = (_utc(retry.datetime_start) - killed_at).total_seconds()
    done_after = (_utc(retry.datetime_complete) - killed_at).total_seconds()
    print(f"\npostgres, 3 workers, worker 1 SIGKILLed in trial {victim.number}: requested {n}, "
          f"recorded {states} ; failed {failed_after:.1f} s after the kill (grace period "
          f"{HEARTBEAT['grace_period']} s, heartbeat {HEARTBEAT['heartbeat_interval']} s), "
          f"retry started after {retried_after:.1f} s, complete after {done_after:.1f} s")


def test_dashboard_serves_the_study_from_the_server(postgres: PostgresServer,
                                                    tmp_path: Path) -> None:
    import socket

    cfg = study_config(postgres, "dash", trials=1)
    init_study(cfg, "dash", tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = shutil.which("optuna-dashboard") or pytest.fail("optuna-dashboard not on PATH")
    dash = subprocess.Popen(
        [exe, postgres.url, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PGPASSWORD": postgres.password})  # libpq reads it
    try:
        body, deadline = "", time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies",
                                            timeout=5) as r:
                    assert r.status == 200
                    body = r.read().decode()
                    break
            except OSError:
                assert dash.poll() is None, dash.communicate()[0][-2000:]
                time.sleep(0.5)
        _, study = load_study(cfg, "dash", tmp_path)
        assert study.study_name in body
    finally:
        dash.terminate()
        out, _ = dash.communicate(timeout=30)
    assert postgres.password not in out


def test_credentials_never_reach_logs_or_results(postgres: PostgresServer,
                                                 tmp_path: Path) -> None:
    cfg = study_config(postgres, "creds", trials=2, storage_password_file=None)
    cfg_path = write_config(cfg, tmp_path)
    results = tmp_path / "results"
    env = {PASSWORD_ENV: postgres.password}
    errs = finish([dse_search(cfg_path, "creds", results, "--init", env=env)])
    errs += finish([dse_search(cfg_path, "creds", results, "--worker", "0", env=env)])
    errs += finish([dse_search(cfg_path, "creds", results, "--aggregate", env=env)])
    secret = postgres.password
    for err in errs:
        assert secret not in err
    files = [p for p in results.rglob("*") if p.is_file()]
    assert {"study.json", "summary.json", "trial.json", "trials.csv"} <= {p.name for p in files}
    for path in files:
        assert secret.encode() not in path.read_bytes(), path
    study_json = yaml.safe_load((results / "search/creds/study.json").read_text())
    assert study_json["storage"] == postgres.url
    # nor in the database (roles keep a SCRAM hash, outside the dumped database)
    dump = subprocess.run([str(Path(_bindir()) / "pg_dump"), "-h", postgres.host, "-p",
                           str(postgres.port), "-U", postgres.user, postgres.database],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PGPASSWORD": secret}, check=True).stdout
    assert "creds-" in dump and secret not in dump


def _bindir() -> str:
    from dse.tools.postgres import find_bindir

    found = find_bindir()
    assert found is not None
    return str(found)


def _one_line_error(cfg: dict, tmp_path: Path, env: dict[str, str] | None = None) -> str:
    proc = dse_search(write_config(cfg, tmp_path), next(iter(cfg["search"])),
                      tmp_path / "results", "--init", env=env)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dse: "), err
    return lines[0]


def test_wrong_password_and_no_server_fail_with_one_line(postgres: PostgresServer,
                                                         tmp_path: Path) -> None:
    wrong = "not-the-password-4711"
    cfg = study_config(postgres, "bad", storage_password_file=None)
    line = _one_line_error(cfg, tmp_path, env={PASSWORD_ENV: wrong})
    assert f"search.bad.storage {postgres.url}: cannot open the storage" in line
    assert 'password authentication failed for user "dse"' in line and wrong not in line

    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    cfg = study_config(postgres, "bad", storage=f"postgresql://dse@127.0.0.1:{closed}/dse")
    assert "Connection refused" in _one_line_error(cfg, tmp_path)

    inline = f"postgresql://dse:{wrong}@127.0.0.1:{postgres.port}/dse"
    line = _one_line_error(study_config(postgres, "bad", storage=inline), tmp_path)
    assert "search.bad.storage: the URL holds a password" in line and wrong not in line

    cfg = study_config(postgres, "bad", storage_password_file=str(tmp_path / "missing"))
    assert "search.bad.storage_password_file: cannot read" in _one_line_error(cfg, tmp_path)
