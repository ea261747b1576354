"""The train stage: accuracy floors, determinism, divergence, checkpoint round trip."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from dse import seeds
from dse.config import Experiment
from dse.data import load_dataset
from dse.errors import DseError
from dse.nn import build_model, evaluate
from dse.pipeline.artifacts import load_model as load
from dse.pipeline.artifacts import save_model as save
from dse.pipeline.files import write_json
from dse.train import train


@pytest.fixture(scope="module")
def mnist5k():
    return load_dataset("mnist5k")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.mark.parametrize(("precision", "floor"), [("binary", 0.88), ("ternary", 0.88)])
def test_quantized_mlp_accuracy_floor_on_mnist5k(mnist5k, precision: str, floor: float) -> None:
    # 2 epochs of 784-512-512-10; benchmarks/README.md records the 10-epoch figures (>= 0.90).
    # A broken quantizer or STE (no gradient, wrong sign) stays near chance (0.1).
    exp = Experiment.from_dict("t", {"precision": precision, "epochs": 2})
    res = train(exp, [mnist5k], progress=False)
    assert res.history["test_acc"].iloc[-1] >= floor
    assert res.history["loss"].iloc[1] < res.history["loss"].iloc[0]


def test_training_is_deterministic_on_cpu(digits) -> None:
    exp = Experiment.from_dict("t", {"dataset": "digits", "hidden": [64], "epochs": 2, "seed": 5})
    a = train(exp, [digits], progress=False)
    b = train(exp, [digits], progress=False)
    cols = ["loss", "train_acc", "test_acc"]
    pd.testing.assert_frame_equal(a.history[cols], b.history[cols])
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    c = train(replace(exp, seed=6), [digits], progress=False)
    assert not torch.equal(sa["body.fc1.weight"], c.model.state_dict()["body.fc1.weight"])


def test_lenet_and_float_train_above_chance(digits) -> None:
    for entry in ({"model": "lenet"}, {"precision": "float", "hidden": [64]}):
        exp = Experiment.from_dict("t", {"dataset": "digits", "epochs": 3, **entry})
        assert train(exp, [digits], progress=False).test_accuracy > 0.6


def test_divergence_is_a_clear_error(digits) -> None:
    bad = replace(digits, x_train=digits.x_train * float("nan"))
    exp = Experiment.from_dict("t", {"dataset": "digits", "hidden": [16], "epochs": 1,
                                     "precision": "float"})
    with pytest.raises(DseError, match="diverged .* at epoch 1, batch 1; lower lr"):
        train(exp, [bad], progress=False)
    # a binary net maps NaN activations to -1, so its loss stays finite: the weights are checked
    with pytest.raises(DseError, match="non-finite values in body.fc1.weight after epoch 1"):
        train(replace(exp, precision="binary"), [bad], progress=False)


def test_checkpoint_round_trip(tmp_path: Path, digits) -> None:
    exp = Experiment.from_dict("rt", {"dataset": "digits", "precision": "ternary",
                                      "hidden": [32], "epochs": 1})
    res = train(exp, [digits], progress=False)
    out = save(res, tmp_path / "rt")
    assert sorted(p.name for p in out.iterdir()) == [
        "history.csv", "model.json", "model.pt", "pulses.csv", "tasks.csv", "writes.csv"]
    back = load(out)
    assert back.spec == res.spec and back.experiment["precision"] == "ternary"
    x = digits.x_test
    res.model.eval()
    assert torch.equal(back.model(x), res.model(x))
    assert evaluate(back.model, x, digits.y_test) == pytest.approx(res.test_accuracy)
    hist = pd.read_csv(out / "history.csv")
    assert list(hist.columns[:7]) == ["epoch", "task", "task_epoch", "loss", "train_acc",
                                      "test_acc", "seconds"]
    assert json.loads((out / "model.json").read_text())["layers"][0]["name"] == "fc1"
    # outputs keep the permissions of a plain mkdir/open (temporary files are private)
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask
    write_json(tmp_path / "x.json", {})
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_bad_checkpoints_are_clear_errors(tmp_path: Path, digits) -> None:
    with pytest.raises(DseError, match="model.json: missing"):
        load(tmp_path)
    exp = Experiment.from_dict("rt", {"dataset": "digits", "hidden": [8], "epochs": 1})
    out = save(train(exp, [digits], progress=False), tmp_path / "m")
    (out / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DseError, match="model.pt: does not match model.json"):
        load(out)  # the sha256 recorded at training catches it first
    meta = json.loads((out / "model.json").read_text())
    meta.pop("model_sha256")  # a description without the hash: torch's loader still refuses it
    (out / "model.json").write_text(json.dumps(meta))
    with pytest.raises(DseError, match="model.pt: cannot load the weights"):
        load(out)
    (out / "model.json").write_text("{}")
    with pytest.raises(DseError, match="not a dse model description"):
        load(out)


def test_quantized_weight_changes_are_counted_as_programming_events(digits) -> None:
    exp = Experiment.from_dict("t", {"dataset": "digits", "hidden": [32], "epochs": 1,
                                     "precision": "ternary"})
    res = train(exp, [digits], progress=False)
    init = build_model(res.spec, seeds.generator(exp.seed, "train"))
    tally = res.pulses.groupby("layer")["pulses"].sum()
    for name, layer in res.model.quant_layers():
        before = dict(init.quant_layers())[name].quantized_weight()
        after = layer.quantized_weight()
        # every weight whose level differs at the end was written at least once
        assert tally[name] >= int((before != after).sum()) > 0
    row = res.history.iloc[-1]
    assert row["pulses_up"] + row["pulses_down"] == res.pulses["pulses"].sum()
    float_exp = Experiment.from_dict("f", {"dataset": "digits", "hidden": [32], "epochs": 1,
                                           "precision": "float"})
    assert train(float_exp, [digits], progress=False).pulses["pulses"].sum() == 0


@pytest.mark.parametrize("precision", ["binary", "ternary"])
def test_level_change_tally_equals_a_brute_force_count(precision: str) -> None:
    from dse.nn import ModelSpec
    from dse.nn.quant import quantize_weight
    from dse.train.loop import Trainer

    exp = Experiment.from_dict("t", {"precision": precision, "hidden": [16]})
    gen = torch.Generator().manual_seed(0)
    model = build_model(ModelSpec("mlp", (1, 4, 4), 3, precision=precision, hidden=[16]), gen)
    tr = Trainer(exp, model, torch.device("cpu"), gen)
    tr.count_level_changes()
    expected = {}
    for name, layer in model.quant_layers():
        before = quantize_weight(layer.weight, precision, layer.ternary_threshold).clone()
        with torch.no_grad():  # a random update that moves many weights across levels
            layer.weight.add_(0.2 * torch.randn(layer.weight.shape, generator=gen))
        after = quantize_weight(layer.weight, precision, layer.ternary_threshold)
        expected[name] = (int((after > before).sum()), int((after < before).sum()))
    tr.count_level_changes()
    for name, (up, down) in expected.items():
        assert up > 0 and down > 0
        assert (tr.pulses[name]["up"], tr.pulses[name]["down"]) == (up, down)


@pytest.mark.parametrize("precision", ["binary", "ternary"])
def test_training_steps_tally_every_level_change(precision: str) -> None:
    """Trainer.step counts from its forward pass; take_pulses adds the last update's changes."""
    from dse.nn import ModelSpec
    from dse.nn.quant import quantize_weight
    from dse.train.loop import Trainer

    exp = Experiment.from_dict("t", {"precision": precision, "hidden": [16], "lr": 0.05})
    gen = torch.Generator().manual_seed(1)
    model = build_model(ModelSpec("mlp", (1, 4, 4), 3, precision=precision, hidden=[16]), gen)
    tr = Trainer(exp, model, torch.device("cpu"), gen)
    tr.start_task(0)
    layers = [(n, q) for n, q in model.quant_layers()]
    expected = {n: [0, 0] for n, _ in layers}
    x, y = torch.randn(32, 1, 4, 4, generator=gen), torch.randint(0, 3, (32,), generator=gen)
    for _ in range(6):
        before = [quantize_weight(q.weight, precision, q.ternary_threshold) for _, q in layers]
        tr.step(x, y)
        for (name, q), b in zip(layers, before, strict=True):
            a = quantize_weight(q.weight, precision, q.ternary_threshold)
            expected[name][0] += int((a > b).sum())
            expected[name][1] += int((a < b).sum())
    tallies = tr.take_pulses()
    assert sum(sum(v) for v in expected.values()) > 0
    for name, (up, down) in expected.items():
        assert (tallies[name]["up"], tallies[name]["down"]) == (up, down)
