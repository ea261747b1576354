"""Read energy of ADC arrays (dse.chip.array_energy): a hand calculation of one small layer
against the estimator, linearity in the input activity, the old upper bound, and the activity
measured from bit planes (dse.chip.activity)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from dse.chip.activity import bit_plane_activity, input_bit_activity
from dse.chip.card_parse import chip_from_dict
from dse.chip.estimate import by_component, estimate
from dse.chip.mapping import LayerSpec, map_model


def q(value, unit="1"):
    return {"value": value, "unit": unit, "assumption": "test"}


def adc_card(activity: float = 0.25) -> dict:
    """22 nm, 4 x 8 arrays of 2-cell weights, a 4-bit SAR per 4 columns, 4 parallel rows."""
    return {
        "name": "tiny-adc", "encoding": "analog",
        "technology": {"node": q(22, "nm"), "supply": q(0.8, "V")},
        "array": {"rows": q(4), "cols": q(8)},
        "cell": {"cells_per_weight": q(2), "area": q(48, "F2"), "height": q(4, "F"),
                 "width": q(12, "F"), "r_on": q(100, "kohm"), "r_off": q(1.7, "Mohm"),
                 "read_voltage": q(0.55, "V"), "read_pulse": q(10, "ns"),
                 "lrs_fraction": q(0.5), "input_activity": q(activity)},
        "sensing": {"kind": "adc", "adc_model": "neurosim_sar", "adc_bits": q(4),
                    "cols_per_adc": q(4), "parallel_rows": q(4), "inputs": "bit_serial"},
        "digital": {"add_energy": q(1, "fJ"), "buffer_energy": q(5, "fJ")},
        "periphery": {"row_area": q(10, "F2"), "column_area": q(20, "F2")},
    }


LAYER = [LayerSpec("A", "conv", "float", rows=6, cols=3, positions=2, in_bits=8, out_bits=8)]


def test_one_layer_by_hand() -> None:
    chip = chip_from_dict(adc_card(0.25))
    e = estimate(map_model(LAYER, chip), chip).set_index("component")
    # cells: P b R C k = 2*8*6*3*2 reads of a V^2 G t_sense, t_sense = one 4-bit SAR
    # conversion (4 + 1) ns, G = 0.5/100k + 0.5/1.7M
    g = 0.5 / 100e3 + 0.5 / 1.7e6
    assert e.loc["cells", "count"] == 576
    assert e.loc["cells", "energy_pJ"] == pytest.approx(576 * 0.25 * 0.55**2 * g * 5e-9 * 1e12)
    # bit lines: 2 row tiles -> 1 + 1 row groups, every physical column once per group and
    # bit: 2*8*2*3*2; C_BL = 4 rows x 4 F x 22 nm x 0.2 fF/um, charged to V_read
    c_bl = 4 * 4 * 22e-9 * 0.2e-15 / 1e-6
    assert e.loc["bitlines", "count"] == 192
    assert e.loc["bitlines", "energy_pJ"] == pytest.approx(192 * c_bl * 0.55**2 * 1e12)
    # word lines: a P b R tiles_cols cols_per_adc = 0.25*2*8*6*1*4, C_WL = 8 x 12 F x 22 nm x
    # 0.2 fF/um to the 0.8 V supply
    c_wl = 8 * 12 * 22e-9 * 0.2e-15 / 1e-6
    assert e.loc["wordlines", "count"] == pytest.approx(96)
    assert e.loc["wordlines", "energy_pJ"] == pytest.approx(96 * c_wl * 0.8**2 * 1e12)


def test_the_deployed_cells_conductance_replaces_the_cards() -> None:
    chip = chip_from_dict(adc_card(0.25))
    mapping = map_model(LAYER, chip)
    name = mapping.layers[0].name
    card = estimate(mapping, chip).set_index("component").loc["cells", "energy_pJ"]
    g_card = 0.5 / 100e3 + 0.5 / 1.7e6
    ours = estimate(mapping, chip, cell_conductance={name: 3 * g_card}).set_index(
        "component")
    assert ours.loc["cells", "energy_pJ"] == pytest.approx(3 * card)  # E = a V^2 G t, G x 3
    assert "deployed cells' mean" in ours.loc["cells", "detail"]
    lines = estimate(mapping, chip).set_index("component").loc["bitlines", "energy_pJ"]
    assert ours.loc["bitlines", "energy_pJ"] == pytest.approx(lines)  # lines do not change


def test_energy_scales_linearly_with_input_activity() -> None:
    chip = chip_from_dict(adc_card(0.2))
    mapping = map_model(LAYER, chip)
    e = {a: by_component(estimate(mapping, chip, input_activity=a))["energy_pJ"]
         for a in (0.2, 0.4, 0.8)}
    for comp in ("cells", "wordlines"):
        assert e[0.4][comp] == pytest.approx(2 * e[0.2][comp], rel=1e-12)
        assert e[0.8][comp] == pytest.approx(4 * e[0.2][comp], rel=1e-12)
    for comp in ("bitlines", "adc", "accumulate"):  # every column is read and converted
        assert e[0.8][comp] == pytest.approx(e[0.2][comp], rel=1e-12)
    # the card's value, a number and a per-layer measurement agree
    card = by_component(estimate(mapping, chip))["energy_pJ"]
    per_layer = by_component(estimate(mapping, chip, input_activity={"A": 0.2}))["energy_pJ"]
    assert card["cells"] == pytest.approx(e[0.2]["cells"]) == per_layer["cells"]


def test_full_pulse_is_the_old_upper_bound() -> None:
    d = adc_card(0.25)
    d["cell"]["read_energy_model"] = "full_pulse"
    chip = chip_from_dict(d)
    e = estimate(map_model(LAYER, chip), chip).set_index("component")
    assert e.loc["cells", "energy_per_op_fJ"] == pytest.approx(chip.cell_read_fj)
    assert chip.cell_read_fj == pytest.approx(0.55**2 * (0.5 / 100e3 + 0.5 / 1.7e6) * 10e-9 * 1e15)
    assert not {"bitlines", "wordlines"} & set(e.index)
    sensed = chip_from_dict(adc_card(1.0))
    s = estimate(map_model(LAYER, sensed), sensed).set_index("component")
    assert s.loc["cells", "energy_pJ"] < e.loc["cells", "energy_pJ"]  # 5 ns window < 10 ns


def test_bit_plane_activity() -> None:
    assert bit_plane_activity(torch.full((4, 4), 3.0), 8) == 1.0  # every code 255
    assert bit_plane_activity(torch.zeros(3), 8) == 0.0
    # codes 255 and 0 -> half the bits; code 1 of 3 levels and 3 -> (1 + 2) / 4
    assert bit_plane_activity(torch.tensor([2.0, 0.0]), 8) == pytest.approx(0.5)
    assert bit_plane_activity(torch.tensor([1.0, 3.0]), 2) == pytest.approx(0.75)
    assert bit_plane_activity(torch.tensor([-3.0, 0.0]), 4) == pytest.approx(0.5)


def test_input_bit_activity_of_a_network() -> None:
    from dse.nn import ModelSpec, build_model

    torch.manual_seed(0)
    net = build_model(ModelSpec("mlp", (1, 4, 4), 3, "float", hidden=[8]))
    names = [n for n, _ in net.quant_layers()]
    acts = input_bit_activity(net, torch.ones(2, 1, 4, 4), bits=8)
    assert list(acts) == names
    assert acts[names[0]] == 1.0  # constant images: every bit of every pixel is 1
    assert all(0.0 <= a <= 1.0 for a in acts.values())


# --- dataflow (dse.chip.dataflow): pipelining and weight duplication --------------------------

def _vgg8_on(changes: dict):
    from dse.chip.latency import latency, throughput, timing
    from dse.chip.networks import vgg8_cifar10
    from dse.pipeline.artifacts import load_chip

    chip = load_chip("config/chips/neurosim-v14-rram-22nm.yaml").replace(**changes)
    mapping = map_model(vgg8_cifar10(), chip)
    lat = latency(mapping, chip, timing(chip))
    return chip, mapping, lat, throughput(lat), estimate(mapping, chip)


def test_pipelining_never_increases_the_cycle() -> None:
    for speed_up in (1, 2, 8):
        *_, seq, _ = _vgg8_on({"schedule": "sequential", "speed_up": speed_up})
        *_, pip, _ = _vgg8_on({"schedule": "pipelined", "speed_up": speed_up})
        assert pip["cycle_ns"] <= seq["cycle_ns"]
        assert pip["latency_ns"] == pytest.approx(seq["latency_ns"])  # one image: Σ layers
        assert seq["cycle_ns"] == pytest.approx(seq["latency_ns"])
        assert pip["inferences_per_s"] == pytest.approx(1e9 / pip["cycle_ns"])


def test_duplication_follows_neurosims_rule_and_costs_area() -> None:
    from dse.chip.dataflow import duplication

    _, mapping, lat1, _, e1 = _vgg8_on({"speed_up": 1})
    chip, _, lat8, _, e8 = _vgg8_on({"speed_up": 8})
    # VGG-8 sides 32, 32, 16, 16, 8, 8 (conv), 1, 1 (fc): S capped at 32 / 8 = 4, bound 8,
    # copies ceil((side / 8)^2) (Chip.cpp ChipDesignInitialize)
    d = duplication(mapping.layers, chip)
    assert list(d.values()) == [16, 16, 4, 4, 1, 1, 1, 1]
    a1 = e1[e1["component"] == "cells"].set_index("layer")["area_um2"]
    a8 = e8[e8["component"] == "cells"].set_index("layer")["area_um2"]
    for name, copies in d.items():
        assert a8[name] == pytest.approx(copies * a1[name])
    for comp in ("adc", "periphery"):
        b1 = e1[e1["component"] == comp].set_index("layer")["area_um2"]
        b8 = e8[e8["component"] == comp].set_index("layer")["area_um2"]
        assert (b8 == b1 * pd.Series(d)).all()
    assert e8["energy_pJ"].sum() == pytest.approx(e1["energy_pJ"].sum())  # same operations
    l1, l8 = lat1.set_index("layer")["latency_ns"], lat8.set_index("layer")["latency_ns"]
    assert l8["conv1"] == pytest.approx(l1["conv1"] / 16)  # 1024 positions over 16 copies
    assert l8["fc1"] == l1["fc1"]


# --- the MLSA (dse.chip.adc_mlsa): NeuroSim's formulas at 22 nm, by hand ----------------------

def test_mlsa_equals_neurosims_formula_at_22nm() -> None:
    import math

    from dse.chip.latency import timing
    from dse.pipeline.artifacts import load_chip

    chip = load_chip("config/chips/neurosim-v14-rram-22nm.yaml")
    assert chip.sensing.adc_model == "neurosim_mlsa"
    # references 1 / (G0 (1 - i/16)), G0 = 128 / 100 kOhm; latency = max(T(R_1), T(R_14)) with
    # MultilevelSenseAmp.cpp's 22 nm current-mode fits (R_14 = 6250 Ohm < 12.7 kOhm threshold)
    r = [1e5 / (128 * (1 - i / 16)) for i in range(15)]
    t = max(-1.32118e-10 * math.log(r[1]) + 1.7552e-9, 8.02517e-15 * r[14] + 8.51803e-10)
    assert t == pytest.approx(0.90196e-9, rel=1e-4)

    def p_col(res: float) -> float:  # GetColumnPower 22 nm LP, res * 0.5 / V_read < 4832 Ohm
        x = res * 0.5 / 0.55
        assert x < 4832
        return (-2.85373e-11 * x + 9.16744e-7) * 15

    r_col = 1 / (0.5 * 128 * (0.5 / 1e5 + 0.5 / 1.7e6))   # activity 0.5, half LRS
    p_ref = sum(p_col(r[i]) for i in range(1, 14)) / 16
    g_n = (5.245e-10 + 8.004e-10) * 2 * 22e-9             # minimum NMOS gate (2 F wide)
    g_p = 2 * g_n
    c_col = 128 * 4 * 22e-9 * 0.2e-15 / 1e-6
    e_sw = (c_col * (1 / 15 + 1 / 16) * 0.55**2 + 2 * g_n * (1 + 1 / 15 + 1 / 16) * 0.55**2
            + (10 * g_p + 8 * g_n) * 0.85**2)
    energy_fj = ((p_col(r_col) + p_ref) * t + 15 * e_sw) * 1e15
    assert chip.adc_fj == pytest.approx(energy_fj, rel=1e-9)
    assert 35 < chip.adc_fj < 45
    # area: 9 NMOS per level + encoder (INV + NAND2 per level, 4 NAND8) in minimum transistors
    # of 212.8 F2, plus 15/16 of a 128-cell reference column of 4 x 12 F2
    area_f2 = (9 * 15 + 6 * 15 + 16 * 4) * 212.8 + 128 * 4 * 12 * 15 / 16
    assert chip.adc_area_um2 == pytest.approx(area_f2 * 0.022**2, rel=1e-9)
    # the conversion time is the latency model's ADC step and the cells' sense window
    assert timing(chip).adc_s == pytest.approx(t, rel=1e-9)
    from dse.chip.array_energy import sense_window_s
    assert sense_window_s(chip) == pytest.approx(t, rel=1e-9)


def test_mapping_activity_feeds_the_estimate() -> None:
    from dse.chip.activity import mapping_activity
    from dse.nn import ModelSpec, build_model
    from dse.pipeline.artifacts import load_chip

    torch.manual_seed(0)
    net = build_model(ModelSpec("mlp", (1, 4, 4), 3, "float", hidden=[8]))
    chip = load_chip("config/chips/rram-1t1r-adc.yaml")
    mapping = map_model(net, chip)
    acts = mapping_activity(net, mapping, chip, torch.rand(16, 1, 4, 4))
    assert acts is not None and set(acts) == {lm.name for lm in mapping.layers}
    card = by_component(estimate(mapping, chip))["energy_pJ"]
    measured = by_component(estimate(mapping, chip, input_activity=acts))["energy_pJ"]
    assert measured["cells"] != pytest.approx(card["cells"])
    assert measured["adc"] == pytest.approx(card["adc"])
    pcsa = load_chip("config/chips/rram-2t2r-pcsa-130nm.yaml")  # no ohmic cell term
    assert mapping_activity(net, mapping, pcsa, torch.rand(4, 1, 4, 4)) is None


def test_accumulator_area_per_adc() -> None:
    from dse.pipeline.artifacts import load_chip

    chip = load_chip("config/chips/neurosim-v14-rram-22nm.yaml")
    layer = LayerSpec("c", "conv", "float", rows=27, cols=64, positions=1024, in_bits=8,
                      out_bits=8)
    mapping = map_model([layer], chip)
    e = estimate(mapping, chip).set_index("component")
    tiles = mapping.layers[0].tiles  # one layer: s_max / s_min = 1 caps the speed-up, no copies
    # 16 MLSAs per 128-column array, each with a 692-transistor shift-add
    assert e.loc["accumulate", "area_um2"] == pytest.approx(
        tiles * 128 / 8 * 692 * 212.8 * 0.022**2)
    no_acc = estimate(mapping, chip.replace(accumulator_area_f2=0.0)).set_index("component")
    assert no_acc.loc["accumulate", "area_um2"] == 0.0
