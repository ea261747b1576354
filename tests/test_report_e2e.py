"""End to end: the whole workflow on a tiny config, up to reports/report.html.

One Snakemake run (module-scoped fixture) in a temporary directory exercises every stage:
calibrate, train (standard, and metaplastic on permuted tasks), map / inject / estimate on a
binary chip (direct BERs and operating points), a 3-trial co-design study, and the report; the
tests then read its outputs. (Analog chips in the DAG: tests/test_chip_workflow.py; every
figure kind, analog included, without Snakemake: tests/test_report.py.)
"""

from __future__ import annotations

import base64
import re
import struct
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dse.cli import main
from dse.config import config_hash, load_config

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ["summary", "calibration", "training", "continual", "endurance", "mapping",
            "robustness",
            "energy", "codesign", "provenance"]


def tiny_config() -> dict:
    dev, chips = REPO / "config" / "devices", REPO / "config" / "chips"
    mlp = {"dataset": "digits", "hidden": [16], "epochs": 2, "batch_size": 50}
    return {
        "seed": 0, "device": "cpu",
        "devices": {
            "hfo2-2t2r": {"card": str(dev / "hfo2-2t2r.yaml")},
            "pcsa-130nm": {"card": str(dev / "pcsa-130nm.yaml")},
            "pcsa-130nm-physical": {"card": str(dev / "pcsa-130nm-physical.yaml")},
            "hfo2-2t2r-cal": {
                "measurements": str(REPO / "config/measurements/hfo2-2t2r.ber.synthetic.csv"),
                "family": "rram_2t2r", "format": "ber", "base": str(dev / "hfo2-2t2r.yaml")},
        },
        "experiments": {
            "b": mlp,
            "meta": {**mlp, "epochs": 1, "algorithm": "metaplastic",
                     "tasks": {"kind": "permuted", "count": 2}},
        },
        "chips": {"rram-2t2r-pcsa-130nm": str(chips / "rram-2t2r-pcsa-130nm.yaml")},
        "inject": {"repeats": 2, "ber": [0.0, 0.01],
                   "operating_points": {"rram-2t2r-pcsa-130nm": [{"i_prog": 5.0e-5},
                                                                 {"vdd": 0.4}]}},
        "search": {"s": {"experiment": "b", "chip": "rram-2t2r-pcsa-130nm",
                         "parameters": {"vdd": {"low": 0.35, "high": 1.2}},
                         "objectives": {"accuracy": "maximize",
                                        "energy_per_inference_pJ": "minimize",
                                        "latency_ns": "minimize"},
                         "trials": 3, "repeats": 2}},
        "report": {"dpi": 50},
    }


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"),
           "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny study run by Snakemake to its report; the working directory."""
    work = tmp_path_factory.mktemp("e2e")
    (work / "config.yaml").write_text(yaml.safe_dump(tiny_config()))
    proc = snakemake(work)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return work


def sections_of(html: str) -> dict[str, str]:
    """Section id -> its HTML."""
    parts = re.split(r'(?=<section class="report-section)', html)
    out = {}
    for part in parts[1:]:
        m = re.search(r'data-section="([a-z]+)"', part)
        assert m
        out[m.group(1)] = part.split("</section>")[0]
    return out


def image_sizes(section_html: str) -> list[tuple[int, int]]:
    sizes = []
    for uri in re.findall(r'<img src="data:image/png;base64,([^"]+)"', section_html):
        raw = base64.b64decode(uri)
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
        sizes.append(struct.unpack(">II", raw[16:24]))
    return sizes


@pytest.mark.slow
def test_every_section_has_its_figures(run: Path) -> None:
    html = (run / "reports" / "report.html").read_text()
    sections = sections_of(html)
    assert list(sections) == SECTIONS
    for sid, body in sections.items():
        assert 'class="failed"' not in body, (sid, re.findall(r'data-failed="1">([^<]*)', body))
        if sid not in ("provenance", "summary"):
            sizes = image_sizes(body)
            assert sizes and all(w > 0 and h > 0 for w, h in sizes), sid
    counts = {sid: len(image_sizes(body)) for sid, body in sections.items()}
    pulses = sum(pd.read_csv(p)["pulses"].sum() for p in run.glob("results/train/*/pulses.csv"))
    # calibration: fit + BER curves; training: learning curves, weight memory (+ pulses when
    # any were counted); continual: the meta task matrix and its retention on the one chip;
    # robustness / energy: one per chip; co-design (3 objectives): projections, parallel
    # coordinates, hypervolume; the summary: a table
    assert counts == {"summary": 0, "calibration": 2, "training": 2 + int(pulses > 0),
                      "continual": 2, "endurance": 1, "mapping": 1,
                      "robustness": 1, "energy": 1, "codesign": 3, "provenance": 0}
    front = pd.read_csv(run / "results" / "search" / "s" / "pareto.csv")
    assert front["test_accuracy"].notna().all() and front["knee"].sum() == 1
    assert "<script" not in html.lower()  # nothing to fetch: a self-contained file


@pytest.mark.slow
def test_provenance_is_that_of_the_run(run: Path) -> None:
    html = (run / "reports" / "report.html").read_text()
    effective = load_config(run / ".snakemake" / "dse" / "config.yaml")
    expected = config_hash(effective)
    assert f'<code id="config-hash">{expected}</code>' in html
    prov = sections_of(html)["provenance"]
    assert f"<td>{expected}</td>" in prov
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    if commit:
        assert commit in prov
    # run time per stage from the benchmark files of every stage that ran
    for stage in ("calibrate", "train", "deploy", "search"):
        assert f"<tr><td>{stage}</td>" in prov, stage
    assert "<td>experiment meta</td>" in prov and "<td>study s sampler</td>" in prov
    assert "hfo2-2t2r-cal.json" in prov and "rram-2t2r-pcsa-130nm.yaml" in prov


@pytest.mark.slow
def test_a_stage_left_out_leaves_no_section(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tiny_config()
    cfg.pop("search")
    cfg.pop("chips")
    cfg["inject"].pop("operating_points")
    del cfg["experiments"]["meta"]
    (run / "partial.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.chdir(run)
    assert main(["-q", "report", "--config", "partial.yaml", "--results", "results",
                 "--out", "partial.html"]) == 0
    html = (run / "partial.html").read_text()
    # endurance: the writes per device of the training runs (no chip: no endurance rows)
    assert list(sections_of(html)) == ["calibration", "training", "endurance", "provenance"]
    for body in sections_of(html).values():
        assert "<figure" in body or "<table" in body


@pytest.mark.slow
def test_rerun_is_a_noop_and_snakemake_report_works(run: Path) -> None:
    again = snakemake(run, "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    proc = snakemake(run, "--report", str(run / "snakemake-report.html"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = (run / "snakemake-report.html").read_text()
    for category in ("1. Devices", "2. Training", "3. Robustness", "4. Energy and area",
                     "5. Co-design"):
        assert category in text


def test_paper_config_validates() -> None:
    """config/paper.yaml (documented, not run in CI) is a valid study: schema, experiments,
    studies, and every card file it names exists."""
    from dse.config import Experiment
    from dse.search import parse_study

    config = load_config(REPO / "config" / "paper.yaml")
    algorithms = {Experiment.from_config(config, e).algorithm for e in config["experiments"]}
    assert algorithms == {"standard", "metaplastic", "mixed_precision", "weak_reset_bnn"}
    assert {Experiment.from_config(config, e).dataset for e in config["experiments"]} == \
        {"mnist", "fashion-mnist", "cifar10", "mitbih"}
    for name in config["search"]:
        spec = parse_study(config, name)
        assert spec.experiment in config["experiments"]
    for entry in config["devices"].values():
        assert (REPO / entry["card"]).is_file()
    for path in config["chips"].values():
        assert (REPO / path).is_file()
