"""Fault maps shared by the tasks of a stream (issue 15): one draw per pass, evaluated on every
task, gives exactly the tables of inject() run per task with the generator restarted."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from dse import seeds
from dse.chip.inject import inject
from dse.chip.inject_tasks import TaskImages, inject_tasks, shareable
from dse.chip.mapping import map_model
from dse.config import Experiment
from dse.data import load_dataset, permuted_tasks
from dse.pipeline.artifacts import load_chip
from dse.train import train

CHIP = "config/chips/rram-2t2r-pcsa-130nm.yaml"


@pytest.fixture(scope="module")
def stream() -> tuple:
    torch.set_num_threads(1)
    tasks = permuted_tasks(load_dataset("digits"), 2, seed=2)
    exp = Experiment.from_dict("meta", {
        "dataset": "digits", "tasks": {"kind": "permuted", "count": 2}, "hidden": [32, 32],
        "algorithm": "metaplastic", "metaplastic": {"m": 10.0, "bn_stats": "running"},
        "epochs": 2, "seed": 2, "lr": 0.005})
    return train(exp, tasks, progress=False), tasks


def _loads(model, states):
    return [lambda s=s: model.load_state_dict(s, strict=False) for s in states]


def test_shared_maps_equal_inject_per_task(stream, repo: Path) -> None:
    result, tasks = stream
    model, states = result.model, result.task_states
    assert len(states) == 2
    mapping = map_model(model, load_chip(repo / CHIP))
    loads = _loads(model, states)
    assert shareable(model, mapping, loads)
    points, kw = (0.0, 0.01, 0.1), {"batch": 3}  # 3 points x 4 repeats: passes across points
    per_task = []
    for load, t in zip(loads, tasks, strict=True):
        load()
        per_task.append(inject(model, mapping, t.x_test, t.y_test, points, 4,
                               seeds.generator(0, "inject", "cpu"), **kw))
    shared = inject_tasks(model, mapping, [TaskImages(ld, t.x_test, t.y_test)
                                           for ld, t in zip(loads, tasks, strict=True)],
                          points, 4, seeds.generator(0, "inject", "cpu"), **kw)
    for a, b in zip(per_task, shared, strict=True):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        assert a.attrs["clean_accuracy"] == b.attrs["clean_accuracy"]
    assert not shared[0]["accuracy"].equals(shared[1]["accuracy"])  # each task its own BN


def test_tasks_with_other_weights_do_not_share(stream, repo: Path) -> None:
    result, _ = stream
    model = result.model
    mapping = map_model(model, load_chip(repo / CHIP))
    key = next(k for k in model.state_dict() if k.endswith("fc1.weight"))
    w = model.state_dict()[key].clone()
    assert not shareable(model, mapping, _loads(model, [{key: w}, {key: -w}]))
    model.load_state_dict({key: w}, strict=False)
