"""Stochastic-computing input (Hirtzlin et al., IEEE Access 2019, arXiv 1906.00915)."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from dse.config import Experiment
from dse.data import load_dataset
from dse.nn.stochastic import StochasticInput
from dse.pipeline.artifacts import save_model as save
from dse.train import train

PIXELS = torch.tensor([0.0, 0.05, 0.3, 0.5, 0.77, 1.0])


def test_encoding_equals_the_pixel_in_expectation() -> None:
    # E[2·Binomial(L, p)/L − 1] = 2p − 1 (the pixel in ±1 coding), Var = 4p(1−p)/L.
    n, length = 40_000, 8
    enc = StochasticInput(length, seed=1)
    x = PIXELS.repeat(n, 1)
    out = enc(x).double()
    mean, var = out.mean(0), out.var(0)
    p = PIXELS.double()
    sigma = torch.sqrt(4 * p * (1 - p) / length / n)
    assert ((mean - (2 * p - 1)).abs() <= 3 * sigma + 1e-12).all()
    expected_var = 4 * p * (1 - p) / length
    # the sample variance of n draws: relative standard error ~ sqrt(2/n) (< 1 %)
    assert ((var - expected_var).abs() <= 0.05 * expected_var + 1e-12).all()
    assert torch.equal(out[:, 0], torch.full((n,), -1.0, dtype=torch.float64))  # p = 0
    assert torch.equal(out[:, -1], torch.ones(n, dtype=torch.float64))  # p = 1


@pytest.mark.parametrize("length", [1, 3, 8, 16])
def test_values_lie_on_the_bitstream_grid(length: int) -> None:
    enc = StochasticInput(length, seed=2)
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    out = enc(x)
    assert out.shape == x.shape
    k = (out + 1) * length / 2  # number of 1 bits
    assert torch.allclose(k, k.round(), atol=1e-5)
    assert k.min() >= 0 and k.max() <= length
    if length == 1:
        assert set(out.unique().tolist()) <= {-1.0, 1.0}  # a fully binary input


def test_fresh_draws_and_seeded_reproducibility() -> None:
    x = torch.full((200, 1, 8, 8), 0.4)
    enc = StochasticInput(8, seed=5)
    first, second = enc(x), enc(x)
    assert not torch.equal(first, second)  # fresh bits on every pass
    enc.reseed(5)
    assert torch.equal(enc(x), first)  # the same seed replays the same bits
    assert torch.equal(StochasticInput(8, seed=5)(x), first)
    assert not torch.equal(StochasticInput(8, seed=6)(x), first)
    with pytest.raises(ValueError, match="length"):
        StochasticInput(0)


def test_stochastic_input_run_learns_is_reproducible_and_writes_the_contract(
        tmp_path: Path) -> None:
    digits = load_dataset("digits")
    exp = Experiment.from_dict("sc", {"dataset": "digits", "hidden": [64, 64], "epochs": 3,
                                      "input": "stochastic", "bitstream_length": 8, "seed": 3})
    a = train(exp, [digits], progress=False)
    assert isinstance(a.model.encoder, StochasticInput) and a.model.encoder.length == 8
    assert a.test_accuracy > 0.6  # chance is 0.1
    b = train(exp, [digits], progress=False)
    cols = ["loss", "train_acc", "test_acc"]
    pd.testing.assert_frame_equal(a.history[cols], b.history[cols], check_exact=True)
    # the input bits follow the experiment seed
    c = train(replace(exp, seed=4, epochs=1), [digits], progress=False)
    assert c.model.encoder.generator.initial_seed() != a.model.encoder.generator.initial_seed()
    out = save(a, tmp_path / "sc")
    for f in ("model.pt", "model.json", "history.csv", "pulses.csv", "tasks.csv"):
        assert (out / f).is_file()
    assert math.isfinite(a.history["loss"].iloc[-1])


# -- fully binary passes (input: stochastic_output) and the first layer's L passes -----------
def test_a_stochastic_output_pass_sees_only_pm1_inputs() -> None:
    from dse.nn import ModelSpec, build_model

    spec = ModelSpec(model="mlp", input_shape=(1, 8, 8), classes=10, hidden=[32],
                     input="stochastic_output", bitstream_length=5)
    net = build_model(spec, torch.Generator().manual_seed(0))
    seen: list[torch.Tensor] = []
    net.body.fc1.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach()))
    x = torch.rand(7, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    for mode in (True, False):
        net.train(mode)
        out = net(x)
        assert out.shape == (7, 10)
    for z in seen:
        assert z.shape == (5 * 7, 64)  # L passes stacked on the batch axis
        assert set(z.unique().tolist()) <= {-1.0, 1.0}
    # the output is the mean of the L single-pass outputs
    net.eval()
    net.encoder.reseed(9)
    folded = net(x)
    net.encoder.reseed(9)
    passes = net.body(net.encoder(x)).view(5, 7, 10)
    assert torch.allclose(folded, passes.mean(0))


def test_first_layer_passes_average_converges_to_the_real_input_preactivation() -> None:
    from dse.nn.layers import QLinear
    from dse.nn.stochastic import first_layer_passes

    g = torch.Generator().manual_seed(3)
    layer = QLinear(64, 16, "binary")
    with torch.no_grad():
        layer.weight.copy_(torch.rand(16, 64, generator=g) - 0.5)
    x = torch.rand(32, 64, generator=g)
    w = layer.quantized_weight().detach()
    target = layer(2 * x - 1).detach()  # the real input in ±1 coding
    sigma = torch.sqrt((w ** 2) @ (4 * x * (1 - x)).T).T  # closed-form std of one pass
    errors = []
    for length in (1, 4, 16, 64, 256):
        passes = first_layer_passes(layer, x, length, torch.Generator().manual_seed(length))
        assert passes.shape == (length, 32, 16)  # (L, B, out): one binary pass each
        mean = passes.mean(0)
        rms = float(((mean - target) ** 2).mean().sqrt())
        errors.append(rms)
        expected = float((sigma ** 2 / length).mean().sqrt())
        assert 0.8 * expected < rms < 1.2 * expected  # Monte-Carlo vs closed form
    assert all(b < a for a, b in itertools.pairwise(errors))
    assert errors[-1] < errors[0] / 12  # ~1/sqrt(L): 16x fewer at 256x the passes
    # one pass on the stream mean (what input: stochastic computes) equals the L-pass average
    gen = torch.Generator().manual_seed(11)
    passes = first_layer_passes(layer, x, 8, gen)
    gen = torch.Generator().manual_seed(11)
    from dse.nn.stochastic import bit_samples

    stream_mean = bit_samples(x, 8, gen).mean(0)
    assert torch.allclose(passes.mean(0), layer(stream_mean), atol=1e-5)


def test_stochastic_output_run_learns_and_maps_l_passes() -> None:
    from dse.chip.mapping import map_model
    from dse.pipeline.artifacts import load_chip

    digits = load_dataset("digits")
    exp = Experiment.from_dict("sco", {"dataset": "digits", "hidden": [64], "epochs": 2,
                                       "input": "stochastic_output", "bitstream_length": 4,
                                       "seed": 3})
    a = train(exp, [digits], progress=False)
    assert a.test_accuracy > 0.5
    chip = load_chip(Path(__file__).parents[1] / "config/chips/stt-mram-binary.yaml")
    m = map_model(a.model, chip)
    assert [ly.in_bits for ly in m.layers] == [1, 1]
    assert [ly.positions for ly in m.layers] == [4, 4]  # the whole network runs L times
    # fault injection folds the L passes too: clean stacked weights give the clean accuracy
    from dse.chip.fault_eval import map_accuracies

    model = a.model.eval()
    weights = {f"{n}.weight": torch.stack([ly.quantized_weight().detach()] * 2)
               for n, ly in model.quant_layers()}
    acc = map_accuracies(model, weights, digits.x_test, digits.y_test)
    assert acc.shape == (2,)
    assert (acc - a.test_accuracy).abs().max() < 0.05  # fresh bits: close, not equal
