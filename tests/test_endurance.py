"""Endurance data and the writes-vs-endurance table (dse.devices.endurance, report section)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from dse.devices.endurance import endurance_table, parse_endurance
from dse.errors import DseError
from dse.pipeline.artifacts import load_card
from dse.report.data import ReportData
from dse.report.endurance import endurance_rows, endurance_section, weak_vs_strong

CARDS = Path(__file__).parents[1] / "config" / "devices"
HIST = pd.DataFrame({"layer": ["fc1", "fc1", "fc1", "fc2"], "writes": [0, 10, 400, 50],
                     "devices": [50, 40, 10, 100]})


def test_shipped_endurance_has_sources_and_both_regimes_for_2t2r() -> None:
    data = {name: parse_endurance({name: load_card(CARDS / f"{name}.yaml")["endurance"]})[name]
            for name in ("hfo2-2t2r", "hfo2-1t1r", "hfo2-weak-reset", "stt-mram")}
    assert data["hfo2-2t2r"]["weak"].cycles > data["hfo2-2t2r"]["strong"].cycles
    assert "1902.02528" in data["hfo2-2t2r"]["weak"].provenance
    assert data["stt-mram"]["strong"].cycles >= 1e12
    for regimes in data.values():
        assert all(r.provenance for r in regimes.values())


@pytest.mark.parametrize(("bad", "match"), [
    ({"d": {"weak": {"cycles": 0, "source": "x"}}}, r"d\.weak\.cycles: expected a number"),
    ({"d": {"weak": {"cycles": 1e6}}}, "give 'source:'"),
    ({"d": {"weak": {"cycles": 1e6, "source": "x", "cycle": 3}}}, "unknown key"),
    ({"d": []}, "expected a mapping regime"),
    ([1], "expected a mapping: device"),
])
def test_bad_endurance_data_is_one_line(bad: object, match: str) -> None:
    with pytest.raises(DseError, match=match):
        parse_endurance(bad, source="e.yaml")


def test_fraction_past_and_runs_survived_by_hand() -> None:
    regimes = parse_endurance({"d": {"strong": {"cycles": 100, "source": "s"},
                                     "weak": {"cycles": 1e4, "source": "s"}}})["d"]
    t = endurance_table(HIST, regimes).set_index("regime")
    # 200 devices; 10 written 400 times exceed 100 cycles; none exceeds 1e4
    assert t.loc["strong", "past endurance"] == pytest.approx(10 / 200)
    assert t.loc["weak", "past endurance"] == 0.0
    assert t.loc["strong", "runs to first failure"] == 0  # floor(100 / 400)
    assert t.loc["weak", "runs to first failure"] == 25  # floor(1e4 / 400)
    # 99th percentile: the 198th of 200 devices sorted by writes has 400 writes
    assert t.loc["weak", "p99 writes"] == 400
    assert t.loc["weak", "mean writes"] == pytest.approx((400 + 4000 + 5000) / 200)
    never = endurance_table(HIST.assign(writes=0), regimes)
    assert math.isinf(never["runs to first failure"].iloc[0])


def test_report_section_uses_the_experiment_card_and_compares_regimes() -> None:
    data = ReportData(config={"experiments": {"a": {"device_card": "hfo2-2t2r"}, "b": {}}})
    data.writes = {"a": HIST, "b": HIST.iloc[0:0]}
    data.endurance = {"hfo2-2t2r": parse_endurance(
        {"d": load_card(CARDS / "hfo2-2t2r.yaml")["endurance"]})["d"]}
    rows = endurance_rows(data)
    assert set(rows["regime"]) == {"strong", "weak", "optimised"}
    assert set(rows["experiment"]) == {"a"}
    ws = weak_vs_strong(rows)
    assert ws["weak / strong"].iloc[0] == pytest.approx(
        math.floor(1e9 / 400) / math.floor(1e6 / 400))
    s = endurance_section(data, 50)
    assert s is not None and not any(i.kind == "failed" for i in s.items)
    assert any("b" in i.content for i in s.items if i.kind == "text")  # no record for b


def test_a_configured_endurance_file_that_is_missing_is_reported(tmp_path: Path) -> None:
    from dse.pipeline.collect import load_results
    from dse.pipeline.layout import Layout

    data = load_results({"endurance": str(tmp_path / "none.yaml")}, Layout.at(tmp_path),
                        benchmarks=tmp_path)
    assert "config key endurance" in data.problems["endurance"][0]
    assert "endurance file not found" in data.problems["endurance"][0]
    cards = load_results({"experiments": {"a": {"device_card": "hfo2-2t2r"}}},
                         Layout.at(tmp_path), benchmarks=tmp_path)
    assert "hfo2-2t2r" in cards.endurance  # the shipped card's endurance: block
