"""Issue 12 item 5: does training through the chip's read-out change the deployed accuracy?

The default study's ``lenet-mixed-precision`` is trained three ways per seed: with the
training converters of aihwkit's presets (``dac_bits`` 7 / ``adc_bits`` 9, abs-max per sample;
the default), and through each chip's own read-out (``mixed_precision.chip``:
``rram-1t1r-adc``, digital pair subtraction, and ``rram-1t1r-adc-analog-sub``, analog; row groups
of 128 rows, 5-bit ADC ranged per batch, straight-through gradients). Each model is deployed on
its trained devices (``devices: trained``, t = 0, the card's read noise, 10 maps) on both chips
through the code ``dse deploy`` runs; in situ = the model's own test accuracy after training.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/train_through_chip.py --seeds 0 1 \\
        --out benchmarks/train_through_chip.md
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import pandas as pd
import torch

from dse.chip.deploy import DeploySettings, deploy
from dse.chip.mapping import map_model
from dse.config import Experiment, load_config
from dse.data import task_stream
from dse.devices import from_card
from dse.devices.inference import inference_physics
from dse.pipeline import Layout
from dse.pipeline.artifacts import load_chip
from dse.pipeline.recipes import experiment_cards, train_experiment
from dse.train.device_state import unpack

REPO = Path(__file__).resolve().parents[1]
CHIPS = ("rram-1t1r-adc", "rram-1t1r-adc-analog-sub")
EXP = "lenet-mixed-precision"


def train_variant(config: dict, seed: int, chip: str | None):
    """(in-situ test accuracy, model, device state, device card) of one training."""
    cfg = copy.deepcopy(config)
    entry = cfg["experiments"][EXP]
    entry["seed"] = seed
    if chip:
        entry.setdefault("mixed_precision", {})["chip"] = chip
    exp = Experiment.from_dict(EXP, entry, devices=cfg.get("devices"))
    cards = experiment_cards(cfg, exp, Layout.from_config(cfg))
    res = train_experiment(cfg, exp, cards)
    return res.test_accuracy, res.model, res.device_state, next(iter(cards.values()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config/config.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    config = load_config(a.config)
    config["chips"].setdefault(CHIPS[1], f"config/chips/{CHIPS[1]}.yaml")
    chips = {n: load_chip(REPO / "config" / "chips" / f"{n}.yaml") for n in CHIPS}
    rows = []
    for seed in a.seeds:
        data = task_stream("mnist5k", None, seed)[-1]
        for trained_through in (None, *CHIPS):
            acc, model, state, card = train_variant(config, seed, trained_through)
            dev = from_card(card)
            phys = inference_physics(dev)
            model.eval()
            for name, chip in chips.items():
                table, _ = deploy(model, map_model(model, chip), data.x_test, data.y_test, dev,
                                  phys, a.repeats, torch.Generator().manual_seed(seed),
                                  DeploySettings(devices=("trained",), times=()),
                                  trained=unpack(state), calibration=data.x_train[:1000])
                rows.append({"seed": seed, "trained_through": trained_through or
                             "converters 7/9 bit (default)", "in_situ": acc,
                             "deployed_on": name, "deployed": table["accuracy"].mean(),
                             "deployed_std": table["accuracy"].std(ddof=1)})
                print(rows[-1], flush=True)
    df = pd.DataFrame(rows).assign(gap=lambda d: d["deployed"] - d["in_situ"])
    summary = df.groupby(["trained_through", "deployed_on"], sort=False)[
        ["in_situ", "deployed", "gap"]].mean().reset_index()
    text = ["# Training through the chip's read-out (issue 12 item 5)", "",
            f"`OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/train_through_chip.py "
            f"--seeds {' '.join(map(str, a.seeds))} --out {a.out}` "
            f"({time.perf_counter() - t0:.0f} s, 1 thread).", "",
            "Per run (deployed: mean ± std over the maps):", "",
            df.to_markdown(index=False, floatfmt=".3f"), "", "Mean over seeds:", "",
            summary.to_markdown(index=False, floatfmt=".3f"), ""]
    if a.out:
        a.out.write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
