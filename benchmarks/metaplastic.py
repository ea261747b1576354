"""Fidelity benchmark of ``metaplastic`` (Laborieux et al. 2021) on permuted mnist5k.

Trains the binarized 784-H-H-10 MLP on a stream of permuted mnist5k tasks for every m of a sweep
(m = 0 is plain Adam, the non-metaplastic control) and reports, after the last task, the test
accuracy of the first task (retention) and of the last task (plasticity). The goal recorded in
benchmarks/README.md: first-task accuracy with metaplasticity >= 2x that of m = 0, last-task
accuracy within 2 points of m = 0's.

    python benchmarks/metaplastic.py --tasks 3 --epochs 8 --m 0 1.35 4 10 20 --seeds 0 1
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import pandas as pd
import torch

from dse.config import Experiment
from dse.data import task_stream
from dse.train import train


def run(m: float, bn_stats: str, seed: int, args: argparse.Namespace) -> dict[str, object]:
    exp = Experiment.from_dict("bench-meta", {
        "dataset": "mnist5k", "model": "mlp", "hidden": args.hidden, "precision": "binary",
        "algorithm": "metaplastic", "epochs": args.epochs, "batch_size": 100, "lr": args.lr,
        "weight_decay": args.decay, "seed": seed,
        "tasks": {"kind": "permuted", "count": args.tasks},
        "metaplastic": {"m": m, "bn_stats": bn_stats},
    })
    tasks = task_stream(exp.dataset, exp.tasks, exp.seed)
    t0 = time.perf_counter()
    result = train(exp, tasks, "cpu", progress=False)
    seconds = time.perf_counter() - t0
    final = result.tasks[result.tasks["after_task"] == args.tasks - 1].set_index("task")
    row: dict[str, object] = {"m": m, "bn_stats": bn_stats, "seed": seed,
                              "first_task": float(final.loc[0, "test_acc"]),
                              "last_task": float(final.loc[args.tasks - 1, "test_acc"]),
                              "mean_all": float(final["test_acc"].mean()), "seconds": seconds}
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=3)
    p.add_argument("--epochs", type=int, default=8, help="epochs per task")
    p.add_argument("--hidden", type=int, nargs="+", default=[512, 512])
    p.add_argument("--m", type=float, nargs="+", default=[0.0, 1.35, 4.0, 10.0, 20.0])
    p.add_argument("--bn-stats", nargs="+", default=["batch"], choices=["batch", "running"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--lr", type=float, default=0.005, help="Laborieux et al. 2021 README")
    p.add_argument("--decay", type=float, default=1e-7, help="Laborieux et al. 2021 README")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None, help="CSV of every run")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)

    rows = []
    for bn_stats in args.bn_stats:
        for m in args.m:
            for seed in args.seeds:
                row = run(m, bn_stats, seed, args)
                rows.append(row)
                print(f"bn={bn_stats} m={m:g} seed={seed}: first task {row['first_task']:.3f} "
                      f"last task {row['last_task']:.3f} mean {row['mean_all']:.3f} "
                      f"({row['seconds']:.0f} s)", flush=True)
    df = pd.DataFrame(rows)
    if args.out is not None:
        df.to_csv(args.out, index=False)
    summary = (df.groupby(["bn_stats", "m"])[["first_task", "last_task", "mean_all"]]
               .agg(["mean", "std"]).round(3))
    print(summary.to_string())
    for bn_stats, part in df.groupby("bn_stats"):
        base = part[part["m"] == 0.0][["first_task", "last_task"]].mean()
        if base.empty or base.isna().any():
            continue
        for m, g in part[part["m"] > 0].groupby("m"):
            mean = g[["first_task", "last_task"]].mean()
            print(f"bn={bn_stats} m={m:g}: first-task ratio vs m=0 "
                  f"{mean['first_task'] / base['first_task']:.2f}x, last-task difference "
                  f"{100 * (mean['last_task'] - base['last_task']):+.1f} points")


if __name__ == "__main__":
    main()
