"""The report's inputs: read a config's stage outputs and the facts of the run environment.

:func:`load_results` walks the configuration (not the folder): only the experiments, chips,
devices and studies of the config are read, so stale outputs of removed entries never reach a
report. A file that is absent means its stage did not run (or was not configured) and is left
out; a file that exists but cannot be read becomes a message in its section
(``ReportData.problems``), never an exception. :func:`collect_provenance` adds the code version,
git commit, package versions and card hashes.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import platform
import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from dse import __version__
from dse.config import config_hash
from dse.errors import DseError
from dse.pipeline.artifacts import deployment_paths, load_card, load_chip
from dse.pipeline.endurance import card_endurance
from dse.pipeline.layout import Layout
from dse.pipeline.model_state import sha256
from dse.report.data import Calibration, ReportData, Study
from dse.report.provenance import (
    PACKAGES,
    Provenance,
    cards_table,
    runtimes_table,
    seeds_table,
)

log = logging.getLogger(__name__)


def file_sha256(path: str | Path) -> str:
    """Short sha256 of a file's bytes (provenance of cards)."""
    return sha256(Path(path))[:12]


def _read(data: ReportData, section: str, path: Path, reader: Callable[[Path], Any]) -> Any:
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


def _devices(data: ReportData, config: dict[str, Any], layout: Layout) -> None:
    for name, entry in sorted(config.get("devices", {}).items()):
        path = layout.device_card_file(config, name)
        if path is None:
            continue
        if "measurements" in entry:
            card = _read(data, "calibration", path, _json)
            if card is None:
                continue
            figure = _read(data, "calibration", layout.calibration_figure(name),
                           lambda p: p.read_bytes())
            data.calibrations.append(Calibration(name, card, path, figure))
        else:
            card = _read(data, "calibration", path, load_card)
        if card is not None:
            data.device_cards[name] = card
            data.device_files[name] = path


def _training(data: ReportData, config: dict[str, Any], layout: Layout) -> None:
    for exp in sorted(config.get("experiments", {})):
        hist = _read(data, "training", layout.train_file(exp, "history.csv"), _csv)
        if hist is None:
            continue
        data.history[exp] = hist
        for attr, fname, reader in (("models", "model.json", _json),
                                    ("pulses", "pulses.csv", _csv),
                                    ("tasks", "tasks.csv", _csv),
                                    ("writes", "writes.csv", _csv)):
            value = _read(data, "training", layout.train_file(exp, fname), reader)
            if value is not None:
                getattr(data, attr)[exp] = value


def _chips(data: ReportData, config: dict[str, Any], layout: Layout) -> None:
    for chip, path in sorted(config.get("chips", {}).items()):
        card = _read(data, "mapping", Path(path), load_chip)
        if card is not None:
            data.chip_cards[chip] = card
            data.chip_files[chip] = Path(path)
        for exp in sorted(config.get("experiments", {})):
            key = (exp, chip)
            for section, attr, file, reader in (
                    ("mapping", "mappings", layout.mapping_json(exp, chip), _json),
                    ("robustness", "inject", layout.inject_summary_csv(exp, chip), _csv),
                    ("energy", "estimates", layout.estimate_csv(exp, chip), _csv),
                    ("energy", "latencies", layout.latency_csv(exp, chip), _csv),
                    *zip(("deployment", "deployment"), ("deployment", "programming"),
                         deployment_paths(layout.inject_csv(exp, chip)), (_csv, _csv),
                         strict=True)):
                value = _read(data, section, file, reader)
                if value is not None:
                    getattr(data, attr)[key] = value


def _studies(data: ReportData, config: dict[str, Any], layout: Layout) -> None:
    for name in sorted(config.get("search", {})):
        tables = {f: _read(data, "codesign", layout.study_file(name, f"{f}.csv"), _csv)
                  for f in ("trials", "pareto", "hypervolume")}
        summary = _read(data, "codesign", layout.study_file(name, "summary.json"), _json)
        if any(v is None for v in tables.values()) or summary is None:
            continue
        journal = layout.journal(name)
        data.studies[name] = Study(name, tables["trials"], tables["pareto"],
                                   tables["hypervolume"], summary,
                                   dict(config["search"][name]["objectives"]),
                                   journal if journal.is_file() else None)


def _endurance(data: ReportData, config: dict[str, Any], layout: Layout) -> None:
    """Endurance of the devices of the runs: the cards' ``endurance:`` blocks (config override)."""
    from dse.report.endurance import devices_of

    names = set(data.device_cards).union(*(devices_of(data, exp)
                                           for exp in config.get("experiments", {})))
    try:
        data.endurance = card_endurance(config, layout, names)
    except DseError as e:
        data.problem("endurance", "config key endurance" if layout.endurance_file(config)
                     else "device cards", e)


def load_results(config: dict[str, Any], layout: Layout,
                 benchmarks: str | Path | None = None) -> ReportData:
    """Read every stage output of ``config`` under ``layout`` that exists.

    ``benchmarks``: folder of Snakemake benchmark files (default ``layout.benchmarks``).
    """
    data = ReportData(config=config)
    _devices(data, config, layout)
    _training(data, config, layout)
    _chips(data, config, layout)
    _endurance(data, config, layout)
    _studies(data, config, layout)
    for path in [*data.device_files.values(), *data.chip_files.values()]:
        if path.is_file():
            data.file_sha256[str(path)] = file_sha256(path)
    data.benchmarks = load_benchmarks(Path(benchmarks) if benchmarks is not None
                                      else layout.benchmarks)
    chips = (config.get("report") or {}).get("validation")
    if chips:
        from dse.pipeline.validation import validate

        try:
            data.validation = validate(chips)
        except DseError as exc:
            data.problem("validation", chips, exc)
    return data


def git_info(folder: str | Path) -> dict[str, str]:
    """Commit of the source tree holding ``folder`` and whether it has uncommitted changes
    (read-only git calls; "unknown" outside a git checkout)."""
    def run(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "--no-optional-locks", "-C", str(folder), *args],
                                 capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = run("rev-parse", "HEAD")
    if not commit:
        return {"commit": "unknown (not a git checkout)", "state": ""}
    status = run("status", "--porcelain", "--untracked-files=no")
    state = "unknown" if status is None else ("uncommitted changes" if status else "clean")
    return {"commit": commit, "state": state}


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out



def collect_provenance(data: ReportData, config_file: str | Path) -> Provenance:
    """Provenance of a report over ``data`` (its config is the validated, effective one)."""
    config = data.config
    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=100)
    src = Path(__file__).resolve().parents[2]
    return Provenance(
        config_hash=config_hash(config), config_yaml=text, config_file=str(config_file),
        dse_version=__version__, git=git_info(src), python=sys.version.split()[0],
        platform=platform.platform(), packages=package_versions(), seeds=seeds_table(config),
        cards=cards_table(data), runtimes=runtimes_table(data.benchmarks),
        jobs=data.benchmarks,
        generated=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))


def write_report(config: dict[str, Any], config_file: str | Path, layout: Layout,
                 out: str | Path, benchmarks: str | Path | None = None) -> list[Any]:
    """Write the self-contained HTML report of ``config``'s outputs; returns its sections."""
    from dse.pipeline.files import check_writable, write_text
    from dse.report import make_report

    check_writable(out)
    data = load_results(config, layout, benchmarks)
    html, sections = make_report(data, collect_provenance(data, config_file))
    write_text(out, html)
    return sections
