"""Every tensor of the inner loops follows the device of its inputs (issue 16, GPU).

There is no GPU on CI, so the check runs on the CPU with PyTorch's ``meta`` device as the
*default* device inside the inner loops (``with torch.device("meta")``): the inputs, model,
device state and generators are real CPU tensors, so a tensor created without ``device=``
(``torch.zeros(n)``, ``torch.as_tensor(x)``) lands on ``meta`` and the first op mixing it with
the CPU tensors fails, exactly where the same code on a GPU would create a host tensor and pay a
copy or a synchronisation (or fail). Model construction and data loading, which build on the
host and then move with ``.to(device)``, stay outside.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from dse.chip.ber import points_for_chip
from dse.chip.card_parse import chip_from_dict
from dse.chip.inject import AnalogNoise, inject
from dse.chip.mapping import map_model
from dse.config import Experiment
from dse.data import load_dataset
from dse.devices import from_card
from dse.nn import ModelSpec, build_model
from dse.pipeline.artifacts import load_card
from dse.train import ALGORITHMS, train

REPO = Path(__file__).resolve().parents[1]
DEVICES = {name: {"card": f"config/devices/{name}.yaml"}
           for name in ("bulk-switching", "hfo2-weak-reset", "reram-es-gong2018")}


def _table(values: list[float]) -> dict[str, Any]:
    return {"value": values, "unit": "uS", "assumption": "test"}


PIECEWISE = {  # a piecewise card as calibrate writes one (no such card ships)
    "name": "piecewise", "family": "piecewise", "source": "test", "unit": "uS",
    "params": {"nodes": _table([10.0, 20.0, 30.0]), "up": _table([0.3, 0.2, 0.05]),
               "down": _table([0.05, 0.2, 0.3]), "sigma_up": _table([0.02, 0.02, 0.02]),
               "sigma_down": _table([0.02, 0.02, 0.02]),
               "read_sigma": {"value": 0.1, "unit": "uS", "assumption": "test"},
               "dw_dtod": {"value": 0.1, "unit": "1", "assumption": "test"}},
    "imperfections": {"d2d": True, "c2c": True, "read_noise": True},
}


def _on_meta(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with torch.device("meta"):
            return fn(*args, **kwargs)
    return wrapped


@pytest.fixture
def meta_steps(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every trainer's step, epoch end and task start run with ``meta`` as default device."""
    for cls in ALGORITHMS.values():
        for name in ("step", "end_epoch", "start_task", "end_task"):
            if name in cls.__dict__:
                monkeypatch.setattr(cls, name, _on_meta(cls.__dict__[name]))
    yield


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def cards() -> dict[str, Any]:
    return {**{n: load_card(REPO / d["card"]) for n, d in DEVICES.items()},
            "piecewise": PIECEWISE}


def test_the_probe_catches_a_tensor_on_the_default_device() -> None:
    x = torch.ones(3)

    @_on_meta
    def wrong(t: torch.Tensor) -> torch.Tensor:
        return t + torch.arange(3)  # no device=: lands on meta

    @_on_meta
    def right(t: torch.Tensor) -> torch.Tensor:
        return t + torch.arange(3, device=t.device)

    with pytest.raises((RuntimeError, NotImplementedError)):
        wrong(x)
    assert torch.equal(right(x), torch.tensor([1.0, 2.0, 3.0]))


@pytest.mark.parametrize(("algorithm", "extra"), [
    ("standard", {"precision": "binary"}),
    ("standard", {"precision": "ternary"}),
    ("metaplastic", {"precision": "binary"}),
    ("mixed_precision", {"precision": "float", "device_card": "bulk-switching"}),
    ("mixed_precision", {"precision": "float", "device_card": "piecewise",
                         "mixed_precision": {"adc_bits": 6, "dac_bits": 6, "error_bits": 6}}),
    ("weak_reset_bnn", {"precision": "binary", "device_card": "hfo2-weak-reset"}),
])
def test_training_steps_create_tensors_on_the_model_device(meta_steps, digits, cards,
                                                           algorithm: str, extra: dict) -> None:
    entry = {"dataset": "digits", "model": "mlp", "hidden": [16], "algorithm": algorithm,
             "epochs": 1, "lr": 0.01, **extra}
    devices = {**DEVICES, "piecewise": {"card": "config/devices/bulk-switching.yaml"}}
    exp = Experiment.from_dict("e", entry, devices=devices)  # cards come from ``cards``
    result = train(exp, [digits], device="cpu", cards=cards, progress=False)
    assert len(result.history) == 1


@pytest.mark.parametrize("family_card", ["reram-es-gong2018", "piecewise", "bulk-switching",
                                         "hfo2-weak-reset"])
def test_device_models_pulse_and_read_on_their_state_device(cards, family_card: str) -> None:
    model = from_card(cards[family_card])
    gen = torch.Generator().manual_seed(0)
    state = model.sample_devices((8, 5), gen)
    n = torch.randint(0, 4, (8, 5), generator=gen).float()
    if family_card != "hfo2-weak-reset":
        n = n - 2.0  # both directions
    with torch.device("meta"):
        state = model.apply_pulses(state, n, gen)
        g = model.read(state, gen)
    assert g.device.type == "cpu" and g.shape == (8, 5)


@pytest.mark.parametrize("precision", ["binary", "ternary", "float"])
def test_fault_injection_creates_tensors_on_the_data_device(digits, cards, precision) -> None:
    g = torch.Generator().manual_seed(0)
    model = build_model(ModelSpec("mlp", (1, 8, 8), 10, precision, hidden=[16]), g).eval()
    encoding = {"float": "analog"}.get(precision, precision)
    from test_chip_inject import card  # the same small chip card

    mapping = map_model(model, chip_from_dict(card(encoding)))
    points = points_for_chip(encoding, [0.0, 0.05])
    analog = AnalogNoise(from_card(cards["reram-es-gong2018"]), read=True) \
        if encoding == "analog" else None
    x, y = digits.x_test[:64], digits.y_test[:64]
    with torch.device("meta"):
        table = inject(model, mapping, x, y, points, 3, torch.Generator().manual_seed(1),
                       batch=2, analog=analog, adc_calibration=digits.x_train[:64])
    assert table["accuracy"].between(0.0, 1.0).all()
