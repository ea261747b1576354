"""The recipes: how one experiment is trained and one design point is measured — written once.

``dse train|map|inject|estimate`` (the CLI, which the Snakemake rules call) and every Optuna trial
(:func:`dse.pipeline.design.evaluate_design`) run these functions, so the pipeline and the
co-design search measure a design point the same way: the same inject settings (repeats, batch,
stuck-at cells, images, analog read noise, the analog programming card of the chip), the same ADC
calibration images, the same seed plan (:mod:`dse.seeds`) and the same estimate.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from filelock import FileLock

from dse import seeds
from dse.chip.activity import mapping_activity
from dse.chip.ber import ChipErrors, OperatingPoint, points_for_chip
from dse.chip.card import ChipCard
from dse.chip.estimate import estimate
from dse.chip.inject import AnalogNoise, inject
from dse.chip.inject_tasks import TaskImages, inject_tasks, shareable
from dse.chip.mapping import Mapping as ChipMapping
from dse.chip.train_readout import training_readouts
from dse.config import Experiment
from dse.data import task_stream, validation_split
from dse.devices import from_card
from dse.errors import DseError
from dse.pipeline.artifacts import (
    WRITE_HISTOGRAM,
    TrainedModel,
    load_card,
    load_chip,
    load_device_models,
    load_model,
    save_model,
)
from dse.pipeline.deployment import deployed
from dse.pipeline.layout import Layout
from dse.pipeline.settings import InjectSettings
from dse.train import TrainResult, resolve_device, train
from dse.train.writes import recording_writes

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


def training_chip(config: Mapping[str, Any], exp: Experiment,
                  overrides: Mapping[str, Any] | None = None) -> ChipCard | None:
    """The chip whose read-out ``exp`` trains through (``mixed_precision.chip``), or None;
    ``overrides``: a co-design trial's changes to that chip (adc_bits, array size, ...)."""
    name = (exp.mixed_precision or {}).get("chip") if exp.algorithm == "mixed_precision" \
        else None
    if not name:
        return None
    chips = config.get("chips") or {}
    if name not in chips:
        raise DseError(f"experiments.{exp.name}.mixed_precision.chip: '{name}' is not a chip of "
                       f"the config (chips: {', '.join(sorted(chips)) or 'none'})")
    chip = load_chip(chips[name])
    return chip.replace(**overrides) if overrides else chip


def train_experiment(config: Mapping[str, Any], exp: Experiment,
                     cards: Mapping[str, dict[str, Any]], progress: bool = False,
                     validation: float = 0.0,
                     chip_overrides: Mapping[str, Any] | None = None) -> TrainResult:
    """Train ``exp`` on its data (the experiment's seed fixes every draw); ``validation`` > 0
    holds that fraction of every task's training images out (:func:`dse.data.validation_split`);
    ``chip_overrides``: a trial's changes to the chip it trains through."""
    tasks = task_stream(exp.dataset, exp.tasks, exp.seed, config["data_root"],
                        config["download"])
    if validation > 0:
        tasks = [validation_split(t, validation)[0] for t in tasks]
    chip = training_chip(config, exp, chip_overrides)
    readout = None if chip is None else functools.partial(training_readouts, chip=chip)
    with recording_writes() as writes:  # writes per device, for endurance (writes.csv)
        result = train(exp, tasks, resolve_device(config["device"]), cards=dict(cards),
                       progress=progress, readout=readout)
    result.extra["writes"] = writes.summary()
    result.extra[WRITE_HISTOGRAM] = writes.histogram()
    return result


def cached_model(config: Mapping[str, Any], exp: Experiment, key: str, cache: Path,
                 layout: Layout, progress: bool = False, validation: float = 0.0,
                 chip_overrides: Mapping[str, Any] | None = None
                 ) -> tuple[TrainedModel, bool]:
    """(model, trained_now): the model of ``exp`` stored under ``cache/key``, trained and
    stored first if absent. A file lock per key makes a second worker wait for the first
    one's training and then load it."""
    out = cache / key
    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache / f"{key}.lock")):
        if (out / "model.json").is_file():
            return load_model(out), False
        cards = experiment_cards(config, exp, layout)
        result = train_experiment(config, exp, cards, progress, validation, chip_overrides)
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


def _task_data(data: Any, validation: float) -> Any:
    """The images a trial scores on: the test set, or the held-out part of the training set."""
    if validation > 0:
        fit, data = validation_split(data, validation)
        data = dataclasses.replace(data, x_train=fit.x_train)
    return data


def _inject_task(trained: TrainedModel, mapping: ChipMapping, data: Any,
                 points: Sequence[OperatingPoint], settings: InjectSettings,
                 analog: AnalogNoise | None, generator: Any, progress: bool) -> pd.DataFrame:
    """Fault maps of one task's images."""
    n = settings.max_images or len(data.x_test)
    return inject(trained.model, mapping, data.x_test[:n], data.y_test[:n], points,
                  settings.repeats, generator, batch=settings.batch,
                  stuck_at=settings.stuck_at, analog=analog, progress=progress,
                  adc_calibration=data.x_train[:1000])


def _inject_shared(trained: TrainedModel, mapping: ChipMapping, chip: ChipCard | None,
                   tasks: Sequence[Any], states: Sequence[Mapping[str, Any]],
                   points: Sequence[OperatingPoint], settings: InjectSettings,
                   analog: AnalogNoise | None, device: Any, validation: float,
                   progress: bool) -> pd.DataFrame | None:
    """:func:`inject_chip` of a task stream whose tasks share their weights: each pass of fault
    maps drawn once and evaluated on every task (:mod:`dse.chip.inject_tasks`, the same numbers
    as one generator restarted per task); None when the tasks cannot share their maps."""
    model = trained.model

    def loader(k: int) -> Callable[[], None]:
        return lambda: model.load_state_dict(states[min(k, len(states) - 1)], strict=False)

    loads = [loader(k) for k in range(len(tasks))]
    if not shareable(model, mapping, loads):
        return None
    runs, x_last = [], None
    for k, load in enumerate(loads):
        data = _task_data(tasks[k].to(device), validation)
        n = settings.max_images or len(data.x_test)
        runs.append(TaskImages(load, data.x_test[:n], data.y_test[:n]))
        x_last = data.x_test
    generator = seeds.generator(settings.seed, "inject", device)
    tables = inject_tasks(model, mapping, runs, points, settings.repeats, generator,
                          batch=settings.batch, stuck_at=settings.stuck_at, analog=analog,
                          progress=progress)
    loads[-1]()  # the deployed (last) task
    # measured input activity of the deployed task, for the estimate (dse.chip.activity)
    tables[-1].attrs["input_activity"] = mapping_activity(model, mapping, chip, x_last)
    return _stack_tasks(tables)


def _stack_tasks(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """One table of a task stream's per-task tables: a ``task`` column, the last (deployed)
    task's attrs and every task's clean accuracy (``attrs["clean_by_task"]``)."""
    out = pd.concat([t.assign(task=k) for k, t in enumerate(tables)], ignore_index=True)
    out.attrs.update(tables[-1].attrs, clean_by_task={
        k: float(t.attrs["clean_accuracy"]) for k, t in enumerate(tables)})
    return out


def _sweep(mapping: ChipMapping, chip: ChipCard | None, models: Mapping[str, Any],
           settings: InjectSettings) -> list[OperatingPoint]:
    """The sweep of ``settings``: its direct BERs plus the chip's operating points."""
    ops = settings.operating_points
    errors = None
    if ops is not None:
        if chip is None:
            raise DseError(f"inject.operating_points.{mapping.chip}: pass the chip card "
                           "with --chip (its nominal knobs and error sources)")
        errors = ChipErrors(chip, models)
    return points_for_chip(mapping.encoding, settings.ber, ops, errors, mapping.chip,
                           settings.deploy.times)


def inject_chip(config: Mapping[str, Any], trained: TrainedModel, mapping: ChipMapping,
                chip: ChipCard | None, models: Mapping[str, Any], settings: InjectSettings,
                points: Sequence[OperatingPoint] | None = None,
                progress: bool = False, validation: float = 0.0) -> pd.DataFrame:
    """The inject stage of one (model, chip) pair: accuracy of ``settings.repeats`` fault maps
    at each operating point (``points``, or the sweep of ``settings``: its direct BERs plus the
    chip's operating points, whose BER comes from the chip's device models).

    On the test images, or with ``validation`` > 0 on the images held out of the training set
    (the fraction the model was trained without, :func:`dse.data.validation_split`).
    A task stream trained with task-specific state (``TrainedModel.task_states``) is evaluated
    on every task, each with its own state and on the same fault maps: the table gains a
    ``task`` column and ``attrs["clean_by_task"]``; the retention of earlier tasks under bit
    errors is read from it (:func:`dse.chip.inject.summarize` keeps ``task`` as a key)."""
    if chip is not None and chip.name != mapping.chip:
        raise DseError(f"the chip card is '{chip.name}' but the mapping is for "
                       f"'{mapping.chip}'; pass the chip card the mapping was made with")
    if points is None:
        points = _sweep(mapping, chip, models, settings)
    analog = analog_noise(trained, chip, models, settings) \
        if mapping.encoding == "analog" else None
    device = next(trained.model.parameters()).device
    exp = trained.experiment
    tasks = task_stream(exp["dataset"], exp.get("tasks"), int(exp.get("seed") or 0),
                        config["data_root"], config["download"])
    states = trained.task_states if len(tasks) > 1 else []
    deployable = analog is not None and "inference" in (getattr(analog.model, "card", None) or {})
    asked_clean = any(not p.noise for p in points)
    if deployable:  # the noisy rows come from the deployment (programming, devices, time)
        points = _noise_free_points(points, settings, mapping.chip)
    tables = []
    if states and not deployable:
        shared = _inject_shared(trained, mapping, chip, tasks, states, points, settings, analog,
                                device, validation, progress)
        if shared is not None:
            return shared
    # one task (or no task-specific state): the deployed model on the last task; a task stream
    # with task-specific state (metaplastic bn: task): every task with its own state, each on
    # the same fault maps (the generator restarts for every task)
    for k in range(len(tasks)) if states else [len(tasks) - 1]:
        if states:
            trained.model.load_state_dict(states[min(k, len(states) - 1)], strict=False)
        data = _task_data(tasks[k].to(device), validation)
        generator = seeds.generator(settings.seed, "inject", device)
        table = _inject_task(trained, mapping, data, points, settings,
                             None if deployable else analog, generator, progress)
        if deployable:
            table = deployed(table, trained, mapping, analog, settings, data, generator,
                              asked_clean)
        # measured input activity of the deployed task, for the estimate (dse.chip.activity)
        table.attrs["input_activity"] = mapping_activity(trained.model, mapping, chip,
                                                         data.x_test)
        if not states:
            return table
        tables.append(table)
    trained.model.load_state_dict(states[-1], strict=False)  # the deployed (last) task again
    return _stack_tasks(tables)


def _noise_free_points(points: Sequence[OperatingPoint], settings: InjectSettings,
                       chip: str) -> list[OperatingPoint]:
    """The noise-free points of a deployed analog chip (its noisy rows come from the
    deployment), at least the fault-free one."""
    if settings.stuck_at.active:
        log.warning("%s: inject.stuck_at applies to the noise-free rows only, not to the "
                    "deployment (dse/chip/deploy.py)", chip)
    return [p for p in points if not p.noise] or [OperatingPoint(ber=0.0, noise=False)]


def _sense_op(chip: ChipCard, errors: ChipErrors, op: Mapping[str, float] | None,
              ) -> dict[str, float]:
    """The physical sense model's knobs at ``op`` (nominal where ``op`` leaves them out)."""
    model = errors.sense_model
    knobs = (*getattr(model, "knobs", ()), *(getattr(model, "optional_knobs", {}) or {}))
    point = {**chip.knob_values(), **dict(op or {})}
    return {k: float(point[k]) for k in knobs if k in point}


def physical_sense_chip(chip: ChipCard, errors: ChipErrors | None,
                        op: Mapping[str, float] | None = None) -> ChipCard:
    """The chip with the sense energy of its physical sense model at ``op`` (dynamic C·VDD²
    plus leakage over the cycle, ``pcsa_physical.energy_per_sense``) in place of the card's
    C·V²-scaled figure; other chips unchanged."""
    if errors is None or errors.sense_model is None:
        return chip
    e_fj = float(np.asarray(errors.sense_model.energy_per_sense(
        **_sense_op(chip, errors, op))["total"])) * 1e15
    return chip.replace(sense_fj=e_fj / chip.supply_scale)


def estimate_chip(mapping: ChipMapping, chip: ChipCard, models: Mapping[str, Any],
                  pulses: pd.DataFrame | None, op: Mapping[str, float] | None = None,
                  input_activity: Mapping[str, float] | None = None,
                  cell_conductance: Mapping[str, float] | None = None) -> pd.DataFrame:
    """The estimate stage: energy and area per layer and component; the write energy per
    pulse comes from the chip's cell card at ``op`` when its error sources have models, the
    sense energy from a physical sense model (:func:`physical_sense_chip`) when there is one;
    ``input_activity`` and ``cell_conductance`` (the deployed cells' mean) measured by the
    inject stage (``attrs["input_activity"]``, ``attrs["cell_conductance"]``), else the
    card's."""
    errors = ChipErrors(chip, models) if chip.error_sources and models else None
    write_pj = errors.write_energy_pj(op) if errors is not None else None
    return estimate(mapping, physical_sense_chip(chip, errors, op), pulses, write_pj,
                    input_activity, cell_conductance or None)


def latency_chip(mapping: ChipMapping, chip: ChipCard, models: Mapping[str, Any],
                 op: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Latency per layer (:func:`dse.chip.latency.latency`): the PCSA cycle and logic delay of
    a physical sense model at ``op`` when the chip has one, else the card's timing."""
    from dse.chip.latency import latency, pcsa_timing, timing

    errors = ChipErrors(chip, models) if chip.error_sources and models else None
    if errors is not None and errors.sense_model is not None:
        t = pcsa_timing(chip, errors.sense_model, **_sense_op(chip, errors, op))
    else:
        t = timing(chip)
    return latency(mapping, chip, t)
