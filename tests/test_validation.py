"""The validation suite (issue 14): dse's chip figures beside NeuroSim's, with tolerances."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from dse.chip.networks import resnet18_imagenet, vgg8_cifar10
from dse.chip.validation import AGREE, CASES, EXPLAIN, GOAL, compare, figures
from dse.pipeline.artifacts import load_chip

CHIPS = Path(__file__).resolve().parents[1] / "config" / "chips"


@pytest.fixture(scope="module")
def tables():
    return {c.name: compare(c, load_chip(CHIPS / f"{c.chip}.yaml")) for c in CASES}


def test_every_row_has_a_source_and_a_finite_ratio(tables):
    for t in tables.values():
        assert len(t) and t["source"].str.len().gt(20).all()
        assert all(math.isfinite(r) and r >= 0 for r in t["ratio"])


def test_rows_meant_to_agree_are_within_their_tolerance(tables):
    agree = 0
    for t in tables.values():
        rows = t[t["tolerance"].notna()]
        agree += len(rows)
        for r in rows.itertuples():
            assert abs(r.ratio - 1) <= r.tolerance, (r.case, r.quantity, r.ratio)
    # both NeuroSim rows: operation count, cell / MLSA / core area (NeuroSim's duplication and
    # MLSA), the array-level pipeline cycle (without NeuroSim's buffer and interconnect latency);
    # and the SAR converter's energy per conversion (its own case)
    assert agree == 2 * (len(AGREE) - 1) + 1


def test_every_difference_beyond_the_goal_is_explained(tables):
    for t in tables.values():
        off = t[(t["ratio"] - 1).abs() > GOAL]
        assert off["explanation"].str.len().gt(0).all(), off["quantity"].tolist()
    assert set(EXPLAIN) >= {"chip_area_mm2", "energy_uJ", "tops", "tops_per_w"}


def test_vgg8_counts_neurosims_operations():
    specs = vgg8_cifar10()
    assert [s.name for s in specs][-2:] == ["fc1", "fc2"]
    assert 2 * sum(s.positions * s.rows * s.cols for s in specs) == 1_231_835_136


def test_resnet18_has_its_published_size():
    specs = resnet18_imagenet()
    assert len(specs) == 21 and specs[0].positions == 112 * 112
    weights = sum(s.rows * s.cols for s in specs)
    macs = sum(s.positions * s.rows * s.cols for s in specs)
    assert weights == pytest.approx(11.7e6, rel=0.01)  # He et al. 2016: 11.7 M parameters
    assert macs == pytest.approx(1.81e9, rel=0.01)     # 1.8 GFLOPs (multiply-adds), Table 1


def test_input_bits_scale_energy_and_latency_linearly():
    chip = load_chip(CHIPS / "neurosim-v14-rram-22nm.yaml")
    f8, f4 = figures(chip, vgg8_cifar10(activation_bits=8)), \
        figures(chip, vgg8_cifar10(activation_bits=4))
    for key in ("adc_energy_uJ", "accum_energy_uJ"):
        assert f8[key] == pytest.approx(2 * f4[key], rel=1e-12)
    # array time is b_in x (reads + conversions); the pipeline drain per position is not
    assert 1.9 < f8["latency_us"] / f4["latency_us"] < 2.0


def test_dse_validate_writes_the_table(tmp_path):
    import pandas as pd

    from dse.cli import main

    out = tmp_path / "validation.csv"
    assert main(["-q", "validate", "--chips", str(CHIPS), "--out", str(out)]) == 0
    t = pd.read_csv(out)
    assert set(t["case"]) == {c.name for c in CASES} | {"seed claims"}
    assert t["source"].notna().all()
    claims = t[t["case"] == "seed claims"].set_index("quantity")
    assert claims["explanation"].str.len().gt(40).all()  # every claim: what would make it hold
    # window re-tuned per programming current: x4.72; with the card's fixed window the physical
    # sense errors of weaker cells leave far less to save (x1.49)
    assert claims.loc["rram_write_energy_reduction", "dse"] == pytest.approx(4.72, rel=0.02)
    assert 1.0 < claims.loc["rram_write_energy_reduction_fixed_window", "dse"] < 2.0
    assert claims.loc["mram_system_gain_once", "dse"] == pytest.approx(1.0, abs=0.01)
    assert main(["-q", "validate", "--chips", str(tmp_path), "--out", str(out)]) == 2


def test_the_report_shows_the_table_when_asked(tables):
    import pandas as pd

    from dse.report.data import ReportData
    from dse.report.sections import _validation

    assert _validation(ReportData(config={}), 50) is None  # report.validation: null (default)
    data = ReportData(config={})
    data.validation = pd.concat(tables.values(), ignore_index=True)
    section = _validation(data, 50)
    assert section is not None and section.id == "validation" and not section.failed
    assert [i.title for i in section.items if i.kind == "table"] == [c.name for c in CASES]
    assert "1.4_Release_test.csv" in section.items[0].caption


def test_the_zoos_vgg_small_at_width_128_is_neurosims_vgg8() -> None:
    """The trainable VGG-8: ``model: vgg-small, width: 128, hidden: [1024]`` has the layer
    shapes the validation rows estimate (names aside: the zoo numbers its FC layers on)."""
    from dse.chip.mapping import layer_specs
    from dse.chip.networks import vgg8_cifar10
    from dse.nn import ModelSpec, build_model

    net = build_model(ModelSpec(model="vgg-small", input_shape=(3, 32, 32), classes=10,
                                precision="float", width=128, hidden=[1024]))
    ours = [(s.kind, s.rows, s.cols, s.positions) for s in layer_specs(net)]
    assert ours == [(s.kind, s.rows, s.cols, s.positions) for s in vgg8_cifar10()]
