"""Algorithm ``weak_reset_bnn`` (Majumdar et al. 2021): learning, contract files, the Adam →
pulses rule, pulses that only raise resistances, the ablation switches, and error-aware
training from a binary-cell card's operating point."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from dse.config import Experiment
from dse.data import batches, load_dataset
from dse.devices import from_card
from dse.errors import DseError
from dse.nn import ModelSpec, build_model
from dse.pipeline.artifacts import load_card
from dse.pipeline.artifacts import save_model as save
from dse.train import WeakResetTrainer, train
from dse.train.weak_reset import NO_KNEE, device_overrides

REPO = Path(__file__).resolve().parents[1]
CARDS = REPO / "config" / "devices"
WR = load_card(CARDS / "hfo2-weak-reset.yaml")
DEVICES = {n: {"card": f"config/devices/{n}.yaml"}
           for n in ("hfo2-weak-reset", "hfo2-2t2r", "bulk-switching", "pcsa-130nm")}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _exp(**kw) -> Experiment:
    entry = {"dataset": "digits", "model": "mlp", "hidden": [64], "precision": "binary",
             "algorithm": "weak_reset_bnn", "device_card": "hfo2-weak-reset", "epochs": 3,
             "lr": 8.0, **kw}
    return Experiment.from_dict("wr", entry, devices=DEVICES)


def _trainer(ds, exp: Experiment) -> WeakResetTrainer:
    gen = torch.Generator().manual_seed(exp.seed)
    spec = ModelSpec(model="mlp", input_shape=ds.input_shape, classes=ds.classes,
                     precision="binary", hidden=list(exp.hidden))
    tr = WeakResetTrainer(exp, build_model(spec, gen), torch.device("cpu"), gen,
                          {exp.device_card: WR})
    tr.start_task(0)
    tr.model.train()
    return tr


def _batches(ds, n: int):
    return list(batches(ds.x_train, ds.y_train, 64, torch.Generator().manual_seed(1)))[:n]


def test_learns_digits_and_writes_the_contract_files(tmp_path: Path, digits) -> None:
    res = train(_exp(), [digits], cards={"hfo2-weak-reset": WR}, progress=False)
    assert res.test_accuracy > 0.6  # chance is 0.1
    out = save(res, tmp_path / "wr", card=WR)
    assert sorted(p.name for p in out.iterdir()) == [
        "devices.pt", "history.csv", "model.json", "model.pt", "pulses.csv", "tasks.csv",
        "writes.csv"]
    hist = pd.read_csv(out / "history.csv")
    pulses = pd.read_csv(out / "pulses.csv")
    assert (hist["pulses_down"] > 0).all() and (hist["pulses_up"] == 0).all()  # RESETs only
    assert set(pulses["layer"]) == {"fc1", "fc2"}
    assert pulses.loc[pulses.direction == "down", "pulses"].sum() == hist["pulses_down"].sum()
    assert json.loads((out / "model.json").read_text())["device_card"]["family"] == "weak_reset"


def test_binary_weight_is_the_sign_of_the_resistance_difference(digits) -> None:
    tr = _trainer(digits, _exp())
    for xb, yb in _batches(digits, 3):
        tr.step(xb, yb)
    p = tr.pairs[0]
    r = 1e6 / tr.dev.read(p.state)  # Ω
    w = torch.where(r[: p.n] >= r[p.n:], 1.0, -1.0)
    assert torch.equal(p.layer.quantized_weight().reshape(-1), w)


def test_adam_direction_becomes_clamped_rounded_pulses(digits) -> None:
    tr = _trainer(digits, _exp(lr=3.0))
    p = tr.pairs[0]
    gen = torch.Generator().manual_seed(5)
    m = torch.zeros(p.n)
    v = torch.zeros(p.n)
    for t in range(1, 6):
        g = torch.randn(p.n, generator=gen) * 1e-3
        tr.t = t
        n = tr.pulses_of(p, g)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        u = -(3.0 / (1 - 0.9 ** t)) * m / (v.sqrt() / math.sqrt(1 - 0.999 ** t) + 1e-8)
        torch.testing.assert_close(n, u.clamp(-14, 14).round())
    assert float(n.abs().max()) <= 14
    tr.lr = 1e6  # every Adam step far beyond the pole: exactly 14 pulses each
    assert bool((tr.pulses_of(p, torch.randn(p.n, generator=gen)).abs() == 14).all())


def test_pulses_only_raise_resistances_and_tallies_match(digits) -> None:
    tr = _trainer(digits, _exp(weak_reset={"rtn": False, "pink": False}))
    tr.step(*_batches(digits, 1)[0])
    tr.take_pulses()
    r0 = [1 / tr.dev.read(p.state) for p in tr.pairs]
    t0 = [p.state["t"].clone() for p in tr.pairs]
    for xb, yb in _batches(digits, 6)[1:]:
        tr.step(xb, yb)
        for i, p in enumerate(tr.pairs):
            r = 1 / tr.dev.read(p.state)
            assert bool((r >= r0[i] * (1 - 1e-6)).all())  # never lower
            r0[i] = r
    tallies = tr.take_pulses()
    for p, t in zip(tr.pairs, t0, strict=True):
        assert tallies[p.name]["down"] == int((p.state["t"] - t).sum()) > 0
        assert tallies[p.name]["up"] == 0


def test_with_noise_on_pulse_counts_still_only_grow(digits) -> None:
    tr = _trainer(digits, _exp())
    assert tr.dev.imperfections == {"d2d": True, "rtn": True, "pink": True,
                                    "program_noise": True}
    t0 = [p.state["t"].clone() for p in tr.pairs]
    for xb, yb in _batches(digits, 4):
        tr.step(xb, yb)
    total = sum(v["down"] for v in tr.take_pulses().values())
    assert total == sum(int((p.state["t"] - t).sum()) for p, t in zip(tr.pairs, t0, strict=True))
    assert total > 0 and bool((tr.pairs[0].state["rtn"] != 0).any())  # RTN is active


@pytest.mark.parametrize("switch", ["d2d", "rtn", "pink", "nonlinearity"])
def test_each_ablation_switch_turns_its_imperfection_off(digits, switch: str) -> None:
    tr = _trainer(digits, _exp(weak_reset={switch: False}))
    for xb, yb in _batches(digits, 30):
        tr.step(xb, yb)
    p = tr.pairs[0]
    st = p.state
    if switch == "d2d":
        assert st["m1"].dim() == 0 and st["r0"].dim() == 0  # one nominal device for all
    elif switch == "rtn":
        assert not tr.dev.imperfections["rtn"] and bool((st["rtn"] == 0).all())
        assert tr.dev.idle_unchanged  # the sparse path is exact without RTN
    elif switch == "pink":
        assert "hold" not in st and "pink" not in st
    else:
        assert float(st["t_star"]) == pytest.approx(NO_KNEE, rel=1e-6)
        d2d_off = from_card(WR, {**device_overrides({"nonlinearity": False}), "d2d": False,
                                 "rtn": False, "pink": False})
        t = torch.tensor([0.0, 500.0, 5000.0, 50000.0])
        state = d2d_off.sample_devices((4,), torch.Generator().manual_seed(0))
        state["t"] = t
        w = d2d_off.log_ratio(state)
        slope = (w[1:] - w[0]) / t[1:]
        torch.testing.assert_close(slope, torch.full((3,), float(state["m1"])))  # no knee
    # the ablated run still reports its switches: the others stay as the card says
    others = {k for k in ("d2d", "rtn", "pink") if k != switch}
    assert all(tr.dev.imperfections[k] for k in others)


def test_bad_settings_are_clear_errors(digits) -> None:
    cards = {"hfo2-weak-reset": WR}
    with pytest.raises(DseError, match="set precision: binary"):
        train(_exp(precision="float"), [digits], cards=cards, progress=False)
    bulk = load_card(CARDS / "bulk-switching.yaml")
    with pytest.raises(DseError, match="needs a weak-RESET card"):
        train(_exp(device_card="bulk-switching"), [digits], cards={"bulk-switching": bulk},
              progress=False)
    with pytest.raises(DseError, match="device_card: algorithm weak_reset_bnn needs"):
        train(_exp(device_card=None), [digits], cards=cards, progress=False)


# ------------------------------------------------------------------ error-aware from a card
def _ea(**kw) -> Experiment:
    entry = {"dataset": "digits", "model": "mlp", "hidden": [32], "precision": "binary",
             "epochs": 1, **kw}
    return Experiment.from_dict("ea", entry, devices=DEVICES)


def test_train_ber_from_an_operating_point_equals_the_number(digits) -> None:
    card = load_card(CARDS / "hfo2-2t2r.yaml")
    op = {"i_prog": 4.0e-5}
    ber = float(from_card(card).ber(**op))
    assert 1e-4 < ber < 0.5
    a = train(_ea(device_card="hfo2-2t2r", train_operating_point=op), [digits],
              cards={"hfo2-2t2r": card}, progress=False)
    b = train(_ea(train_ber=ber), [digits], progress=False)
    c = train(_ea(), [digits], progress=False)
    sa, sb, sc = (r.model.state_dict()["body.fc1.weight"] for r in (a, b, c))
    assert torch.equal(sa, sb) and not torch.equal(sa, sc)
    assert a.extra["train_ber_resolved"] == {"device_card": "hfo2-2t2r", "operating_point": op,
                                             "ber": pytest.approx(ber)}


def test_operating_point_errors_are_clear(digits) -> None:
    card = load_card(CARDS / "hfo2-2t2r.yaml")
    cards = {"hfo2-2t2r": card, "hfo2-weak-reset": WR}
    bad = [
        (dict(device_card="hfo2-2t2r", train_operating_point={"i_prog": 2e-5}, train_ber=0.1),
         "not both"),
        (dict(device_card="hfo2-weak-reset", train_operating_point={"i_prog": 2e-5}),
         "not a binary cell"),
        (dict(device_card="hfo2-2t2r", train_operating_point={"vdd": 0.9}),
         "unknown operating-point variable"),
        (dict(train_operating_point={"i_prog": 2e-5}), "name the binary-cell card"),
        (dict(device_card="hfo2-2t2r", precision="float", train_operating_point={"i_prog": 2e-5}),
         "need binary or ternary"),
    ]
    for entry, match in bad:
        with pytest.raises(DseError, match=match):
            train(_ea(**entry), [digits], cards=cards, progress=False)


def test_same_seed_same_numbers(digits) -> None:
    a, b = (train(_exp(epochs=1), [digits], cards={"hfo2-weak-reset": WR}, progress=False)
            for _ in range(2))
    pd.testing.assert_frame_equal(a.history.drop(columns="seconds"),
                                  b.history.drop(columns="seconds"))
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())
