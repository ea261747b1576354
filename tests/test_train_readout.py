"""Training through a chip's read-out (``mixed_precision.chip``, issue 12 item 5): the chip's
ADC in the training forward pass with straight-through gradients, the trainer's device pairs as
its cells, and the pipeline passing it in."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml

from dse.chip.card_parse import chip_from_dict
from dse.chip.train_readout import training_readouts
from dse.config import Experiment
from dse.data import load_dataset
from dse.errors import DseError
from dse.nn import ModelSpec, build_model
from dse.pipeline.artifacts import load_card
from dse.pipeline.recipes import training_chip
from dse.train import MixedPrecisionTrainer, train

REPO = Path(__file__).resolve().parents[1]
BULK = load_card(REPO / "config" / "devices" / "bulk-switching.yaml")
DEVICES = {"bulk-switching": {"card": "config/devices/bulk-switching.yaml"}}
CHIP = yaml.safe_load((REPO / "config" / "chips" / "rram-1t1r-adc.yaml").read_text())

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def chip(bits: int = 5, parallel_rows: int = 16) -> object:
    d = copy.deepcopy(CHIP)
    d["sensing"]["adc_bits"]["value"] = bits
    d["sensing"]["parallel_rows"]["value"] = parallel_rows
    return chip_from_dict(d)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _exp(chip_name: str = "rram-1t1r-adc") -> Experiment:
    entry = {"dataset": "digits", "model": "mlp", "hidden": [32], "precision": "float",
             "algorithm": "mixed_precision", "device_card": "bulk-switching", "epochs": 2,
             "lr": 0.1, "mixed_precision": {"chip": chip_name}}
    return Experiment.from_dict("mp", entry, devices=DEVICES)


def _trainer(ds, exp: Experiment, bits: int) -> MixedPrecisionTrainer:
    gen = torch.Generator().manual_seed(exp.seed)
    spec = ModelSpec(model=exp.model, input_shape=ds.input_shape, classes=ds.classes,
                     precision="float", hidden=list(exp.hidden))
    tr = MixedPrecisionTrainer(exp, build_model(spec, gen), torch.device("cpu"), gen,
                               {exp.device_card: BULK})
    tr.use_readout(training_readouts(tr.model, chip(bits)))
    tr.start_task(0)
    tr.model.train()
    return tr


def _forward_and_grads(tr: MixedPrecisionTrainer, x: torch.Tensor):
    from dse.train import chip_read

    for p in tr.pairs:
        p.layer.weight.data = p.apparent.view(p.shape)
        p.layer.weight.grad = None
    chip_read.set_levels(tr.pairs, tr.dev, tr.g_max - tr.g_min)
    out = tr.model(x)
    out.square().sum().backward()
    return out.detach(), [p.layer.weight.grad.clone() for p in tr.pairs]


def _ideal(tr: MixedPrecisionTrainer, x: torch.Tensor):
    saved = {}
    for p in tr.pairs:
        saved[p.name] = p.layer.readout
        p.layer.readout = None
        p.layer.weight.grad = None
    try:
        out = tr.model(x)
        out.square().sum().backward()
        return out.detach(), [p.layer.weight.grad.clone() for p in tr.pairs]
    finally:
        for p in tr.pairs:
            p.layer.readout = saved[p.name]


def test_many_bits_read_the_ideal_product(digits) -> None:
    tr = _trainer(digits, _exp(), bits=16)
    x = digits.x_train[:64]
    out, _ = _forward_and_grads(tr, x)
    ref, _ = _ideal(tr, x)
    assert torch.allclose(out, ref, rtol=1e-3, atol=1e-3 * float(ref.abs().max()))


def test_few_bits_quantize_the_forward_and_the_gradient_goes_straight_through(digits) -> None:
    from dse.train import chip_read

    tr = _trainer(digits, _exp(), bits=3)
    first = tr.pairs[0]
    layer = first.layer
    layer.weight.data = first.apparent.view(first.shape)
    chip_read.set_levels(tr.pairs, tr.dev, tr.g_max - tr.g_min)
    x = digits.x_train[:64].flatten(1)
    r = torch.randn(64, first.shape[0], generator=torch.Generator().manual_seed(3))
    layer.weight.grad = None
    y = layer(x)
    (y * r).sum().backward()
    ideal = x @ layer.weight.detach().T
    assert (y - ideal).abs().max() / ideal.abs().max() > 1e-2  # 3 bits per 16 rows: coarse
    assert torch.allclose(layer.weight.grad, r.T @ x, rtol=1e-5, atol=1e-6)  # straight through
    layer.eval()  # evaluation reads the ideal product
    assert torch.allclose(layer(x), ideal, rtol=1e-5, atol=1e-5)
    layer.train()


def test_a_chip_without_adcs_or_analog_pairs_is_refused(digits) -> None:
    model = build_model(ModelSpec(model="mlp", input_shape=digits.input_shape,
                                  classes=digits.classes, precision="float", hidden=[8]),
                        torch.Generator().manual_seed(0))
    pcsa = yaml.safe_load((REPO / "config" / "chips" / "rram-2t2r-pcsa-130nm.yaml").read_text())
    with pytest.raises(DseError, match="stores binary weights|sensing is an ADC|analog weights"):
        training_readouts(model, chip_from_dict(pcsa))


def test_the_pipeline_names_the_chip_or_says_which_exist() -> None:
    config = {"chips": {"rram-1t1r-adc": str(REPO / "config/chips/rram-1t1r-adc.yaml")}}
    assert training_chip(config, _exp()).name == "rram-1t1r-adc"
    with pytest.raises(DseError, match=r"mp.mixed_precision.chip: 'nope' is not a chip"):
        training_chip(config, _exp("nope"))
    with pytest.raises(DseError, match="was not passed in"):
        train(_exp(), [load_dataset("digits")], cards={"bulk-switching": BULK}, progress=False)


def test_training_through_the_chip_learns_and_leaves_nothing_attached(digits) -> None:
    res = train(_exp(), [digits], cards={"bulk-switching": BULK}, progress=False,
                readout=lambda m: training_readouts(m, chip(5, 128)))
    assert res.test_accuracy > 0.6  # chance 0.1
    for _, layer in res.model.quant_layers():
        assert not {"readout", "cell_levels", "level_weight"} & set(vars(layer))


def test_trials_that_change_the_training_chip_train_again() -> None:
    from dse.search.space import Design

    through, plain = _exp(), _exp()
    plain.mixed_precision.pop("chip")
    def key(exp, bits, chip_name="rram-1t1r-adc"):
        return Design(exp, chip_name, {"adc_bits": bits}, {}, None).training_key()
    assert key(through, 4) != key(through, 6)  # the trial's ADC is in its training
    assert key(through, 4, "other") == key(through, 6, "other")  # trained on another chip
    assert key(plain, 4) == key(plain, 6)  # ADC bits only at deployment: one training
