"""The recipes: how one experiment is trained and one design point is measured — written once.

``dse train|map|inject|estimate`` (the CLI, which the Snakemake rules call) and every Optuna trial
(:func:`evaluate_design`) run these functions, so the pipeline and the co-design search measure
a design point the same way: the same inject settings (repeats, batch, stuck-at cells, images,
analog read noise, the analog programming card of the chip), the same ADC calibration images,
the same seed plan (:mod:`dse.seeds`) and the same estimate.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import FileLock

from dse import seeds
from dse.chip.ber import ChipErrors, OperatingPoint, points_for_chip
from dse.chip.card import ChipCard
from dse.chip.estimate import estimate, totals
from dse.chip.inject import AnalogNoise, inject
from dse.chip.mapping import Mapping as ChipMapping
from dse.chip.mapping import map_model
from dse.config import Experiment
from dse.data import task_stream
from dse.devices import from_card
from dse.errors import DseError
from dse.pipeline.artifacts import (
    TrainedModel,
    load_card,
    load_chip,
    load_device_models,
    load_model,
    load_pulses,
    save_model,
)
from dse.pipeline.layout import Layout
from dse.pipeline.settings import InjectSettings
from dse.search.space import Design
from dse.train import TrainResult, resolve_device, train

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------- train
def card_file(config: Mapping[str, Any], layout: Layout, device: str) -> Path:
    """The card file of a configured device; a name with no card is a configuration error."""
    path = layout.device_card_file(dict(config), device)
    if path is None:
        known = ", ".join(sorted(config.get("devices", {}))) or "none defined"
        raise DseError(f"device '{device}' is not configured and "
                       f"{layout.shipped_devices / (device + '.yaml')} does not exist "
                       f"(devices: {known})")
    return path


def experiment_cards(config: Mapping[str, Any], exp: Experiment, layout: Layout,
                     path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The device card an experiment trains with (``{name: card}``, empty without one);
    ``path`` overrides where the card is read from."""
    if exp.device_card is None:
        return {}
    return {exp.device_card: load_card(path or card_file(config, layout, exp.device_card))}


def train_experiment(config: Mapping[str, Any], exp: Experiment,
                     cards: Mapping[str, dict[str, Any]], progress: bool = False) -> TrainResult:
    """Train ``exp`` on its data (the experiment's seed fixes every draw)."""
    tasks = task_stream(exp.dataset, exp.tasks, exp.seed, config["data_root"],
                        config["download"])
    return train(exp, tasks, resolve_device(config["device"]), cards=dict(cards),
                 progress=progress)


def cached_model(config: Mapping[str, Any], exp: Experiment, key: str, cache: Path,
                 layout: Layout, progress: bool = False) -> tuple[TrainedModel, bool]:
    """(model, trained_now): the model of ``exp`` stored under ``cache/key``, trained and
    stored first if absent. A file lock per key makes a second worker wait for the first
    one's training and then load it."""
    out = cache / key
    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache / f"{key}.lock")):
        if (out / "model.json").is_file():
            return load_model(out), False
        cards = experiment_cards(config, exp, layout)
        result = train_experiment(config, exp, cards, progress)
        save_model(result, out, card=next(iter(cards.values()), None))
        return load_model(out), True


# ---------------------------------------------------------------------- map / inject / est.
def chip_models(config: Mapping[str, Any], chip: ChipCard, layout: Layout) -> dict[str, Any]:
    """Device models of a chip's error sources and of its analog programming card."""
    names = [s.card for s in chip.error_sources]
    if chip.analog_card:
        names.append(chip.analog_card)
    return load_device_models(card_file(config, layout, n) for n in dict.fromkeys(names))


def analog_noise(trained: TrainedModel, chip: ChipCard | None, models: Mapping[str, Any],
                 settings: InjectSettings) -> AnalogNoise | None:
    """Programming/read noise of an analog deployment: the device card the model was trained
    with, else the chip's ``errors.analog_card``; None when neither gives a programmable model."""
    card = trained.device_card
    model = from_card(card) if card else None
    if model is None and chip is not None and chip.analog_card:
        model = models.get(chip.analog_card)
        if model is None:
            raise DseError(f"chip '{chip.name}' programs analog weights with device card "
                           f"'{chip.analog_card}'; pass it with --device")
    if model is None or not hasattr(model, "program"):
        return None
    return AnalogNoise(model, read=settings.analog_read_noise)


def inject_chip(config: Mapping[str, Any], trained: TrainedModel, mapping: ChipMapping,
                chip: ChipCard | None, models: Mapping[str, Any], settings: InjectSettings,
                points: Sequence[OperatingPoint] | None = None,
                progress: bool = False) -> pd.DataFrame:
    """The inject stage of one (model, chip) pair: accuracy of ``settings.repeats`` fault maps
    at each operating point (``points``, or the sweep of ``settings``: its direct BERs plus the
    chip's operating points, whose BER comes from the chip's device models).

    A task stream trained with task-specific state (``TrainedModel.task_states``) is evaluated
    on every task, each with its own state and on the same fault maps: the table gains a
    ``task`` column and ``attrs["clean_by_task"]``; the retention of earlier tasks under bit
    errors is read from it (:func:`dse.chip.inject.summarize` keeps ``task`` as a key)."""
    if chip is not None and chip.name != mapping.chip:
        raise DseError(f"the chip card is '{chip.name}' but the mapping is for "
                       f"'{mapping.chip}'; pass the chip card the mapping was made with")
    if points is None:
        ops = settings.operating_points
        errors = None
        if ops is not None:
            if chip is None:
                raise DseError(f"inject.operating_points.{mapping.chip}: pass the chip card "
                               "with --chip (its nominal knobs and error sources)")
            errors = ChipErrors(chip, models)
        points = points_for_chip(mapping.encoding, settings.ber, ops, errors, mapping.chip)
    analog = analog_noise(trained, chip, models, settings) \
        if mapping.encoding == "analog" else None
    device = next(trained.model.parameters()).device
    exp = trained.experiment
    tasks = task_stream(exp["dataset"], exp.get("tasks"), int(exp.get("seed") or 0),
                        config["data_root"], config["download"])
    states = trained.task_states if len(tasks) > 1 else []
    tables, clean = [], {}
    # one task (or no task-specific state): the deployed model on the last task; a task stream
    # with task-specific state (metaplastic bn: task): every task with its own state, each on
    # the same fault maps (the generator restarts for every task)
    for k in range(len(tasks)) if states else [len(tasks) - 1]:
        data = tasks[k].to(device)
        if states:
            trained.model.load_state_dict(states[min(k, len(states) - 1)], strict=False)
        n = settings.max_images or len(data.x_test)
        generator = seeds.generator(settings.seed, "inject", device)
        table = inject(trained.model, mapping, data.x_test[:n], data.y_test[:n], points,
                       settings.repeats, generator, batch=settings.batch,
                       stuck_at=settings.stuck_at, analog=analog, progress=progress,
                       adc_calibration=data.x_train[:1000])
        if not states:
            return table
        clean[k] = float(table.attrs["clean_accuracy"])
        tables.append(table.assign(task=k))
    trained.model.load_state_dict(states[-1], strict=False)  # the deployed (last) task again
    out = pd.concat(tables, ignore_index=True)
    out.attrs.update(tables[-1].attrs, clean_by_task=clean)
    return out


def estimate_chip(mapping: ChipMapping, chip: ChipCard, models: Mapping[str, Any],
                  pulses: pd.DataFrame | None,
                  op: Mapping[str, float] | None = None) -> pd.DataFrame:
    """The estimate stage: energy and area per layer and component; the write energy per
    pulse comes from the chip's cell card at ``op`` when its error sources have models."""
    errors = ChipErrors(chip, models) if chip.error_sources and models else None
    write_pj = errors.write_energy_pj(op) if errors is not None else None
    return estimate(mapping, chip, pulses, write_pj)


# ----------------------------------------------------------------------------- one design
@dataclass
class DesignResult:
    """What one design point measured, and the tables behind the metrics."""

    metrics: dict[str, float]
    mapping: ChipMapping
    inject: pd.DataFrame
    estimate: pd.DataFrame
    trained_now: bool
    training_key: str
    model_dir: Path


def design_chip(config: Mapping[str, Any], design: Design, study: str = "") -> ChipCard:
    """The chip of a design: its card, with the design's overrides, at its operating point."""
    chip = load_chip(config["chips"][design.chip_name])
    if design.chip_overrides:
        try:
            chip = chip.replace(**design.chip_overrides)
        except DseError as exc:
            raise DseError(f"study {study}: chip override {design.chip_overrides} is not "
                           f"valid for chip '{chip.name}' ({exc})") from None
    return chip.at(design.operating_point)


def evaluate_design(config: Mapping[str, Any], design: Design, layout: Layout, cache: Path,
                    settings: InjectSettings, study: str = "",
                    progress: bool = False) -> DesignResult:
    """Train (cached) → map → inject → estimate one design, as the pipeline does.

    ``settings``: the config's inject settings with the trial's repeats and seed; the design's
    BER (given directly, or from the chip's device models at its operating point) is its one
    injection point.
    """
    key = design.training_key()
    trained, trained_now = cached_model(config, design.experiment, key, cache, layout, progress)
    chip = design_chip(config, design, study)
    models = chip_models(config, chip, layout)
    errors = ChipErrors(chip, models) if chip.error_sources else None
    if design.ber is not None:
        ber = design.ber
    else:
        ber = errors.ber(design.operating_point) if errors is not None else 0.0
    mapping = map_model(trained.model, chip, experiment=design.experiment.name)
    point = OperatingPoint(ber=float(ber), knobs=dict(design.operating_point))
    table = inject_chip(config, trained, mapping, chip, models, settings, [point], progress)
    energy = estimate_chip(mapping, chip, models, load_pulses(trained.directory / "history.csv"),
                           design.operating_point)
    metrics = {
        "accuracy": float(table["accuracy"].mean()),
        "accuracy_std": float(table["accuracy"].std(ddof=1)) if len(table) > 1 else 0.0,
        "clean_accuracy": float(table.attrs["clean_accuracy"]),
        "ber": float(ber),
        **totals(energy),
    }
    return DesignResult(metrics, mapping, table, energy, trained_now, key, trained.directory)


def trial_settings(config: Mapping[str, Any], repeats: int, seed: int) -> InjectSettings:
    """The inject settings of a co-design trial: the config's, with the study's repeats and the
    trial's seed (its injection point is the design's own)."""
    return dataclasses.replace(InjectSettings.from_config(config), repeats=int(repeats),
                               seed=int(seed), ber=(), operating_points=None)
