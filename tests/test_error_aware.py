"""Error-aware training (Hirtzlin et al., AICAS 2019, arXiv 1904.03652; code
Laborieux-Axel/Quantized_VGG): weight bit errors on every training forward pass."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

import dse.nn.layers as layers_mod
from dse.config import Experiment
from dse.data import load_dataset
from dse.nn import QLinear
from dse.nn.faults import apply_weight_errors
from dse.pipeline.artifacts import save_model as save
from dse.train import train
from dse.train.loop import set_train_ber


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _layer(precision: str, ber: float, seed: int = 0) -> QLinear:
    layer = QLinear(300, 200, precision)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.weight.copy_(torch.rand(layer.weight.shape, generator=g) * 0.2 - 0.1)
    layer.train_ber = ber
    layer.fault_generator = torch.Generator().manual_seed(seed + 1)
    return layer


def test_binary_flips_at_the_rate_in_training_only() -> None:
    ber = 0.1
    layer = _layer("binary", ber)
    clean = torch.where(layer.weight >= 0, 1.0, -1.0)
    n = clean.numel()
    seen = []
    for _ in range(3):  # fresh errors on every forward pass
        wq = layer.quantized_weight()
        assert set(wq.unique().tolist()) == {-1.0, 1.0}
        flipped = wq != clean
        rate = flipped.double().mean().item()
        assert abs(rate - ber) < 3 * math.sqrt(ber * (1 - ber) / n)
        seen.append(flipped)
    assert not torch.equal(seen[0], seen[1])
    # overlap of two independent draws: ber² of the weights
    both = (seen[0] & seen[1]).double().mean().item()
    assert abs(both - ber**2) < 3 * math.sqrt(ber**2 * (1 - ber**2) / n)
    # the gradient reaches the latent weight unchanged, straight through the flips
    r = torch.randn(clean.shape, generator=torch.Generator().manual_seed(9))
    (layer.quantized_weight() * r).sum().backward()
    assert torch.equal(layer.weight.grad, r)
    layer.eval()  # evaluation: no injection (Monte-Carlo injection is the inject stage's)
    assert torch.equal(layer.quantized_weight(), clean)


def test_ternary_errors_at_the_total_rate() -> None:
    ber = 0.05
    layer = _layer("ternary", ber)  # U(-0.1, 0.1), threshold 0.05: p0 = 0.5
    clean = torch.sign(layer.weight) * (layer.weight.abs() > 0.05)
    n = clean.numel()
    wq = layer.quantized_weight().detach()
    err = wq != clean
    assert abs(err.double().mean().item() - ber) < 3 * math.sqrt(ber * (1 - ber) / n)
    # 0 <-> ±1 only: a non-zero weight never changes sign (Quantized_VGG's model)
    assert not ((clean != 0) & (wq == -clean)).any()
    p0 = (clean == 0).double().mean().item()
    q = 2 * ber / (1 + p0)
    zeros_hit = err[clean == 0].double().mean().item()
    assert abs(zeros_hit - q) < 3 * math.sqrt(q * (1 - q) / int((clean == 0).sum()))


def test_same_seed_same_flips() -> None:
    a, b = _layer("binary", 0.2, seed=3), _layer("binary", 0.2, seed=3)
    assert torch.equal(a.quantized_weight(), b.quantized_weight())
    c = _layer("binary", 0.2, seed=4)
    with torch.no_grad():
        c.weight.copy_(a.weight)
    assert not torch.equal(a.quantized_weight(), c.quantized_weight())


def _exp(**kw) -> Experiment:
    entry = {"dataset": "digits", "hidden": [64, 64], "epochs": 2, "seed": 2}
    entry.update(kw)
    return Experiment.from_dict("ea", entry)


def _same(a, b) -> None:
    cols = ["loss", "train_acc", "test_acc"]
    pd.testing.assert_frame_equal(a.history[cols], b.history[cols], check_exact=True)
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("precision", ["binary", "ternary"])
def test_ber_zero_equals_training_without_injection(digits, monkeypatch, precision) -> None:
    plain = train(_exp(precision=precision), [digits], progress=False)
    # train_ber: 0 is the plain run
    _same(plain, train(_exp(precision=precision, train_ber=0.0), [digits], progress=False))
    # the whole injection path switched on (per-layer fault generators, a fault draw on every
    # forward pass, the straight-through composition) at an error rate of exactly 0
    calls = []

    def at_zero(wq, precision, ber, layer_dims, generator=None):
        calls.append(ber)
        return apply_weight_errors(wq, precision, 0.0, layer_dims, generator)

    monkeypatch.setattr(layers_mod, "apply_weight_errors", at_zero)
    forced = train(_exp(precision=precision, train_ber=0.3), [digits], progress=False)
    assert len(calls) > 0 and set(calls) == {0.3}
    _same(plain, forced)


def test_error_aware_run_learns_and_writes_the_contract(digits, tmp_path: Path) -> None:
    exp = _exp(train_ber=0.1, epochs=3)
    res = train(exp, [digits], progress=False)
    layers = res.model.quant_layers()
    assert all(layer.train_ber == 0.1 for _, layer in layers)
    assert res.test_accuracy > 0.6  # chance is 0.1
    assert not torch.equal(res.model.state_dict()["body.fc1.weight"],
                           train(_exp(epochs=3), [digits], progress=False)
                           .model.state_dict()["body.fc1.weight"])
    out = save(res, tmp_path / "ea")
    for f in ("model.pt", "model.json", "history.csv", "pulses.csv", "tasks.csv"):
        assert (out / f).is_file()
    assert json.loads((out / "model.json").read_text())["experiment"]["train_ber"] == 0.1
    again = train(exp, [digits], progress=False)  # seeded fault generators: reproducible
    _same(res, again)


def test_set_train_ber_seeds_every_layer_differently() -> None:
    from dse.nn import ModelSpec, build_model

    net = build_model(ModelSpec(model="mlp", input_shape=(1, 8, 8), classes=10, hidden=[32, 32]),
                      torch.Generator().manual_seed(0))
    set_train_ber(net, 0.05, seed=7)
    seeds = [layer.fault_generator.initial_seed() for _, layer in net.quant_layers()]
    assert len(set(seeds)) == len(seeds)
    assert all(layer.train_ber == 0.05 for _, layer in net.quant_layers())
