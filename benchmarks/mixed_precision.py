"""Fidelity and speed of ``mixed_precision`` (Nandakumar et al. 2020; Wu et al. 2023).

fidelity: LeNet and the 784-512-512-10 MLP on mnist5k with the default bulk-switching
(soft-bounds) card versus the same float network trained the same way (SGD on the weights at the
same lr, plain Adam on BatchNorm, same batches and seed: ``float-sgd``); also the repository's
float Adam training (``float-adam``), a mixed-precision run with a fresh read every step
(``mp-read-step``) and one on an ideal device (no D2D, C2C or read noise: ``mp-ideal``).
Goal (issue 4): mixed-precision test accuracy within 1 point of ``float-sgd``.

speed: training-loop time of one mixed_precision epoch ÷ that of the same float network
(``standard``, Adam), same process, interleaved, median of ``--repeats`` (goal ≤ 2).

    python benchmarks/mixed_precision.py fidelity --epochs 10 --seeds 0 1 2 --threads 1
    python benchmarks/mixed_precision.py speed --repeats 7 --threads 1
    python benchmarks/mixed_precision.py speed --models mlp --mp '{"threshold": 4}'
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import time
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import torch
import torch.nn.functional as F

from dse.config import Experiment
from dse.data import batches, load_dataset
from dse.nn import ModelSpec, build_model
from dse.pipeline.artifacts import load_card
from dse.train import ALGORITHMS, Trainer, train

REPO = Path(__file__).resolve().parents[1]
CARD = "bulk-switching"
MODELS = {"lenet": {"model": "lenet"}, "mlp": {"model": "mlp", "hidden": [512, 512]}}
IDEAL = {"d2d": False, "c2c": False, "read_noise": False}


class FloatSGD(Trainer):
    """The float network trained like mixed_precision without devices: SGD (lr) on the weights,
    plain Adam (bn_lr) on BatchNorm."""

    name: ClassVar[str] = "float_sgd"

    def start_task(self, task: int) -> None:
        weights = [layer.weight for _, layer in self.model.quant_layers()]
        ids = {id(w) for w in weights}
        self.sgd = torch.optim.SGD(weights, lr=self.exp.lr)
        self.optimizer = torch.optim.Adam([p for p in self.model.parameters() if id(p) not in ids],
                                          lr=float(self.exp.mixed_precision.get("bn_lr", 0.005)))

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.sgd.zero_grad(set_to_none=True)
        assert self.optimizer is not None
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        self.sgd.step()
        self.optimizer.step()
        return loss.detach(), logits.detach()


ALGORITHMS[FloatSGD.name] = FloatSGD  # this benchmark's baseline only


def experiment(model: str, variant: str, args: argparse.Namespace, seed: int) -> Experiment:
    entry: dict[str, Any] = {"dataset": "mnist5k", **MODELS[model], "precision": "float",
                             "epochs": args.epochs, "batch_size": 100, "seed": seed,
                             "lr": args.lr, "device_card": CARD,
                             "algorithm": "mixed_precision",
                             "mixed_precision": json.loads(args.mp),
                             "kernels": args.kernels}
    if variant == "float-adam":
        entry.update(algorithm="standard", lr=0.005, device_card=None)
    elif variant == "mp-read-step":
        entry["mixed_precision"]["read_noise"] = "step"
    elif variant == "mp-ideal":
        entry["mixed_precision"]["device"] = IDEAL
    exp = Experiment.from_dict(f"bench-{model}-{variant}", entry,
                               devices={CARD: {"card": f"config/devices/{CARD}.yaml"}})
    if variant == "float-sgd":
        exp = dataclasses.replace(exp, algorithm=FloatSGD.name, device_card=None)
    return exp


def fidelity(args: argparse.Namespace) -> pd.DataFrame:
    data = load_dataset("mnist5k")
    cards = {CARD: load_card(REPO / "config" / "devices" / f"{CARD}.yaml")}
    rows = []
    for model in args.models:
        for seed in args.seeds:
            for variant in args.variants:
                exp = experiment(model, variant, args, seed)
                t0 = time.perf_counter()
                res = train(exp, [data], "cpu", cards=cards, progress=False)
                h = res.history
                rows.append({"model": model, "variant": variant, "seed": seed, "mp": args.mp,
                             "test_acc": float(h["test_acc"].iloc[-1]),
                             "best_acc": float(h["test_acc"].max()),
                             "pulses": int(h["pulses_up"].sum() + h["pulses_down"].sum()),
                             "seconds": time.perf_counter() - t0})
                logging.info("%s", rows[-1])
    table = pd.DataFrame(rows)
    summary = table.groupby(["model", "variant"], sort=False).agg(
        test_acc=("test_acc", "mean"), sd=("test_acc", "std"), best_acc=("best_acc", "mean"),
        pulses=("pulses", "mean"), seconds=("seconds", "mean")).reset_index()
    ref = summary[summary["variant"] == "float-sgd"].set_index("model")["test_acc"]
    summary["vs_float_sgd"] = summary["test_acc"] - summary["model"].map(ref)
    print(summary.to_markdown(index=False, floatfmt=".4g"))
    return table


def _trainer(exp: Experiment, data: Any, cards: dict[str, Any]) -> Trainer:
    gen = torch.Generator().manual_seed(exp.seed)
    spec = ModelSpec(model=exp.model, input_shape=data.input_shape, classes=data.classes,
                     precision="float", hidden=list(exp.hidden))
    tr = ALGORITHMS[exp.algorithm](exp, build_model(spec, gen), torch.device("cpu"), gen, cards)
    tr.start_task(0)
    tr.model.train()
    return tr


def _epoch(tr: Trainer, data: Any, gen: torch.Generator) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    for xb, yb in batches(data.x_train, data.y_train, 100, gen):
        tr.step(xb, yb)
    tr.end_epoch(1)
    return time.perf_counter() - t0, time.process_time() - c0


def speed(args: argparse.Namespace) -> pd.DataFrame:
    data = load_dataset("mnist5k")
    cards = {CARD: load_card(REPO / "config" / "devices" / f"{CARD}.yaml")}
    rows = []
    for model in args.models:
        mp = _trainer(experiment(model, "mp", args, 0), data, cards)
        fl = _trainer(experiment(model, "float-adam", args, 0), data, cards)
        gen = torch.Generator().manual_seed(1)
        _epoch(mp, data, gen), _epoch(fl, data, gen)  # warm-up (and the initial device write)
        runs = []
        for _ in range(args.repeats):
            runs.append((_epoch(mp, data, gen), _epoch(fl, data, gen)))
        wall = [a[0] / b[0] for a, b in runs]
        cpu = [a[1] / b[1] for a, b in runs]
        rows.append({"model": model, "threads": args.threads, "mp": args.mp,
                     "mp_s": statistics.median(a[0] for a, _ in runs),
                     "float_s": statistics.median(b[0] for _, b in runs),
                     "ratio_wall": statistics.median(wall), "ratio_cpu": statistics.median(cpu),
                     "ratio_wall_min": min(wall), "ratio_wall_max": max(wall)})
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False, floatfmt=".3g"))
    return table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["fidelity", "speed"])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--variants", nargs="+",
                   default=["float-adam", "float-sgd", "mp", "mp-read-step", "mp-ideal"])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.1, help="SGD rate of the weights (eta)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--kernels", default="eager", choices=["eager", "compiled"],
                   help="kernel path of the device models (issue 15)")
    p.add_argument("--mp", default="{}", help="mixed_precision settings of the mp variants "
                   "(JSON, e.g. '{\"threshold\": 2}')")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="CSV of every run")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("dse").setLevel(logging.WARNING)
    table = fidelity(args) if args.what == "fidelity" else speed(args)
    out = args.out or REPO / "results" / "benchmarks" / f"mixed_precision_{args.what}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)


if __name__ == "__main__":
    main()
