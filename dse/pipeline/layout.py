"""Where every contract file of a study lives: the one place that spells ``results/...``.

The Snakefile (``workflow/rules/common.smk``), the CLI, the search and the report ask a
:class:`Layout` for paths; a rule passes ``"{exp}"``-style wildcards as names and gets the
pattern back. Paths are relative to the working directory unless the roots are absolute.

======================================  ==========================================================
file                                    method
======================================  ==========================================================
calibrate/{device}.json, .png           :meth:`calibrated_card`, :meth:`calibration_figure`
train/{exp}/model.pt, model.json, ...   :meth:`train_dir`, :meth:`train_file`, :meth:`train_files`
map/{exp}/{chip}.json                   :meth:`mapping_json`
inject/{exp}/{chip}.csv, .summary.csv   :meth:`inject_csv`, :meth:`inject_summary_csv`
inject/{exp}/{chip}.deploy.csv,         analog deployments (written beside the inject table,
.programming.csv                        :func:`dse.pipeline.artifacts.deployment_paths`)
estimate/{exp}/{chip}.csv               :meth:`estimate_csv`
search/{study}/...                      :meth:`study_dir`, :meth:`study_file`, :meth:`journal`,
                                        :meth:`worker_json`, :meth:`trial_dir`, :meth:`model_cache`
benchmarks/{stage}/...tsv               :meth:`benchmark`
reports/report.html                     :attr:`report_html`
.snakemake/dse/config.yaml, settings/   :attr:`effective_config`, :meth:`settings_file`
======================================  ==========================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

TRAIN_FILES = ("model.pt", "model.json", "history.csv", "pulses.csv", "tasks.csv",
               "writes.csv")
STUDY_FILES = ("trials.csv", "pareto.csv", "hypervolume.csv", "pareto.png", "hypervolume.png",
               "summary.json")
TRIAL_FILES = ("trial.json", "mapping.json", "inject.csv", "estimate.csv")


@dataclass(frozen=True)
class Layout:
    """The folders of one study's outputs (``results_dir`` of the config; reports, logs)."""

    results: Path = Path("results")
    reports: Path = Path("reports")
    logs: Path = Path("logs")
    shipped_devices: Path = Path("config") / "devices"
    state: Path = Path(".snakemake") / "dse"  # the workflow's own files (effective config, ...)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layout:
        return cls(results=Path(config.get("results_dir") or "results"))

    @classmethod
    def at(cls, results: str | Path) -> Layout:
        return cls(results=Path(results))

    # -- calibrate --------------------------------------------------------------------------
    def calibrated_card(self, device: str) -> Path:
        return self.results / "calibrate" / f"{device}.json"

    def calibration_figure(self, device: str) -> Path:
        return self.results / "calibrate" / f"{device}.png"

    def device_card_file(self, config: dict[str, Any], name: str) -> Path | None:
        """The card file of device ``name``: its ``devices:`` entry's ``card:``, the calibrate
        stage's card for a measured device, else the shipped ``config/devices/{name}.yaml`` when
        it exists (None otherwise)."""
        entry = config.get("devices", {}).get(name)
        if isinstance(entry, dict):
            if entry.get("card"):
                return Path(entry["card"])
            if entry.get("measurements"):
                return self.calibrated_card(name)
        shipped = self.shipped_devices / f"{name}.yaml"
        return shipped if shipped.is_file() else None

    def endurance_file(self, config: dict[str, Any]) -> Path | None:
        """The config's ``endurance:`` file (overrides the cards' blocks), or None."""
        return Path(config["endurance"]) if config.get("endurance") else None

    # -- train ------------------------------------------------------------------------------
    def train_dir(self, exp: str) -> Path:
        return self.results / "train" / exp

    def train_file(self, exp: str, name: str) -> Path:
        return self.train_dir(exp) / name

    def train_files(self, exp: str) -> list[Path]:
        return [self.train_file(exp, f) for f in TRAIN_FILES]

    # -- map / inject / estimate ------------------------------------------------------------
    def mapping_json(self, exp: str, chip: str) -> Path:
        return self.results / "map" / exp / f"{chip}.json"

    def inject_csv(self, exp: str, chip: str) -> Path:
        return self.results / "inject" / exp / f"{chip}.csv"

    def inject_summary_csv(self, exp: str, chip: str) -> Path:
        return self.results / "inject" / exp / f"{chip}.summary.csv"

    def estimate_csv(self, exp: str, chip: str) -> Path:
        return self.results / "estimate" / exp / f"{chip}.csv"

    def latency_csv(self, exp: str, chip: str) -> Path:
        return self.results / "estimate" / exp / f"{chip}.latency.csv"

    def chip_files(self, exp: str, chip: str) -> list[Path]:
        return [self.mapping_json(exp, chip), self.inject_csv(exp, chip),
                self.inject_summary_csv(exp, chip), self.estimate_csv(exp, chip),
                self.latency_csv(exp, chip)]

    # -- search -----------------------------------------------------------------------------
    def study_dir(self, study: str) -> Path:
        return self.results / "search" / study

    def study_file(self, study: str, name: str) -> Path:
        return self.study_dir(study) / name

    def study_json(self, study: str) -> Path:
        return self.study_file(study, "study.json")

    def study_outputs(self, study: str) -> list[Path]:
        return [self.study_file(study, f) for f in STUDY_FILES]

    def journal(self, study: str) -> Path:
        return self.study_file(study, "journal.log")

    def worker_json(self, study: str, worker: int | str) -> Path:
        return self.study_dir(study) / "workers" / f"{worker}.json"

    def worker_lock(self, study: str, worker: int | str) -> Path:
        """Held by a running worker: a second worker with the same number is refused."""
        return self.study_dir(study) / "workers" / f"{worker}.lock"

    def trial_dir(self, study: str, number: int) -> Path:
        return self.study_dir(study) / "trials" / str(number)

    def model_cache(self, study: str) -> Path:
        return self.study_dir(study) / "models"

    # -- the workflow's state ---------------------------------------------------------------
    @property
    def effective_config(self) -> Path:
        """The validated, default-filled config every ``dse`` call of the workflow reads."""
        return self.state / "config.yaml"

    def settings_file(self, stage: str, name: str) -> Path:
        """The resolved settings one job depends on (rewritten only when they change, so a rule
        taking it as an input reruns exactly when its settings do)."""
        return self.state / "settings" / stage / f"{name}.json"

    # -- report, benchmarks, logs -----------------------------------------------------------
    @property
    def report_html(self) -> Path:
        return self.reports / "report.html"

    @property
    def benchmarks(self) -> Path:
        return self.results / "benchmarks"

    def benchmark(self, stage: str, job: str) -> Path:
        return self.benchmarks / stage / f"{job}.tsv"

    def log(self, stage: str, job: str) -> Path:
        return self.logs / stage / f"{job}.log"
