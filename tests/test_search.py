"""Co-design search: validation, determinism, training cache, resume after kill -9, workers."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

from dse.config import check_config
from dse.errors import DseError
from dse.pipeline import Layout
from dse.pipeline.study import aggregate_study, init_study_files, run_study_worker
from dse.search import load_study, parse_study

REPO = Path(__file__).resolve().parents[1]


def tiny_config(**study: object) -> dict:
    cfg = {
        "seed": 0,
        "device": "cpu",
        "devices": {
            "hfo2-2t2r": {"card": str(REPO / "config/devices/hfo2-2t2r.yaml")},
            "pcsa-130nm": {"card": str(REPO / "config/devices/pcsa-130nm.yaml")},
        },
        "chips": {
            "rram-2t2r-pcsa-130nm": str(REPO / "config/chips/rram-2t2r-pcsa-130nm.yaml"),
            "rram-2t2r-pcsa-130nm-ternary":
                str(REPO / "config/chips/rram-2t2r-pcsa-130nm-ternary.yaml"),
        },
        "experiments": {"tiny": {"dataset": "digits", "hidden": [32], "epochs": 1}},
        "search": {"s": {
            "experiment": "tiny",
            "chip": {"binary": "rram-2t2r-pcsa-130nm",
                     "ternary": "rram-2t2r-pcsa-130nm-ternary"},
            "parameters": {"vdd": {"low": 0.3, "high": 1.2}},
            "objectives": {"accuracy": "maximize", "energy_per_inference_pJ": "minimize"},
            "trials": 4, "repeats": 2, **study}},
    }
    return check_config(cfg)


def init_study(cfg: dict, name: str, results: Path) -> None:
    init_study_files(cfg, name, Layout.at(results))


def run_worker(cfg: dict, name: str, worker: int, results: Path):
    return run_study_worker(cfg, name, worker, Layout.at(results))


def stored(cfg: dict, results: Path) -> optuna.Study:
    return load_study(parse_study(cfg, "s"), Layout.at(results).journal("s"))


def run_study(cfg: dict, results: Path) -> pd.DataFrame:
    init_study(cfg, "s", results)
    run_worker(cfg, "s", 0, results)
    aggregate_study(cfg, "s", Layout.at(results))
    return pd.read_csv(results / "search" / "s" / "trials.csv")


def test_single_worker_study_is_reproducible(tmp_path: Path) -> None:
    cfg = tiny_config(parameters={"precision": {"choices": ["binary", "ternary"]},
                                  "vdd": {"low": 0.3, "high": 1.2}})
    a = run_study(cfg, tmp_path / "a")
    b = run_study(cfg, tmp_path / "b")
    cols = ["number", "param_precision", "param_vdd", "accuracy", "energy_per_inference_pJ"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert len(a) == 4 and (a["state"] == "COMPLETE").all()
    root = tmp_path / "a" / "search" / "s"
    for f in ("pareto.csv", "hypervolume.csv", "pareto.png", "hypervolume.png", "summary.json"):
        assert (root / f).is_file()
    front = pd.read_csv(root / "pareto.csv")
    assert 1 <= len(front) <= 4
    # lower supply never costs more energy: the front is sorted by accuracy, energy follows
    assert front["energy_per_inference_pJ"].is_monotonic_decreasing
    hv = pd.read_csv(root / "hypervolume.csv")["hypervolume"]
    assert hv.is_monotonic_increasing


def test_inference_parameters_reuse_the_trained_model(tmp_path: Path) -> None:
    cfg = tiny_config(trials=5)
    trials = run_study(cfg, tmp_path)
    assert trials["trained"].sum() == 1  # vdd is inference-time: one training for 5 trials
    # a training parameter misses the cache: a new lr trains anew
    cfg2 = copy.deepcopy(cfg)
    cfg2["search"]["s"]["parameters"]["lr"] = {"low": 0.001, "high": 0.01, "log": True}
    trials2 = run_study(check_config(cfg2), tmp_path / "other")
    assert trials2["trained"].sum() == trials2["training_key"].nunique() == len(trials2) == 5


def test_changed_space_is_a_new_study(tmp_path: Path) -> None:
    cfg = tiny_config()
    a = parse_study(cfg, "s")
    cfg2 = copy.deepcopy(cfg)
    cfg2["search"]["s"]["parameters"]["vdd"]["low"] = 0.4
    assert parse_study(cfg2, "s").optuna_name != a.optuna_name
    cfg3 = copy.deepcopy(cfg)
    cfg3["search"]["s"]["trials"] = 40  # more trials extend the same study
    assert parse_study(cfg3, "s").optuna_name == a.optuna_name


@pytest.mark.parametrize(("change", "message"), [
    ({"parameters": {"vdd": {"low": 1.2, "high": 0.3}}},
     "search.s.parameters.vdd: empty or inverted range (low 1.2 >= high 0.3)"),
    ({"parameters": {"vdd": {"low": 0.5, "high": 0.5}}}, "empty or inverted range"),
    ({"parameters": {"precision": {"choices": []}}}, "search.s.parameters.precision: empty"),
    ({"parameters": {"voltage": {"low": 0.3, "high": 1}}},
     "search.s.parameters.voltage: unknown parameter 'voltage' (known: precision"),
    ({"objectives": {"latency": "minimize"}},
     "search.s.objectives.latency: unknown objective (known: accuracy"),
    ({"constraints": {"throughput": {"min": 1}}},
     "search.s.constraints.throughput: no such column to constrain"),
    ({"experiment": "nope"}, "search.s.experiment: unknown experiment 'nope'"),
    ({"chip": {"binary": "rram-2t2r-pcsa-130nm"},
      "parameters": {"precision": {"choices": ["binary", "ternary"]}}},
     "search.s.chip: no chip for precision 'ternary'"),
])
def test_bad_studies_fail_before_any_trial(change: dict, message: str, tmp_path: Path) -> None:
    cfg = tiny_config()
    cfg["search"]["s"].update(change)
    with pytest.raises(DseError, match=message.replace("(", "\\(").replace(")", "\\)")):
        spec = parse_study(cfg, "s")
        init_study(cfg, "s", tmp_path)
        run_worker(cfg, "s", 0, tmp_path)
        del spec


def _worker(cfg_path: Path, results: Path, k: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dse.cli", "-q", "--threads", "1", "search", "--config",
         str(cfg_path), "--study", "s", "--results", str(results), "--worker", str(k)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _killable(cfg: dict, results: Path) -> bool:
    """Two trials complete and a third running with its parameters drawn."""
    trials = stored(cfg, results).get_trials(deepcopy=False)
    done = sum(t.state == TrialState.COMPLETE for t in trials)
    return done >= 2 and trials[-1].state == TrialState.RUNNING and bool(trials[-1].params)


@pytest.mark.slow
def test_killed_worker_resumes_without_losing_trials(tmp_path: Path) -> None:
    cfg = tiny_config(trials=8)
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    results = tmp_path / "results"
    init_study(cfg, "s", results)
    proc = _worker(cfg_path, results, 0)
    deadline = time.time() + 240
    while time.time() < deadline and not _killable(cfg, results):
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    study = stored(cfg, results)
    before = {t.number: t.values for t in study.get_trials(states=(TrialState.COMPLETE,))}
    running = [t.number for t in study.get_trials(states=(TrialState.RUNNING,))]
    assert len(before) >= 2 and len(before) < 8
    report = run_worker(cfg, "s", 0, results)
    study = stored(cfg, results)
    after = {t.number: t.values for t in study.get_trials(states=(TrialState.COMPLETE,))}
    assert len(after) == 8
    assert all(after[n] == v for n, v in before.items())  # completed trials kept as they were
    for n in running:  # the trial the kill interrupted is failed and retried
        assert study.trials[n].state == TrialState.FAIL
    retried = [t for t in study.trials if t.user_attrs.get("retry_of") in running]
    assert retried and retried[0].state == TrialState.COMPLETE
    assert report.trials_run == 8 - len(before)


@pytest.mark.slow
def test_two_workers_share_one_journal(tmp_path: Path) -> None:
    cfg = tiny_config(trials=8, workers=2)
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    results = tmp_path / "results"
    init_study(cfg, "s", results)
    procs = [_worker(cfg_path, results, k) for k in (0, 1)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    study = stored(cfg, results)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))  # every trial recorded once
    # the total, or one more when both workers asked for the last trial at the same instant
    assert 8 <= len(done) <= 9
    assert {t.user_attrs["worker"] for t in done} == {0, 1}
    trials = pd.read_csv(results / "search" / "s" / "trials" / "0" / "inject.csv")
    assert len(trials) == 2  # repeats
    assert optuna.__version__.startswith("5.")


def test_float_noise_is_not_a_trade_off() -> None:
    """A design whose accuracy differs by float noise but costs 18 % more energy is dominated
    (issue 18: it used to sit on the front); of two equal designs one is kept."""
    import numpy as np

    from dse.search.pareto import non_dominated, pareto_front

    losses = np.array([[-0.9, 10.0], [-(0.9 + 1e-16), 11.8], [-0.8, 5.0], [-0.9, 10.0]])
    assert non_dominated(losses).tolist() == [True, False, True, False]
    trials = pd.DataFrame({"number": range(4), "state": "COMPLETE", "feasible": True,
                           "accuracy": -losses[:, 0], "energy_per_inference_pJ": losses[:, 1]})
    front = pareto_front(trials, {"accuracy": "maximize", "energy_per_inference_pJ": "minimize"})
    assert sorted(front["number"]) == [0, 2]


def test_a_torn_journal_is_mended_and_an_unreadable_one_repaired(tmp_path: Path) -> None:
    """A short write cuts the last record: the next open cuts the torn tail off (never appends
    after it) and the study goes on; a journal destroyed outright is rebuilt from the trials'
    own trial.json files (issue 18)."""
    from dse.cli import main

    cfg = tiny_config(trials=2)
    results = tmp_path / "results"
    run_study(cfg, results)
    journal = Layout.at(results).journal("s")
    before = [(t.number, t.values) for t in stored(cfg, results).get_trials(
        states=(TrialState.COMPLETE,))]
    data = journal.read_bytes()
    journal.write_bytes(data + data[-120:-40])  # a record cut short by a full disk
    cfg3 = copy.deepcopy(cfg)
    cfg3["search"]["s"]["trials"] = 3
    run_worker(cfg3, "s", 0, results)  # mends, then records the third trial after it
    after = stored(cfg3, results).get_trials(states=(TrialState.COMPLETE,))
    assert [(t.number, t.values) for t in after[:2]] == before and len(after) == 3
    journal.write_bytes(b"garbage\n" + journal.read_bytes())
    with pytest.raises(DseError, match="line 1 is not a journal record.*--repair"):
        stored(cfg3, results)
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg3))
    assert main(["-q", "search", "--config", str(cfg_path), "--study", "s", "--results",
                 str(results), "--repair"]) == 0
    rebuilt = stored(cfg3, results).get_trials(states=(TrialState.COMPLETE,))
    assert sorted(t.values for t in rebuilt) == sorted(t.values for t in after)
    assert (journal.parent / "journal.log.unreadable").is_file()


def test_a_second_worker_with_the_same_number_is_refused(tmp_path: Path) -> None:
    """Issue 18: a second `--worker K` used to fail the live worker's trial and crash it; the
    worker number is now held by a lock while the first runs."""
    from filelock import FileLock

    cfg = tiny_config(trials=1)
    results = tmp_path / "results"
    init_study(cfg, "s", results)
    layout = Layout.at(results)
    layout.worker_lock("s", 0).parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(layout.worker_lock("s", 0))), \
            pytest.raises(DseError, match="worker 0 of study 's' is already running"):
        run_worker(cfg, "s", 0, results)
    assert not layout.worker_json("s", 0).exists()
    run_worker(cfg, "s", 0, results)  # once the first is done, the number is free again


def test_stale_trials_are_those_of_dead_processes_only(tmp_path: Path) -> None:
    """A RUNNING trial is a dead worker's when its process is gone (pid and start time), or
    when it was never stamped long after it began; a live worker's trial is left alone, and
    the failures of dead workers do not count toward the failure cap."""
    import datetime as dt
    import socket

    from dse.search.workers import UNSTAMPED_GRACE, is_stale, own_failures, process_start

    host, now, me = socket.gethostname(), dt.datetime.now(), os.getpid()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()

    def trial(attrs: dict, age: float) -> optuna.trial.FrozenTrial:
        return optuna.trial.FrozenTrial(
            number=0, state=TrialState.RUNNING, value=None, values=None,
            datetime_start=now - dt.timedelta(seconds=age), datetime_complete=None, params={},
            distributions={}, user_attrs=attrs, system_attrs={}, intermediate_values={},
            trial_id=0)

    live = {"host": host, "pid": me, "pid_start": process_start(me)}
    assert not is_stale(trial(live, 999), host, now)
    assert is_stale(trial({"host": host, "pid": int(dead)}, 1), host, now)
    assert is_stale(trial({**live, "pid_start": "0"}, 1), host, now)  # a reused pid
    assert not is_stale(trial({"host": "elsewhere", "pid": int(dead)}, 999), host, now)
    assert not is_stale(trial({}, UNSTAMPED_GRACE / 2), host, now)  # being sampled
    assert is_stale(trial({}, UNSTAMPED_GRACE * 2), host, now)  # killed before its stamp
    study = optuna.create_study(directions=["maximize"])
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, user_attrs={"worker": 0}))
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, user_attrs={"worker": 0}))
    study.add_trial(optuna.trial.create_trial(value=1.0, user_attrs={"retry_of": 0}))
    assert own_failures(study, 0) == 1  # trial 0 was a dead worker's: retried, not counted


def test_a_latency_constraint_excludes_slow_designs(tmp_path: Path) -> None:
    """latency_ns is a metric of every trial; a max on it makes the slow (low-supply) designs
    infeasible and keeps them off the front; the front carries its knee and test accuracy."""
    cfg = tiny_config(parameters={"vdd": {"choices": [0.4, 1.2]}}, sampler="random",
                      objectives={"accuracy": "maximize", "latency_ns": "minimize"},
                      constraints={"latency_ns": {"max": 500.0}})
    t = run_study(cfg, tmp_path)
    assert set(t["param_vdd"]) == {0.4, 1.2}
    assert (t["feasible"] == (t["latency_ns"] <= 500.0)).all()
    assert not t.loc[t["param_vdd"] == 0.4, "feasible"].any()  # 0.4 V: logic and sense slow
    assert (t["tops_per_w"] > 0).all() and (t["inferences_per_s"] > 0).all()
    front = pd.read_csv(tmp_path / "search" / "s" / "pareto.csv")
    assert len(front) and (front["latency_ns"] <= 500.0).all()
    assert front["knee"].sum() == 1 and front["test_accuracy"].between(0, 1).all()


def test_latency_metrics_are_known_to_the_vocabulary() -> None:
    cfg = tiny_config(objectives={"accuracy": "maximize", "tops_per_w": "maximize"},
                      constraints={"latency_ns": {"max": 1e3}, "area_mm2": {"max": 1.0}})
    spec = parse_study(cfg, "s")
    assert spec.objectives["tops_per_w"] == "maximize"
    assert {c.metric for c in spec.constraints} == {"latency_ns", "area_mm2"}
    assert spec.validation == 0.1  # trials select on held-out training images by default
    with pytest.raises(DseError, match=r"search\.s\.validation"):
        parse_study(tiny_config(validation=1.5), "s")
