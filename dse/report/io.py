"""Read the stage outputs a report needs (the report's only file I/O besides writing the HTML).

:func:`load_results` walks the configuration (not the folder): only the experiments, chips,
devices and studies of the config are read, so stale outputs of removed entries never reach a
report. A file that is absent means its stage did not run (or was not configured) and is left
out; a file that exists but cannot be read becomes a message in its section
(``ReportData.problems``), never an exception.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dse.config import device_card_file
from dse.errors import DseError

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
    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # exp -> model.json
    history: dict[str, pd.DataFrame] = field(default_factory=dict)
    pulses: dict[str, pd.DataFrame] = field(default_factory=dict)
    tasks: dict[str, pd.DataFrame] = field(default_factory=dict)
    chip_cards: dict[str, Any] = field(default_factory=dict)  # name -> ChipCard
    chip_files: dict[str, Path] = field(default_factory=dict)
    mappings: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    inject: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)  # summaries
    estimates: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)
    studies: dict[str, Study] = field(default_factory=dict)
    benchmarks: pd.DataFrame = field(default_factory=pd.DataFrame)
    problems: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def problem(self, section: str, path: Path | str, exc: BaseException) -> None:
        """Record a file that exists but cannot be read (shown in its section, and logged)."""
        msg = f"{path}: {exc}"
        log.error("report section %s: %s", section, msg)
        self.problems[section].append(msg)


def file_sha256(path: str | Path) -> str:
    """Short sha256 of a file's bytes (provenance of cards)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def _read(data: ReportData, section: str, path: Path, reader) -> Any:
    if not path.is_file():
        log.debug("report: %s absent (stage not run)", path)
        return None
    try:
        return reader(path)
    except (OSError, ValueError, KeyError, DseError, pd.errors.ParserError) as exc:
        data.problem(section, path, exc)
        return None


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path)


def load_benchmarks(folder: Path) -> pd.DataFrame:
    """Snakemake ``benchmark:`` files under ``folder`` (``{stage}/.../{job}.tsv``): one row per
    job with stage, job, seconds, max_rss (MB), cpu_time (s)."""
    rows = []
    for path in sorted(folder.rglob("*.tsv")) if folder.is_dir() else []:
        rel = path.relative_to(folder)
        try:
            t = pd.read_csv(path, sep="\t")
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            log.warning("benchmark file %s unreadable: %s", path, exc)
            continue
        if t.empty or "s" not in t.columns:
            continue
        last = t.iloc[-1]

        def num(col: str, row: pd.Series = last) -> float:
            return float(pd.to_numeric(row.get(col), errors="coerce"))

        rows.append({"stage": rel.parts[0] if len(rel.parts) > 1 else "(other)",
                     "job": str(rel.with_suffix("")), "seconds": num("s"),
                     "max_rss_mb": num("max_rss"), "cpu_time_s": num("cpu_time")})
    return pd.DataFrame(rows, columns=["stage", "job", "seconds", "max_rss_mb", "cpu_time_s"])


def load_results(config: dict[str, Any], results: str | Path,
                 benchmarks: str | Path | None = None) -> ReportData:
    """Read every stage output of ``config`` under ``results`` that exists.

    ``benchmarks``: folder of Snakemake benchmark files (default ``results/benchmarks``).
    """
    from dse.chip.card import load_chip
    from dse.devices import load_card

    results = Path(results)
    data = ReportData(config=config)

    # devices: hand-written cards and calibrated ones
    for name, entry in sorted(config.get("devices", {}).items()):
        path = device_card_file(config, name, results)
        if path is None:
            continue
        if "measurements" in entry:
            card = _read(data, "calibration", path, _json)
            if card is None:
                continue
            fig_path = path.with_suffix(".png")
            figure = _read(data, "calibration", fig_path, lambda p: p.read_bytes())
            data.calibrations.append(Calibration(name, card, path, figure))
        else:
            card = _read(data, "calibration", path, load_card)
        if card is not None:
            data.device_cards[name] = card
            data.device_files[name] = path

    # training
    for exp in sorted(config.get("experiments", {})):
        folder = results / "train" / exp
        hist = _read(data, "training", folder / "history.csv", _csv)
        if hist is None:
            continue
        data.history[exp] = hist
        for attr, fname, reader in (("models", "model.json", _json),
                                    ("pulses", "pulses.csv", _csv),
                                    ("tasks", "tasks.csv", _csv)):
            value = _read(data, "training", folder / fname, reader)
            if value is not None:
                getattr(data, attr)[exp] = value

    # chips: map / inject / estimate
    for chip, path in sorted(config.get("chips", {}).items()):
        card = _read(data, "mapping", Path(path), load_chip)
        if card is not None:
            data.chip_cards[chip] = card
            data.chip_files[chip] = Path(path)
        for exp in sorted(config.get("experiments", {})):
            key = (exp, chip)
            for section, attr, file, reader in (
                    ("mapping", "mappings", results / "map" / exp / f"{chip}.json", _json),
                    ("robustness", "inject", results / "inject" / exp / f"{chip}.summary.csv",
                     _csv),
                    ("energy", "estimates", results / "estimate" / exp / f"{chip}.csv", _csv)):
                value = _read(data, section, file, reader)
                if value is not None:
                    getattr(data, attr)[key] = value

    # co-design studies
    for name in sorted(config.get("search", {})):
        folder = results / "search" / name
        tables = {f: _read(data, "codesign", folder / f"{f}.csv", _csv)
                  for f in ("trials", "pareto", "hypervolume")}
        summary = _read(data, "codesign", folder / "summary.json", _json)
        if any(v is None for v in tables.values()) or summary is None:
            continue
        journal = folder / "journal.log"
        data.studies[name] = Study(name, tables["trials"], tables["pareto"],
                                   tables["hypervolume"], summary,
                                   dict(config["search"][name]["objectives"]),
                                   journal if journal.is_file() else None)

    data.benchmarks = load_benchmarks(Path(benchmarks) if benchmarks is not None
                                      else results / "benchmarks")
    return data
