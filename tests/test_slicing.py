"""Bit-sliced weights (issue 14): exact reconstruction, cell and conversion counts, ADC path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dse.chip.adc_quant import AdcSpec, LayerReadout
from dse.chip.estimate import estimate
from dse.chip.inject import perturbed_weights
from dse.chip.layer import LayerSpec
from dse.chip.mapping import Mapping, map_model
from dse.chip.slicing import Slicing, mapping_slicing
from dse.errors import DseError
from dse.nn import ModelSpec, build_model
from dse.pipeline.artifacts import load_chip

CARD = Path(__file__).resolve().parents[1] / "config" / "chips" / "neurosim-v14-rram-22nm.yaml"


@pytest.fixture(scope="module")
def chip():
    return load_chip(CARD)


@pytest.mark.parametrize("sl", [Slicing(4, 2, "offset"), Slicing(4, 2, "differential"),
                                Slicing(8, 1, "offset"), Slicing(8, 3, "differential")])
def test_slices_reproduce_the_quantised_weight_exactly(sl):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(500, generator=g, dtype=torch.float64)
    w_max = w.abs().max()
    levels = sl.to_levels(w, w_max)
    assert levels.shape == (500, sl.cells) and levels.min() >= 0 and levels.max() <= 1
    digits = levels * (2 ** sl.bits_per_cell - 1)
    assert torch.equal(digits, digits.round())  # every cell holds one of its 2^b levels
    assert torch.equal(sl.from_levels(levels, w_max), sl.quantize(w, w_max))
    q = sl.codes(w, w_max)
    assert q.abs().max() == sl.q_max and torch.equal(q, q.round())


def test_four_bit_weight_over_two_two_bit_cells():
    sl = Slicing(4, 2, "offset")
    assert sl.slices == sl.cells == 2
    # q = -7 .. 7 on a grid of 1/7; offset 8: q = 5 -> 13 = 0b1101 -> digits (1, 3), LSB first
    levels = sl.to_levels(torch.tensor([5 / 7, -7 / 7]), 1.0)
    assert torch.equal(levels * 3, torch.tensor([[1.0, 3.0], [1.0, 0.0]]))


def test_cells_per_weight_column_is_ceil_n_over_b(chip):
    layer = LayerSpec("fc", "linear", "float", rows=100, cols=12, positions=1, in_bits=8)
    for bits, cells in ((1, 8), (2, 4), (3, 3), (8, 1)):
        cols = 126 if cells == 3 else 128
        c = chip.replace(bits_per_cell=bits, cells_per_weight=cells, cols=cols)
        lm = map_model([layer], c).layers[0]
        assert lm.cells == 100 * 12 * cells and lm.cols_used == 12 * cells
    diff = chip.replace(signing="differential", cells_per_weight=14, cols=126)  # 2 ceil(7/1)
    assert diff.slices == 7


def test_a_card_with_the_wrong_cell_count_gets_one_line(chip):
    with pytest.raises(DseError, match=r"cell.cells_per_weight: 6 cells .* use 8") as e:
        chip.replace(cells_per_weight=6)
    assert "\n" not in str(e.value)
    with pytest.raises(DseError, match="cell.bits_per_cell: missing"):
        chip.replace(bits_per_cell=None)


def test_adc_conversions_per_slice_match_a_hand_count(chip):
    c = chip.replace(bits_per_cell=2, cells_per_weight=4, parallel_rows=64)
    layer = LayerSpec("fc", "linear", "float", rows=200, cols=10, positions=3, in_bits=4)
    lm = map_model([layer], c).layers[0]
    # 200 rows on 128-row arrays: tiles of 128 and 72 rows, 2 + 2 reads of 64 rows per input
    # bit; 10 weights x 4 slices = 40 columns converted per read; 3 positions, 4 input bits
    assert lm.adc_conversions == 3 * 4 * (2 + 2) * 10 * 4
    t = estimate(map_model([layer], c), c).set_index("component")
    assert t.loc["adc", "energy_pJ"] == pytest.approx(1920 * c.adc_fj * 1e-3)


def test_the_mapping_records_the_slicing_and_round_trips(chip):
    m = map_model([LayerSpec("fc", "linear", "float", rows=8, cols=4)], chip)
    again = Mapping.from_dict(m.to_dict())
    assert mapping_slicing(again) == Slicing(8, 1, "offset")
    with pytest.raises(DseError, match="slicing"):
        m.check_chip(chip.replace(bits_per_cell=2, cells_per_weight=4))


@pytest.mark.parametrize("signing,cells", [("offset", 2), ("differential", 4)])
def test_adc_readout_of_slices_is_exact_with_a_fine_adc(signing, cells):
    sl = Slicing(4, 2, signing)
    g = torch.Generator().manual_seed(1)
    w = torch.randn(6, 40, generator=g, dtype=torch.float64)
    x = torch.rand(5, 40, generator=g, dtype=torch.float64)
    w_max = float(w.abs().max())
    spec = AdcSpec(bits=30, array_rows=32, parallel_rows=16, cells_per_weight=cells,
                   encoding="analog", offset=1 / 16, slicing=sl)
    ro = LayerReadout(spec, rows=40, weight_dim=2, w_max=w_max)
    ro.start_calibration()
    ro(None, x, w)
    ro.finish_calibration()
    ideal = x @ sl.quantize(w, w_max).T
    assert torch.allclose(ro(None, x, w).double(), ideal, atol=1e-6)
    coarse = LayerReadout(AdcSpec(**{**spec.__dict__, "bits": 3}), 40, 2, w_max)
    coarse.lo, coarse.hi = ro.lo, ro.hi
    assert not torch.allclose(coarse(None, x, w).double(), ideal, atol=1e-3)


def test_inject_stores_the_quantised_weight_on_a_sliced_chip(chip):
    net = build_model(ModelSpec("mlp", (1, 4, 4), 3, "float", hidden=[8]),
                      torch.Generator().manual_seed(0))
    small = chip.replace(bits_per_cell=2, cells_per_weight=4)
    m = map_model(net, small)
    out = perturbed_weights(net, m, torch.zeros(2, dtype=torch.float64),
                            torch.Generator().manual_seed(0), cell_levels=True)
    sl = mapping_slicing(m)
    for name, layer in net.quant_layers():
        wq = layer.quantized_weight().detach()
        w_max = wq.abs().max()
        assert torch.equal(out[f"{name}.weight"][0], sl.quantize(wq, w_max))
        assert out[f"{name}.cell_levels"].shape[-1] == 4


class _GaussDevice:
    """One-shot programming with N(0, sigma) conductance noise, not clipped (closed form)."""

    g_min, g_max, sigma = 0.0, 10.0, 0.2

    def program(self, target: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return target + self.sigma * torch.randn(target.shape, generator=generator,
                                                 dtype=target.dtype)


@pytest.mark.parametrize("signing,cells", [("differential", 4), ("offset", 2)])
def test_programming_noise_per_slice_matches_the_closed_form(chip, signing, cells):
    """Second method: Monte-Carlo weight errors of noisy slice cells vs the closed form
    Var = Δ² σ_l² Σ_j place_j² (× 2 for a pair), mean 0."""
    from dse.chip.inject import AnalogNoise

    net = build_model(ModelSpec("mlp", (1, 4, 4), 3, "float", hidden=[8]),
                      torch.Generator().manual_seed(0)).double()
    c = chip.replace(weight_bits=4, bits_per_cell=2, signing=signing, cells_per_weight=cells)
    m = map_model(net, c)
    dev = _GaussDevice()
    out = perturbed_weights(net, m, torch.zeros(400, dtype=torch.float64),
                            torch.Generator().manual_seed(5),
                            analog=AnalogNoise(dev, read=False))
    sl = mapping_slicing(m)
    sigma_l = dev.sigma / (dev.g_max - dev.g_min)
    place2 = float((sl.place_values(torch.zeros(1, dtype=torch.float64)) ** 2).sum())
    for name, layer in net.quant_layers():
        wq = layer.quantized_weight().detach()
        w_max = wq.abs().max()
        err = out[f"{name}.weight"] - sl.quantize(wq, w_max)
        delta = float(w_max) / sl.q_max
        want = delta ** 2 * sigma_l ** 2 * place2 * (2 if signing == "differential" else 1)
        assert float(err.var()) == pytest.approx(want, rel=0.05)
        assert abs(float(err.mean())) < 4 * (want / err.numel()) ** 0.5


@pytest.mark.parametrize("inputs", [None, "bit_serial"])
def test_vectorised_fault_maps_equal_per_map_reads_on_a_sliced_chip(chip, inputs):
    """The vmapped evaluation (with the first-layer shortcut when inputs are applied whole)
    equals loading each fault map into a copy of the model and reading it through the ADCs."""
    import copy

    from dse.chip.adc_quant import build_readout
    from dse.chip.fault_eval import map_accuracies
    from dse.chip.inject import StuckAt
    from dse.nn import evaluate

    g = torch.Generator().manual_seed(2)
    net = build_model(ModelSpec("mlp", (1, 4, 4), 3, "float", hidden=[12]), g).eval()
    c = chip.replace(bits_per_cell=2, cells_per_weight=4, inputs=inputs, adc_bits=5,
                     parallel_rows=8)
    m = map_model(net, c)
    x, y = torch.rand(60, 1, 4, 4, generator=g), torch.randint(0, 3, (60,), generator=g)
    ro = build_readout(net, m, x)
    w = perturbed_weights(net, m, torch.zeros(3), g, cell_levels=True,
                          stuck_at=StuckAt(sa0=0.05, sa1=0.05))
    with ro.attached(net):
        vec = map_accuracies(net, w, x, y).tolist()
    ref = []
    for i in range(3):
        one = copy.deepcopy(net)
        for name, layer in one.quant_layers():
            layer.weight.data.copy_(w[f"{name}.weight"][i])
            layer.cell_columns = ro.layers[name].columns(w[f"{name}.weight"][i],
                                                         w[f"{name}.cell_levels"][i])
        with ro.attached(one):
            ref.append(evaluate(one, x, y))
    assert vec == pytest.approx(ref, abs=1.01 / len(x))


def test_a_device_too_noisy_for_its_levels_is_reported(chip, caplog):
    from dse.chip.inject import AnalogNoise

    net = build_model(ModelSpec("mlp", (1, 4, 4), 3, "float", hidden=[8]),
                      torch.Generator().manual_seed(0))
    dev = _GaussDevice()
    dev.program_sigma = 0.2  # 2-bit cells: levels 3.33 apart, sigma well below half of it
    c = chip.replace(weight_bits=4, bits_per_cell=2, cells_per_weight=2)
    args = (net, map_model(net, c), torch.zeros(1), torch.Generator().manual_seed(0))
    with caplog.at_level("WARNING", logger="dse.chip.inject"):
        perturbed_weights(*args, analog=AnalogNoise(dev, read=False))
        assert "overlap" not in caplog.text
        dev.program_sigma = 2.0
        perturbed_weights(*args, analog=AnalogNoise(dev, read=False))
    assert "2-bit cells need 4 conductance levels" in caplog.text
