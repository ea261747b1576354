"""Metaplastic retention on the chip: every task of a permuted-mnist5k stream, each with its own
BatchNorm, under bit errors on the RRAM 2T2R chip (the inject recipe, ``dse deploy``'s path).

Trains the default study's ``bnn-mlp-metaplastic`` (784-512-512-10 BNN, 3 tasks x 8 epochs,
Adam_meta m = 14, Laborieux et al., Nat. Commun. 12:2549, 2021) and the same run with m = 0
(plain Adam: the non-metaplastic control), then injects ``--repeats`` fault maps per BER, the
same maps for every task. BER 0 rows are the deployed network (running BN statistics); the
training's ``tasks.csv`` (batch statistics, ``bn_stats: batch``) is printed beside them.

    python benchmarks/metaplastic_retention.py --m 0 14 --repeats 10
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import pandas as pd
import torch

from dse.chip.inject import summarize
from dse.chip.mapping import map_model
from dse.config import Experiment
from dse.data import task_stream
from dse.pipeline import InjectSettings
from dse.pipeline.artifacts import load_chip, load_model, save_model
from dse.pipeline.recipes import inject_chip
from dse.train import train

CHIP = "config/chips/rram-2t2r-pcsa-130nm.yaml"


def run(m: float, seed: int, args: argparse.Namespace, out: Path) -> pd.DataFrame:
    exp = Experiment.from_dict(f"meta-m{m:g}", {
        "dataset": "mnist5k", "tasks": {"kind": "permuted", "count": args.tasks},
        "model": "mlp", "hidden": [512, 512], "precision": "binary", "algorithm": "metaplastic",
        "metaplastic": {"m": m, "bn": "task", "bn_stats": "batch"}, "epochs": args.epochs,
        "batch_size": 100, "lr": 0.005, "weight_decay": 1e-7, "seed": seed})
    result = train(exp, task_stream(exp.dataset, exp.tasks, exp.seed), "cpu", progress=False)
    final = result.tasks[result.tasks["after_task"] == args.tasks - 1].set_index("task")
    trained = load_model(save_model(result, out / f"m{m:g}-{seed}"))
    chip = load_chip(CHIP)
    settings = InjectSettings(repeats=args.repeats, seed=seed, ber=tuple(args.ber))
    table = inject_chip({"data_root": "data", "download": False}, trained,
                        map_model(trained.model, chip), chip, {}, settings)
    s = summarize(table)[["task", "ber", "mean", "ci95_low", "ci95_high", "clean_accuracy"]]
    return s.assign(m=m, seed=seed, train_batch_stats=s["task"].map(final["test_acc"]))


def figure(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted(table["task"].unique())
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.6 * len(tasks), 3.4), sharey=True)
    floor = table.loc[table["ber"] > 0, "ber"].min() / 3
    for ax, k in zip(axes, tasks, strict=True):
        for m, d in table[table["task"] == k].groupby("m"):
            d = d.groupby("ber")["mean"].mean()
            ax.plot(d.index.where(d.index > 0, floor), 100 * d.values, marker="o",
                    label=f"m = {m:g}")
        ax.set_xscale("log")
        ax.set(title=f"task {k}" + (" (last)" if k == tasks[-1] else ""),
               xlabel="bit error rate (BER 0 at the left)")
    axes[0].set_ylabel("test accuracy after the last task (%)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--m", type=float, nargs="+", default=[0.0, 14.0])
    p.add_argument("--tasks", type=int, default=3)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--ber", type=float, nargs="+", default=[0.0, 1e-3, 1e-2, 3e-2, 5e-2])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/metaplastic_retention.csv"))
    p.add_argument("--figure", type=Path,
                   default=Path("benchmarks/figures/metaplastic_retention.png"))
    args = p.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        table = pd.concat([run(m, s, args, Path(tmp)) for s in args.seeds for m in args.m],
                          ignore_index=True)
    table.to_csv(args.out, index=False)
    figure(table, args.figure)
    print(table.pivot_table(index=["task", "ber"], columns="m", values="mean")
          .to_markdown(floatfmt=".3f"))
    print(table[table["ber"] == 0].pivot_table(index="task", columns="m",
                                               values="train_batch_stats")
          .to_markdown(floatfmt=".3f"))


if __name__ == "__main__":
    main()
