"""Continual learning on the chip (issue 17 item 4): the inject stage evaluates every task of a
task stream with its own BatchNorm, on the same fault maps, and metaplasticity (m > 0) keeps
more of the first task than plain Adam (m = 0) on a tiny seeded stream, under bit errors too."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from dse.chip.inject import summarize
from dse.chip.mapping import map_model
from dse.config import Experiment
from dse.data import load_dataset, permuted_tasks
from dse.nn import evaluate
from dse.pipeline import InjectSettings
from dse.pipeline.artifacts import load_chip, load_model, save_model
from dse.pipeline.recipes import inject_chip
from dse.train import train

CHIP = "config/chips/rram-2t2r-pcsa-130nm.yaml"


def _exp(m: float) -> Experiment:
    return Experiment.from_dict(f"meta-m{m:g}", {
        "dataset": "digits", "tasks": {"kind": "permuted", "count": 2}, "hidden": [64, 64],
        "algorithm": "metaplastic", "metaplastic": {"m": m, "bn_stats": "running"},
        "epochs": 10, "seed": 2, "lr": 0.005})


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[float, Path]:
    torch.set_num_threads(1)
    tasks = permuted_tasks(load_dataset("digits"), 2, seed=2)
    root = tmp_path_factory.mktemp("retention")
    return {m: save_model(train(_exp(m), tasks, progress=False), root / f"m{m:g}")
            for m in (0.0, 30.0)}


def _inject(model_dir: Path, repo: Path, ber: tuple[float, ...]) -> pd.DataFrame:
    back = load_model(model_dir)
    chip = load_chip(repo / CHIP)
    mapping = map_model(back.model, chip)
    config = {"data_root": "data", "download": False}
    settings = InjectSettings(repeats=4, seed=0, batch=4, ber=ber)
    return inject_chip(config, back, mapping, chip, {}, settings, progress=False)


def test_every_task_is_evaluated_with_its_own_batchnorm(trained, repo: Path) -> None:
    back = load_model(trained[30.0])
    assert len(back.task_states) == 2  # one BN state per task, split off model.pt
    assert all(k.startswith("body.bn") for k in back.task_states[0])
    table = _inject(trained[30.0], repo, (0.0, 0.02))
    assert sorted(table["task"].unique()) == [0, 1]
    assert len(table) == 2 * 2 * 4  # tasks x points x repeats
    tasks = permuted_tasks(load_dataset("digits"), 2, seed=2)
    model = back.model
    for k, task in enumerate(tasks):  # BER 0: exactly the task's accuracy with its own BN
        model.load_state_dict(back.task_states[k], strict=False)
        clean = table[(table["task"] == k) & (table["ber"] == 0)]["accuracy"]
        assert (clean == evaluate(model, task.x_test, task.y_test)).all()
    assert table.attrs["clean_by_task"][0] != table.attrs["clean_by_task"][1]
    summary = summarize(table)
    assert list(summary["task"]) == [0, 0, 1, 1]
    assert (summary.groupby("task")["clean_accuracy"].nunique() == 1).all()
    # the deployed model is the last task's again afterwards
    torch.testing.assert_close(model.body.bn1.weight, back.task_states[1]["body.bn1.weight"])


def test_same_fault_maps_for_every_task(trained, repo: Path) -> None:
    a = _inject(trained[30.0], repo, (0.05,))
    b = _inject(trained[30.0], repo, (0.05,))
    pd.testing.assert_frame_equal(a, b)  # seeded
    per_task = a.pivot(index="repeat", columns="task", values="accuracy")
    assert per_task[0].std() > 0 and per_task[1].std() > 0


def test_metaplasticity_retains_the_first_task_on_the_chip(trained, repo: Path) -> None:
    first = {}
    for m, d in trained.items():
        s = summarize(_inject(d, repo, (0.0, 0.01)))
        first[m] = s[s["task"] == 0].set_index("ber")["mean"]
        last = s[s["task"] == 1].set_index("ber")["mean"]
        assert last[0.0] > 0.7  # the last task is learned either way
    for ber in (0.0, 0.01):
        assert first[30.0][ber] > first[0.0][ber] + 0.1, first


def test_report_shows_retention_and_weight_memory(trained, repo: Path) -> None:
    import json

    from dse.report.data import ReportData
    from dse.report.memory import memory_frame
    from dse.report.sections import _continual, _robustness, _training

    d = trained[30.0]
    summary = summarize(_inject(d, repo, (0.0, 0.02)))
    meta = json.loads((d / "model.json").read_text())
    data = ReportData(config={}, models={"meta": meta},
                      history={"meta": pd.read_csv(d / "history.csv")},
                      tasks={"meta": pd.read_csv(d / "tasks.csv")},
                      inject={("meta", "rram-2t2r-pcsa-130nm"): summary})
    continual = _continual(data, 50)
    assert continual is not None and not continual.failed
    titles = [i.title for i in continual.items]
    assert "meta on rram-2t2r-pcsa-130nm: retention under bit errors" in titles
    table = next(i for i in continual.items if i.title.startswith("Retention on the chips"))
    assert "task 0" in table.content and "task 1" in table.content
    robustness = _robustness(data, 50)
    assert robustness is not None and not robustness.failed  # the deployed task's rows
    training = _training(data, 50)
    assert training is not None and not training.failed
    mem = memory_frame(data)
    assert int(mem["weight bits"].iloc[0]) == 64 * 64 + 64 * 64 + 64 * 10  # binary, 1 bit each
