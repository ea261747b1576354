"""The wiring: one recipe per design point, shared by the CLI (the Snakemake rules) and the search.

A design evaluated by a co-design trial and the same design run stage by stage through ``dse
train | map | inject | estimate`` (same seeds, same inject settings: stuck-at cells, a subset of
the test images, analog read noise) give identical accuracy, energy and area.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dse.chip.estimate import totals
from dse.cli import main
from dse.config import check_config
from dse.pipeline import InjectSettings, Layout
from dse.pipeline.artifacts import load_model, save_model
from dse.pipeline.files import atomic_outputs
from dse.pipeline.study import run_study_worker

REPO = Path(__file__).resolve().parents[1]
DEV, CHIPS = REPO / "config" / "devices", REPO / "config" / "chips"


def config(precision: str, chip: str, parameters: dict) -> dict:
    return check_config({
        "seed": 3, "device": "cpu",
        "devices": {n: {"card": str(DEV / f"{n}.yaml")}
                    for n in ("hfo2-2t2r", "pcsa-130nm", "pcsa-130nm-physical",
                              "reram-es-gong2018")},
        "chips": {chip: str(CHIPS / f"{chip}.yaml")},
        "experiments": {"tiny": {"dataset": "digits", "hidden": [24], "epochs": 1,
                                 "batch_size": 50, "precision": precision}},
        "inject": {"repeats": 3, "batch": 2, "ber": [0.02], "max_images": 150,
                   "stuck_at": {"sa0": 0.01 if precision != "float" else 0.0},
                   "analog_read_noise": True},
        "search": {"s": {"experiment": "tiny", "chip": chip, "parameters": parameters,
                         "objectives": {"accuracy": "maximize",
                                        "energy_per_inference_pJ": "minimize"},
                         # on the test images, as the CLI's inject (no held-out set)
                         "validation": 0, "trials": 1, "repeats": 3}},
    })


CASES = {
    "binary chip, direct BER, stuck-at cells": (
        "binary", "rram-2t2r-pcsa-130nm", {"ber": {"choices": [0.02]}},
        ["hfo2-2t2r", "pcsa-130nm-physical"]),
    "analog chip, programming + read noise": (
        "float", "rram-1t1r-adc", {"adc_bits": {"choices": [5]}}, ["reram-es-gong2018"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_a_trial_and_the_cli_measure_a_design_identically(case: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    precision, chip, parameters, cards = CASES[case]
    cfg = config(precision, chip, parameters)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    layout = Layout.at(tmp_path / "results")
    from dse.pipeline.study import init_study_files

    init_study_files(cfg, "s", layout)
    run_study_worker(cfg, "s", 0, layout)
    trial = json.loads((layout.trial_dir("s", 0) / "trial.json").read_text())

    devices = [a for n in cards for a in ("--device", str(DEV / f"{n}.yaml"))]
    assert main(["-q", "train", "--config", "config.yaml", "--experiment", "tiny",
                 "--out", "m"]) == 0
    assert main(["-q", "map", "--model", "m", "--chip", str(CHIPS / f"{chip}.yaml"),
                 "--out", "map.json"]) == 0
    inject_args = ["--seed", str(trial["inject_seed"])]
    if precision != "float":  # the trial's single point: the direct BER it drew
        inject_args += ["--ber", str(trial["params"]["ber"])]
    assert main(["-q", "inject", "--model", "m", "--mapping", "map.json", "--chip",
                 str(CHIPS / f"{chip}.yaml"), *devices, "--config", "config.yaml",
                 *inject_args, "--out", "inject.csv", "--activity-out", "activity.csv"]) == 0
    # the input activity measured on the images (analog chips' cell energy) goes to estimate
    assert main(["-q", "estimate", "--mapping", "map.json", "--chip",
                 str(CHIPS / f"{chip}.yaml"), "--history", "m/history.csv", *devices,
                 "--activity", "activity.csv", "--out", "estimate.csv"]) == 0

    table = pd.read_csv("inject.csv")
    faulty = table[(table["ber"] > 0) | (table["stuck_sa0"] > 0) | (table["noise"] != "none")]
    assert len(faulty) == 3  # the trial's repeats, drawn from the same stream
    assert faulty["accuracy"].mean() == trial["metrics"]["accuracy"]
    est = totals(pd.read_csv("estimate.csv"))
    for key in ("energy_per_inference_pJ", "area_um2", "deployment_pJ", "training_pJ"):
        assert est[key] == pytest.approx(trial["metrics"][key], rel=1e-12)
    # and the trial's own injection table is the CLI's, map for map
    ours = pd.read_csv(layout.trial_dir("s", 0) / "inject.csv")
    assert ours["accuracy"].tolist() == faulty["accuracy"].tolist()


def test_inject_settings_come_from_one_place() -> None:
    cfg = config("binary", "rram-2t2r-pcsa-130nm", {"ber": {"choices": [0.02]}})
    s = InjectSettings.from_config(cfg, "rram-2t2r-pcsa-130nm", repeats=7, batch=None)
    assert (s.repeats, s.batch, s.seed, s.max_images) == (7, 2, 3, 150)
    assert s.stuck_at.sa0 == 0.01 and s.ber == (0.02,) and s.operating_points is None


def test_a_failed_write_leaves_no_file_of_a_pair(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "sub" / "b.csv"
    with pytest.raises(RuntimeError), atomic_outputs([a, b]) as (ta, _tb):
        ta.write_text("x")
        raise RuntimeError("the second table failed")
    assert not a.exists() and not b.exists()
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # no temporary left behind


def test_a_model_whose_weights_changed_is_refused(tmp_path: Path) -> None:
    import torch

    from dse.config import Experiment
    from dse.data import task_stream
    from dse.errors import DseError
    from dse.train import train

    exp = Experiment.from_config(config("binary", "rram-2t2r-pcsa-130nm", {
        "ber": {"choices": [0.02]}}), "tiny")
    result = train(exp, task_stream("digits", None, 0), progress=False)
    out = save_model(result, tmp_path / "m")
    assert load_model(out).meta["model_sha256"]
    state = torch.load(out / "model.pt", weights_only=True)
    next(iter(state.values())).add_(1.0)
    torch.save(state, out / "model.pt")
    with pytest.raises(DseError, match="does not match model.json"):
        load_model(out)
