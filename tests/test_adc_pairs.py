"""How an ADC chip reads a differential pair (``sensing.pair_subtraction``) and whose floor the
cells carry (dse.chip.adc_quant): analog subtraction at full resolution is the ideal product and
ignores a pair's common level, digital subtraction does not at few bits; the map stage counts
half the conversions for analog pairs; a floor on the cells cancels at full resolution and
widens the calibrated range by exactly rho times the spread of the inputs' sums; a bad value is
one line naming the key."""

from __future__ import annotations

import pytest
import torch

from dse.chip.adc_quant import AdcSpec, LayerReadout
from dse.chip.card_parse import chip_from_dict
from dse.chip.estimate import by_component, estimate
from dse.chip.latency import latency, timing
from dse.chip.mapping import LayerSpec, map_model
from dse.errors import DseError

PAIRS = ("digital", "analog")


def q(value, unit="1"):
    return {"value": value, "unit": unit, "assumption": "test"}


def card(pairs: str | None = None, bits: int = 4, sliced: str | None = None) -> dict:
    d = {
        "name": "t-pairs", "encoding": "analog",
        "technology": {"node": q(22, "nm"), "supply": q(0.8, "V")},
        "array": {"rows": q(128), "cols": q(128)},
        "cell": {"cells_per_weight": q(2), "area": q(48, "F2"), "r_on": q(100, "kohm"),
                 "r_off": q(1700, "kohm"), "read_voltage": q(0.55, "V"),
                 "read_pulse": q(10, "ns")},
        "sensing": {"kind": "adc", "adc_model": "neurosim_sar", "adc_bits": q(bits),
                    "cols_per_adc": q(8), "parallel_rows": q(32)},
        "digital": {"add_energy": q(19, "fJ"), "buffer_energy": q(60, "fJ"),
                    "clock": q(1, "GHz")},
        "periphery": {"row_area": q(4, "transistors"), "column_area": q(30, "transistors")},
    }
    if pairs is not None:
        d["sensing"]["pair_subtraction"] = pairs
    if sliced is not None:  # 4-bit weights over 1-bit cells
        cells = 6 if sliced == "differential" else 4
        d["cell"].update(weight_bits=q(4), bits_per_cell=q(1), signing=sliced,
                         cells_per_weight=q(cells))
        d["array"]["cols"] = q(120)
    return d


def _spec(pairs: str, bits: int, offset: float = 0.0) -> AdcSpec:
    return AdcSpec(bits=bits, array_rows=64, parallel_rows=16, cells_per_weight=2,
                   encoding="analog", offset=offset, pair_subtraction=pairs)


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(10, 40, generator=g, dtype=torch.float64)
    x = torch.rand(50, 40, generator=g, dtype=torch.float64)
    return w, x


def _calibrated(spec: AdcSpec, layer: torch.nn.Module, x: torch.Tensor, w: torch.Tensor,
                offset: float | None = None) -> LayerReadout:
    ro = LayerReadout(spec, rows=w.shape[1], weight_dim=2, w_max=float(w.abs().max()))
    if offset is not None:
        ro.offset = offset
    ro.start_calibration()
    ro(layer, x, w)
    ro.finish_calibration()
    return ro


def _levels(w: torch.Tensor, common: torch.Tensor | float = 0.0) -> torch.Tensor:
    """A pair's cell levels (relu(w), relu(-w))/w_max, both cells raised by ``common``."""
    u = w / w.abs().max()
    return torch.stack([u.clamp(min=0), (-u).clamp(min=0)], dim=-1) + torch.as_tensor(
        common, dtype=w.dtype)[..., None]


@pytest.mark.parametrize("pairs", PAIRS)
def test_full_resolution_is_the_ideal_product(pairs: str) -> None:
    w, x = _data()
    layer = torch.nn.Linear(40, 10, bias=False)
    ro = _calibrated(_spec(pairs, bits=30, offset=0.3), layer, x, w)
    assert ro(layer, x, w) == pytest.approx(x @ w.T, abs=1e-6)
    assert ro.lo.min() < 0 if pairs == "analog" else ro.lo.min() > 0  # the difference / columns


def test_analog_subtraction_ignores_a_common_level_digital_does_not() -> None:
    w, x = _data(1)
    g = torch.Generator().manual_seed(5)
    common = 0.5 * torch.rand(w.shape, generator=g, dtype=w.dtype)  # per pair, both cells
    out = {}
    for pairs in PAIRS:
        layer = torch.nn.Linear(40, 10, bias=False)
        ro = _calibrated(_spec(pairs, bits=4, offset=1 / 16), layer, x, w)
        base = ro(layer, x, w)
        layer.cell_columns = ro.columns(w, _levels(w, common))
        out[pairs] = (base, ro(layer, x, w))
    base, raised = out["analog"]
    assert raised == pytest.approx(base, abs=1e-9)
    base, raised = out["digital"]
    assert (raised - base).abs().max() > 0.1 * base.abs().max()  # clipped at the range's top


def test_conversions_halve_for_analog_pairs() -> None:
    layers = [LayerSpec("a", "linear", "float", 300, 64, in_bits=8),
              LayerSpec("b", "conv", "float", 75, 16, positions=49, in_bits=8)]
    chips = {p: chip_from_dict(card(p)) for p in (None, *PAIRS)}
    maps = {p: map_model(layers, c) for p, c in chips.items()}
    for lm_d, lm_a, lm_n in zip(maps["digital"].layers, maps["analog"].layers,
                                maps[None].layers, strict=True):
        assert lm_n == lm_d  # digital is the default
        assert 2 * lm_a.adc_conversions == lm_d.adc_conversions
        assert 2 * lm_a.partial_sum_additions == lm_d.partial_sum_additions
        assert (lm_a.cell_reads, lm_a.adcs) == (lm_d.cell_reads, lm_d.adcs)
    assert maps["analog"].extra["pair_subtraction"] == "analog"
    assert AdcSpec.from_mapping(maps["analog"]).pair_subtraction == "analog"
    energy = {p: by_component(estimate(maps[p], chips[p])).loc["adc", "energy_pJ"]
              for p in PAIRS}
    assert energy["analog"] == pytest.approx(energy["digital"] / 2)
    steps = {p: latency(maps[p], chips[p], timing(chips[p]))["steps_per_position"]
             for p in PAIRS}
    assert (2 * steps["analog"] == steps["digital"]).all()  # full ADC mux rounds: 64, 16 cols
    # bit slices: differential pairs halve, offset signing (a reference column) has no pairs
    for signing, ratio in (("differential", 2), ("offset", 1)):
        m = {p: map_model(layers, chip_from_dict(card(p, sliced=signing))) for p in PAIRS}
        assert [ratio * a.adc_conversions for a in m["analog"].layers] == [
            d.adc_conversions for d in m["digital"].layers]


def test_analog_bit_slices_are_the_ideal_product_at_full_resolution() -> None:
    m = map_model([LayerSpec("a", "linear", "float", 40, 10)],
                  chip_from_dict(card("analog", bits=30, sliced="differential")))
    spec = AdcSpec.from_mapping(m)
    assert spec is not None and spec.analog_pairs
    w, x = _data(2)
    layer = torch.nn.Linear(40, 10, bias=False)
    ro = _calibrated(spec, layer, x, w)
    assert ro.columns(w).shape[-2] == 3 * 10  # one column per slice and pair
    wq = spec.slicing.quantize(w, ro.w_max)
    assert ro(layer, x, w) == pytest.approx(x @ wq.T, abs=1e-6)


def test_a_floor_cancels_at_full_resolution_and_widens_the_digital_range() -> None:
    """Digital pairs: every column current gains rho * sum(x) of its row group. Two images, x
    and x/2 (x >= 0): the range [lo, hi] of a group becomes [lo + rho s/2, hi + rho s] (its
    extremes are the half image's smallest and the whole image's largest column), wider by
    rho (s_max - s_min) = rho s / 2."""
    w, x1 = _data(3)
    x = torch.cat([x1[:1], x1[:1] / 2])
    layer = torch.nn.Linear(40, 10, bias=False)
    rho = 0.625  # the reram-sb-gong2018 card: g_min 12.5 uS on a 20 uS span
    fine = {r: _calibrated(_spec("digital", bits=30), layer, x, w, offset=r) for r in (0, rho)}
    assert fine[rho](layer, x, w) == pytest.approx(fine[0](layer, x, w), abs=1e-6)
    coarse = {r: _calibrated(_spec("digital", bits=3), layer, x, w, offset=r) for r in (0, rho)}
    s = torch.tensor([float(x[0, a:b].sum()) for a, b in coarse[0].groups], dtype=x.dtype)
    lo, hi = (coarse[0].lo.double(), coarse[0].hi.double())  # (the ranges are float32)
    assert coarse[rho].lo.tolist() == pytest.approx((lo + rho * s / 2).tolist(), abs=1e-5)
    assert coarse[rho].hi.tolist() == pytest.approx((hi + rho * s).tolist(), abs=1e-5)
    # the coarser steps cost precision: the floor changes the 3-bit read
    err = {r: float((coarse[r](layer, x, w) - x @ w.T).abs().mean()) for r in (0, rho)}
    assert err[rho] > err[0]
    # analog pairs: the floor cancels on the bit line, the range and the read are unchanged
    ana = {r: _calibrated(_spec("analog", bits=3), layer, x, w, offset=r) for r in (0, rho)}
    assert ana[rho].hi.tolist() == pytest.approx(ana[0].hi.tolist(), abs=1e-6)
    assert ana[rho](layer, x, w) == pytest.approx(ana[0](layer, x, w), abs=1e-9)


@pytest.mark.parametrize(("value", "match"), [("both", "unknown pair subtraction 'both'"),
                                              (1, "must be a string")])
def test_a_bad_pair_subtraction_is_one_line(value, match) -> None:
    with pytest.raises(DseError, match=match) as err:
        chip_from_dict(card(value), source="chip.yaml")
    assert "sensing.pair_subtraction" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(DseError, match="sensing.pair_subtraction"):
        chip_from_dict(card("analog")).replace(pair_subtraction="subtract")
    with pytest.raises(DseError, match="sensing.pair_subtraction"):
        _spec("both", bits=4)
