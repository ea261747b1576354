"""The estimate stage (a hand-computed two-layer case, totals = sum of components, supply and ADC
overrides) and the map -> inject -> estimate command line on a freshly trained model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dse.chip.card_parse import chip_from_dict
from dse.chip.estimate import by_component, estimate, totals
from dse.chip.mapping import LayerSpec, map_model
from dse.cli import main
from dse.errors import DseError


def q(value, unit="1"):
    return {"value": value, "unit": unit, "assumption": "test"}


def tiny_card() -> dict:
    """Round numbers: F = 0.1 um (F2 = 0.01 um2), 4 x 8 arrays of 2-cell weights."""
    return {
        "name": "tiny", "encoding": "binary",
        "technology": {"node": q(100, "nm"), "supply": q(1.0, "V"),
                       "supply_ref": q(1.0, "V")},
        "array": {"rows": q(4), "cols": q(8)},
        "cell": {"cells_per_weight": q(2), "area": q(50, "F2"), "read_energy": q(2, "fJ")},
        "sensing": {"kind": "pcsa", "sense_energy": q(10, "fJ"),
                    "sense_amp_area": q(100, "F2")},
        "digital": {"add_energy": q(1, "fJ"), "buffer_energy": q(5, "fJ")},
        "periphery": {"row_area": q(10, "F2"), "column_area": q(20, "F2")},
        "programming": {"write_energy": q(3, "pJ")},
    }


LAYERS = [LayerSpec("A", "linear", "binary", rows=6, cols=3, in_bits=8, out_bits=1),
          LayerSpec("B", "linear", "binary", rows=3, cols=2, in_bits=1, out_bits=8)]


def test_two_layer_case_by_hand() -> None:
    chip = chip_from_dict(tiny_card())
    mapping = map_model(LAYERS, chip)
    assert [lm.tiles for lm in mapping.layers] == [2, 1]
    pulses = pd.DataFrame({"epoch": [1, 1, 1], "layer": ["A", "A", "B"],
                           "direction": ["up", "down", "up"], "pulses": [4, 6, 5]})
    table = estimate(mapping, chip, pulses)
    e = table.set_index(["layer", "component"])["energy_pJ"]
    # A: 36 cell reads x 2 fJ, 18 senses x 10 fJ, 18*8 bit-adds x 1 fJ, (6*8 + 3*1) bits x 5 fJ
    assert e["A", "cells"] == pytest.approx(0.072)
    assert e["A", "sense_amps"] == pytest.approx(0.180)
    assert e["A", "accumulate"] == pytest.approx(0.144)
    assert e["A", "buffer"] == pytest.approx(0.255)
    assert e["A", "adc"] == 0
    # B: 12 x 2 + 6 x 10 + 6 x 1 + (3 + 16) x 5 = 185 fJ
    assert e.loc["B"][["cells", "sense_amps", "accumulate", "buffer"]].sum() == \
        pytest.approx(0.185)
    # areas per array: cells 4*8*50 F2 = 16 um2, 4 PCSAs x 100 F2 = 4 um2,
    # periphery 4*10 + 8*20 = 200 F2 = 2 um2; A has 2 arrays, B one
    a = table.set_index(["layer", "component"])["area_um2"]
    assert a["A", "cells"] == pytest.approx(32) and a["B", "cells"] == pytest.approx(16)
    assert a["A", "sense_amps"] == pytest.approx(8) and a["A", "periphery"] == pytest.approx(4)
    t = totals(table)
    assert t["energy_per_inference_pJ"] == pytest.approx(0.651 + 0.185)
    assert t["area_um2"] == pytest.approx(66) and t["area_mm2"] == pytest.approx(66e-6)
    assert t["deployment_pJ"] == pytest.approx((36 + 12) * 3)  # one 3 pJ pulse per cell
    assert t["training_pJ"] == pytest.approx(15 * 3)
    assert e["A", "training"] == pytest.approx(30)


def test_totals_equal_the_sum_of_components() -> None:
    chip = chip_from_dict(tiny_card())
    table = estimate(map_model(LAYERS, chip), chip)
    inf = table[table["scope"] == "inference"]
    assert totals(table)["energy_per_inference_pJ"] == pytest.approx(inf["energy_pJ"].sum())
    assert by_component(table)["energy_pJ"].sum() == pytest.approx(inf["energy_pJ"].sum())
    assert (inf["energy_pJ"] == inf["count"] * inf["energy_per_op_fJ"] * 1e-3).all()
    assert list(table.columns) == ["layer", "component", "scope", "count",
                                   "energy_per_op_fJ", "energy_pJ", "area_um2", "detail"]


def test_supply_and_adc_overrides() -> None:
    chip = chip_from_dict(tiny_card())
    mapping = map_model(LAYERS, chip)
    base = estimate(mapping, chip).set_index(["layer", "component"])["energy_pJ"]
    low = estimate(mapping, chip.replace(supply_v=0.5))
    low = low.set_index(["layer", "component"])["energy_pJ"]
    for comp in ("sense_amps", "accumulate", "buffer"):
        assert low["A", comp] == pytest.approx(base["A", comp] / 4)
    assert low["A", "cells"] == base["A", "cells"]
    d = tiny_card()
    del d["technology"]["supply_ref"]  # energies then refer to the card's own supply
    half = dataclasses.replace(chip_from_dict(d), supply_v=0.5)
    assert estimate(mapping, half).set_index(["layer", "component"])["energy_pJ"][
        "A", "sense_amps"] == pytest.approx(base["A", "sense_amps"] / 4)
    # an ADC chip: 6-bit instead of 5-bit conversions
    d = tiny_card()
    d["encoding"] = "analog"
    d["technology"]["node"] = q(130, "nm")
    d["sensing"] = {"kind": "adc", "adc_model": "neurosim_sar", "adc_bits": q(5),
                    "cols_per_adc": q(4), "parallel_rows": q(4)}
    adc = chip_from_dict(d)
    layers = [dataclasses.replace(s, precision="float") for s in LAYERS]
    m = map_model(layers, adc)
    e5 = estimate(m, adc).set_index(["layer", "component"])
    e6 = estimate(m, adc.replace(adc_bits=6)).set_index(["layer", "component"])
    assert e5.loc[("A", "adc"), "energy_per_op_fJ"] == pytest.approx(645, rel=0.01)
    assert e6.loc[("A", "adc"), "energy_per_op_fJ"] == pytest.approx(812, rel=0.01)
    murmann = estimate(m, adc.replace(adc_model="murmann_survey"))
    assert murmann.set_index(["layer", "component"]).loc[("A", "adc"), "energy_per_op_fJ"] \
        == pytest.approx(13.1e3, rel=0.02)
    with pytest.raises(DseError, match="another chip geometry"):
        estimate(m, adc.replace(cols=16))


def test_training_pulses_need_a_write_energy() -> None:
    d = tiny_card()
    del d["programming"]
    chip = chip_from_dict(d)
    mapping = map_model(LAYERS, chip)
    table = estimate(mapping, chip)
    assert "programming" not in set(table["component"])
    hist = pd.DataFrame({"epoch": [1], "pulses_up": [3], "pulses_down": [4]})
    with pytest.raises(DseError, match="write energy"):
        estimate(mapping, chip, hist)
    table = estimate(mapping, chip, hist, write_energy_pj=2.0)
    train = table[table["scope"] == "training"]
    assert list(train["layer"]) == ["(all)"] and train["energy_pJ"].iloc[0] == 14.0


# -------------------------------------------------------------------- command line
@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    from dse.config import Experiment
    from dse.data import task_stream
    from dse.pipeline.artifacts import save_model as save
    from dse.train import train

    out = tmp_path_factory.mktemp("model") / "tiny"
    exp = Experiment.from_dict("tiny", {"dataset": "digits", "hidden": [32], "epochs": 1,
                                        "batch_size": 50})
    save(train(exp, task_stream("digits", None, 0), progress=False), out)
    return out


def test_cli_map_inject_estimate(trained: Path, repo: Path, tmp_path: Path, capsys) -> None:
    chip = repo / "config" / "chips" / "rram-2t2r-pcsa-130nm.yaml"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"inject": {"repeats": 3, "ber": [0.0, 0.02]}}))
    mapping, table = tmp_path / "map.json", tmp_path / "inject.csv"
    est = tmp_path / "estimate.csv"
    assert main(["-q", "map", "--model", str(trained), "--chip", str(chip),
                 "--out", str(mapping)]) == 0
    m = json.loads(mapping.read_text())
    assert m["chip"] == "rram-2t2r-pcsa-130nm" and m["experiment"] == "tiny"
    assert [lm["name"] for lm in m["layers"]] == ["fc1", "fc2"]
    for key in ("tiles", "rows_used", "cols_used", "utilisation", "cell_reads", "sense_ops",
                "adc_conversions", "partial_sum_additions", "buffer_accesses"):
        assert key in m["layers"][0]
    assert main(["-q", "inject", "--model", str(trained), "--mapping", str(mapping),
                 "--config", str(cfg), "--out", str(table)]) == 0
    t = pd.read_csv(table)
    assert len(t) == 6 and set(t["ber"]) == {0.0, 0.02}
    s = pd.read_csv(table.with_suffix(".summary.csv"))
    assert {"mean", "ci95_low", "ci95_high", "clean_accuracy"} <= set(s.columns)
    assert s.loc[s["ber"] == 0, "mean"].iloc[0] == pytest.approx(s["clean_accuracy"].iloc[0])
    assert main(["-q", "estimate", "--mapping", str(mapping), "--chip", str(chip),
                 "--history", str(trained / "history.csv"), "--out", str(est),
                 "--latency", str(tmp_path / "latency.csv")]) == 0
    e = pd.read_csv(est)
    lat = pd.read_csv(tmp_path / "latency.csv")  # one row per mapped layer, summed per inference
    assert list(lat["layer"]) == ["fc1", "fc2"] and (lat["latency_ns"] > 0).all()
    from dse.chip.latency import throughput
    tp = throughput(lat)
    assert tp["latency_ns"] == pytest.approx(lat["latency_ns"].sum())
    assert tp["inferences_per_s"] == pytest.approx(1e9 / lat["latency_ns"].sum())
    # a binary net's training writes are the changes of its binary weights (dse.train.loop)
    assert set(e["scope"]) == {"inference", "deployment", "training"}
    pulses = pd.read_csv(trained / "pulses.csv")["pulses"].sum()
    assert e[e["scope"] == "training"]["count"].sum() == pulses > 0
    assert e[e["scope"] == "inference"]["energy_pJ"].sum() > 0


def test_cli_errors_are_one_line(trained: Path, repo: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**tiny_card(), "array": {"rows": q(4)}}))
    assert main(["map", "--model", str(trained), "--chip", str(bad),
                 "--out", str(tmp_path / "m.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"dse: {bad}: array.cols: missing (add {{value: ..., unit: ..., source: ...}})"
    assert not (tmp_path / "m.json").exists()
    analog = repo / "config" / "chips" / "rram-1t1r-adc.yaml"
    assert main(["map", "--model", str(trained), "--chip", str(analog),
                 "--out", str(tmp_path / "m.json")]) == 0  # binary weights fit an analog chip
    ternary = repo / "config" / "chips" / "rram-2t2r-pcsa-130nm-ternary.yaml"
    mapping = tmp_path / "t.json"
    assert main(["map", "--model", str(trained), "--chip", str(ternary),
                 "--out", str(mapping)]) == 0
    other = repo / "config" / "chips" / "rram-2t2r-pcsa-130nm.yaml"
    capsys.readouterr()
    assert main(["estimate", "--mapping", str(mapping), "--chip", str(other),
                 "--out", str(tmp_path / "e.csv")]) == 2
    assert "the mapping is for 'rram-2t2r-pcsa-130nm-ternary'" in capsys.readouterr().err
