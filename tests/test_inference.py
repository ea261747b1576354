"""Device cards split training from inference physics: physical units, the inference block."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from dse.devices import from_card, validate_card
from dse.devices.inference import REDRAW, inference_physics
from dse.errors import DseError
from dse.pipeline.artifacts import load_card

CARDS = Path(__file__).resolve().parents[1] / "config" / "devices"
ANALOG = ["reram-sb-gong2018", "reram-es-gong2018", "bulk-switching"]


def card(name: str) -> dict:
    return load_card(CARDS / f"{name}.yaml")


@pytest.mark.parametrize("name", ANALOG)
def test_shipped_analog_cards_are_physical_with_inference_physics(name: str) -> None:
    m = from_card(card(name))
    assert m.unit == "uS"
    assert 0 < m.values["g_floor"] < m.g_min < m.g_max
    p = inference_physics(m)
    assert p.redraw in REDRAW and p.relaxation is not None
    assert all(p.sources.values()), p.sources  # every number with its provenance
    g = torch.linspace(m.g_min, m.g_max, 5)
    assert bool((p.program_sigma(g) > 0).all()) and bool((p.read_sigma(g) > 0).all())
    assert p.write_verify.tolerance > 0 and p.cost.pulse_energy > 0


def test_bulk_switching_card_is_a_labelled_stand_in() -> None:
    raw = card("bulk-switching")
    assert all("stand-in" in e.get("assumption", "") and "source" not in e
               for e in raw["params"].values())
    assert "STAND-IN" in raw["description"]


def test_gong_card_is_aihwkits_normalised_fit_in_physical_units() -> None:
    """aihwkit's ReRamSBPresetDevice numbers (w in [-0.75, 1.25], dw_min 0.002, ...) as a
    normalised card; the shipped card is G = 20 uS + 10 uS * w of it, pulse for pulse."""
    norm = {"name": "sb-norm", "family": "soft_bounds", "source": "aihwkit", "unit": "1",
            "params": {k: {"value": v, "unit": "1", "source": "aihwkit"} for k, v in {
                "g_min": -0.75, "g_max": 1.25, "alpha_up": 0.002 / 1.25,
                "alpha_down": 0.002 / 0.75}.items()}}
    a, b = from_card(norm), from_card(card("reram-sb-gong2018"))
    p = torch.arange(0, 4000, 37, dtype=torch.float64)
    for d, w0 in ((1, -0.75), (-1, 1.25), (1, 0.3)):
        assert torch.allclose(b.trajectory(20 + 10 * w0, p, d), 20 + 10 * a.trajectory(w0, p, d),
                              atol=1e-9)
    assert b.dw_min == pytest.approx(10 * a.dw_min)


def test_real_card_read_noise_path() -> None:
    """InferencePhysics.read of the real card: the measured σ is the card's within 3 σ."""
    p = inference_physics(from_card(card("reram-sb-gong2018")))
    g = torch.full((200_000,), 20.0, dtype=torch.float64)
    r = p.read(g, torch.Generator().manual_seed(0)) - g
    want = float(p.read_sigma(g[:1])[0])
    se = want / (2 * g.numel()) ** 0.5
    assert float(r.std()) == pytest.approx(want, abs=3 * se)
    assert abs(float(r.mean())) < 3 * want / g.numel() ** 0.5
    assert torch.equal(p.read(g, None), g)


def test_hrs_floor_clips_device_bounds() -> None:
    c = copy.deepcopy(card("reram-sb-gong2018"))
    c["params"]["g_min_dtod"]["value"] = 1.0  # a huge spread of the lower bound
    m = from_card(c)
    st = m.sample_devices((20_000,), torch.Generator().manual_seed(0))
    lo, hi = m.window(st)
    floor = m.values["g_floor"]
    assert float(lo.min()) == pytest.approx(floor) and bool((hi >= lo).all())
    assert float((lo == floor).double().mean()) > 0.1


def _bad(mutate) -> dict:
    c = copy.deepcopy(card("reram-sb-gong2018"))
    mutate(c)
    return c


@pytest.mark.parametrize("mutate, match", [
    (lambda c: c["inference"].update(drift={}), r"inference: unknown key\(s\) drift"),
    (lambda c: c["inference"]["read_noise"].update(redraw="per_day"),
     "inference.read_noise.redraw: 'per_day'"),
    (lambda c: c["inference"]["programming_noise"].update(unit="S"),
     "inference.programming_noise.unit: 'S' but the card's conductance unit is 'uS'"),
    (lambda c: c["inference"]["programming_noise"].pop("source"),
     "inference.programming_noise: give 'source:' or 'assumption:'"),
    (lambda c: c["inference"]["cost"]["pulse_time"].update(unit="min"),
     r"inference.cost.pulse_time.unit: 'min'"),
    (lambda c: c["inference"]["write_verify"]["max_iterations"].update(value=2.5),
     "max_iterations.value: must be an integer"),
    (lambda c: c["inference"].pop("cost"), "inference.cost: missing"),
    (lambda c: c["inference"]["relaxation"]["tau_2"].update(value=-1),
     "inference.relaxation.tau_2.value: '-1' must be a positive number"),
    (lambda c: c["params"]["g_min"].update(value=-0.75),
     "inference needs physical conductances"),
])
def test_bad_inference_blocks_raise_one_line(mutate, match) -> None:
    with pytest.raises(DseError, match=match) as exc:
        validate_card(_bad(mutate), source="card.yaml")
    assert "\n" not in str(exc.value) and "card.yaml" in str(exc.value)


def test_cards_without_inference_block_cannot_be_deployed() -> None:
    c = copy.deepcopy(card("reram-sb-gong2018"))
    del c["inference"]
    with pytest.raises(DseError, match="has no inference: block"):
        inference_physics(from_card(c))
    b = copy.deepcopy(card("hfo2-2t2r"))
    b["inference"] = copy.deepcopy(card("reram-sb-gong2018")["inference"])
    with pytest.raises(DseError, match="only analog"):
        validate_card(b)
