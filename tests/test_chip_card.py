"""Chip cards: loading, provenance, validation errors, and the ADC / cell-read energy models
against the NeuroSim and Accelergy figures (NeuroSim SarADC.cpp, Accelergy adc_data/model.yaml,
CiMLoop defaults)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from dse.chip.adc import UNIT_TRANSISTOR_F2, MurmannSurvey, NeuroSimSar
from dse.chip.card import ChipCard
from dse.chip.card_parse import chip_from_dict
from dse.errors import DseError
from dse.pipeline.artifacts import load_chip

SHIPPED = ("rram-2t2r-pcsa-130nm", "rram-2t2r-pcsa-130nm-ternary", "rram-1t1r-adc",
           "stt-mram-binary")


def q(value, unit="1", **prov):
    return {"value": value, "unit": unit, **(prov or {"assumption": "test"})}


def adc_card() -> dict:
    return {
        "name": "t-adc", "encoding": "analog",
        "technology": {"node": q(130, "nm"), "supply": q(1.0, "V")},
        "array": {"rows": q(128), "cols": q(128)},
        "cell": {"cells_per_weight": q(2), "area": q(48, "F2"), "r_on": q(100, "kohm"),
                 "r_off": q(1.7, "Mohm"), "read_voltage": q(0.58, "V"),
                 "read_pulse": q(10, "ns"), "lrs_fraction": q(1.0)},
        "sensing": {"kind": "adc", "adc_model": "neurosim_sar", "adc_bits": q(5),
                    "cols_per_adc": q(8), "parallel_rows": q(128)},
        "digital": {"add_energy": q(10, "fJ"), "buffer_energy": q(100, "fJ")},
        "periphery": {"row_area": q(4, "transistors"), "column_area": q(30, "transistors")},
    }


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_cards_load_with_a_source_for_every_number(repo: Path, name: str) -> None:
    path = repo / "config" / "chips" / f"{name}.yaml"
    chip = load_chip(path)
    assert chip.name == name
    raw = yaml.safe_load(path.read_text())

    def numbers(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict) and "value" in v:
                yield f"{prefix}{k}", v
            elif isinstance(v, dict):
                yield from numbers(v, f"{prefix}{k}.")

    found = list(numbers(raw))
    assert found
    for where, entry in found:
        assert entry.get("source") or entry.get("assumption"), where
    assert len(chip.sources) == len(found)


def test_config_lists_the_shipped_cards(repo: Path) -> None:
    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    for name in SHIPPED:
        assert load_chip(repo / config["chips"][name]).name == name


def test_units_are_converted() -> None:
    chip = chip_from_dict(adc_card())
    assert chip.r_on_ohm == pytest.approx(100e3)
    assert chip.r_off_ohm == pytest.approx(1.7e6)
    assert chip.read_pulse_s == pytest.approx(10e-9)
    assert chip.periphery_row_f2 == pytest.approx(4 * UNIT_TRANSISTOR_F2)
    d = adc_card()
    d["cell"]["area"] = q(0.8112, "um2")  # 48 F2 at 130 nm = 48 * 0.0169 um2
    assert chip_from_dict(d).cell_area_f2 == pytest.approx(48)


# -------------------------------------------------------------------- malformed cards
def _error(d: dict) -> str:
    with pytest.raises(DseError) as exc:
        chip_from_dict(d, source="card.yaml")
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("card.yaml: ")
    return msg


def test_missing_provenance_is_an_error() -> None:
    d = adc_card()
    d["cell"]["area"] = {"value": 48, "unit": "F2"}
    assert "cell.area" in _error(d) and "source" in _error(d)


def test_bad_cards_name_the_key_and_the_fix() -> None:
    cases = [
        # digital energies default from dse.chip.technology, but only at a node of its table
        (lambda d: (d.pop("digital"), d["technology"].update(node=q(100, "nm"))),
         "digital.add_energy: missing, and no default"),
        (lambda d: d["cell"].update(weight_bits=q(8)), "needs both cell.weight_bits and"),
        (lambda d: d["cell"].update(weight_bits=q(8), bits_per_cell=q(1)),
         "cells per weight do not hold 8-bit weights"),
        (lambda d: d["array"].update(rows=q(0)), "array.rows"),
        (lambda d: d["array"].update(cols=q(127)), "multiple of 2"),
        (lambda d: d["cell"].update(area=q(48, "V")), "not a unit of area"),
        (lambda d: d["cell"].update(area=q(48, "furlong")), "unknown unit"),
        (lambda d: d["cell"].update(area=48), "write numbers as"),
        (lambda d: d["sensing"].pop("adc_bits"), "sensing.adc_bits: missing"),
        (lambda d: d["sensing"].update(adc_model="flash9000"), "unknown ADC model"),
        (lambda d: d["sensing"].update(parallel_rows=q(256)), "exceed"),
        (lambda d: d.update(encoding="quaternary"), "unknown encoding"),
        (lambda d: d.update(colour="red"), "unknown key 'colour'"),
        (lambda d: d["cell"].update(cells_per_weight=q(3)), "not possible"),
        (lambda d: d["cell"].pop("r_on"), "cell.r_on"),
        (lambda d: d["technology"].update(node=q(100, "nm")), "not a node of NeuroSim"),
    ]
    for mutate, needle in cases:
        d = copy.deepcopy(adc_card())
        mutate(d)
        if needle == "not a node of NeuroSim":
            chip = chip_from_dict(d)  # the card is fine; the ADC energy is asked for later
            with pytest.raises(DseError, match="not a node of NeuroSim"):
                _ = chip.adc_fj
            continue
        assert needle in _error(d), needle


def test_ternary_needs_two_cells_and_pcsa_needs_its_energy() -> None:
    d = adc_card()
    d["encoding"] = "ternary"
    d["cell"]["cells_per_weight"] = q(1)
    assert "with encoding ternary" in _error(d)
    d = adc_card()
    d["encoding"] = "binary"
    d["sensing"] = {"kind": "pcsa"}
    assert "sensing.sense_energy: missing" in _error(d)


def test_a_bad_yaml_file_is_one_line(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(DseError, match=r"c\.yaml: not valid YAML"):
        load_chip(p)
    with pytest.raises(DseError, match="chip card not found"):
        load_chip(tmp_path / "missing.yaml")


def test_replace_is_validated_and_recomputes() -> None:
    chip = chip_from_dict(adc_card())
    with pytest.raises(DseError, match="adc_bits"):
        chip.replace(adc_bits=0)
    with pytest.raises(DseError, match="parallel_rows"):
        chip.replace(rows=64)  # parallel_rows 128 > 64 rows
    six = chip.replace(adc_bits=6)
    assert six.adc_fj == pytest.approx(NeuroSimSar.energy_fj(6, 130))
    assert isinstance(six, ChipCard) and six.sources == chip.sources


# -------------------------------------------------------------------- energy models
@pytest.mark.parametrize(("node", "bits", "fj"), [
    (130, 4, 495), (130, 5, 645), (130, 6, 812), (130, 8, 1196),
    (65, 4, 204), (65, 8, 503), (22, 4, 32.6), (22, 5, 42.4), (22, 6, 53.2), (22, 8, 78.1)])
def test_neurosim_sar_energy_matches_hardware_md(node: int, bits: int, fj: float) -> None:
    assert NeuroSimSar.energy_fj(bits, node, "lp") == pytest.approx(fj, rel=0.01)


@pytest.mark.parametrize(("node", "bits", "pj"), [
    (130, 4, 12.9), (130, 5, 13.1), (130, 6, 14.9), (130, 7, 18.3), (130, 8, 23.9),
    (65, 8, 6.49), (32, 8, 1.71), (22, 4, 0.46), (22, 8, 0.85)])
def test_murmann_survey_energy_matches_hardware_md(node: int, bits: int, pj: float) -> None:
    assert MurmannSurvey.energy_fj(bits, node) * 1e-3 == pytest.approx(pj, rel=0.02)


@pytest.mark.parametrize(("node", "um2"), [(130, 3.5e4), (65, 1.19e4), (32, 3.9e3),
                                           (22, 2.2e3)])
def test_murmann_survey_area_matches_hardware_md(node: int, um2: float) -> None:
    assert MurmannSurvey.area_um2(8, node, rate=1e8) == pytest.approx(um2, rel=0.02)


def test_neurosim_sar_area_and_temperature() -> None:
    # (269 + 109*4) + (209 + 73*4) = 1206 minimum transistors of 212.8 F2 for 5 bits
    assert NeuroSimSar.area_um2(5, 130) == pytest.approx(1206 * 212.8 * 0.13 ** 2)
    assert NeuroSimSar.energy_fj(5, 22, "lp", 350) == pytest.approx(42.4 * 1.065, rel=0.01)
    assert NeuroSimSar.energy_fj(5, 22, "hp") == pytest.approx((0.7213 * 5 + 3.3041) * 6)


@pytest.mark.parametrize(("node", "vread", "lrs", "hrs"), [(130, 0.58, 33.6, 2.0),
                                                           (22, 0.55, 30.3, 1.8)])
def test_cell_read_energy_matches_neurosim_defaults(node: int, vread: float, lrs: float,
                                                    hrs: float) -> None:
    d = adc_card()
    d["technology"]["node"] = q(node, "nm")
    d["cell"]["read_voltage"] = q(vread, "V")
    d["cell"]["lrs_fraction"] = q(1.0)
    chip = chip_from_dict(d)
    assert chip.cell_read_fj == pytest.approx(lrs, rel=0.01)
    assert chip.replace(lrs_fraction=0.0).cell_read_fj == pytest.approx(hrs,
                                                                                      rel=0.03)
