"""Writes per device during training (dse.train.writes) against a brute-force count."""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
import pytest
import torch

from dse.config import Experiment
from dse.data import load_dataset
from dse.nn import quantize_weight
from dse.pipeline.artifacts import load_card
from dse.train import ALGORITHMS, Trainer, train
from dse.train.writes import histogram_summary, recording_writes


def _small(precision: str = "binary", **kw: object) -> Experiment:
    return Experiment.from_dict("w", {"dataset": "digits", "hidden": [16], "epochs": 2,
                                      "batch_size": 200, "precision": precision, "seed": 1,
                                      **kw})


def _brute_force(exp: Experiment, digits: object) -> dict[str, torch.Tensor]:
    """Snapshot every quantized weight before training and after every step; count changes."""
    snaps: dict[str, list[torch.Tensor]] = {}
    base = ALGORITHMS[exp.algorithm]

    def snap(trainer: Trainer) -> None:
        for name, layer in trainer.model.quant_layers():
            q = quantize_weight(layer.weight, layer.precision, layer.ternary_threshold)
            snaps.setdefault(name, []).append(q.detach().clone().reshape(-1))

    class Snapshots(base):  # type: ignore[misc, valid-type]
        def start_task(self, task: int) -> None:
            super().start_task(task)
            if task == 0:
                snap(self)

        def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out = super().step(x, y)
            snap(self)
            return out

    ALGORITHMS[exp.algorithm] = Snapshots
    try:
        train(exp, [digits], progress=False)
    finally:
        ALGORITHMS[exp.algorithm] = base
    counts = {}
    for name, qs in snaps.items():
        c = torch.zeros_like(qs[0], dtype=torch.int64)
        for before, after in itertools.pairwise(qs):  # over steps, not weights
            c += (before != after).to(torch.int64)
        counts[name] = c
    return counts


def test_write_counters_match_a_brute_force_count() -> None:
    digits = load_dataset("digits")
    for exp in (_small(), _small("ternary"),
                _small(algorithm="metaplastic", metaplastic={"m": 1.0})):
        with recording_writes() as tally:
            result = train(exp, [digits], progress=False)
        assert ALGORITHMS["standard"] is Trainer  # the registry is restored
        brute = _brute_force(exp, digits)
        assert set(tally.counts) == set(brute) == {"fc1", "fc2"}
        for name, c in brute.items():
            assert torch.equal(tally.counts[name], c), (exp.precision, exp.algorithm, name)
            assert int(c.max()) > 1  # some weight was written several times
        # the histogram and its summary agree with the counts and with pulses.csv
        hist = tally.histogram()
        assert int(hist["devices"].sum()) == sum(c.numel() for c in brute.values())
        summ = histogram_summary(hist).set_index("layer")
        assert summ.loc["(all)", "total"] == int(result.pulses["pulses"].sum())
        assert summ.loc["(all)", "max"] == max(int(c.max()) for c in brute.values())
        assert tally.summary()["fc1"]["max"] == int(brute["fc1"].max())


def test_no_counting_outside_the_block_and_weak_reset_pulses_per_device() -> None:
    digits = load_dataset("digits")
    with recording_writes() as tally:
        pass
    train(_small(epochs=1), [digits], progress=False)
    assert tally.counts == {}
    exp = Experiment.from_dict("wr", {
        "dataset": "digits", "hidden": [16], "epochs": 1, "batch_size": 200, "seed": 1,
        "precision": "binary", "algorithm": "weak_reset_bnn", "device_card": "hfo2-weak-reset",
        "lr": 8.0}, devices={"hfo2-weak-reset": {"card": "config/devices/hfo2-weak-reset.yaml"}})
    card = load_card(Path(__file__).parents[1] / "config/devices/hfo2-weak-reset.yaml")
    with recording_writes() as tally:
        result = train(exp, [digits], cards={"hfo2-weak-reset": card}, progress=False)
    total = int(result.pulses["pulses"].sum())
    assert tally.counts, "eager weak-RESET kernels tally per device"
    if tally.counts:  # two devices (BL, BLb) per weight
        fc1 = result.model.body.fc1.weight.numel()
        assert tally.counts["fc1"].numel() == 2 * fc1
        assert sum(int(c.sum()) for c in tally.counts.values()) == total
        assert isinstance(tally.histogram(), pd.DataFrame)


@pytest.mark.parametrize("pulsing", ["one_sided", "push_pull"])
def test_mixed_precision_writes_per_device_sum_to_the_pulse_tally(pulsing: str) -> None:
    digits = load_dataset("digits")
    devices = {"bulk-switching": {"card": "config/devices/bulk-switching.yaml"}}
    exp = Experiment.from_dict("mp", {
        "dataset": "digits", "hidden": [16], "epochs": 1, "batch_size": 100, "seed": 2,
        "precision": "float", "algorithm": "mixed_precision", "device_card": "bulk-switching",
        "lr": 0.1, "mixed_precision": {"pulsing": pulsing, "threshold": 0.5}}, devices=devices)
    card = load_card(Path(__file__).parents[1] / "config/devices/bulk-switching.yaml")
    with recording_writes() as tally:
        result = train(exp, [digits], cards={"bulk-switching": card}, progress=False)
    assert set(tally.counts) == {"fc1", "fc2"}
    assert tally.counts["fc1"].numel() == 2 * result.model.body.fc1.weight.numel()  # G+, G-
    # every pulse and refresh RESET is one write of one device: the totals of pulses.csv
    assert sum(int(c.sum()) for c in tally.counts.values()) == int(result.pulses["pulses"].sum())
    assert int(tally.counts["fc1"].max()) > 1
