"""The map / inject / estimate rules in the Snakemake DAG, on a tiny config in a temp directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml


def _snakemake(repo: Path, workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(repo / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"),
           "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True)


def _config(repo: Path) -> dict:
    chips = repo / "config" / "chips"
    devices = repo / "config" / "devices"
    return {
        "seed": 0, "device": "cpu",
        "devices": {"hfo2-2t2r": {"card": str(devices / "hfo2-2t2r.yaml")},
                    "pcsa-130nm": {"card": str(devices / "pcsa-130nm.yaml")},
                    "pcsa-130nm-physical":
                        {"card": str(devices / "pcsa-130nm-physical.yaml")},
                    "reram-es-gong2018": {"card": str(devices / "reram-es-gong2018.yaml")}},
        "experiments": {
            "b": {"dataset": "digits", "hidden": [16], "epochs": 1, "batch_size": 50},
            "f": {"dataset": "digits", "hidden": [16], "epochs": 1, "batch_size": 50,
                  "precision": "float"},
        },
        "chips": {"rram-2t2r-pcsa-130nm": str(chips / "rram-2t2r-pcsa-130nm.yaml"),
                  "rram-1t1r-adc": str(chips / "rram-1t1r-adc.yaml")},
        "inject": {"repeats": 2, "ber": [0.0, 0.01],
                   "operating_points": {"rram-2t2r-pcsa-130nm": [{"i_prog": 5.0e-5}]}},
    }


def test_dag_pairs_experiments_with_fitting_chips(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(_config(repo)))
    proc = _snakemake(repo, tmp_path, "-n", "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    for rule, count in (("deploy", 2), ("train", 2)):
        assert any(line.split()[:2] == [rule, str(count)] for line in out.splitlines()), out


def test_unknown_chip_in_operating_points_stops_snakemake(repo: Path, tmp_path: Path) -> None:
    cfg = _config(repo)
    cfg["inject"]["operating_points"] = {"no-such-chip": "card"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = _snakemake(repo, tmp_path, "-n")
    assert proc.returncode != 0
    assert "inject.operating_points.no-such-chip: unknown chip" in proc.stderr


@pytest.mark.slow
def test_map_inject_estimate_run_in_the_dag(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(_config(repo)))
    proc = _snakemake(repo, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = tmp_path / "results"
    table = pd.read_csv(res / "inject" / "b" / "rram-2t2r-pcsa-130nm.csv")
    # 2 direct BERs + 1 point, and the chip's nominal point at the 3 default times (the
    # hfo2-2t2r cells relax: dse/devices/cell_relaxation.py)
    assert len(table) == (2 + 1 + 3) * 2 and "i_prog" in table.columns
    assert set(table["time_s"].dropna()) == {0.0, 1.0, 86400.0, 3.156e8}
    summary = pd.read_csv(res / "inject" / "f" / "rram-1t1r-adc.summary.csv")
    # the analog card has an inference block: deployed on a fresh chip (a standard trainer
    # has no trained devices), over time in rram-1t1r-adc.deploy.csv
    assert set(summary["noise"]) == {"none", "fresh: write_verify"}
    deployed = pd.read_csv(res / "inject" / "f" / "rram-1t1r-adc.deploy.csv")
    assert set(deployed["devices"]) == {"fresh"} and deployed["time_s"].max() > 0
    est = pd.read_csv(res / "estimate" / "f" / "rram-1t1r-adc.csv")
    assert est[est["component"] == "adc"]["energy_pJ"].sum() > 0
    assert (res / "map" / "b" / "rram-2t2r-pcsa-130nm.json").is_file()
    assert not (res / "map" / "b" / "rram-1t1r-adc.json").exists()  # binary net: binary chips
    again = _snakemake(repo, tmp_path, "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
