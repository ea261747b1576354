"""The map stage: tiles, utilisation and per-inference counts on hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from dse.chip.card_parse import chip_from_dict
from dse.chip.mapping import LayerSpec, Mapping, layer_specs, map_model
from dse.errors import DseError
from dse.nn import ModelSpec, build_model


def q(value, unit="1"):
    return {"value": value, "unit": unit, "assumption": "test"}


def pcsa_card(encoding: str = "binary", rows: int = 64, cols: int = 128) -> dict:
    return {
        "name": f"t-pcsa-{encoding}", "encoding": encoding,
        "technology": {"node": q(130, "nm"), "supply": q(1.2, "V")},
        "array": {"rows": q(rows), "cols": q(cols)},
        "cell": {"cells_per_weight": q(2), "area": q(48, "F2"), "read_energy": q(0, "fJ")},
        "sensing": {"kind": "pcsa", "sense_energy": q(10, "fJ"),
                    "sense_amp_area": q(11, "transistors")},
        "digital": {"add_energy": q(20, "fJ"), "buffer_energy": q(100, "fJ")},
        "periphery": {"row_area": q(4, "transistors"), "column_area": q(100, "transistors")},
    }


def adc_card(parallel_rows: int = 32) -> dict:
    d = pcsa_card("analog", rows=128, cols=128)
    d["name"] = "t-adc"
    d["sensing"] = {"kind": "adc", "adc_model": "neurosim_sar", "adc_bits": q(5),
                    "cols_per_adc": q(8), "parallel_rows": q(parallel_rows)}
    return d


def test_fc_tiles_and_utilisation_by_hand() -> None:
    chip = chip_from_dict(pcsa_card())  # 64 rows x 128 bit lines = 64 weight columns
    m = map_model([LayerSpec("fc1", "linear", "binary", rows=100, cols=50)], chip)
    lm = m.layers[0]
    assert (lm.tiles_rows, lm.tiles_cols, lm.tiles) == (2, 1, 2)
    assert (lm.rows_used, lm.cols_used, lm.weights, lm.cells) == (100, 100, 5000, 10000)
    assert lm.utilisation == pytest.approx(10000 / (2 * 64 * 128))
    assert lm.sense_amps == 2 * 64
    # 784 x 512 on 64 x 64 weights: ceil(784/64) = 13, 512/64 = 8
    lm = map_model([LayerSpec("fc", "linear", "binary", 784, 512)], chip).layers[0]
    assert (lm.tiles_rows, lm.tiles_cols, lm.tiles) == (13, 8, 104)
    assert lm.utilisation == pytest.approx(784 * 512 * 2 / (104 * 64 * 128))
    # exactly one array
    lm = map_model([LayerSpec("fc", "linear", "binary", 64, 64)], chip).layers[0]
    assert lm.tiles == 1 and lm.utilisation == 1.0


def test_pcsa_counts_by_hand() -> None:
    chip = chip_from_dict(pcsa_card())
    spec = LayerSpec("c", "conv", "binary", rows=27, cols=16, positions=100, in_bits=8,
                     out_bits=1)
    lm = map_model([spec], chip).layers[0]
    assert lm.cell_reads == 100 * 27 * 16 * 2
    assert lm.sense_ops == 100 * 27 * 16
    assert lm.adc_conversions == 0
    assert lm.partial_sum_additions == 100 * 27 * 16 * 8
    assert lm.buffer_accesses == 100 * (27 * 8 + 16 * 1)


def test_adc_counts_by_hand() -> None:
    chip = chip_from_dict(adc_card(parallel_rows=32))  # 128 x 128, 64 weight columns
    spec = LayerSpec("fc", "linear", "float", rows=200, cols=10, in_bits=8, out_bits=8)
    lm = map_model([spec], chip).layers[0]
    assert (lm.tiles_rows, lm.tiles_cols) == (2, 1)
    # row tiles of 128 and 72 rows: ceil(128/32) + ceil(72/32) = 4 + 3 read groups per input bit
    assert lm.adc_conversions == 8 * 7 * 10 * 2
    assert lm.partial_sum_additions == lm.adc_conversions
    assert lm.cell_reads == 8 * 200 * 10 * 2
    assert lm.sense_ops == 0
    assert lm.adcs == 2 * math.ceil(128 / 8)
    assert lm.buffer_accesses == 200 * 8 + 10 * 8


def test_layer_specs_of_an_mlp_and_lenet() -> None:
    g = torch.Generator().manual_seed(0)
    mlp = build_model(ModelSpec("mlp", (1, 28, 28), 10, "binary", hidden=[64, 32]), g)
    specs = layer_specs(mlp)
    assert [(s.name, s.rows, s.cols, s.positions) for s in specs] == [
        ("fc1", 784, 64, 1), ("fc2", 64, 32, 1), ("fc3", 32, 10, 1)]
    assert [(s.in_bits, s.out_bits) for s in specs] == [(8, 1), (1, 1), (1, 8)]
    lenet = build_model(ModelSpec("lenet", (1, 28, 28), 10, "float"), g)
    specs = layer_specs(lenet)
    conv1, conv2 = specs[0], specs[1]
    assert (conv1.kind, conv1.rows, conv1.cols, conv1.positions) == ("conv", 25, 6, 28 * 28)
    assert (conv2.rows, conv2.cols, conv2.positions) == (150, 16, 10 * 10)
    assert specs[2].rows == 16 * 5 * 5 and specs[2].in_bits == 8  # relu net: 8-bit activations
    stoch = build_model(ModelSpec("mlp", (1, 8, 8), 10, "binary", hidden=[16],
                                  input="stochastic", bitstream_length=4), g)
    assert layer_specs(stoch)[0].in_bits == 4


def test_precision_must_fit_the_chip() -> None:
    g = torch.Generator().manual_seed(0)
    float_net = build_model(ModelSpec("mlp", (1, 8, 8), 10, "float", hidden=[16]), g)
    with pytest.raises(DseError, match=r"layer fc1 has float weights.*encoding analog"):
        map_model(float_net, chip_from_dict(pcsa_card("binary")))
    tern = build_model(ModelSpec("mlp", (1, 8, 8), 10, "ternary", hidden=[16]), g)
    with pytest.raises(DseError, match="ternary weights"):
        map_model(tern, chip_from_dict(pcsa_card("binary")))
    # a ternary chip also stores binary weights; an analog chip stores anything
    binary_net = build_model(ModelSpec("mlp", (1, 8, 8), 10, "binary", hidden=[16]), g)
    assert map_model(binary_net, chip_from_dict(pcsa_card("ternary"))).encoding == "ternary"
    assert map_model(tern, chip_from_dict(adc_card())).layers[0].precision == "ternary"


def test_mapping_round_trip_and_totals() -> None:
    chip = chip_from_dict(adc_card())
    specs = [LayerSpec("a", "linear", "float", 300, 100, in_bits=8, out_bits=8),
             LayerSpec("b", "linear", "float", 100, 10, in_bits=8, out_bits=8)]
    m = map_model(specs, chip, experiment="e")
    back = Mapping.from_dict(m.to_dict())
    assert back == m
    t = m.totals()
    assert t["tiles"] == sum(lm.tiles for lm in m.layers)
    assert t["utilisation"] == pytest.approx(t["cells"] / (t["tiles"] * 128 * 128))
    with pytest.raises(DseError, match="re-run `dse map`"):
        Mapping.from_dict({"format": "other"}, source="m.json")


def test_estimate_refuses_a_mapping_of_another_geometry() -> None:
    chip = chip_from_dict(pcsa_card())
    m = map_model([LayerSpec("a", "linear", "binary", 10, 10)], chip)
    m.check_chip(chip.replace(supply_v=0.9))  # supply does not change the layout
    with pytest.raises(DseError, match=r"rows 64 vs 128.*re-run map_model"):
        m.check_chip(chip.replace(rows=128))


def test_estimate_refuses_a_mapping_of_another_pair_subtraction() -> None:
    """Analog subtraction halves the conversions: a mapping of the per-column chip must not be
    estimated on the analog-subtraction chip (or the reverse)."""
    import dataclasses

    chip = chip_from_dict(adc_card())
    m = map_model([LayerSpec("a", "linear", "float", 64, 32)], chip)
    m.check_chip(chip)
    analog = chip.replace(sensing=dataclasses.replace(chip.sensing, pair_subtraction="analog"))
    with pytest.raises(DseError, match=r"pair_subtraction digital vs analog.*re-run map_model"):
        m.check_chip(analog)
    map_model([LayerSpec("a", "linear", "float", 64, 32)], analog).check_chip(analog)
