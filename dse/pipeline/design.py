"""One co-design point measured as the pipeline measures it: train (cached) -> map -> inject ->
estimate, by the recipes of :mod:`dse.pipeline.recipes` (every Optuna trial, the search's test of
its Pareto designs and the benchmarks that replay a design call :func:`evaluate_design`)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dse.chip.ber import ChipErrors, OperatingPoint
from dse.chip.card import ChipCard
from dse.chip.estimate import totals
from dse.chip.mapping import Mapping as ChipMapping
from dse.chip.mapping import map_model
from dse.errors import DseError
from dse.pipeline.artifacts import load_chip, load_pulses
from dse.pipeline.layout import Layout
from dse.pipeline.recipes import (
    cached_model,
    chip_models,
    estimate_chip,
    inject_chip,
    latency_chip,
)
from dse.pipeline.settings import InjectSettings
from dse.search.space import Design

log = logging.getLogger(__name__)


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


def training_key(design: Design, validation: float = 0.0) -> str:
    """The model-cache key of a design: its training settings, and the validation fraction
    held out of its training set (a model trained on all images is another model)."""
    import hashlib

    key = design.training_key()
    if validation <= 0:
        return key
    return hashlib.sha256(f"{key}:validation={validation!r}".encode()).hexdigest()[:16]


def design_point(errors: ChipErrors | None, design: Design) -> OperatingPoint:
    """The one injection point of a design: its direct BER, else its operating point through
    the chip's error sources (with their confusion matrix when the sense reads each pair)."""
    if design.ber is not None:
        return OperatingPoint(ber=float(design.ber), knobs=dict(design.operating_point))
    if errors is None:
        return OperatingPoint(ber=0.0, knobs=dict(design.operating_point))
    return errors.point(design.operating_point)


def evaluate_design(config: Mapping[str, Any], design: Design, layout: Layout, cache: Path,
                    settings: InjectSettings, study: str = "", progress: bool = False,
                    validation: float = 0.0, estimate_too: bool = True,
                    on_test: bool = False) -> DesignResult:
    """Train (cached) → map → inject → estimate one design, as the pipeline does.

    ``settings``: the config's inject settings with the trial's repeats and seed; the design's
    BER (given directly, or from the chip's device models at its operating point) is its one
    injection point. ``validation`` > 0: the model trains without that fraction of its
    training images and the accuracy is measured on them (a study's selection never sees the
    test images); 0: on the test images. ``on_test``: the model trained without the validation
    images, measured on the test images (the one test of a study's Pareto designs). Metrics:
    accuracy, BER, energy and area (:func:`dse.chip.estimate.totals`), latency and throughput
    (:func:`dse.chip.latency.throughput`: ``latency_ns``, ``inferences_per_s``, ``tops``,
    ``tops_per_w``, ``tops_per_mm2``).
    """
    from dse.chip.latency import throughput

    key = training_key(design, validation)
    trained, trained_now = cached_model(
        config, design.experiment, key, cache, layout, progress, validation,
        design.chip_overrides if design.trains_through_chip else None)
    chip = design_chip(config, design, study)
    models = chip_models(config, chip, layout)
    errors = ChipErrors(chip, models) if chip.error_sources else None
    point = design_point(errors, design)
    mapping = map_model(trained.model, chip, experiment=design.experiment.name)
    table = inject_chip(config, trained, mapping, chip, models, settings, [point], progress,
                        0.0 if on_test else validation)
    metrics = {
        "accuracy": float(table["accuracy"].mean()),
        "accuracy_std": float(table["accuracy"].std(ddof=1)) if len(table) > 1 else 0.0,
        "clean_accuracy": float(table.attrs["clean_accuracy"]),
        "ber": float(point.ber),
    }
    energy = pd.DataFrame()
    if estimate_too:
        energy = estimate_chip(mapping, chip, models,
                               load_pulses(trained.directory / "history.csv"),
                               design.operating_point, table.attrs.get("input_activity"),
                               table.attrs.get("cell_conductance"))
        metrics.update(totals(energy))
        try:
            lat = latency_chip(mapping, chip, models, design.operating_point)
        except DseError as exc:  # a card without timing: no latency metrics
            log.debug("no latency for chip %s: %s", chip.name, exc)
        else:
            metrics.update(throughput(lat, metrics["energy_per_inference_pJ"],
                                      metrics["area_mm2"]))
    return DesignResult(metrics, mapping, table, energy, trained_now, key, trained.directory)


def trial_settings(config: Mapping[str, Any], repeats: int, seed: int) -> InjectSettings:
    """The inject settings of a co-design trial: the config's, with the study's repeats and the
    trial's seed (its injection point is the design's own; an analog deployment at t = 0 only,
    the accuracy a trial scores)."""
    base = InjectSettings.from_config(config)
    return dataclasses.replace(base, repeats=int(repeats), seed=int(seed), ber=(),
                               operating_points=None,
                               deploy=dataclasses.replace(base.deploy, times=()))
