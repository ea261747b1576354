"""Multi-bit activations (issue 14): bit-serial or DAC inputs, one source of truth on the card
for the energy/latency counts and the accuracy path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dse.chip import latency as lat
from dse.chip.adc_quant import AdcSpec, LayerReadout
from dse.chip.estimate import by_component, estimate
from dse.chip.inject import inject
from dse.chip.layer import LayerSpec
from dse.chip.mapping import map_model
from dse.errors import DseError
from dse.nn import ModelSpec, build_model
from dse.pipeline.artifacts import load_chip

CHIPS = Path(__file__).resolve().parents[1] / "config" / "chips"
LAYER = LayerSpec("fc", "linear", "float", rows=200, cols=10, positions=3, in_bits=4)


@pytest.fixture(scope="module")
def chip():
    return load_chip(CHIPS / "neurosim-v14-rram-22nm.yaml")


def test_bit_serial_counts_scale_with_input_bits_and_dac_does_not(chip):
    serial = map_model([LAYER], chip).layers[0]
    legacy = map_model([LAYER], chip.replace(inputs=None)).layers[0]
    assert serial == legacy  # the shipped cards' (legacy) counts are the bit-serial ones
    dac_chip = chip.replace(inputs="dac", dac_fj=5.0)
    dac = map_model([LAYER], dac_chip).layers[0]
    assert serial.adc_conversions == 4 * dac.adc_conversions
    assert serial.cell_reads == 4 * dac.cell_reads
    assert dac.dac_conversions == 3 * 200 and serial.dac_conversions == 0
    comp = by_component(estimate(map_model([LAYER], dac_chip), dac_chip))
    assert comp.loc["dac", "energy_pJ"] == pytest.approx(600 * 5.0e-3)


def test_latency_is_linear_in_input_bit_cycles(chip):
    t = lat.timing(chip)
    one = LayerSpec("fc", "linear", "float", rows=128, cols=16, in_bits=1)
    arr = [chip.sensing.array_time(128, 16, chip.weight_cols, chip.cells_per_weight, b, t)[2]
           for b in (1, 2, 8)]
    assert arr[1] == pytest.approx(2 * arr[0]) and arr[2] == pytest.approx(8 * arr[0])
    dac = chip.replace(inputs="dac", dac_fj=5.0)
    assert dac.sensing.array_time(128, 16, chip.weight_cols, 8, 8, t)[2] == pytest.approx(arr[0])
    assert lat.latency(map_model([one], chip), chip, t)["latency_ns"].iloc[0] > 0


def test_a_dac_without_its_energy_gets_one_line(chip):
    with pytest.raises(DseError, match=r"sensing.dac_energy: missing") as e:
        chip.replace(inputs="dac")
    assert "\n" not in str(e.value)
    with pytest.raises(DseError, match="unknown input scheme 'pwm'"):
        chip.replace(inputs="pwm")


def _readout(inputs, bits, in_bits=4):
    spec = AdcSpec(bits=bits, array_rows=32, parallel_rows=16, cells_per_weight=2,
                   encoding="analog", offset=1 / 16, inputs=inputs)
    return LayerReadout(spec, rows=40, weight_dim=2, w_max=1.0, in_bits=in_bits)


def _calibrated(ro, x, w):
    ro.start_calibration()
    ro(None, x, w)
    ro.finish_calibration()
    return ro


@pytest.mark.parametrize("inputs", ["bit_serial", "dac"])
def test_quantized_inputs_are_exact_with_a_fine_adc(inputs):
    g = torch.Generator().manual_seed(3)
    w = torch.randn(6, 40, generator=g, dtype=torch.float64).clamp(-1, 1)
    x = torch.rand(5, 40, generator=g, dtype=torch.float64) * 2 - 0.5  # some negative inputs
    ro = _calibrated(_readout(inputs, 30), x, w)
    scale = float(x.abs().max()) / 15
    xq = torch.round(x / scale).clamp(-15, 15) * scale
    assert ro.signed and torch.allclose(ro(None, x, w).double(), xq @ w.T, atol=1e-6)


def test_bit_serial_converts_each_plane():
    g = torch.Generator().manual_seed(4)
    w = torch.randn(6, 40, generator=g, dtype=torch.float64).clamp(-1, 1)
    x = torch.rand(5, 40, generator=g, dtype=torch.float64)
    serial = _calibrated(_readout("bit_serial", 3), x, w)
    dac = _calibrated(_readout("dac", 3), x, w)
    ideal = _calibrated(_readout("dac", 30), x, w)(None, x, w)
    ys, yd = serial(None, x, w), dac(None, x, w)
    assert not torch.allclose(ys, yd) and not torch.allclose(ys, ideal, atol=1e-3)
    one = [_calibrated(_readout(m, 3, in_bits=1), x, w) for m in ("bit_serial", None)]
    assert torch.equal(one[0](None, x, w), one[1](None, x, w))  # a 1-bit input: one read


def test_inject_reads_a_sliced_bit_serial_chip(chip):
    net = build_model(ModelSpec("mlp", (1, 4, 4), 3, "float", hidden=[8]),
                      torch.Generator().manual_seed(0))
    small = chip.replace(bits_per_cell=2, cells_per_weight=4)
    m = map_model(net, small)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(20, 1, 4, 4, generator=g), torch.randint(0, 3, (20,), generator=g)
    table = inject(net, m, x, y, [0.0], repeats=2, generator=g)
    assert len(table) == 2 and table["accuracy"].between(0, 1).all()
    assert 0 <= table.attrs["adc_accuracy"] <= 1
