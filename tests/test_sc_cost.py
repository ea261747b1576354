"""SC first layer vs a conventional BNN's fixed-point first layer (dse.chip.sc_cost)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dse.chip.mapping import layer_specs
from dse.chip.sc_cost import ScAssumptions, compare_first_layer
from dse.nn import ModelSpec, build_model
from dse.pipeline.artifacts import load_chip

CHIP = Path(__file__).parents[1] / "config" / "chips" / "stt-mram-binary.yaml"


def test_the_designs_are_charged_their_passes_and_logic() -> None:
    chip = load_chip(CHIP)
    net = build_model(ModelSpec("mlp", (1, 28, 28), 10, "binary", hidden=[128, 64]))
    t = compare_first_layer(layer_specs(net), chip, [1, 2, 8]).set_index(["design", "L"],
                                                                          drop=False)
    conv = t.iloc[0]
    assert conv["design"] == "conventional" and conv["energy_saving"] == 1.0
    # 8 one-bit passes accumulated in the first layer cost the arrays what 8-bit pixels cost
    assert t.loc[("stochastic", 8), "arrays_pJ"] == pytest.approx(conv["arrays_pJ"])
    # L complete passes cost L times one pass; L = 1 is the same design either way
    one = t.loc[("stochastic_output", 1), "arrays_pJ"]
    assert t.loc[("stochastic_output", 8), "arrays_pJ"] == pytest.approx(8 * one)
    assert t.loc[("stochastic", 1), "energy_pJ"] == pytest.approx(one + t.loc[
        ("stochastic", 1), "sng_pJ"])
    # same arrays everywhere; only the first-layer datapath and the SNGs differ
    assert t["arrays_um2"].nunique() == 1
    assert conv["datapath_um2"] > t.loc[("stochastic", 8), "datapath_um2"] > 0
    assert t.loc[("stochastic", 1), "datapath_um2"] == 0.0
    assert (t.loc[t["design"] != "conventional", "sng_um2"] > 0).all()
    # a wider pixel makes the conventional datapath proportionally larger
    wide = compare_first_layer(layer_specs(net), chip, [1], ScAssumptions(pixel_bits=16))
    assert wide.iloc[0]["datapath_um2"] == pytest.approx(2 * conv["datapath_um2"])
    # one accumulator per output neuron instead of one per tile column: far less area
    shared = compare_first_layer(layer_specs(net), chip, [1], ScAssumptions(per_tile=False))
    assert shared.iloc[0]["datapath_um2"] < conv["datapath_um2"]
