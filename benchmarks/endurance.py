"""Writes per device of the default study's training runs, against device endurance.

Trains each experiment of ``--config`` through the pipeline's recipe (the one ``dse train`` runs,
so the writes recorded are those of ``writes.csv``), then prints per experiment the writes per
device (devices, total, max, mean; the total checked against the ``pulses.csv`` tally, a second
count of the same writes) and, for the devices that hold its weights (its device card, else the
cell card of each chip of the config), the fraction of devices past endurance in that run and
the training runs a chip survives, per programming regime of the device cards' ``endurance:``
blocks.

    python benchmarks/endurance.py --config config/config.yaml
"""

from __future__ import annotations

import argparse
import logging
import time

import pandas as pd
import torch

from dse.config import Experiment, load_config
from dse.devices.endurance import endurance_table
from dse.pipeline import Layout, recipes
from dse.pipeline.artifacts import WRITE_HISTOGRAM, load_chip
from dse.pipeline.endurance import card_endurance
from dse.train.writes import histogram_summary


def _cells(config: dict) -> list[str]:
    cells = []
    for path in config.get("chips", {}).values():
        cells += [s.card for s in load_chip(path).error_sources if s.role == "cell"]
    return list(dict.fromkeys(cells))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", default="config/config.yaml")
    p.add_argument("--experiments", nargs="*", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    config = load_config(args.config)
    layout = Layout.from_config(config)
    cells = _cells(config)
    own = [e["device_card"] for e in config["experiments"].values() if e.get("device_card")]
    endurance = card_endurance(config, layout, [*cells, *own])
    writes_rows, table_rows = [], []
    for name in args.experiments or list(config["experiments"]):
        exp = Experiment.from_config(config, name)
        cards = recipes.experiment_cards(config, exp, layout)
        t0 = time.perf_counter()
        result = recipes.train_experiment(config, exp, cards)
        hist = result.extra[WRITE_HISTOGRAM]
        summ = histogram_summary(hist)
        pulses = int(result.pulses["pulses"].sum())
        if summ.empty:
            writes_rows.append({"experiment": name, "algorithm": exp.algorithm,
                                "devices": None, "total": None, "max": None, "mean": None,
                                "pulses.csv total": pulses,
                                "seconds": time.perf_counter() - t0})
            continue
        all_ = summ.set_index("layer").loc["(all)"]
        writes_rows.append({"experiment": name, "algorithm": exp.algorithm,
                            "devices": int(all_["devices"]), "total": int(all_["total"]),
                            "max": int(all_["max"]), "mean": float(all_["mean"]),
                            "pulses.csv total": pulses, "seconds": time.perf_counter() - t0})
        for device in [exp.device_card] if exp.device_card else cells:
            if device in endurance:
                t = endurance_table(hist, endurance[device]).drop(columns=["source"])
                table_rows.append(t.assign(experiment=name, device=device))
    print("\n### writes per device\n")
    print(pd.DataFrame(writes_rows).to_markdown(index=False, floatfmt=".4g"))
    if table_rows:
        t = pd.concat(table_rows, ignore_index=True)
        cols = ["experiment", "device", "regime", "cycles", "max writes", "p99 writes",
                "past endurance", "runs to first failure", "runs to 1 % failed"]
        print("\n### endurance\n")
        print(t[cols].to_markdown(index=False, floatfmt=".4g"))


if __name__ == "__main__":
    main()
