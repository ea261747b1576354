"""Fidelity benchmark of error-aware training (Hirtzlin et al., AICAS 2019, arXiv 1904.03652;
code Laborieux-Axel/Quantized_VGG).

Trains the binarized 784-512-512-10 MLP on mnist5k twice, without weight errors and with sign
flips at ``--train-ber`` on every training forward pass, then evaluates both under independent
weight sign flips (``dse.nn.faults``) over a sweep of bit-error rates, ``--repeats`` fault maps
per rate, all maps of one rate in one vectorised pass (``torch.func.functional_call`` +
``torch.vmap``). The goal recorded in benchmarks/README.md: at BER 0.2 the error-aware network is
>= 10 points more accurate than the plain one.

    python benchmarks/error_aware.py --epochs 20 --train-ber 0.2 --repeats 20
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import pandas as pd
import torch
from torch.func import functional_call

from dse.config import Experiment
from dse.data import load_dataset
from dse.nn import QNet, evaluate
from dse.nn.faults import apply_weight_errors
from dse.train import train

BERS = [0.0, 1e-4, 1e-3, 1e-2, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4]


@torch.no_grad()
def accuracy_under_errors(model: QNet, x: torch.Tensor, y: torch.Tensor, ber: float,
                          repeats: int, generator: torch.Generator) -> torch.Tensor:
    """Test accuracy of ``repeats`` independent fault maps at ``ber`` (eval mode, one pass)."""
    model.eval()
    stacks = {}
    for name, layer in model.quant_layers():
        wq = layer.quantized_weight().detach()  # eval mode: no training-time errors
        maps = wq.expand(repeats, *wq.shape)
        stacks[f"body.{name}.weight"] = apply_weight_errors(maps, layer.precision, ber,
                                                            wq.dim(), generator)

    def logits(params: dict[str, torch.Tensor]) -> torch.Tensor:
        return functional_call(model, params, (x,))

    out = torch.vmap(logits)(stacks)  # (repeats, N, classes); ±1 weights binarize to themselves
    return (out.argmax(-1) == y).double().mean(-1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--hidden", type=int, nargs="+", default=[512, 512])
    p.add_argument("--train-ber", type=float, default=0.2)
    p.add_argument("--bers", type=float, nargs="+", default=BERS)
    p.add_argument("--repeats", type=int, default=20, help="fault maps per BER")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None, help="CSV of every fault map")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)

    data = load_dataset("mnist5k")
    rows = []
    for label, ber_train in (("plain", 0.0), ("error-aware", args.train_ber)):
        exp = Experiment.from_dict(label, {
            "dataset": "mnist5k", "model": "mlp", "hidden": args.hidden, "precision": "binary",
            "epochs": args.epochs, "lr": 0.005, "batch_size": 100, "seed": args.seed,
            "train_ber": ber_train})
        t0 = time.perf_counter()
        model = train(exp, [data], progress=False).model
        print(f"{label}: trained in {time.perf_counter() - t0:.0f} s", flush=True)
        clean = accuracy_under_errors(model, data.x_test, data.y_test, 0.0, 1,
                                      torch.Generator().manual_seed(0))
        assert float(clean[0]) == evaluate(model, data.x_test, data.y_test)  # evaluator check
        gen = torch.Generator().manual_seed(args.seed + 100)
        for ber in args.bers:
            acc = accuracy_under_errors(model, data.x_test, data.y_test, ber, args.repeats, gen)
            rows += [{"training": label, "train_ber": ber_train, "eval_ber": ber, "repeat": r,
                      "accuracy": float(a)} for r, a in enumerate(acc)]
    df = pd.DataFrame(rows)
    if args.out is not None:
        df.to_csv(args.out, index=False)
    table = (df.groupby(["eval_ber", "training"])["accuracy"].agg(["mean", "std"])
             .unstack("training"))
    print(table.round(4).to_string())
    at = df[df["eval_ber"] == args.train_ber].groupby("training")["accuracy"].mean()
    if {"plain", "error-aware"} <= set(at.index):
        print(f"at BER {args.train_ber:g}: error-aware {at['error-aware']:.4f} vs plain "
              f"{at['plain']:.4f} ({100 * (at['error-aware'] - at['plain']):+.1f} points)")


if __name__ == "__main__":
    main()
