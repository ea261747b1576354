"""``mixed_precision`` ``step: flat`` (one bank of pairs for all layers, dse/train/mp_flat.py)
against ``step: reference`` (the per-layer step): the same rule, another order of random draws.

Noise-free, both are deterministic and give the same pulses and weights; with noise they agree
in distribution (conductances and weights of a seeded population, mean and variance within 3
standard errors) and a tiny training run learns alike (accuracy within a point plus the seed
spread, the same pulse activity)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from dse.config import Experiment
from dse.data import batches, load_dataset
from dse.nn import ModelSpec, build_model
from dse.pipeline.artifacts import load_card
from dse.train import MixedPrecisionTrainer, train
from dse.train.writes import recording_writes

REPO = Path(__file__).resolve().parents[1]
CARD = "bulk-switching"
DEVICES = {CARD: {"card": f"config/devices/{CARD}.yaml"}}

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _trainer(step: str, mp: dict, hidden: int = 32, seed: int = 0,
             lr: float = 0.3) -> MixedPrecisionTrainer:
    ds = load_dataset("digits")
    exp = Experiment.from_dict("mp", {
        "dataset": "digits", "model": "mlp", "hidden": [hidden], "precision": "float",
        "algorithm": "mixed_precision", "device_card": CARD, "lr": lr, "seed": seed,
        "mixed_precision": {**mp, "step": step}}, devices=DEVICES)
    gen = torch.Generator().manual_seed(seed)
    spec = ModelSpec(model="mlp", input_shape=ds.input_shape, classes=ds.classes,
                     precision="float", hidden=[hidden])
    tr = MixedPrecisionTrainer(exp, build_model(spec, gen), torch.device("cpu"), gen,
                               {CARD: load_card(REPO / "config" / "devices" / f"{CARD}.yaml")})
    tr.start_task(0)
    tr.model.train()
    return tr


def _steps(tr: MixedPrecisionTrainer, n: int, batch: int = 64) -> None:
    ds = load_dataset("digits")
    bs = list(batches(ds.x_train, ds.y_train, batch, torch.Generator().manual_seed(1)))
    for i in range(n):
        xb, yb = bs[i % len(bs)]
        tr.step(xb, yb)


def _agree(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    """Mean and variance within 3 standard errors (the variance's from the fourth moment)."""
    a, b = a.double().flatten(), b.double().flatten()

    def moments(x: torch.Tensor) -> tuple[float, float, float, float]:
        m, v = float(x.mean()), float(x.var())
        m4 = float(((x - m) ** 4).mean())
        return m, v, v / x.numel(), max(m4 - v * v, 0.0) / x.numel()

    ma, va, sma, sva = moments(a)
    mb, vb, smb, svb = moments(b)
    assert abs(ma - mb) <= 3 * math.sqrt(sma + smb) + 1e-12, f"{what}: means {ma} vs {mb}"
    assert abs(va - vb) <= 3 * math.sqrt(sva + svb) + 1e-12, f"{what}: variances {va} vs {vb}"


QUIET = {"device": {"c2c": False, "d2d": False, "read_noise": False},
         "refresh_upper": 0.2, "refresh_lower": 0.0}


@pytest.mark.parametrize("d2d", [False, True])
@pytest.mark.parametrize("pulsing", ["one_sided", "push_pull"])
def test_noise_free_flat_step_equals_the_reference(pulsing: str, d2d: bool) -> None:
    """Without C2C and read noise both steps are deterministic (the D2D spread is drawn once, by
    the same code, before the bank is built): the same pulses, refreshes and weights, up to
    float rounding (three steps, before a rounding difference can move a threshold crossing);
    with D2D this also checks that every pulse reaches the right device of the right layer."""
    quiet = {**QUIET, "device": {**QUIET["device"], "d2d": d2d}}
    out = {}
    for step in ("reference", "flat"):
        tr = _trainer(step, {**quiet, "pulsing": pulsing})
        assert (tr._flat is not None) == (step == "flat")
        tr.take_pulses()
        _steps(tr, 3)
        out[step] = (tr.take_pulses(), [p.clean.clone() for p in tr.pairs],
                     [p.state["x"].clone() for p in tr.pairs], [p.chi.clone() for p in tr.pairs])
    assert out["flat"][0] == out["reference"][0]
    assert sum(v["down"] for v in out["flat"][0].values()) > 0  # refreshes happened
    for i in (1, 2, 3):
        for a, b in zip(out["reference"][i], out["flat"][i], strict=True):
            assert torch.allclose(a, b, atol=1e-5)


def test_flat_views_and_release() -> None:
    """The layers' tensors are views of the bank while training, their own after finalize."""
    tr = _trainer("flat", {})
    bank = tr._flat
    assert tr.pairs[1].chi.data_ptr() == bank.chi[tr.pairs[0].n:].data_ptr()
    _steps(tr, 2)
    for p, o in zip(tr.pairs, bank.offsets, strict=False):
        assert torch.equal(p.layer.weight.reshape(-1), bank.apparent[o:o + p.n])
        assert torch.equal(p.state["x"], bank.state["x"][2 * o:2 * (o + p.n)])
    tr.finalize()
    assert tr.pairs[1].state["x"]._base is None and tr.pairs[1].clean._base is None


@pytest.mark.parametrize("mp", [{}, {"pulsing": "push_pull", "read_noise": "step"}])
def test_flat_step_agrees_in_distribution(mp: dict) -> None:
    """The same initial devices (the reference's write), 40 steps, a 64-hidden MLP (4 800
    pairs): conductances and weights of the two paths within 3 standard errors."""
    res = {}
    for step in ("reference", "flat"):
        tr = _trainer(step, mp, hidden=64, lr=0.1)
        _steps(tr, 40, batch=16)
        res[step] = (torch.cat([p.state["x"] for p in tr.pairs]),
                     torch.cat([p.clean for p in tr.pairs]))
    _agree(res["reference"][0], res["flat"][0], "conductance")
    _agree(res["reference"][1], res["flat"][1], "weight")
    # (pulse totals are not compared here: one refresh rewrite is 10^3–10^4 pulses, so a few
    # refreshes more or less set the total; the training test below compares the activity)


def test_flat_step_records_writes_per_device() -> None:
    """``recording_writes``: the per-device tallies of the flat step sum to its layer tallies
    (pulses + RESETs, the initial write included), in each layer's own device layout."""
    with recording_writes() as tally:
        tr = _trainer("flat", {"refresh_upper": 0.3, "refresh_lower": 0.0})
        init = tr.take_pulses()
        _steps(tr, 3)
        pulses = tr.take_pulses()
    counts = tally.counts
    assert sum(v["down"] for v in pulses.values()) > 0  # refreshes happened
    for p in tr.pairs:
        total = sum(init[p.name].values()) + sum(pulses[p.name].values())
        assert counts[p.name].numel() == 2 * p.n
        assert int(counts[p.name].sum()) == total


def test_flat_step_learns_as_the_reference() -> None:
    entry = {"dataset": "digits", "model": "mlp", "hidden": [32], "precision": "float",
             "algorithm": "mixed_precision", "device_card": CARD, "epochs": 3, "lr": 0.1,
             "batch_size": 32}
    data = load_dataset("digits")
    cards = {CARD: load_card(REPO / "config" / "devices" / f"{CARD}.yaml")}
    acc: dict[str, list[float]] = {"reference": [], "flat": []}
    pulses: dict[str, list[float]] = {"reference": [], "flat": []}
    for step in acc:
        for seed in (0, 1, 2):
            exp = Experiment.from_dict("k", {**entry, "seed": seed,
                                             "mixed_precision": {"step": step}}, devices=DEVICES)
            res = train(exp, [data], "cpu", cards=cards, progress=False)
            acc[step].append(res.test_accuracy)
            pulses[step].append(float(res.history[["pulses_up", "pulses_down"]].to_numpy().sum()))
    ref, flat = (sum(v) / len(v) for v in acc.values())
    print(f"accuracy reference {ref:.4f} flat {flat:.4f}: {acc}")
    assert flat > 0.8
    assert abs(flat - ref) <= 0.01 + 0.02  # a point, plus the seed spread of 3 runs
    a, b = (torch.tensor(v, dtype=torch.float64) for v in pulses.values())
    se = math.sqrt(float(a.var()) / len(a) + float(b.var()) / len(b))
    assert abs(float(a.mean() - b.mean())) <= 3 * se + 0.02 * float(a.mean()), pulses


def test_flat_adam_is_torch_adam() -> None:
    """FlatAdam = torch.optim.Adam(foreach=False), bit for bit, also when a gradient is missing."""
    from dse.train.flat_adam import FlatAdam

    gen = torch.Generator().manual_seed(0)
    init = [torch.randn(7, generator=gen), torch.randn(3, 2, generator=gen)]
    a = [torch.nn.Parameter(t.clone()) for t in init]
    b = [torch.nn.Parameter(t.clone()) for t in init]
    ta, fb = torch.optim.Adam(a, lr=0.01, foreach=False), FlatAdam(b, lr=0.01)
    for step in range(6):
        grads = [torch.randn(t.shape, generator=gen) for t in init]
        for p, q, g in zip(a, b, grads, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        if step == 3:
            a[1].grad = b[1].grad = None
        ta.step()
        fb.step()
        for p, q in zip(a, b, strict=True):
            assert torch.equal(p.detach(), q.detach())


def _flat_run(kernels: str, mp: dict, steps: int, hidden: int = 64) -> MixedPrecisionTrainer:
    """``step: flat``; compiled: the dense kernel on every step (dse/train/mp_flat_dense.py)."""
    ds = load_dataset("digits")
    exp = Experiment.from_dict("mp", {
        "dataset": "digits", "model": "mlp", "hidden": [hidden], "precision": "float",
        "algorithm": "mixed_precision", "device_card": CARD, "lr": 0.1, "seed": 0,
        "kernels": kernels, "mixed_precision": {**mp, "step": "flat"}}, devices=DEVICES)
    gen = torch.Generator().manual_seed(0)
    spec = ModelSpec(model="mlp", input_shape=ds.input_shape, classes=ds.classes,
                     precision="float", hidden=[hidden])
    tr = MixedPrecisionTrainer(exp, build_model(spec, gen), torch.device("cpu"), gen,
                               {CARD: load_card(REPO / "config" / "devices" / f"{CARD}.yaml")})
    tr.start_task(0)
    tr.model.train()
    if kernels == "compiled":
        assert tr._flat._dense is not None
        tr._flat.dense_mode = "always"
    tr.take_pulses()
    _steps(tr, steps, batch=16)
    return tr


def test_dense_compiled_flat_step_agrees_in_distribution() -> None:
    """The dense compiled transfer (every pair, masked by n ≠ 0) against the eager flat step,
    with the card's noise (D2D, C2C, read noise on update; one cold compile): 40 steps of a
    64-hidden MLP from the same initial devices, conductances and weights within 3 standard
    errors, pulse activity within 3 % (refreshes make the totals vary)."""
    res = {}
    for kernels in ("eager", "compiled"):
        tr = _flat_run(kernels, {}, 40)
        tally = tr.take_pulses()
        res[kernels] = (torch.cat([p.state["x"] for p in tr.pairs]),
                        torch.cat([p.clean for p in tr.pairs]),
                        sum(v["up"] for v in tally.values()))
    _agree(res["eager"][0], res["compiled"][0], "conductance")
    _agree(res["eager"][1], res["compiled"][1], "weight")
    assert abs(res["compiled"][2] - res["eager"][2]) <= 0.03 * res["eager"][2], res
