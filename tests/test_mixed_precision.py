"""Algorithm ``mixed_precision`` (Nandakumar et al. 2020; aihwkit MixedPrecisionCompound):
learning, contract files, the χ/ε pulse rule and its tallies, refresh, the sparse device path."""

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
from dse.nn import ModelSpec, build_model, evaluate
from dse.pipeline.artifacts import load_card
from dse.pipeline.artifacts import load_model as load
from dse.pipeline.artifacts import save_model as save
from dse.train import MixedPrecisionTrainer, train
from dse.train.converters import absmax_quantize

REPO = Path(__file__).resolve().parents[1]
BULK = load_card(REPO / "config" / "devices" / "bulk-switching.yaml")
DEVICES = {name: {"card": f"config/devices/{name}.yaml"}
           for name in ("bulk-switching", "reram-es-gong2018", "piecewise", "hfo2-2t2r")}
QUIET = {"c2c": False, "d2d": False, "read_noise": False}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _exp(**kw) -> Experiment:
    mp = kw.pop("mixed_precision", {})
    entry = {"dataset": "digits", "model": "mlp", "hidden": [32], "precision": "float",
             "algorithm": "mixed_precision", "device_card": "bulk-switching", "epochs": 2,
             "lr": 0.1, "mixed_precision": mp, **kw}
    return Experiment.from_dict("mp", entry, devices=DEVICES)


def _trainer(ds, exp: Experiment, card: dict = BULK) -> MixedPrecisionTrainer:
    gen = torch.Generator().manual_seed(exp.seed)
    spec = ModelSpec(model=exp.model, input_shape=ds.input_shape, classes=ds.classes,
                     precision="float", hidden=list(exp.hidden))
    tr = MixedPrecisionTrainer(exp, build_model(spec, gen), torch.device("cpu"), gen,
                               {exp.device_card: card})
    tr.start_task(0)
    tr.model.train()
    return tr


def _batches(ds, n: int, seed: int = 1):
    out = list(batches(ds.x_train, ds.y_train, 64, torch.Generator().manual_seed(seed)))
    return out[:n]


def _pairs_weight(tr: MixedPrecisionTrainer, p) -> torch.Tensor:
    g = tr.dev.read(p.state)
    return (g[: p.n] - g[p.n:]) * p.scale


def test_learns_digits_and_writes_the_contract_files(tmp_path: Path, digits) -> None:
    exp = _exp(epochs=3)
    res = train(exp, [digits], cards={"bulk-switching": BULK}, progress=False)
    assert res.test_accuracy > 0.7  # chance is 0.1
    out = save(res, tmp_path / "mp", card=BULK)
    assert sorted(p.name for p in out.iterdir()) == [
        "devices.pt", "history.csv", "model.json", "model.pt", "pulses.csv", "tasks.csv",
        "writes.csv"]
    hist = pd.read_csv(out / "history.csv")
    pulses = pd.read_csv(out / "pulses.csv")
    assert set(pulses["layer"]) == {"fc1", "fc2"}
    for (epoch, direction), total in pulses.groupby(["epoch", "direction"])["pulses"].sum().items():
        col = "pulses_up" if direction == "up" else "pulses_down"
        assert hist.loc[hist["epoch"] == epoch, col].item() == total
    assert (hist["pulses_up"] > 0).all()
    meta = json.loads((out / "model.json").read_text())
    assert meta["device_card"]["name"] == "bulk-switching"
    back = load(out)
    assert evaluate(back.model, digits.x_test, digits.y_test) == pytest.approx(res.test_accuracy)


def test_saved_weights_are_the_noise_free_device_reads(digits) -> None:
    tr = _trainer(digits, _exp())
    for xb, yb in _batches(digits, 5):
        tr.step(xb, yb)
        # training passes use the noisy reads; the devices hold something else
        assert not torch.equal(tr.pairs[0].layer.weight.reshape(-1), _pairs_weight(tr, tr.pairs[0]))
    tr.finalize()
    for p in tr.pairs:
        torch.testing.assert_close(p.layer.weight.reshape(-1), _pairs_weight(tr, p))
    assert not tr.model.body.fc1._forward_pre_hooks and not tr.model.body.fc1._forward_hooks


def test_chi_stays_below_eps_and_tallies_equal_the_pulses_applied(digits) -> None:
    tr = _trainer(digits, _exp())
    applied = {"up": 0.0, "resets": 0}
    apply, reset = tr.dev.apply_pulses, tr.dev.set_conductance

    def spy_apply(state, n, generator):
        assert bool((n >= 0).all())  # one-sided: potentiation only
        applied["up"] += float(n.sum())
        return apply(state, n, generator)

    def spy_reset(state, target):
        applied["resets"] += target.numel()
        return reset(state, target)

    tr.dev.apply_pulses, tr.dev.set_conductance = spy_apply, spy_reset
    tr.take_pulses()  # the initial write, before the spies
    for xb, yb in _batches(digits, 12):
        before = [p.chi.clone() for p in tr.pairs]
        tr.step(xb, yb)
        for p, chi0 in zip(tr.pairs, before, strict=True):
            assert bool((p.chi.abs() < p.eps).all())
            # χ ← χ − η·∂L/∂W − n·ε with n = trunc(·/ε): the remainder is the same
            acc = chi0 - tr.lr * p.layer.weight.grad.reshape(-1)
            torch.testing.assert_close(p.chi, acc - torch.trunc(acc / p.eps) * p.eps,
                                       rtol=0, atol=1e-3 * p.eps)
    tallies = tr.take_pulses()
    assert sum(v["up"] for v in tallies.values()) == pytest.approx(applied["up"])
    assert sum(v["down"] for v in tallies.values()) == applied["resets"]
    assert applied["up"] > 0


def test_no_pulses_when_eps_is_huge(digits) -> None:
    tr = _trainer(digits, _exp(mixed_precision={"threshold": 1e12}))
    tr.take_pulses()
    x0 = [p.state["x"].clone() for p in tr.pairs]
    for xb, yb in _batches(digits, 5):
        tr.step(xb, yb)
    assert tr.take_pulses() == {}
    for p, x in zip(tr.pairs, x0, strict=True):
        assert torch.equal(p.state["x"], x)
        assert bool((p.chi != 0).any())  # the updates were accumulated, not applied


def test_epsilon_is_threshold_times_the_device_step_in_weight_units(digits) -> None:
    tr = _trainer(digits, _exp(mixed_precision={"threshold": 2.5, "weight_range": 6.0}))
    dev = from_card(BULK)
    for p in tr.pairs:
        fan_in = p.layer.weight[0].numel()
        scale = 6.0 / (math.sqrt(fan_in) * (dev.g_max - dev.g_min))
        assert p.scale == pytest.approx(scale)
        assert p.eps == pytest.approx(2.5 * dev.dw_min * scale)


def test_initial_weights_are_written_onto_the_devices(digits) -> None:
    exp = _exp(mixed_precision={"device": QUIET})
    gen = torch.Generator().manual_seed(exp.seed)
    spec = ModelSpec(model="mlp", input_shape=digits.input_shape, classes=10, precision="float",
                     hidden=[32])
    w0 = build_model(spec, gen).body.fc1.weight.detach().reshape(-1).clone()
    tr = _trainer(digits, exp)
    w = _pairs_weight(tr, tr.pairs[0])
    # open-loop write with the nominal trajectory: within one device step of the target
    assert float((w - w0).abs().max()) <= tr.pairs[0].eps
    tallies = tr.take_pulses()
    assert tallies["fc1"]["down"] == 2 * tr.pairs[0].n  # one RESET per device
    assert tallies["fc1"]["up"] > 0


def test_refresh_resets_a_saturating_pair_and_keeps_its_weight(digits) -> None:
    tr = _trainer(digits, _exp(mixed_precision={"device": QUIET}))
    p = tr.pairs[0]
    dev = tr.dev
    span = dev.g_max - dev.g_min
    # pair 0: G+ at 0.9 and G- at 0.5 of the range (due); pair 1: 0.9 / 0.1 (not due)
    x = p.state["x"]
    x[0], x[p.n] = dev.g_min + 0.9 * span, dev.g_min + 0.5 * span
    x[1], x[p.n + 1] = dev.g_min + 0.9 * span, dev.g_min + 0.1 * span
    g = dev.read(p.state)
    p.clean.copy_((g[: p.n] - g[p.n:]) * p.scale)
    w_before = p.clean[:2].clone()
    tr.take_pulses()
    p.chi.zero_()
    p.chi[:2] = p.eps * 1.5  # one pulse to G+ of both pairs
    grad = torch.zeros_like(p.layer.weight)
    p.layer.weight.grad = grad
    tr._transfer(p)
    after = dev.read(p.state)
    assert float(after[0]) < dev.g_min + 0.5 * span and float(after[p.n]) == dev.g_min  # reset
    assert float(after[1]) > dev.g_min + 0.9 * span  # not due: just pulsed
    assert float((p.clean[0] - w_before[0]).abs()) < 2 * p.eps  # the weight survives
    tallies = tr.take_pulses()
    assert tallies["fc1"]["down"] == 2  # the two RESETs of pair 0


def test_push_pull_pulses_both_devices_in_opposite_directions(digits) -> None:
    tr = _trainer(digits, _exp(mixed_precision={"pulsing": "push_pull", "refresh": False}))
    tr.take_pulses()
    for xb, yb in _batches(digits, 4):
        tr.step(xb, yb)
    t = tr.take_pulses()
    up = sum(v["up"] for v in t.values())
    assert up > 0 and up == sum(v["down"] for v in t.values())


@pytest.mark.parametrize("card", ["reram-es-gong2018", "piecewise"])
def test_other_analog_families_learn(digits, card: str) -> None:
    if card == "piecewise":
        nodes = [-1.0, -0.5, 0.0, 0.5, 1.0]
        params = {"nodes": nodes, "up": [0.004, 0.003, 0.002, 0.0012, 0.0005],
                  "down": [0.0005, 0.0012, 0.002, 0.003, 0.004], "sigma_up": [0.001] * 5,
                  "sigma_down": [0.001] * 5}
        c = {"name": "pw", "family": "piecewise", "source": "test", "unit": "1",
             "params": {k: {"value": v, "unit": "1", "assumption": "test"}
                        for k, v in params.items()}}
    else:
        c = load_card(REPO / "config" / "devices" / f"{card}.yaml")
    exp = _exp(device_card=card, epochs=2)
    res = train(exp, [digits], cards={card: c}, progress=False)
    assert res.test_accuracy > 0.6
    assert res.history["pulses_up"].sum() > 0


def test_bad_settings_are_clear_errors(digits) -> None:
    with pytest.raises(DseError, match="set precision: float"):
        train(_exp(precision="binary"), [digits], cards={"bulk-switching": BULK}, progress=False)
    with pytest.raises(DseError, match="was not loaded"):
        train(_exp(), [digits], cards={}, progress=False)
    c = load_card(REPO / "config" / "devices" / "hfo2-2t2r.yaml")
    with pytest.raises(DseError, match="needs an analog pulse family"):
        train(_exp(), [digits], cards={"bulk-switching": c}, progress=False)
    with pytest.raises(DseError, match="unknown key 'threshhold'"):
        _exp(mixed_precision={"threshhold": 1.0})


def test_sparse_pulses_match_the_dense_call() -> None:
    dev = from_card(BULK)
    gen = torch.Generator().manual_seed(0)
    m = 200_000
    state = dev.sample_devices((m,), gen)
    dense = {k: v.clone() for k, v in state.items()}
    n = torch.randint(1, 4, (m,), generator=gen).float()
    n[m // 10:] = 0  # 10 % of the devices pulsed
    dev.apply_pulses(dense, n, torch.Generator().manual_seed(1))
    idx = torch.nonzero(n).squeeze(1)
    sparse = {k: v.clone() for k, v in state.items()}
    dev.apply_pulses_at(sparse, idx, n[idx], torch.Generator().manual_seed(2))
    assert torch.equal(sparse["x"][m // 10:], state["x"][m // 10:])  # idle devices untouched
    d = dense["x"][: m // 10] - state["x"][: m // 10]
    s = sparse["x"][: m // 10] - state["x"][: m // 10]
    k = d.numel()
    assert float((d.mean() - s.mean()).abs()) < 4 * float(d.std()) * math.sqrt(2 / k)
    assert float(s.std() / d.std()) == pytest.approx(1.0, abs=0.03)


def test_converters_quantize_to_the_given_bits() -> None:
    x = torch.randn(8, 300, generator=torch.Generator().manual_seed(0))
    q = absmax_quantize(x, 4)
    step = x.abs().amax(1, keepdim=True) / 7  # 15 levels over [-absmax, absmax]
    assert bool(((q - x).abs() <= step / 2 + 1e-6).all())
    assert all(len(torch.unique(row)) <= 2 ** 4 - 1 for row in q)
    assert len(torch.unique(q[0])) >= 12
    gen = torch.Generator().manual_seed(1)
    xs = torch.full((20_000, 2), 0.3)
    xs[:, 1] = 1.0  # the abs-max of every row: levels 0, ±1/3, ±2/3, ±1 (3 bits)
    qs = absmax_quantize(xs, 3, gen)[:, 0]
    assert set(torch.unique(qs).tolist()) == pytest.approx([0.0, 1 / 3])
    # stochastic rounding is unbiased: P(1/3) = 0.9
    assert float(qs.mean()) == pytest.approx(0.3, abs=3 * (1 / 3) * 0.3 / math.sqrt(20_000))


def test_hook_converters_equal_the_autograd_functions() -> None:
    """The hooks' in-place ADC and clone-quantized DAC (no autograd nodes) give the numbers and
    the gradients of the :class:`Dac`/:class:`Converter` functions."""
    from dse.train.converters import Converter, Dac, install_converters

    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 30, generator=g)
    nets = [torch.nn.Sequential(torch.nn.Linear(30, 20, bias=False), torch.nn.Sigmoid(),
                                torch.nn.Linear(20, 5, bias=False)) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    install_converters([nets[0][0], nets[0][2]], 7, 9, None, None)

    def by_functions(x: torch.Tensor) -> torch.Tensor:
        h = Converter.apply(nets[1][0](Dac.apply(x, 7)), 9, None, None)
        return Converter.apply(nets[1][2](Dac.apply(nets[1][1](h), 7)), 9, None, None)

    outs = [nets[0](x), by_functions(x)]
    assert torch.equal(outs[0], outs[1])
    for out in outs:
        out.square().sum().backward()
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        assert torch.equal(a.grad, b.grad)


def test_same_seed_same_numbers(digits) -> None:
    a, b = (train(_exp(epochs=1), [digits], cards={"bulk-switching": BULK}, progress=False)
            for _ in range(2))
    pd.testing.assert_frame_equal(a.history.drop(columns="seconds"),
                                  b.history.drop(columns="seconds"))
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())


def _reference_transfer(tr: MixedPrecisionTrainer, p) -> None:
    """The χ/ε rule written plainly (torch.where, the four-comparison refresh test): the
    trainer's fused ``_transfer`` must give the same pulses, χ, weights and refresh decisions."""
    p.chi.add_(p.layer.weight.grad.reshape(-1), alpha=-tr.lr)
    idx = torch.nonzero(p.chi.abs() >= p.eps).squeeze(1)
    n = torch.div(p.chi.index_select(0, idx), p.eps).trunc_()
    p.chi.index_add_(0, idx, n, alpha=-p.eps)
    up = n > 0
    dev_idx, cnt = torch.where(up, idx, idx + p.n), n.abs()
    tr.count_pulses(p.name, cnt)
    sub = tr.dev.apply_pulses(tr.dev.take(p.state, dev_idx), cnt, tr.dev_gen)
    tr.dev.put(p.state, dev_idx, sub)
    g_new = tr.dev.read(sub)
    g_other = tr.dev.read_at(p.state, torch.where(up, idx + p.n, idx))
    gp, gm = torch.where(up, g_new, g_other), torch.where(up, g_other, g_new)
    tr._set_weights(p, idx, gp - gm)
    g_up, g_lo = tr._refresh_levels
    due = (gp > g_lo) & (gm > g_lo) & ((gp > g_up) | (gm > g_up))
    sel = idx[due]
    if sel.numel():
        tr._write_pairs(p, sel, p.clean.index_select(0, sel) / p.scale)


def test_transfer_matches_the_plain_rule(digits) -> None:
    tr = _trainer(digits, _exp(mixed_precision={"refresh_upper": 0.5, "refresh_lower": 0.2}))
    for xb, yb in _batches(digits, 3):
        tr.step(xb, yb)
    xb, yb = _batches(digits, 4)[3]
    torch.nn.functional.cross_entropy(tr.model(xb), yb).backward()

    def snapshot() -> list:
        return [(p.chi.clone(), p.clean.clone(), p.apparent.clone(),
                 {k: v.clone() for k, v in p.state.items()}) for p in tr.pairs]

    def restore(snap: list, gens: tuple) -> None:
        for p, (chi, clean, app, st) in zip(tr.pairs, snap, strict=True):
            p.chi.copy_(chi), p.clean.copy_(clean), p.apparent.copy_(app)
            p.state.update({k: v.clone() for k, v in st.items()})
        tr.dev_gen.set_state(gens[0]), tr.noise_gen.set_state(gens[1])

    start, gens = snapshot(), (tr.dev_gen.get_state(), tr.noise_gen.get_state())
    tr.take_pulses()
    with torch.no_grad():
        for p in tr.pairs:
            _reference_transfer(tr, p)
    want, want_pulses = snapshot(), tr.take_pulses()
    assert sum(v["down"] for v in want_pulses.values()) > 0  # refreshes happened
    restore(start, gens)
    with torch.no_grad():
        for p in tr.pairs:
            tr._transfer(p)
    assert tr.take_pulses() == want_pulses
    for (chi, clean, app, st), (chi2, clean2, app2, st2) in zip(want, snapshot(), strict=True):
        assert torch.equal(chi, chi2) and torch.equal(clean, clean2) and torch.equal(app, app2)
        assert st.keys() == st2.keys() and all(torch.equal(st[k], st2[k]) for k in st)


def test_threshold_indices_compare_in_the_tensor_precision() -> None:
    from dse.train.converters import indices_above
    level = 3.3e-3  # float32(level) < level: the comparison is a float32 one, as in torch
    x = torch.tensor([level, -level, 1.0, 0.0], dtype=torch.float32)
    x = torch.cat([x, torch.nextafter(x, torch.zeros(4)), torch.nextafter(x, torch.ones(4))])
    for strict in (False, True):
        want = torch.nonzero(x > level if strict else x >= level).squeeze(1)
        got = indices_above(x, level, strict)
        assert got.dtype == torch.int64 and torch.equal(got, want)


def test_soft_bounds_pulse_keys_are_enough_to_pulse() -> None:
    dev = from_card(BULK)
    state = dev.sample_devices((1000,), torch.Generator().manual_seed(0))
    keys = dev.pulse_keys(state)
    assert "up" not in keys and "x" in keys and "log_keep_up" in keys
    idx = torch.arange(0, 1000, 3)
    n = torch.randint(-3, 4, (idx.numel(),), generator=torch.Generator().manual_seed(1)).float()
    full = dev.apply_pulses(dev.take(state, idx), n, torch.Generator().manual_seed(2))
    part = dev.apply_pulses(dev.take(state, idx, keys), n, torch.Generator().manual_seed(2))
    assert torch.equal(full["x"], part["x"])
