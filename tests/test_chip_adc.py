"""ADC quantization of partial sums (dse.chip.adc_quant) and its use in the inject stage: row
groups as the mapping counts them, a hand-computed grouped quantization, convolutions equal their
im2col matrix, bits -> infinity equals the clean model, the accuracy / energy trade-off, the
vectorised fault-map paths, and chips without ADCs left as they were."""

from __future__ import annotations

import copy
import dataclasses
import itertools

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import dse.chip.fault_eval as fault_eval
import dse.chip.inject as inj
from dse.chip.adc_quant import (
    AdcSpec,
    LayerReadout,
    build_readout,
    quantize_uniform,
    row_groups,
)
from dse.chip.card_parse import chip_from_dict
from dse.chip.estimate import estimate, totals
from dse.chip.inject import (
    AnalogNoise,
    StuckAt,
    inject,
    map_accuracies,
    perturbed_weights,
)
from dse.chip.mapping import LayerSpec, Mapping, map_model
from dse.data import load_dataset
from dse.errors import DseError
from dse.nn import ModelSpec, build_model, evaluate


def q(value, unit="1"):
    return {"value": value, "unit": unit, "assumption": "test"}


def adc_card(rows: int = 128, parallel_rows: int = 128, bits: int = 5, cells: int = 2,
             r_on_kohm: float = 100.0, r_off_kohm: float = 1700.0) -> dict:
    return {
        "name": "t-adc", "encoding": "analog",
        "technology": {"node": q(22, "nm"), "supply": q(0.8, "V")},
        "array": {"rows": q(rows), "cols": q(128)},
        "cell": {"cells_per_weight": q(cells), "area": q(48, "F2"),
                 "r_on": q(r_on_kohm, "kohm"), "r_off": q(r_off_kohm, "kohm"),
                 "read_voltage": q(0.55, "V"), "read_pulse": q(10, "ns")},
        "sensing": {"kind": "adc", "adc_model": "neurosim_sar", "adc_bits": q(bits),
                    "cols_per_adc": q(8), "parallel_rows": q(parallel_rows)},
        "digital": {"add_energy": q(19, "fJ"), "buffer_energy": q(60, "fJ")},
        "periphery": {"row_area": q(4, "transistors"), "column_area": q(30, "transistors")},
    }


def pcsa_card() -> dict:
    d = adc_card()
    d.update(name="t-pcsa", encoding="binary")
    d["sensing"] = {"kind": "pcsa", "sense_energy": q(10, "fJ"),
                    "sense_amp_area": q(11, "transistors")}
    return d


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def trained(digits):
    """A float 64-32-10 MLP trained for a few seconds (Adam, full batch): 0.9+ test accuracy."""
    g = torch.Generator().manual_seed(0)
    model = build_model(ModelSpec("mlp", (1, 8, 8), 10, "float", hidden=[32]), g)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    model.train()
    for _ in range(150):
        opt.zero_grad()
        F.cross_entropy(model(digits.x_train), digits.y_train).backward()
        opt.step()
    model.eval()
    assert evaluate(model, digits.x_test, digits.y_test) > 0.9
    return model


# -------------------------------------------------------------------- row groups and mapping
@pytest.mark.parametrize(("rows", "array_rows", "parallel"),
                         [(784, 128, 128), (784, 128, 32), (150, 128, 50), (7, 5, 2),
                          (64, 128, 128), (300, 100, 30)])
def test_row_groups_are_the_reads_the_mapping_counts(rows, array_rows, parallel) -> None:
    groups = row_groups(rows, array_rows, parallel)
    assert groups[0][0] == 0 and groups[-1][1] == rows
    assert all(a1 == b0 for (_, a1), (b0, _) in itertools.pairwise(groups))
    assert all(0 < b - a <= parallel for a, b in groups)
    assert all(a // array_rows == (b - 1) // array_rows for a, b in groups)  # inside one tile
    chip = chip_from_dict(adc_card(rows=array_rows, parallel_rows=parallel))
    lm = map_model([LayerSpec("a", "linear", "float", rows, 10, in_bits=8)], chip).layers[0]
    assert lm.adc_conversions == 8 * len(groups) * 10 * 2  # b_in * G * C * k


def test_the_mapping_records_the_adc() -> None:
    spec = [LayerSpec("a", "linear", "float", 100, 10)]
    m = map_model(spec, chip_from_dict(adc_card(bits=6)))
    assert (m.adc_bits, m.on_off_ratio) == (6, pytest.approx(17.0))
    assert Mapping.from_dict(m.to_dict()) == m
    assert AdcSpec.from_mapping(m).offset == pytest.approx(1 / 16)  # rho = 1/(17 - 1)
    pcsa = map_model([dataclasses.replace(spec[0], precision="binary")],
                     chip_from_dict(pcsa_card()))
    assert pcsa.adc_bits is None and AdcSpec.from_mapping(pcsa) is None
    old = m.to_dict()
    del old["adc_bits"]
    with pytest.raises(DseError, match="re-run `dse map`"):
        Mapping.from_dict(old, source="m.json")


# -------------------------------------------------------------------- the quantizer
def test_uniform_quantizer_codes_and_clipping() -> None:
    p = torch.tensor([-1.0, 0.0, 0.2, 0.49, 0.51, 2.9, 3.0, 7.0])
    # 2 bits over [0, 3]: codes 0, 1, 2, 3
    assert quantize_uniform(p, 0.0, 3.0, 2).tolist() == [0.0, 0.0, 0.0, 0.0, 1.0, 3.0, 3.0, 3.0]
    fine = quantize_uniform(p.clamp(0, 3), 0.0, 3.0, 20)
    assert (fine - p.clamp(0, 3)).abs().max() <= 3.0 / (2**20 - 1) / 2 + 1e-6
    # a zero range (constant calibration sums) pins every value to it, finitely
    assert quantize_uniform(p, 0.5, 0.5, 8).tolist() == pytest.approx([0.5] * len(p))


def test_hand_computed_grouped_partial_sums() -> None:
    """6 inputs x 2 outputs on 4-row arrays read 2 rows at a time: groups rows {0,1}, {2,3}
    (tile 1) and {4,5} (tile 2). R_off/R_on = 5, so every cell adds rho = 1/4 per unit input."""
    chip = chip_from_dict(adc_card(rows=4, parallel_rows=2, bits=2, r_off_kohm=500.0))
    m = map_model([LayerSpec("fc1", "linear", "float", 6, 2)], chip)
    spec = AdcSpec.from_mapping(m)
    assert spec is not None and spec.offset == pytest.approx(0.25)
    w = torch.tensor([[1.0, -0.5, 0.5, 0.0, -1.0, 0.25],
                      [0.0, 0.5, -0.5, 1.0, 0.75, -0.25]])
    x = torch.tensor([[1.0, 1.0, 0.0, 1.0, 0.5, 1.0]])
    ro = LayerReadout(spec, rows=6, weight_dim=2, w_max=1.0)
    assert ro.groups == [(0, 2), (2, 4), (4, 6)]
    layer = torch.nn.Linear(6, 2, bias=False)  # stands in for a QLinear (no cell_columns)
    # column partial sums sum x * (rho + level): (p+, p-) per group, output 0 | output 1
    #   group {0,1}: (1.5, 1.0)   | (1.0, 0.5)
    #   group {2,3}: (0.25, 0.25) | (1.25, 0.25)
    #   group {4,5}: (0.625, 0.875) | (0.75, 0.625)
    ro.quantize = False
    exact = ro(layer, x, w)
    assert exact[0].tolist() == pytest.approx([0.25, 1.625])  # = x @ w.T
    # 2-bit ADCs: groups 0 and 1 over [0, 1.4] (codes 0, 7/15, 14/15, 1.4); group 2 over
    # [0.5, 1.1] (codes 0.5, 0.7, 0.9, 1.1)
    ro.quantize = True
    ro.lo, ro.hi = torch.tensor([0.0, 0.0, 0.5]), torch.tensor([1.4, 1.4, 1.1])
    # output 0: (1.4 - 14/15) + (7/15 - 7/15) + (0.7 - 0.9) = 7/15 - 0.2 = 4/15
    # output 1: (14/15 - 7/15) + (1.4 - 7/15) + (0.7 - 0.7) = 7/15 + 14/15 = 1.4
    assert ro(layer, x, w)[0].tolist() == pytest.approx([4 / 15, 1.4], abs=1e-6)
    # output 0, row 0: the "off" cell of the pair (negative column) stuck at LRS. The weight
    # decodes to 1 - 1 = 0, but the cells load both columns: group 0 reads p+ = 1.5 -> 1.4 and
    # p- = 1.0 + 1.0 = 2.0 -> 1.4 (both clipped), so 0 + 0 - 0.2 = -0.2 in all
    levels = torch.stack([w.clamp(min=0), (-w).clamp(min=0)], dim=-1)
    levels[0, 0, 1] = 1.0
    w_stuck = w.clone()
    w_stuck[0, 0] = 0.0
    layer.cell_columns = ro.columns(w_stuck, levels)
    assert ro(layer, x, w_stuck)[0].tolist() == pytest.approx([-0.2, 1.4], abs=1e-6)
    # from the decoded weight alone group 0 would read p+ = 0.5 -> 7/15 and p- = 1.0 -> 14/15
    layer.cell_columns = None
    assert ro(layer, x, w_stuck)[0].tolist() == pytest.approx([-7 / 15 - 0.2, 1.4], abs=1e-6)
    # an offset-encoded single cell (k = 1) is read against a mid-range reference
    one = AdcSpec(bits=2, array_rows=4, parallel_rows=2, cells_per_weight=1, encoding="analog")
    ro1 = LayerReadout(one, rows=6, weight_dim=2, w_max=1.0)
    ro1.quantize = False
    assert ro1(torch.nn.Linear(6, 2), x, w) == pytest.approx(x @ w.T)


def test_convolution_groups_equal_the_im2col_matrix() -> None:
    """Row groups that cut through input channels (9 rows per channel, 7 rows per read)."""
    g = torch.Generator().manual_seed(3)
    model = build_model(ModelSpec("lenet", (1, 8, 8), 10, "float"), g).eval()
    chip = chip_from_dict(adc_card(rows=32, parallel_rows=7, bits=3))
    spec = AdcSpec.from_mapping(map_model(model, chip))
    layer = model.body.conv2  # 6 x 5 x 5 = 150 rows
    w = layer.weight.detach()
    ro = LayerReadout(spec, rows=150, weight_dim=4, w_max=float(w.abs().max()), kernel=25)
    x = torch.rand(3, 6, 4, 4, generator=g)
    ro.quantize = False
    conv = ro(layer, x, w)
    assert conv == pytest.approx(layer._conv_forward(x, w, None), abs=1e-5)
    ro.lo, ro.hi = -torch.rand(len(ro.groups), generator=g), torch.rand(len(ro.groups),
                                                                        generator=g)
    ro.quantize = True
    conv = ro(layer, x, w)
    cols = F.unfold(x, 5, padding=layer.padding).transpose(1, 2)  # (B, positions, 150)
    lin = LayerReadout(spec, rows=150, weight_dim=2, w_max=ro.w_max)
    lin.lo, lin.hi = ro.lo, ro.hi
    ref = lin(torch.nn.Linear(150, 16), cols, w.flatten(1)).transpose(1, 2).reshape(conv.shape)
    assert conv == pytest.approx(ref, abs=1e-5)


# -------------------------------------------------------------------- accuracy through inject
def test_many_bits_give_the_clean_accuracy(trained, digits) -> None:
    x, y = digits.x_test, digits.y_test
    clean = evaluate(trained, x, y)
    for bits in (16, 24):
        chip = chip_from_dict(adc_card(parallel_rows=16, bits=bits))
        table = inject(trained, map_model(trained, chip), x, y, [0.0], 2,
                       torch.Generator().manual_seed(0))
        assert table.attrs["clean_accuracy"] == clean
        assert abs(table.attrs["adc_accuracy"] - clean) <= 1 / len(x)
        assert (table["adc_bits"] == bits).all()
        assert (table["accuracy"] == table.attrs["adc_accuracy"]).all()
    off = inject(trained, map_model(trained, chip), x, y, [0.0], 2,
                 torch.Generator().manual_seed(0), adc=False)
    assert (off["accuracy"] == clean).all() and off["adc_bits"].isna().all()


def test_fewer_bits_cost_accuracy_and_save_energy(trained, digits) -> None:
    x, y = digits.x_test, digits.y_test
    acc, energy = {}, {}
    for bits in range(1, 9):
        chip = chip_from_dict(adc_card(parallel_rows=16, bits=bits))
        mapping = map_model(trained, chip)
        table = inject(trained, mapping, x, y, [0.0], 1, torch.Generator().manual_seed(0),
                       adc_calibration=digits.x_train)
        acc[bits] = table.attrs["adc_accuracy"]
        energy[bits] = totals(estimate(mapping, chip))["energy_per_inference_pJ"]
    clean = evaluate(trained, x, y)
    assert all(energy[b] < energy[b + 1] for b in range(1, 8))
    assert acc[1] < acc[3] < acc[5] <= clean + 1 / len(x)
    assert acc[1] < 0.5 and acc[8] >= clean - 2 / len(x)
    bits = np.array(list(acc))
    assert np.corrcoef(bits, [acc[b] for b in bits])[0, 1] > 0.7  # monotone on average


def test_groups_of_always_dark_pixels_read_zero(trained, digits) -> None:
    """One row per read: the rows of pixels that are black in every calibration image get a
    zero ADC range; they must read 0 (not NaN) and the other rows keep the accuracy."""
    x, y = digits.x_test, digits.y_test
    chip = chip_from_dict(adc_card(parallel_rows=1, bits=8))
    ro = build_readout(trained, map_model(trained, chip), digits.x_train)
    dark = (digits.x_train.flatten(1) == 0).all(0)
    assert dark.any()
    assert (ro.layers["fc1"].hi[dark] == ro.layers["fc1"].lo[dark]).all()
    for bits in (3, 8):
        table = inject(trained, map_model(trained, chip.replace(adc_bits=bits)),
                       x, y, [0.0], 1, torch.Generator().manual_seed(0),
                       adc_calibration=digits.x_train)
        assert table.attrs["adc_accuracy"] > 0.8


def test_calibration_sets_each_group_to_the_clean_extremes(trained, digits) -> None:
    chip = chip_from_dict(adc_card(parallel_rows=16, bits=4))
    ro = build_readout(trained, map_model(trained, chip), digits.x_train)
    assert ro is not None
    fc1 = ro.layers["fc1"]
    cols = fc1.columns(trained.body.fc1.quantized_weight().detach())  # (2*32, 64)
    z = digits.x_train.flatten(1)
    for g, (a, b) in enumerate(fc1.groups):
        p = z[:, a:b] @ cols[:, a:b].T
        assert float(fc1.lo[g]) == pytest.approx(float(p.min()), abs=1e-5)
        assert float(fc1.hi[g]) == pytest.approx(float(p.max()), abs=1e-5)
    table = ro.ranges()
    assert len(table) == sum(len(r.groups) for r in ro.layers.values())
    assert table["step"].to_numpy() == pytest.approx((table["hi"] - table["lo"]) / 15)


# -------------------------------------------------------------------- fault maps, vectorised
class FakeAnalogDevice:
    """Conductance in [1, 11]; one-shot programming with N(0, 0.5) noise, clipped."""

    g_min, g_max = 1.0, 11.0

    def program(self, target: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        noise = 0.5 * torch.randn(target.shape, generator=generator, dtype=target.dtype)
        return (target + noise).clamp(self.g_min, self.g_max)


def _per_map(model, readout, weights, x, y) -> list[float]:
    """Reference: load each map into a copy of the model and evaluate it on its own."""
    m = next(iter(weights.values())).shape[0]
    out = []
    for i in range(m):
        one = copy.deepcopy(model)
        for name, layer in one.quant_layers():
            w = weights[f"{name}.weight"][i]
            layer.weight.data.copy_(w)
            if f"{name}.cell_levels" in weights:
                levels = weights[f"{name}.cell_levels"][i]
                layer.cell_columns = readout.layers[name].columns(w, levels)
            if f"{name}.cell_gain" in weights:
                layer.cell_gain = weights[f"{name}.cell_gain"][i]
        with readout.attached(one):
            out.append(evaluate(one, x, y))
    return out


def test_vectorised_maps_equal_per_map_evaluation(trained, digits) -> None:
    x, y = digits.x_test, digits.y_test
    mapping = map_model(trained, chip_from_dict(adc_card(parallel_rows=16, bits=4)))
    ro = build_readout(trained, mapping, x)
    gen = torch.Generator().manual_seed(1)
    # programming noise: every cell changes (dense first-layer path), with the cells' levels
    w = perturbed_weights(trained, mapping, torch.zeros(3), gen, cell_levels=True,
                          analog=AnalogNoise(FakeAnalogDevice(), read=False))
    assert w["fc1.cell_levels"].shape == (3, 32, 64, 2)
    with ro.attached(trained):
        vec = map_accuracies(trained, w, x, y, changed=1.0)
    assert vec.tolist() == pytest.approx(_per_map(trained, ro, w, x, y), abs=1.01 / len(x))
    # a few stuck cells: the sparse first-layer path equals the dense one
    w = perturbed_weights(trained, mapping, torch.zeros(4), gen, cell_levels=True,
                          stuck_at=StuckAt(sa0=0.002, sa1=0.002))
    with ro.attached(trained):
        sparse = map_accuracies(trained, w, x, y)
        old = fault_eval.SPARSE_FIRST_LAYER
        try:
            fault_eval.SPARSE_FIRST_LAYER = -1.0  # force the dense path
            dense = map_accuracies(trained, w, x, y)
        finally:
            fault_eval.SPARSE_FIRST_LAYER = old
    assert (sparse - dense).abs().max().item() <= 1.01 / len(x)
    assert dense.tolist() == pytest.approx(_per_map(trained, ro, w, x, y), abs=1.01 / len(x))


def test_a_digital_gain_acts_after_the_adcs(trained, digits) -> None:
    """``cell_gain`` (the drift compensation factor on a chip) multiplies the converted output:
    the vectorised maps equal the per-map evaluation, a gain of 1 changes nothing, and currents
    shrunk 50x then amplified 50x do not come back: the ADC converted the small currents with
    the ranges of the full ones (what scaling the cells before conversion would hide)."""
    x, y = digits.x_test, digits.y_test
    mapping = map_model(trained, chip_from_dict(adc_card(parallel_rows=16, bits=4)))
    ro = build_readout(trained, mapping, x)
    gen = torch.Generator().manual_seed(2)
    w = perturbed_weights(trained, mapping, torch.zeros(3), gen, cell_levels=True,
                          analog=AnalogNoise(FakeAnalogDevice(), read=False))
    names = [n for n, _ in trained.quant_layers()]
    gained = dict(w, **{f"{n}.cell_gain": torch.tensor([1.0, 0.5, 2.0]) for n in names})
    with ro.attached(trained):
        plain = map_accuracies(trained, w, x, y, changed=1.0)
        vec = map_accuracies(trained, gained, x, y, changed=1.0)
        layer = dict(trained.quant_layers())["fc2"]
        h = torch.randn(5, layer.in_features, generator=gen)
        y1 = layer(h)
        layer.cell_gain = torch.tensor(3.0)
        y3 = layer(h)
        layer.cell_gain = None
        shrunk = dict(w, **{f"{n}.cell_levels": w[f"{n}.cell_levels"] / 50 for n in names},
                      **{f"{n}.cell_gain": torch.full((3,), 50.0) for n in names})
        back = map_accuracies(trained, shrunk, x, y, changed=1.0)
    assert vec[0] == plain[0]
    assert vec.tolist() == pytest.approx(_per_map(trained, ro, gained, x, y), abs=1.01 / len(x))
    assert torch.allclose(y3, 3 * y1)
    assert float(back.mean()) < float(plain.mean()) - 0.1


def test_inject_with_noise_on_an_adc_chip(trained, digits) -> None:
    x, y = digits.x_test, digits.y_test
    chip = chip_from_dict(adc_card(parallel_rows=16, bits=3))
    mapping = map_model(trained, chip)
    pts = [inj.OperatingPoint(ber=0.0, noise=False), inj.OperatingPoint(ber=0.0, noise=True)]
    noise = AnalogNoise(FakeAnalogDevice(), read=False)
    a = inject(trained, mapping, x, y, pts, 3, torch.Generator().manual_seed(5), analog=noise)
    b = inject(trained, mapping, x, y, pts, 3, torch.Generator().manual_seed(5), analog=noise)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == ["ber", "stuck_sa0", "stuck_sa1", "noise", "adc_bits", "repeat",
                               "accuracy"]
    quiet = a[a["noise"] == "none"]["accuracy"]
    assert (quiet == a.attrs["adc_accuracy"]).all() and a.attrs["adc_accuracy"] < \
        a.attrs["clean_accuracy"]
    s = inj.summarize(a)
    assert list(s["adc_bits"]) == [3, 3] and list(s["n"]) == [3, 3]


def test_chips_without_adcs_are_unchanged(digits) -> None:
    g = torch.Generator().manual_seed(0)
    model = build_model(ModelSpec("mlp", (1, 8, 8), 10, "binary", hidden=[32]), g).eval()
    mapping = map_model(model, chip_from_dict(pcsa_card()))
    x, y = digits.x_test[:200], digits.y_test[:200]
    on = inject(model, mapping, x, y, [0.0, 0.05], 3, torch.Generator().manual_seed(2))
    off = inject(model, mapping, x, y, [0.0, 0.05], 3, torch.Generator().manual_seed(2),
                 adc=False)
    pd.testing.assert_frame_equal(on, off)
    assert "adc_bits" not in on.columns and "adc_accuracy" not in on.attrs
    assert all(ly.readout is None for _, ly in model.quant_layers())
