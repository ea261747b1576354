"""What the report shows, as plain values: tables and mappings read by the wiring
(:func:`dse.pipeline.collect.load_results`) from the stage outputs of one config.

A stage output that is absent means its stage did not run (or was not configured) and is left
out; a file that exists but cannot be read becomes a message in its section
(``ReportData.problems``), never an exception.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)


@dataclass
class Calibration:
    """One calibrated device: its card (with ``fit``) and the stage's fit figure."""

    name: str
    card: dict[str, Any]
    card_file: Path
    figure: bytes | None


@dataclass
class Study:
    """The aggregated outputs of one co-design study."""

    name: str
    trials: pd.DataFrame
    pareto: pd.DataFrame
    hypervolume: pd.DataFrame
    summary: dict[str, Any]
    objectives: dict[str, str]
    journal: Path | None = None


@dataclass
class ReportData:
    """Everything the report shows, as plain tables and mappings (see :func:`load_results`)."""

    config: dict[str, Any]
    calibrations: list[Calibration] = field(default_factory=list)
    device_cards: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> card
    device_files: dict[str, Path] = field(default_factory=dict)  # name -> card file
    file_sha256: dict[str, str] = field(default_factory=dict)  # card file -> short sha256
    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # exp -> model.json
    history: dict[str, pd.DataFrame] = field(default_factory=dict)
    pulses: dict[str, pd.DataFrame] = field(default_factory=dict)
    tasks: dict[str, pd.DataFrame] = field(default_factory=dict)
    writes: dict[str, pd.DataFrame] = field(default_factory=dict)  # exp -> writes.csv
    endurance: dict[str, Any] = field(default_factory=dict)  # device -> regime -> Regime
    chip_cards: dict[str, Any] = field(default_factory=dict)  # name -> ChipCard
    chip_files: dict[str, Path] = field(default_factory=dict)
    mappings: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    inject: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)  # summaries
    # analog deployments: {chip}.deploy.csv (summaries) and {chip}.programming.csv (per layer)
    deployment: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)
    programming: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)
    estimates: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)
    latencies: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)  # per layer
    studies: dict[str, Study] = field(default_factory=dict)
    benchmarks: pd.DataFrame = field(default_factory=pd.DataFrame)
    validation: pd.DataFrame = field(default_factory=pd.DataFrame)  # dse.chip.validation
    problems: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def problem(self, section: str, path: Path | str, exc: BaseException) -> None:
        """Record a file that exists but cannot be read (shown in its section, and logged)."""
        msg = f"{path}: {exc}"
        log.error("report section %s: %s", section, msg)
        self.problems[section].append(msg)
