"""The inject stage: sampled fault rates equal the requested ones (3 sigma), BER 0 is the clean
model, the vectorised pass equals per-map evaluation, stuck-at and analog noise, BER sources."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from dse.chip.ber import ChipErrors, OperatingPoint, combine_ber, points_for_chip
from dse.chip.card_parse import chip_from_dict
from dse.chip.inject import (
    AnalogNoise,
    StuckAt,
    inject,
    map_accuracies,
    perturbed_weights,
    summarize,
)
from dse.chip.mapping import map_model
from dse.data import load_dataset
from dse.errors import DseError
from dse.nn import ModelSpec, build_model, evaluate


def q(value, unit="1"):
    return {"value": value, "unit": unit, "assumption": "test"}


def card(encoding: str = "binary", **errors) -> dict:
    d = {
        "name": f"t-{encoding}", "encoding": encoding,
        "technology": {"node": q(130, "nm"), "supply": q(1.2, "V")},
        "array": {"rows": q(64), "cols": q(128)},
        "cell": {"cells_per_weight": q(2), "area": q(48, "F2"), "read_energy": q(0, "fJ")},
        "sensing": {"kind": "pcsa", "sense_energy": q(10, "fJ"),
                    "sense_amp_area": q(11, "transistors")},
        "digital": {"add_energy": q(20, "fJ"), "buffer_energy": q(100, "fJ")},
        "periphery": {"row_area": q(4, "transistors"), "column_area": q(100, "transistors")},
    }
    if errors:
        d["errors"] = errors
    return d


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def net(precision: str, seed: int = 0, hidden=(64, 64)):
    g = torch.Generator().manual_seed(seed)
    model = build_model(ModelSpec("mlp", (1, 8, 8), 10, precision, hidden=list(hidden)), g)
    if precision == "ternary":  # half of the weights zero, half +-1
        with torch.no_grad():
            for _, layer in model.quant_layers():
                layer.weight.mul_(0.05 / layer.weight.abs().median())
    # non-trivial BatchNorm statistics so that accuracies differ between fault maps
    model.train()
    with torch.no_grad():
        model(torch.rand(256, 1, 8, 8, generator=g))
    return model.eval()


def _three_sigma(changed: int, n: int, p: float) -> bool:
    return abs(changed - n * p) <= 3 * math.sqrt(n * p * (1 - p))


# -------------------------------------------------------------------- fault rates
def test_binary_flip_rate_per_map_equals_requested_ber() -> None:
    model = net("binary")
    mapping = map_model(model, chip_from_dict(card("binary")))
    ber = torch.tensor([0.0, 1e-3, 0.02, 0.2])
    w = perturbed_weights(model, mapping, ber, torch.Generator().manual_seed(1))
    for name, layer in model.quant_layers():
        clean = layer.quantized_weight()
        assert w[f"{name}.weight"].shape == (4, *clean.shape)
        assert set(w[f"{name}.weight"].unique().tolist()) <= {-1.0, 1.0}
    for i, p in enumerate(ber.tolist()):
        changed = sum(int((w[f"{n}.weight"][i] != layer.quantized_weight()).sum())
                      for n, layer in model.quant_layers())
        total = sum(layer.weight.numel() for _, layer in model.quant_layers())
        if p == 0:
            assert changed == 0
        else:
            assert _three_sigma(changed, total, p), (p, changed / total)


def test_maps_with_a_confusion_matrix_read_each_stored_value_through_it() -> None:
    """Per stored value: a ternary chip's matrix that reads every +1 as 0 and nothing else
    wrong changes only the +1 weights; a map without a matrix (NaN) keeps its BER path."""
    model = net("ternary")
    mapping = map_model(model, chip_from_dict(card("ternary")))
    plus_to_zero = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]
    nan = [[math.nan] * 3] * 3
    conf = torch.tensor([plus_to_zero, nan])
    w = perturbed_weights(model, mapping, torch.tensor([0.3, 0.0]),
                          torch.Generator().manual_seed(4), confusion=conf)
    for name, layer in model.quant_layers():
        clean = layer.quantized_weight()
        read = w[f"{name}.weight"]
        assert torch.equal(read[0], torch.where(clean > 0, 0.0, clean))
        assert torch.equal(read[1], clean)  # BER 0, no matrix: unchanged


def test_ternary_error_rate_equals_requested_ber_without_sign_flips() -> None:
    model = net("ternary")
    mapping = map_model(model, chip_from_dict(card("ternary")))
    ber = torch.tensor([0.01, 0.05, 0.1])
    w = perturbed_weights(model, mapping, ber, torch.Generator().manual_seed(2))
    total = sum(layer.weight.numel() for _, layer in model.quant_layers())
    zeros = sum(int((layer.quantized_weight() == 0).sum()) for _, layer in model.quant_layers())
    assert 0.3 < zeros / total < 0.7
    for i, p in enumerate(ber.tolist()):
        changed = 0
        for name, layer in model.quant_layers():
            clean, new = layer.quantized_weight(), w[f"{name}.weight"][i]
            assert not bool(((clean * new) < 0).any()), "a ternary error flipped a sign"
            changed += int((clean != new).sum())
        assert _three_sigma(changed, total, p), (p, changed / total)


def test_stuck_at_rates_through_the_cells() -> None:
    model = net("binary")
    mapping = map_model(model, chip_from_dict(card("binary")))
    p = 0.1
    w = perturbed_weights(model, mapping, torch.zeros(2), torch.Generator().manual_seed(3),
                          stuck_at=StuckAt(sa0=p))
    # +1 = (LRS, HRS): only its LRS cell stuck at HRS leaves an undecided pair (read +-1 at
    # random), so a weight is wrong with probability p/2
    changed = sum(int((w[f"{n}.weight"] != layer.quantized_weight()).sum())
                  for n, layer in model.quant_layers())
    total = 2 * sum(layer.weight.numel() for _, layer in model.quant_layers())
    assert _three_sigma(changed, total, p / 2), changed / total
    tern = net("ternary")
    tmap = map_model(tern, chip_from_dict(card("ternary")))
    w = perturbed_weights(tern, tmap, torch.zeros(1), torch.Generator().manual_seed(3),
                          stuck_at=StuckAt(sa0=1.0))
    assert all(bool((v == 0).all()) for v in w.values())  # every cell HRS: every weight 0
    with pytest.raises(DseError, match="stuck_at"):
        StuckAt(sa0=0.7, sa1=0.6)


# -------------------------------------------------------------------- accuracy
def test_ber_zero_gives_the_clean_accuracy_exactly(digits) -> None:
    model = net("binary")
    mapping = map_model(model, chip_from_dict(card("binary")))
    x, y = digits.x_test, digits.y_test
    clean = evaluate(model, x, y)
    table = inject(model, mapping, x, y, [0.0, 0.05], 5, torch.Generator().manual_seed(0))
    assert table.attrs["clean_accuracy"] == clean
    assert (table[table["ber"] == 0]["accuracy"] == clean).all()
    assert table[table["ber"] == 0.05]["accuracy"].std() > 0
    # the vectorised pass itself reproduces the clean model at BER 0
    w = perturbed_weights(model, mapping, torch.zeros(3), torch.Generator().manual_seed(0))
    assert map_accuracies(model, w, x, y).tolist() == [clean] * 3


def test_vectorised_maps_equal_one_by_one_evaluation(digits) -> None:
    model = net("ternary")
    mapping = map_model(model, chip_from_dict(card("ternary")))
    x, y = digits.x_test, digits.y_test
    w = perturbed_weights(model, mapping, torch.tensor([0.01, 0.05, 0.2]),
                          torch.Generator().manual_seed(5))
    batched = map_accuracies(model, w, x, y, max_elements=5e4)  # several image chunks
    for i in range(3):
        m = copy.deepcopy(model)
        with torch.no_grad():
            for name, layer in m.quant_layers():
                layer.weight.copy_(w[f"{name}.weight"][i])
        assert abs(batched[i].item() - evaluate(m, x, y)) <= 1.0 / len(x)


def test_vectorised_maps_of_a_convnet(digits) -> None:
    g = torch.Generator().manual_seed(0)
    model = build_model(ModelSpec("lenet", (1, 8, 8), 10, "binary"), g)
    model.train()
    with torch.no_grad():
        model(torch.rand(64, 1, 8, 8, generator=g))
    model.eval()
    mapping = map_model(model, chip_from_dict(card("binary")))
    x, y = digits.x_test, digits.y_test
    w = perturbed_weights(model, mapping, torch.tensor([0.0, 0.05, 0.2]), g)
    batched = map_accuracies(model, w, x, y, max_elements=1e5)
    assert batched[0].item() == evaluate(model, x, y)
    for i in (1, 2):
        m = copy.deepcopy(model)
        with torch.no_grad():
            for name, layer in m.quant_layers():
                layer.weight.copy_(w[f"{name}.weight"][i])
        assert abs(batched[i].item() - evaluate(m, x, y)) <= 1.0 / len(x)


def test_sparse_first_layer_equals_dense_evaluation(digits) -> None:
    from dse.chip import fault_eval as inj

    model = net("binary")
    mapping = map_model(model, chip_from_dict(card("binary")))
    x, y = digits.x_test, digits.y_test
    w = perturbed_weights(model, mapping, torch.tensor([1e-3, 5e-3, 1e-2, 0.0]),
                          torch.Generator().manual_seed(6))
    sparse = map_accuracies(model, w, x, y)  # ~0.4 % of the weights changed: sparse path
    old = inj.SPARSE_FIRST_LAYER
    try:
        inj.SPARSE_FIRST_LAYER = -1.0  # force the dense path
        dense = map_accuracies(model, w, x, y)
    finally:
        inj.SPARSE_FIRST_LAYER = old
    assert (sparse - dense).abs().max().item() <= 1.0 / len(x)
    assert sparse[3].item() == evaluate(model, x, y)


def test_inject_is_reproducible_and_summarised(digits) -> None:
    model = net("binary")
    mapping = map_model(model, chip_from_dict(card("binary")))
    x, y = digits.x_test[:200], digits.y_test[:200]
    pts = [OperatingPoint(ber=0.01, knobs={"vdd": 1.0}), 0.1]
    a = inject(model, mapping, x, y, pts, 4, torch.Generator().manual_seed(7), batch=3)
    b = inject(model, mapping, x, y, pts, 4, torch.Generator().manual_seed(7), batch=3)
    pd.testing.assert_frame_equal(a, b)  # same seed and batch size: the same numbers
    assert list(a.columns) == ["vdd", "ber", "stuck_sa0", "stuck_sa1", "noise", "repeat",
                               "accuracy"]
    assert np.isnan(a[a["ber"] == 0.1]["vdd"]).all()
    s = summarize(a)
    assert len(s) == 2 and (s["n"] == 4).all()
    row = s[s["ber"] == 0.1].iloc[0]
    acc = a[a["ber"] == 0.1]["accuracy"]
    lo, hi = stats.t.interval(0.95, 3, loc=acc.mean(), scale=acc.std() / 2)
    assert row["ci95_low"] == pytest.approx(lo) and row["ci95_high"] == pytest.approx(hi)
    assert row["drop"] == pytest.approx(a.attrs["clean_accuracy"] - acc.mean())
    one = summarize(a[a["repeat"] == 0], clean_accuracy=0.5)
    assert one["ci95_low"].isna().all() and (one["clean_accuracy"] == 0.5).all()


class FakeAnalogDevice:
    """g in [1, 11] uS; one-shot programming with N(0, 0.5 uS) noise."""

    g_min, g_max = 1.0, 11.0

    def program(self, target: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        noise = 0.5 * torch.randn(target.shape, generator=generator, dtype=target.dtype)
        return (target + noise).clamp(self.g_min, self.g_max)


def test_analog_programming_noise(digits) -> None:
    model = net("float")
    chip = chip_from_dict({**card("analog"), "name": "t-analog"})
    mapping = map_model(model, chip)
    x, y = digits.x_test, digits.y_test
    pts = points_for_chip("analog", [0.0, 0.1])
    assert [p.noise for p in pts] == [False, True]
    table = inject(model, mapping, x, y, pts, 3, torch.Generator().manual_seed(0),
                   analog=AnalogNoise(FakeAnalogDevice(), read=False))
    clean = table.attrs["clean_accuracy"]
    assert (table[table["noise"] == "none"]["accuracy"] == clean).all()
    assert (table[table["noise"] == "program"]["accuracy"] != clean).any()
    w = perturbed_weights(model, mapping, torch.zeros(2), torch.Generator().manual_seed(0),
                          analog=AnalogNoise(FakeAnalogDevice(), read=False))
    name, layer = model.quant_layers()[0]
    clean = layer.weight.detach()
    err = (w[f"{name}.weight"] - clean) / clean.abs().max()
    # each of the two cells has sigma 0.5 / 10 of the range: the difference sqrt(2) * 0.05
    assert float(err.std()) == pytest.approx(math.sqrt(2) * 0.05, rel=0.2)


# -------------------------------------------------------------------- BER sources
class FakeCell:
    name = "cell"
    knobs = ("i_prog",)
    optional_knobs: ClassVar[dict] = {}
    DEVICES_PER_BIT = 2

    def ber(self, i_prog):
        return np.asarray(1e-3 * (1e-4 / i_prog))

    def write_energy(self, i_prog):
        return np.asarray(2 * 1.0 * i_prog * 1e-7)  # 2 devices x 1 V x I x 100 ns

    def operating_points(self):
        return [{"i_prog": 5e-5}, {"i_prog": 2e-4}]


class FakeSense:
    name = "sense"
    knobs = ("vdd",)
    optional_knobs: ClassVar[dict] = {}

    def ber(self, vdd):
        return np.asarray(0.01 if vdd < 1.0 else 0.0)

    def write_energy(self, **op):
        return None

    def operating_points(self):
        return [{"vdd": 0.8}]


def test_combined_ber_of_independent_sources() -> None:
    assert combine_ber([0.1, 0.2]) == pytest.approx(0.1 + 0.2 - 2 * 0.1 * 0.2)
    assert combine_ber([0.5, 0.3]) == pytest.approx(0.5)
    assert combine_ber([1e-3]) == pytest.approx(1e-3)
    chip = chip_from_dict(card("binary", sources=[{"card": "c", "role": "cell"},
                                                  {"card": "s", "role": "sense"}],
                               operating_point={"i_prog": q(1e-4, "A")}))
    errs = ChipErrors(chip, {"c": FakeCell(), "s": FakeSense()})
    assert errs.ber() == pytest.approx(1e-3)  # nominal: 100 uA, vdd = supply 1.2 V
    assert errs.ber({"vdd": 0.9}) == pytest.approx(float(combine_ber([1e-3, 0.01])))
    assert errs.ber({"i_prog": 5e-5}) == pytest.approx(2e-3)
    assert errs.write_energy_pj() == pytest.approx(1e-4 * 1e-7 * 1e12)  # per cell
    sweep = errs.default_sweep()
    assert sweep[0] == {"i_prog": 1e-4, "vdd": 1.2} and {"i_prog": 5e-5, "vdd": 1.2} in sweep
    assert {"i_prog": 1e-4, "vdd": 0.8} in sweep
    pts = points_for_chip("binary", [0.0], "card", errs, chip.name)
    assert len(pts) == 1 + len(sweep) and pts[1].knobs == sweep[0]
    with pytest.raises(DseError, match="unknown knob"):
        errs.ber({"t_write": 1e-8})
    with pytest.raises(DseError, match=r"needs device card\(s\) s"):
        ChipErrors(chip, {"c": FakeCell()})
    with pytest.raises(DseError, match="pass the chip card"):
        points_for_chip("binary", [0.0], [{"vdd": 1.0}], None, chip.name)


def test_shipped_device_cards_give_a_chip_ber(repo: Path) -> None:
    devices = repo / "config" / "devices"
    needed = ["hfo2-2t2r.yaml", "pcsa-130nm-physical.yaml"]
    if not all((devices / n).is_file() for n in needed):
        pytest.skip("device cards not shipped yet")
    from dse.pipeline.artifacts import load_chip, load_device_models

    chip = load_chip(repo / "config" / "chips" / "rram-2t2r-pcsa-130nm.yaml")
    errs = ChipErrors(chip, load_device_models([devices / n for n in needed]))
    ber = errs.ber()
    assert 0.0 <= ber < 0.5
    assert errs.write_energy_pj() > 0
    for op in errs.default_sweep():
        assert 0.0 <= errs.ber(op) <= 0.5
    # the physical sense reads each pair: the point carries its 2x2 matrix per stored value
    point = errs.point({})
    assert point.confusion is not None and len(point.confusion) == 2
    assert point.ber == pytest.approx(0.5 * (point.confusion[0][1] + point.confusion[1][0]))
