"""Provenance of a report: configuration, code version, packages, seeds, cards and run times."""

from __future__ import annotations

import datetime as _dt
import logging
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from dse import __version__
from dse.config import config_hash
from dse.report.io import ReportData, file_sha256

log = logging.getLogger(__name__)

PACKAGES = ("torch", "torchvision", "numpy", "pandas", "scipy", "optuna", "snakemake",
            "matplotlib", "seaborn", "scikit-learn", "mlxtend", "jinja2", "jsonschema")


@dataclass
class Provenance:
    """What produced a report (rendered in its last section)."""

    config_hash: str
    config_yaml: str
    config_file: str
    dse_version: str
    git: dict[str, str]
    python: str
    platform: str
    packages: dict[str, str]
    seeds: pd.DataFrame
    cards: pd.DataFrame
    runtimes: pd.DataFrame
    jobs: pd.DataFrame
    generated: str
    extra: dict[str, Any] = field(default_factory=dict)


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


def seeds_table(config: dict[str, Any]) -> pd.DataFrame:
    """Every seed the configuration sets, resolved (experiment seeds default to the global)."""
    base = int(config.get("seed", 0))
    rows = [{"what": "global (seed)", "seed": base}]
    for name, exp in sorted(config.get("experiments", {}).items()):
        seed = exp.get("seed")
        rows.append({"what": f"experiment {name}", "seed": base if seed is None else int(seed)})
    if config.get("chips"):
        seed = config.get("inject", {}).get("seed")
        rows.append({"what": "inject (fault maps)", "seed": base if seed is None else int(seed)})
    for name, study in sorted(config.get("search", {}).items()):
        seed = study.get("seed")
        seed = base if seed is None else int(seed)
        workers = int(study.get("workers", 1))
        rows.append({"what": f"study {name} sampler" + (f" (worker k: {seed} + k, "
                                                        f"{workers} workers)" if workers > 1
                                                        else ""), "seed": seed})
    return pd.DataFrame(rows)


def cards_table(data: ReportData) -> pd.DataFrame:
    """Device and chip cards used: file, sha256, family/encoding and their stated source."""
    rows = []
    for name, card in sorted(data.device_cards.items()):
        path = data.device_files[name]
        rows.append({"card": name, "kind": f"device ({card.get('family', '?')})",
                     "file": str(path), "sha256": file_sha256(path) if path.is_file() else "",
                     "source": str(card.get("source", ""))})
    for name, chip in sorted(data.chip_cards.items()):
        path = data.chip_files[name]
        rows.append({"card": name, "kind": f"chip ({chip.encoding})", "file": str(path),
                     "sha256": file_sha256(path) if path.is_file() else "",
                     "source": str(getattr(chip, "source", "") or "")})
    return pd.DataFrame(rows, columns=["card", "kind", "file", "sha256", "source"])


STAGE_ORDER = ("calibrate", "train", "map", "inject", "estimate", "search", "report")


def runtimes_table(benchmarks: pd.DataFrame) -> pd.DataFrame:
    """Run time per stage (sum, longest job, peak memory) from the benchmark rows."""
    if benchmarks.empty:
        return pd.DataFrame(columns=["stage", "jobs", "total_s", "longest_job", "longest_s",
                                     "cpu_time_s", "max_rss_mb"])
    rows = []
    for stage, g in benchmarks.groupby("stage", sort=False):
        top = g.loc[g["seconds"].idxmax()]
        rows.append({"stage": stage, "jobs": len(g), "total_s": g["seconds"].sum(),
                     "longest_job": top["job"], "longest_s": top["seconds"],
                     "cpu_time_s": g["cpu_time_s"].sum(), "max_rss_mb": g["max_rss_mb"].max()})
    out = pd.DataFrame(rows)
    rank = {s: i for i, s in enumerate(STAGE_ORDER)}
    return out.sort_values("stage", key=lambda s: s.map(lambda v: rank.get(v, 99))) \
        .reset_index(drop=True)


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
