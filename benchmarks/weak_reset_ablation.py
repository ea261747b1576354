"""Weak-RESET BNN ablation (Majumdar et al., IEEE TED 2021) and its epoch cost.

ablation: the binarized 784-H-10 MLP trained with ``weak_reset_bnn`` on mnist5k with the
hfo2-weak-reset card: all imperfections (D2D, RTN, 1/f, the mean's knee), each one removed in
turn, all removed, and the same network trained with ``standard`` Adam (no devices). The paper's
conclusion (abstract): D2D variability is the most detrimental imperfection.

speed: training-loop time of one weak_reset_bnn epoch ÷ that of the same network trained with
``standard`` (Adam), same process, interleaved, median of ``--repeats``.

    python benchmarks/weak_reset_ablation.py ablation --hidden 256 --epochs 10 --seeds 0 1 2
    python benchmarks/weak_reset_ablation.py speed --hidden 256 --repeats 5 --variants all \
        --kernels eager compiled
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from dse.config import Experiment
from dse.data import batches, load_dataset
from dse.nn import ModelSpec, build_model
from dse.pipeline.artifacts import load_card
from dse.train import ALGORITHMS, Trainer, train

REPO = Path(__file__).resolve().parents[1]
CARD = "hfo2-weak-reset"
SWITCHES = ("d2d", "rtn", "pink", "nonlinearity")
VARIANTS: dict[str, dict[str, bool]] = {
    "all": {},
    **{f"no-{s}": {s: False} for s in SWITCHES},
    "none": {s: False for s in SWITCHES},
    "mean-d2d": {"rtn": False, "pink": False},  # the reference MLP's setting (MLP/utils.py)
}


def experiment(variant: str, args: argparse.Namespace, seed: int,
               kernels: str | None = None) -> Experiment:
    entry: dict[str, Any] = {"dataset": "mnist5k", "model": "mlp", "hidden": args.hidden,
                             "precision": "binary", "epochs": args.epochs, "batch_size": 100,
                             "seed": seed, "lr_decay": args.lr_decay,
                             "kernels": kernels or args.kernels[0]}
    if variant == "standard":
        entry.update(algorithm="standard", lr=0.005)
    else:
        entry.update(algorithm="weak_reset_bnn", lr=args.lr, device_card=CARD,
                     weak_reset=VARIANTS[variant])
    return Experiment.from_dict(f"bench-wr-{variant}", entry,
                                devices={CARD: {"card": f"config/devices/{CARD}.yaml"}})


def ablation(args: argparse.Namespace) -> pd.DataFrame:
    data = load_dataset("mnist5k")
    cards = {CARD: load_card(REPO / "config" / "devices" / f"{CARD}.yaml")}
    rows = []
    for seed in args.seeds:
        for variant in args.variants:
            t0 = time.perf_counter()
            res = train(experiment(variant, args, seed), [data], "cpu", cards=cards,
                        progress=False)
            h = res.history
            rows.append({"variant": variant, "seed": seed, "test_acc": float(h.test_acc.iloc[-1]),
                         "best_acc": float(h.test_acc.max()), "pulses": int(h.pulses_down.sum()),
                         "seconds": time.perf_counter() - t0})
            logging.info("%s", rows[-1])
    table = pd.DataFrame(rows)
    summary = table.groupby("variant", sort=False).agg(
        test_acc=("test_acc", "mean"), sd=("test_acc", "std"), best_acc=("best_acc", "mean"),
        pulses=("pulses", "mean"), seconds=("seconds", "mean")).reset_index()
    ref = float(summary.loc[summary["variant"] == "all", "test_acc"].iloc[0]) \
        if "all" in set(summary["variant"]) else float("nan")
    summary["gain_vs_all"] = summary["test_acc"] - ref
    print(summary.to_markdown(index=False, floatfmt=".4g"))
    return table


def _trainer(exp: Experiment, data: Any, cards: dict[str, Any]) -> Trainer:
    gen = torch.Generator().manual_seed(exp.seed)
    spec = ModelSpec(model="mlp", input_shape=data.input_shape, classes=data.classes,
                     precision="binary", hidden=list(exp.hidden))
    tr = ALGORITHMS[exp.algorithm](exp, build_model(spec, gen), torch.device("cpu"), gen, cards)
    tr.start_task(0)
    tr.model.train()
    return tr


def _epoch(tr: Trainer, data: Any, gen: torch.Generator) -> float:
    t0 = time.perf_counter()
    for xb, yb in batches(data.x_train, data.y_train, 100, gen):
        tr.step(xb, yb)
    return time.perf_counter() - t0


def speed(args: argparse.Namespace) -> pd.DataFrame:
    """Every ``--kernels`` path and the standard network, epoch by epoch interleaved."""
    data = load_dataset("mnist5k")
    cards = {CARD: load_card(REPO / "config" / "devices" / f"{CARD}.yaml")}
    rows = []
    for variant in args.variants:
        if variant == "standard":
            continue
        wrs = {k: _trainer(experiment(variant, args, 0, k), data, cards) for k in args.kernels}
        st = _trainer(experiment("standard", args, 0), data, cards)
        gen = torch.Generator().manual_seed(1)
        for tr in (*wrs.values(), st):
            _epoch(tr, data, gen)  # warm-up (compiled: the compile or the cache load)
        runs: dict[str, list[float]] = {k: [] for k in (*wrs, "standard")}
        for _ in range(args.repeats):
            for k, tr in (*wrs.items(), ("standard", st)):
                runs[k].append(_epoch(tr, data, gen))
        for k in wrs:
            ratios = [a / b for a, b in zip(runs[k], runs["standard"], strict=True)]
            rows.append({"variant": variant, "kernels": k,
                         "hidden": "-".join(map(str, args.hidden)), "threads": args.threads,
                         "weak_reset_s": statistics.median(runs[k]),
                         "standard_s": statistics.median(runs["standard"]),
                         "ratio": statistics.median(ratios), "ratio_min": min(ratios),
                         "ratio_max": max(ratios)})
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False, floatfmt=".3g"))
    return table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["ablation", "speed"])
    p.add_argument("--variants", nargs="+", default=[*VARIANTS, "standard"],
                   choices=[*VARIANTS, "standard"])
    p.add_argument("--hidden", type=int, nargs="+", default=[256])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=8.0,
                   help="device lr (the reference's noise-free MLP run used 8)")
    p.add_argument("--kernels", nargs="+", default=["eager"], choices=["eager", "compiled"],
                   help="kernel paths of the device models (issue 15; speed: each, "
                   "interleaved; ablation: the first)")
    p.add_argument("--lr-decay", type=float, default=1.0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="CSV of every run")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("dse").setLevel(logging.WARNING)
    table = ablation(args) if args.what == "ablation" else speed(args)
    out = args.out or REPO / "results" / "benchmarks" / f"weak_reset_{args.what}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)


if __name__ == "__main__":
    main()
