"""Latency and throughput of mapped networks (dse.chip.latency, issue 13), by hand."""

from __future__ import annotations

import dataclasses

import pytest

from dse.chip.card_parse import chip_from_dict
from dse.chip.estimate import estimate, totals
from dse.chip.latency import latency, pcsa_timing, throughput, timing
from dse.chip.mapping import LayerSpec, map_model
from dse.devices import from_card
from dse.errors import DseError


def q(value, unit="1"):
    return {"value": value, "unit": unit, "assumption": "test"}


def toy_pcsa(**sensing) -> dict:
    """4 rows x 8 bit lines = 4 weight columns of 2T2R pairs; 2 columns per sense amplifier."""
    return {
        "name": "toy-pcsa", "encoding": "binary",
        "technology": {"node": q(130, "nm"), "supply": q(1.2, "V")},
        "array": {"rows": q(4), "cols": q(8)},
        "cell": {"cells_per_weight": q(2), "area": q(48, "F2"), "read_energy": q(0, "fJ")},
        "sensing": {"kind": "pcsa", "sense_energy": q(10, "fJ"),
                    "sense_amp_area": q(11, "transistors"), "sense_time": q(2, "ns"),
                    "cols_per_sense_amp": q(2), **sensing},
        "digital": {"add_energy": q(20, "fJ"), "buffer_energy": q(100, "fJ"),
                    "clock": q(1, "GHz")},
        "periphery": {"row_area": q(4, "transistors"), "column_area": q(100, "transistors")},
    }


def toy_adc() -> dict:
    d = toy_pcsa()
    d.update(name="toy-adc", encoding="analog")
    d["array"] = {"rows": q(8), "cols": q(8)}
    d["cell"].update(read_energy=q(1, "fJ"), read_pulse=q(10, "ns"))
    d["sensing"] = {"kind": "adc", "adc_model": "neurosim_sar", "adc_bits": q(4),
                    "cols_per_adc": q(4), "parallel_rows": q(4), "adc_time": q(3, "ns")}
    d["digital"]["clock"] = q(500, "MHz")
    return d


LAYERS = [LayerSpec("a", "conv", "binary", rows=6, cols=5, positions=3, in_bits=8, out_bits=1),
          LayerSpec("b", "linear", "binary", rows=4, cols=2, positions=1, in_bits=1, out_bits=8)]


def test_two_layer_pcsa_latency_equals_the_hand_sum() -> None:
    chip = chip_from_dict(toy_pcsa())
    table = latency(map_model(LAYERS, chip), chip, timing(chip))
    # a: 2 row tiles in parallel, fullest tile 4 rows x 4 weight columns, 2 PCSAs -> 2 column
    #    steps: 8 senses of max(2, 1) ns, + 1 ns drain, + ceil(log2 2) = 1 ns adder tree,
    #    x 3 positions = 3 x (16 + 1 + 1) ns
    # b: 4 rows x 2 columns on 2 PCSAs: 4 senses x 2 ns + 1 ns, one position
    assert table["latency_ns"].tolist() == pytest.approx([3 * (16 + 1 + 1), 4 * 2 + 1])
    assert table["steps_per_position"].tolist() == [8, 4]
    out = throughput(table, energy_per_inference_pj=2.0, area_mm2=0.5)
    ops = 2 * (3 * 6 * 5 + 4 * 2)
    assert out["latency_ns"] == pytest.approx(63.0)
    assert out["inferences_per_s"] == pytest.approx(1e9 / 63)
    assert out["tops"] == pytest.approx(ops / 63e-9 * 1e-12)
    assert out["tops_per_w"] == pytest.approx(ops / 2e-12 * 1e-12)
    assert out["tops_per_mm2"] == pytest.approx(out["tops"] / 0.5)


def test_the_clock_bounds_a_fast_sense_and_one_pcsa_per_column_is_the_default() -> None:
    d = toy_pcsa(sense_time=q(0.25, "ns"))
    del d["sensing"]["cols_per_sense_amp"]
    chip = chip_from_dict(d)
    table = latency(map_model(LAYERS, chip), chip, timing(chip))
    # one PCSA per weight column: 4 senses per position, each max(0.25, 1) = 1 ns
    assert table["latency_ns"].tolist() == pytest.approx([3 * (4 + 1 + 1), 4 + 1])


def test_two_layer_adc_latency_equals_the_hand_sum() -> None:
    chip = chip_from_dict(toy_adc())
    layers = [dataclasses.replace(s, precision="float") for s in LAYERS]
    table = latency(map_model(layers, chip), chip, timing(chip))
    # 8 x 8 array, 4 weight columns, 2 ADCs (4 bit lines each), 4 rows per read, clock 2 ns
    # a: 6 rows on one tile -> 2 groups; 5 weight columns -> fullest tile 4 (8 bit lines),
    #    4 conversions per ADC of max(3, 2) ns; 8 input bits:
    #    8 x 2 x (10 + 4 x 3) + 2 (drain), 2 column tiles in parallel, no row tiles; x 3 positions
    # b: 4 rows -> 1 group; 2 columns = 4 bit lines -> 2 conversions; 1 input bit
    assert table["latency_ns"].tolist() == pytest.approx([3 * (8 * 2 * 22 + 2), 16 + 2])


def test_physical_sense_model_sets_the_cycle_at_the_operating_point() -> None:
    chip = chip_from_dict(toy_pcsa())
    sense = from_card({"name": "p", "family": "pcsa_physical", "source": "test", "params": {}})
    mapping = map_model(LAYERS, chip)
    nominal = throughput(latency(mapping, chip, pcsa_timing(chip, sense, vdd=1.2,
                                                            t_sense=0.2e-9)))
    low = throughput(latency(mapping, chip, pcsa_timing(chip, sense, vdd=0.4, t_sense=3e-9)))
    assert low["latency_ns"] > 5 * nominal["latency_ns"]
    t = pcsa_timing(chip, sense, vdd=0.4, t_sense=3e-9)
    assert t.sense_s == pytest.approx(float(sense.cycle_time(vdd=0.4, t_sense=3e-9)))
    assert t.clock_hz < 1e9   # the digital clock slows with the supply too


def test_tops_per_w_uses_the_estimates_energy() -> None:
    chip = chip_from_dict(toy_pcsa())
    mapping = map_model(LAYERS, chip)
    tot = totals(estimate(mapping, chip))
    out = throughput(latency(mapping, chip, timing(chip)), tot["energy_per_inference_pJ"],
                     tot["area_mm2"])
    assert out["tops_per_w"] == pytest.approx(
        out["ops_per_inference"] / (tot["energy_per_inference_pJ"] * 1e-12) * 1e-12)


@pytest.mark.parametrize("mutate, key", [
    (lambda d: d["digital"].pop("clock"), "digital.clock"),
    (lambda d: d["sensing"].pop("sense_time"), "sensing.sense_time"),
    (lambda d: d["sensing"].update(sense_time=q(-1, "ns")), "sensing.sense_time"),
    (lambda d: d["sensing"].update(cols_per_sense_amp=q(8)), "sensing.cols_per_sense_amp"),
])
def test_missing_or_bad_timing_names_the_key(mutate, key) -> None:
    d = toy_pcsa()
    mutate(d)
    with pytest.raises(DseError, match=key.replace(".", r"\.")):
        chip = chip_from_dict(d)
        timing(chip)
