"""Binary RRAM cells read after programming (dse/devices/cell_relaxation.py): closed forms
against seeded Monte-Carlo, the time_s knob, the sweep over time, bad cards."""

from __future__ import annotations

import copy
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from dse.chip.ber import ChipErrors
from dse.chip.card_parse import chip_from_dict
from dse.devices import from_card
from dse.devices.cards import validate_card
from dse.devices.cell_relaxation import ResistanceLaw
from dse.devices.pcsa_rates import CellStats, confusion, sample_confusion
from dse.errors import DseError
from dse.pipeline.artifacts import load_card

REPO = Path(__file__).resolve().parents[1]
CARDS = REPO / "config" / "devices"
HOUR, TEN_YEARS = 3600.0, 3.156e8


@pytest.fixture(scope="module")
def cell():
    return from_card(load_card(CARDS / "hfo2-2t2r.yaml"))


def one_t_one_r() -> dict:
    """The 1T1R card with the 2T2R card's relaxation block (same devices)."""
    card = copy.deepcopy(load_card(CARDS / "hfo2-1t1r.yaml"))
    card["relaxation"] = load_card(CARDS / "hfo2-2t2r.yaml")["relaxation"]
    return card


@pytest.mark.parametrize("which", ["2t2r", "1t1r"])
@pytest.mark.parametrize("i_prog, t", [(6e-5, HOUR), (6e-5, TEN_YEARS), (1e-4, TEN_YEARS)])
def test_relaxed_ber_equals_the_sampled_process(cell, which, i_prog, t) -> None:
    m = cell if which == "2t2r" else from_card(validate_card(one_t_one_r()))
    p = float(m.ber(i_prog=i_prog, time_s=t))
    assert 1e-4 < p < 0.5
    n = 300_000
    rate = float(m.sample_errors(n, np.random.default_rng(5), i_prog=i_prog, time_s=t).mean())
    assert abs(rate - p) < 3 * math.sqrt(p * (1 - p) / n), (rate, p)


def test_errors_grow_after_programming_and_t0_is_the_lognormal_form(cell) -> None:
    times = [0.0, 1.0, HOUR, 86400.0, 3.156e7, TEN_YEARS]
    ber = [float(cell.ber(i_prog=6e-5, time_s=t)) for t in times]
    assert all(b2 > b1 for b1, b2 in itertools.pairwise(ber))
    assert ber[0] == float(cell.ber(i_prog=6e-5))  # t = 0: the card's log-normal laws
    assert ber[-1] > 10 * ber[0]  # weak programming does not keep its read margin


def test_survival_equals_the_sampled_law(cell) -> None:
    (mu, s) = cell.hrs()
    law = ResistanceLaw(mu, s, cell.relaxation, TEN_YEARS)
    r = np.exp(mu + np.array([-1.0, 0.0, 1.0]) * s)
    draws = law.sample((200_000,), np.random.default_rng(2))
    for ri, p in zip(r, law.survival(r), strict=True):
        emp = float((draws > ri).mean())
        assert abs(emp - p) < 3 * math.sqrt(p * (1 - p) / len(draws)) + 1e-5


@pytest.mark.parametrize("encoding, window", [("binary", 1.3e-9), ("ternary", 0.25e-9)])
def test_sense_amplifier_on_relaxed_pairs_matches_monte_carlo(cell, encoding, window) -> None:
    pcsa = from_card(load_card(CARDS / "pcsa-130nm-physical.yaml"))
    stats = CellStats.from_model(cell, 6e-5, HOUR)
    n = 60_000
    exact = confusion(pcsa, stats, encoding, vdd=1.2, t_sense=window)
    counts = sample_confusion(pcsa, stats, encoding, n, np.random.default_rng(3), vdd=1.2,
                              t_sense=window)
    sigma = np.sqrt(exact * (1 - exact) / n)
    assert np.all(np.abs(counts / n - exact) <= 3 * sigma + 1 / n), (counts / n, exact)
    fresh = confusion(pcsa, CellStats.from_model(cell, 6e-5), encoding, vdd=1.2,
                      t_sense=window)
    assert np.trace(exact) < np.trace(fresh)  # relaxation costs read margin


def test_time_needs_a_relaxation_block_and_a_valid_time() -> None:
    plain = from_card(load_card(CARDS / "hfo2-1t1r.yaml"))
    assert float(plain.ber(i_prog=1e-4, time_s=0.0)) == float(plain.ber(i_prog=1e-4))
    with pytest.raises(DseError, match="time_s > 0 needs a relaxation: block"):
        plain.ber(i_prog=1e-4, time_s=HOUR)
    with pytest.raises(DseError, match="time_s"):
        from_card(load_card(CARDS / "hfo2-2t2r.yaml")).ber(i_prog=1e-4, time_s=-1.0)


def test_a_relaxation_block_belongs_to_rram_cells_only() -> None:
    card = copy.deepcopy(load_card(CARDS / "stt-mram.yaml"))
    card["relaxation"] = load_card(CARDS / "hfo2-2t2r.yaml")["relaxation"]
    with pytest.raises(DseError, match="only binary RRAM cells"):
        validate_card(card)
    bad = one_t_one_r()
    bad["relaxation"]["tau_1"]["unit"] = "ms"
    with pytest.raises(DseError, match=r"relaxation.tau_1.unit"):
        validate_card(bad)


def test_the_sweep_reads_the_nominal_point_over_time(cell) -> None:
    chip = chip_from_dict(yaml.safe_load((REPO / "config/chips/rram-2t2r-pcsa-130nm.yaml")
                                         .read_text()))
    models = {"hfo2-2t2r": cell,
              "pcsa-130nm-physical": from_card(load_card(CARDS / "pcsa-130nm-physical.yaml"))}
    errors = ChipErrors(chip, models)
    assert "i_prog" in errors.relaxing and "vdd" not in errors.relaxing
    nominal = dict(chip.knob_values())
    weak = {**nominal, "i_prog": 6e-5, "t_sense": 1.3e-9}  # a window that senses it
    ops = [weak, {**nominal, "vdd": 0.6}, {**weak, "time_s": TEN_YEARS}]
    out = errors.over_time(ops, [HOUR, TEN_YEARS])
    assert len(out) == 3 + 2  # the given points, then the nominal one at both times
    assert [o["time_s"] for o in out] == [0.0, 0.0, TEN_YEARS, HOUR, TEN_YEARS]
    assert all(o["i_prog"] == nominal["i_prog"] for o in out[3:])
    assert errors.ber(out[4]) > errors.ber({**nominal, "time_s": 0.0})  # 10 years vs at once
    assert errors.ber(out[2]) > errors.ber(out[0])  # a weak cell listed over time
