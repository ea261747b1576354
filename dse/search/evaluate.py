"""One design point of a study: train (cached) → map → inject → estimate, as Python calls.

A trial's parameters split by stage (:mod:`dse.search.space`): ``train`` parameters build the
experiment whose trained model is cached under a key of the training-relevant settings only, so
trials that differ in supply voltage, BER, ADC bits or array size reuse one training. The cache
is safe under parallel workers: a file lock per key makes the second worker wait for the first
one's training and then load it.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from filelock import FileLock

from dse.config import Experiment, device_card_file
from dse.errors import DseError
from dse.search.space import StudySpec

log = logging.getLogger(__name__)


@dataclass
class Design:
    """A trial's parameters, resolved: the experiment to train, the chip, the operating point."""

    experiment: Experiment
    chip_name: str
    chip_overrides: dict[str, Any]
    operating_point: dict[str, float]
    ber: float | None

    def training_key(self) -> str:
        """Hash of the training-relevant settings (the experiment minus its name)."""
        settings = self.experiment.to_dict()
        settings.pop("name")
        blob = json.dumps(settings, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def design_for(spec: StudySpec, config: dict[str, Any], params: Mapping[str, Any]) -> Design:
    """Apply a trial's parameter values to the study's base experiment and chip."""
    entry = copy.deepcopy(config["experiments"][spec.experiment])
    chip_overrides: dict[str, Any] = {}
    op: dict[str, float] = {}
    ber = None
    for p in spec.params:
        value = params[p.name]
        kind = p.kind
        if kind.stage == "train":
            if "." in kind.target:
                block, key = kind.target.split(".", 1)
                entry.setdefault(block, {})[key] = value
            else:
                entry[kind.target] = value
        elif kind.stage == "chip":
            chip_overrides[kind.target] = int(value) if kind.kind == "int" else value
        elif kind.stage == "operating":
            op[kind.target] = float(value)
        else:
            ber = float(value)
    if entry.get("seed") is None:
        entry["seed"] = int(config.get("seed", 0))
    exp = Experiment.from_dict(spec.experiment, entry, seed=int(entry["seed"]),
                               devices=config.get("devices"))
    chip = spec.chips[exp.precision]
    return Design(exp, chip, chip_overrides, op, ber)


def card_file(config: dict[str, Any], device: str, results: Path) -> Path:
    """The card file of a device (see :func:`dse.config.device_card_file`); a name with no card
    is a configuration error."""
    path = device_card_file(config, device, results)
    if path is None:
        known = ", ".join(sorted(config.get("devices", {}))) or "none defined"
        raise DseError(f"device '{device}' is not configured and config/devices/{device}.yaml "
                       f"does not exist (devices: {known})")
    return path


class ModelCache:
    """Trained models by training key, under ``root/{key}/`` (the train stage's contract files)."""

    def __init__(self, root: Path, config: dict[str, Any], results: Path) -> None:
        self.root = root
        self.config = config
        self.results = results

    def get(self, design: Design, progress: bool = False) -> tuple[Any, bool]:
        """(TrainedModel, trained_now): load the cached model or train and store it."""
        from dse.data import task_stream
        from dse.train import load, resolve_device, save, train

        key = design.training_key()
        out = self.root / key
        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.root / f"{key}.lock")):
            if (out / "model.json").is_file():
                return load(out), False
            exp = design.experiment
            cards: dict[str, Any] = {}
            card = None
            if exp.device_card is not None:
                from dse.devices import load_card

                card = load_card(card_file(self.config, exp.device_card, self.results))
                cards[exp.device_card] = card
            tasks = task_stream(exp.dataset, exp.tasks, exp.seed, self.config["data_root"],
                                self.config["download"])
            result = train(exp, tasks, resolve_device(self.config["device"]), cards=cards,
                           progress=progress)
            save(result, out, card=card)
            return load(out), True


def evaluate_design(design: Design, spec: StudySpec, config: dict[str, Any], cache: ModelCache,
                    seed: int, progress: bool = False) -> tuple[dict[str, float], dict[str, Any]]:
    """Metrics of one design and its artefacts (mapping, injection table, estimate table)."""
    from dse.chip.ber import ChipErrors, OperatingPoint
    from dse.chip.card import load_chip
    from dse.chip.estimate import estimate, totals
    from dse.chip.inject import AnalogNoise, inject
    from dse.chip.mapping import map_model
    from dse.data import task_stream
    from dse.devices import from_card, load_card
    from dse.train.checkpoint import read_history

    trained, trained_now = cache.get(design, progress)
    chip = load_chip(config["chips"][design.chip_name])
    if design.chip_overrides:
        try:
            chip = dataclasses.replace(chip, **design.chip_overrides)
        except DseError as exc:
            raise DseError(f"study {spec.name}: chip override {design.chip_overrides} is not "
                           f"valid for chip '{chip.name}' ({exc})") from None
    chip = chip.at(design.operating_point)
    models = {s.card: from_card(load_card(card_file(config, s.card, cache.results)))
              for s in chip.error_sources}
    errors = ChipErrors(chip, models) if chip.error_sources else None
    if design.ber is not None:
        ber = design.ber
    elif errors is not None:
        ber = errors.ber(design.operating_point)
    else:
        ber = 0.0
    mapping = map_model(trained.model, chip, experiment=design.experiment.name)

    exp = design.experiment
    task = task_stream(exp.dataset, exp.tasks, exp.seed, config["data_root"],
                       config["download"])[-1]
    analog = None
    if mapping.encoding == "analog" and trained.meta.get("device_card"):
        analog = AnalogNoise(from_card(trained.meta["device_card"]))
    gen = torch.Generator().manual_seed(seed)
    point = OperatingPoint(ber=float(ber), knobs=dict(design.operating_point))
    table = inject(trained.model, mapping, task.x_test, task.y_test, [point], spec.repeats, gen,
                   analog=analog, adc_calibration=task.x_train[:1000])
    write_pj = errors.write_energy_pj(design.operating_point) if errors is not None else None
    pulses = pd.read_csv(trained.directory / "pulses.csv")
    history = read_history(trained.directory)
    energy = estimate(mapping, chip, pulses if len(pulses) else history, write_energy_pj=write_pj)
    metrics = {
        "accuracy": float(table["accuracy"].mean()),
        "accuracy_std": float(table["accuracy"].std(ddof=1)) if len(table) > 1 else 0.0,
        "clean_accuracy": float(table.attrs["clean_accuracy"]),
        "ber": float(ber),
        **totals(energy),
    }
    artefacts = {"mapping": mapping, "inject": table, "estimate": energy,
                 "trained_now": trained_now, "training_key": design.training_key(),
                 "model_dir": str(trained.directory)}
    return metrics, artefacts
