"""End to end: the Snakemake workflow on a tiny config in a temporary directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

TINY = {
    "seed": 0,
    "device": "cpu",
    "experiments": {
        "tiny-bnn": {"dataset": "digits", "hidden": [32], "epochs": 1, "batch_size": 50},
    },
}


def _snakemake(repo: Path, workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(repo / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"),
           "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True)


@pytest.mark.slow
def test_tiny_workflow_end_to_end(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(TINY))
    proc = _snakemake(repo, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "results" / "train" / "tiny-bnn"
    hist = pd.read_csv(out / "history.csv")
    assert len(hist) == 1 and hist["test_acc"].iloc[0] > 0.3
    assert (tmp_path / "logs" / "train" / "tiny-bnn.log").is_file()
    # a second run has nothing to do
    again = _snakemake(repo, tmp_path, "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_bad_config_stops_snakemake_with_one_line(repo: Path, tmp_path: Path) -> None:
    bad = {"experiments": {"x": {"precision": "quaternary"}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(bad))
    proc = _snakemake(repo, tmp_path, "-n")
    assert proc.returncode != 0
    assert ("experiments.x.precision: value \"quaternary\" is invalid (allowed: \"float\", "
            "\"binary\", \"ternary\")") in proc.stderr


def test_lint_is_clean(repo: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=repo,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_a_configfile_replaces_the_default_study(repo: Path, tmp_path: Path) -> None:
    """Beside config/config.yaml, --configfile runs that study only (Snakemake would merge)."""
    import shutil

    for part in ("Snakefile", "workflow", "config", "profiles"):
        src = repo / part
        if src.is_dir():
            shutil.copytree(src, tmp_path / part)
        else:
            shutil.copy(src, tmp_path / part)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--configfile", "tiny.yaml"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "results/train/tiny-bnn/model.pt" in proc.stdout
    assert "bnn-mlp" not in proc.stdout and "codesign" not in proc.stdout
    # without --configfile the default study is planned
    default = subprocess.run(cmd[:-2], cwd=tmp_path, capture_output=True, text=True)
    assert default.returncode == 0 and "results/train/bnn-mlp/model.pt" in default.stdout


def test_a_dry_run_checks_the_data_sets_are_on_disk(repo: Path, tmp_path: Path) -> None:
    cfg = {"data_root": str(tmp_path / "data"),
           "experiments": {"full": {"dataset": "mnist", "hidden": [8], "epochs": 1}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = _snakemake(repo, tmp_path, "-n")
    assert proc.returncode == 2
    assert "experiments.full.dataset: 'mnist' is not under data_root" in proc.stderr
    assert "set download: true" in proc.stderr


def test_a_missing_measurement_file_stops_the_dag_with_its_key(repo: Path, tmp_path: Path) -> None:
    """Pointing a device at a file that is not there stops the run before any job, naming the
    config key (an old card of the same name must never stand in for it)."""
    cfg = {**TINY, "devices": {"my-rram": {"measurements": str(tmp_path / "gone.csv"),
                                           "family": "soft_bounds"}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = _snakemake(repo, tmp_path, "-n")
    assert proc.returncode == 2
    assert f"devices.my-rram.measurements: file '{tmp_path / 'gone.csv'}' not found" in proc.stderr
