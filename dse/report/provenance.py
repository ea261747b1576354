"""Provenance of a report: configuration, code version, packages, seeds, cards and run times."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from dse.report.data import ReportData

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
                     "file": str(path), "sha256": data.file_sha256.get(str(path), ""),
                     "source": str(card.get("source", ""))})
    for name, chip in sorted(data.chip_cards.items()):
        path = data.chip_files[name]
        rows.append({"card": name, "kind": f"chip ({chip.encoding})", "file": str(path),
                     "sha256": data.file_sha256.get(str(path), ""),
                     "source": str(getattr(chip, "source", "") or "")})
    return pd.DataFrame(rows, columns=["card", "kind", "file", "sha256", "source"])


STAGE_ORDER = ("calibrate", "train", "deploy", "map", "inject", "estimate", "search", "report")


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
