"""The physical PCSA family: decision time, energy, per-stored-value errors (issue 13)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from dse.devices import REGISTRY, from_card
from dse.devices.mosfet import thermal_voltage
from dse.devices.pcsa_rates import CellStats, best_window, confusion, sample_confusion
from dse.errors import DseError
from dse.pipeline.artifacts import load_card

CARDS = Path(__file__).resolve().parents[1] / "config" / "devices"


@pytest.fixture(scope="module")
def pcsa():
    return from_card(load_card(CARDS / "pcsa-130nm-physical.yaml"))


@pytest.fixture(scope="module")
def cell_model():
    return from_card(load_card(CARDS / "hfo2-2t2r.yaml"))


@pytest.fixture(scope="module")
def cell(cell_model) -> CellStats:
    # a weakly programmed cell (i_prog 60 uA): wide LRS, errors large enough to measure
    return CellStats.from_model(cell_model, i_prog=6e-5)


def test_card_loads_with_provenance_and_is_registered(pcsa) -> None:
    raw = yaml.safe_load((CARDS / "pcsa-130nm-physical.yaml").read_text())
    assert "pcsa_physical" in REGISTRY and raw["family"] == "pcsa_physical"
    for name, entry in raw["params"].items():
        assert entry.get("source") or entry.get("assumption"), name
    assert set(raw["params"]) == set(type(pcsa).PARAMS)


def test_decision_time_grows_as_vdd_falls_and_diverges_below_threshold(pcsa) -> None:
    r_l, r_h = 7e3, 70e3
    vdd = np.linspace(0.2, 1.2, 21)
    for pair in ((r_l, r_h), (r_h, 1.3 * r_h)):
        t = pcsa.decision_time(vdd, *pair)
        assert np.all(np.diff(t) < 0), pair          # slower at every lower supply
    # deep below threshold the drive current is e^{V/(n U_T)}: the discharge time C·V_trip/I
    # (V_trip ∝ VDD) grows by e per n·U_T of supply (less the V_trip factor), the regeneration
    # time constant (latch at VDD/2) by e per 2n·U_T: the model's weak-inversion asymptotes
    n, ut = pcsa.values["slope_n"], float(thermal_voltage(300.0))
    v1, v2 = 0.2, 0.15
    t1 = [float(pcsa.discharge(v, pcsa.branch_current(v, r_l), pcsa.branch_current(v, r_h))[0])
          for v in (v1, v2)]
    tau = [float(pcsa.regeneration_tau(v)) for v in (v1, v2)]
    expect = (v1 - v2) / (n * ut) - math.log(v1 / v2)
    assert math.log(t1[1] / t1[0]) == pytest.approx(expect, rel=0.05)
    assert math.log(tau[1] / tau[0]) == pytest.approx((v1 - v2) / (2 * n * ut), rel=0.05)
    slope_sub = math.log(pcsa.decision_time(v2, r_l, r_h) / pcsa.decision_time(v1, r_l, r_h))
    slope_nom = math.log(pcsa.decision_time(1.15, r_l, r_h) / pcsa.decision_time(1.2, r_l, r_h))
    assert slope_sub > 5 * slope_nom > 0           # exponential below threshold, mild above
    assert slope_sub / (v1 - v2) > 1 / (2 * n * ut)


def test_equal_resistances_never_decide(pcsa) -> None:
    vdd = np.array([0.3, 0.6, 1.2])
    for r in (7e3, 70e3):
        assert np.all(np.isinf(pcsa.decision_time(vdd, r, r)))
    # a small imbalance decides, later the smaller it is (logarithmic divergence)
    t = [float(pcsa.decision_time(0.6, 70e3, 70e3 * (1 + e))) for e in (1e-1, 1e-3, 1e-6)]
    assert all(math.isfinite(x) for x in t) and t[0] < t[1] < t[2]
    tau = float(pcsa.regeneration_tau(0.6))
    assert t[2] - t[1] == pytest.approx(tau * math.log(1e3), rel=0.02)


@pytest.mark.parametrize("encoding, vdd, window", [
    ("ternary", 1.2, 0.2e-9), ("ternary", 0.3, 15e-9),
    ("binary", 1.2, 1e-9), ("binary", 0.3, 60e-9)])
def test_closed_form_matches_monte_carlo(pcsa, cell, encoding, vdd, window) -> None:
    n = 60_000
    exact = confusion(pcsa, cell, encoding, vdd=vdd, t_sense=window)
    counts = sample_confusion(pcsa, cell, encoding, n, np.random.default_rng(13), vdd=vdd,
                              t_sense=window)
    assert counts.sum(axis=1).tolist() == [n] * len(exact)
    np.testing.assert_allclose(exact.sum(axis=1), 1.0, atol=1e-12)
    sigma = np.sqrt(exact * (1 - exact) / n)
    assert np.all(np.abs(counts / n - exact) <= 3 * sigma + 1 / n), (counts / n, exact)
    assert np.all(1 - np.diagonal(exact) > 1e-3)    # the errors tested are measurable ones


def test_cell_and_sense_errors_are_correlated_not_multiplied(pcsa, cell_model) -> None:
    # at nominal supply with a long window the sense amplifier follows the pair's own
    # resistances: a pair whose LRS device reads above its HRS device is read wrong, so the
    # binary error is the cell's ordering error P(R_LRS > R_HRS), not that plus a sense error
    i_prog = 4e-5
    bound = pcsa.with_cell(CellStats.from_model(cell_model, i_prog=i_prog))
    p_cell = float(cell_model.ber(i_prog=i_prog))
    p = float(bound.ber(vdd=1.2, t_sense=2e-9))
    assert p == pytest.approx(p_cell, rel=0.05)
    rate = float(bound.sample_errors(60_000, np.random.default_rng(3), vdd=1.2,
                                     t_sense=2e-9).mean())
    assert abs(rate - p) <= 3 * math.sqrt(p * (1 - p) / 60_000)


def test_ternary_zero_at_nominal_supply_is_an_error_mode(pcsa, cell) -> None:
    m_default = confusion(pcsa, cell, "ternary", vdd=1.2)        # the card's 1 ns window
    assert m_default[1, 0] + m_default[1, 2] > 0.5               # most zeros decide as ±1
    m_short = confusion(pcsa, cell, "ternary", vdd=1.2, t_sense=0.1e-9)
    assert m_short[1, 0] == pytest.approx(m_short[1, 2], rel=1e-9) and m_short[1, 0] > 0
    assert m_short[2, 1] > 0 and m_short[0, 1] > 0              # ±1 too slow for the window
    assert m_short[2, 0] == pytest.approx(m_short[0, 2], rel=1e-9)


def test_best_window_trades_the_two_ternary_errors(pcsa, cell) -> None:
    windows = np.logspace(np.log10(0.05e-9), np.log10(2e-9), 25)
    w, err = best_window(pcsa, cell, "ternary", windows, vdd=1.2)
    assert windows[0] < w < windows[-1]
    m = confusion(pcsa, cell, "ternary", vdd=1.2, t_sense=windows[[0, -1]])
    assert m[0, 2, 1] > 3 * err and m[1, 1, 2] > 3 * err        # too short / too long


def test_energy_per_operation_has_a_minimum_near_threshold(pcsa) -> None:
    vdd = np.linspace(0.18, 1.2, 52)
    window = 3 * pcsa.decision_time(vdd, 7e3, 70e3)              # a window that reads ±1
    e = pcsa.energy_per_sense(vdd=vdd, t_sense=window)
    i = int(np.argmin(e["total"]))
    assert 0 < i < len(vdd) - 1 and vdd[i] < pcsa.values["vth_n"] + 0.05
    frac = e["leakage"] / e["total"]
    assert frac[0] > 0.3 > 0.01 > frac[-1]                       # leakage dominates only there
    np.testing.assert_allclose(e["dynamic"], pcsa.values["c_switched"] * 1e-15 * vdd ** 2)


@pytest.mark.parametrize("op, key", [
    ({"vdd": 0.6, "t_sense": -1e-9}, "t_sense"),
    ({"vdd": 0.1}, "vdd_min"),
    ({"vdd": 2.0}, "vdd_max"),
    ({"vdd": 0.6, "t_write": 1e-9}, "t_write"),
])
def test_bad_operating_points_name_the_key(pcsa, cell, op, key) -> None:
    for call in (lambda: pcsa.energy_per_sense(**op),
                 lambda: confusion(pcsa, cell, "ternary", **op)):
        with pytest.raises(DseError, match=key) as exc:
            call()
        assert "\n" not in str(exc.value)


def test_unbound_ber_asks_for_the_cell(pcsa) -> None:
    with pytest.raises(DseError, match="with_cell"):
        pcsa.ber(vdd=0.6)


def test_temperature_and_corner_move_the_decision(pcsa) -> None:
    # hotter: lower threshold (kt1 < 0) speeds the sub-threshold sense; a slow corner slows it
    t_cold = pcsa.decision_time(0.3, 7e3, 70e3, temperature=250.0)
    t_hot = pcsa.decision_time(0.3, 7e3, 70e3, temperature=350.0)
    assert t_hot < t_cold
    assert pcsa.decision_time(0.3, 7e3, 70e3, dvth=0.03) > pcsa.decision_time(0.3, 7e3, 70e3)
