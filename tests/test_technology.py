"""Technology scaling (issue 14): per-node table, scaling rules, defaults a card inherits."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
import yaml

from dse.chip.card_parse import chip_from_dict
from dse.chip.technology import DEFAULTS, NODES, default_energy_fj, factor, node
from dse.errors import DseError
from dse.pipeline.artifacts import load_chip

CHIPS = Path(__file__).resolve().parents[1] / "config" / "chips"
ORDER = sorted(NODES, reverse=True)  # 130 .. 7 nm


def test_the_table_spans_130_to_7_nm_with_sources():
    assert ORDER[0] == 130 and ORDER[-1] == 7 and len(ORDER) >= 9
    for n in NODES.values():
        assert "Technology.cpp" in n.source and n.vdd > 0 and n.c_gate > 0 and n.i_on > 0


def test_rules_are_monotone_where_they_say_so():
    e = [factor("energy", 130, n) for n in ORDER]
    a = [factor("area", 130, n) for n in ORDER]
    assert all(x > y for x, y in pairwise(e)) and all(x > y for x, y in pairwise(a))
    planar = [factor("delay", 130, n) for n in ORDER if n >= 22]
    assert all(x > y for x, y in pairwise(planar))
    assert [NODES[n].vdd for n in ORDER] == sorted((NODES[n].vdd for n in ORDER), reverse=True)


@pytest.mark.parametrize("kind", ["area", "energy", "delay"])
def test_factors_compose(kind):
    assert factor(kind, 65, 65) == 1.0
    assert factor(kind, 130, 22) == pytest.approx(factor(kind, 130, 45) * factor(kind, 45, 22))


def test_a_node_outside_the_table_gets_one_line():
    with pytest.raises(DseError, match=r"technology.node: 28 nm is outside .*130, 90") as e:
        node(28)
    assert "\n" not in str(e.value)
    with pytest.raises(DseError, match="unknown scaling kind"):
        factor("leakage", 45, 22)


def test_defaults_reproduce_their_source_at_its_node():
    for fld, d in DEFAULTS.items():
        assert default_energy_fj(fld, d.node_nm, d.supply_v)[0] == pytest.approx(d.fj)
    assert DEFAULTS["buffer_fj"].fj == pytest.approx(156.25)  # 10 pJ / 64 bits


def test_a_card_without_digital_energies_inherits_them():
    raw = yaml.safe_load((CHIPS / "rram-1t1r-adc.yaml").read_text())
    given = load_chip(CHIPS / "rram-1t1r-adc.yaml")
    del raw["digital"]["add_energy"], raw["digital"]["buffer_energy"]
    chip = chip_from_dict(raw, "test card")
    assert "default (dse.chip.technology)" in chip.sources["add_fj"]
    # second method: the card's hand-scaled Horowitz values agree with the rule within 10 %
    assert chip.add_fj == pytest.approx(given.add_fj, rel=0.1)
    assert chip.buffer_fj == pytest.approx(given.buffer_fj, rel=0.1)
    raw["technology"]["node"]["value"] = 28
    with pytest.raises(DseError, match="digital.add_energy: missing, and no default"):
        chip_from_dict(raw, "test card")
