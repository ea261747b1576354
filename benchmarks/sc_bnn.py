"""Stochastic-computing BNN (Hirtzlin et al., IEEE Access 2019, arXiv 1906.00915): accuracy vs L
and the area/energy comparison against a conventional BNN (fixed-point first layer).

Accuracy: the binary 784-H-H-10 MLP trained on mnist5k (default; ``--dataset fashion`` reads
Fashion-MNIST from ``--data-root``) with

* ``real``: the conventional BNN, real pixels into the first layer;
* ``stochastic`` (first-layer pre-activations accumulated over L binary passes) and
  ``stochastic_output`` (L complete binary passes, class scores averaged), trained with the
  bitstream in the loop (fresh bits every forward pass, our reading of the paper's "adapted"
  training);
* ``no adaptation``: the real-pixel network evaluated with L binary passes of unipolar bits
  {0, 1} (mean = the pixel) accumulated in its first layer, i.e. trained without the bitstream.

Each test accuracy is the mean over ``--eval-repeats`` fresh bitstreams (its std is reported).
Cost: :func:`dse.chip.sc_cost.compare_first_layer` on the ST-MRAM chip card (the paper's
technology) and the RRAM 2T2R chip.

    python benchmarks/sc_bnn.py --lengths 1 2 4 8 16 --seeds 0 1
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd
import torch

from dse.chip.mapping import layer_specs
from dse.chip.sc_cost import ScAssumptions, compare_first_layer
from dse.config import Experiment
from dse.data import load_dataset
from dse.nn import evaluate
from dse.pipeline.artifacts import load_chip
from dse.train import train

ROOT = Path(__file__).resolve().parents[1]


class UnipolarPasses(torch.nn.Module):
    """L unipolar binary passes accumulated in the first layer = one pass on Binomial(L, p)/L."""

    def __init__(self, length: int, seed: int) -> None:
        super().__init__()
        self.length = length
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = torch.full_like(x, float(self.length))
        return torch.binomial(n, x.clamp(0, 1), generator=self.generator) / self.length


def _accuracy(model: torch.nn.Module, data: object, repeats: int) -> tuple[float, float]:
    accs = []
    for r in range(repeats):
        enc = model.encoder  # type: ignore[attr-defined]
        if hasattr(enc, "reseed"):
            enc.reseed(1000 + r)
        accs.append(evaluate(model, data.x_test, data.y_test))  # type: ignore[attr-defined]
    t = torch.tensor(accs)
    return float(t.mean()), float(t.std()) if repeats > 1 else 0.0


def accuracy_table(args: argparse.Namespace) -> pd.DataFrame:
    data = load_dataset(args.dataset, args.data_root)
    rows = []
    for seed in args.seeds:
        base = {"dataset": args.dataset, "model": "mlp", "hidden": args.hidden,
                "precision": "binary", "epochs": args.epochs, "batch_size": 100,
                "lr": args.lr, "seed": seed}
        real = train(Experiment.from_dict("real", {**base, "input": "real"}), [data],
                     progress=False)
        rows.append({"design": "real (conventional BNN)", "L": None, "seed": seed,
                     "test_acc": real.test_accuracy, "std": 0.0})
        for length in args.lengths:
            model = real.model
            saved = model.encoder
            model.encoder = UnipolarPasses(length, seed)
            acc, _ = _accuracy(model, data, 1)
            model.encoder = saved
            rows.append({"design": "no adaptation (real-trained, L passes)", "L": length,
                         "seed": seed, "test_acc": acc, "std": 0.0})
            for design in args.designs:
                exp = Experiment.from_dict(design, {**base, "input": design,
                                                    "bitstream_length": length})
                res = train(exp, [data], progress=False)
                acc, std = _accuracy(res.model, data, args.eval_repeats)
                rows.append({"design": design, "L": length, "seed": seed, "test_acc": acc,
                             "std": std})
                logging.info("%s L=%d seed %d: %.4f", design, length, seed, acc)
    return pd.DataFrame(rows)


def cost_tables(args: argparse.Namespace) -> dict[str, pd.DataFrame]:
    from dse.nn import ModelSpec, build_model

    net = build_model(ModelSpec("mlp", (1, 28, 28), 10, "binary", hidden=list(args.hidden)))
    out = {}
    for name in ("stt-mram-binary", "rram-2t2r-pcsa-130nm"):
        chip = load_chip(ROOT / "config" / "chips" / f"{name}.yaml")
        out[name] = compare_first_layer(layer_specs(net), chip, list(args.lengths))
        out[f"{name}, one first-layer accumulator per output (per_tile=False)"] = \
            compare_first_layer(layer_specs(net), chip, list(args.lengths),
                                ScAssumptions(per_tile=False))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--data-root", default="data")
    p.add_argument("--lengths", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--hidden", type=int, nargs="+", default=[512, 512])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.005)
    p.add_argument("--eval-repeats", type=int, default=3)
    p.add_argument("--designs", nargs="+", default=["stochastic", "stochastic_output"],
                   choices=["stochastic", "stochastic_output"])
    p.add_argument("--cost-only", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name, t in cost_tables(args).items():
        print(f"\n### cost, {name}, 784-{'-'.join(map(str, args.hidden))}-10\n")
        print(t.to_markdown(index=False, floatfmt=".4g"))
    if args.cost_only:
        return
    acc = accuracy_table(args)
    summary = (acc.groupby(["design", "L"], dropna=False)["test_acc"]
               .agg(["mean", "std", "count"]).reset_index())
    print(f"\n### accuracy vs L, {args.dataset}, {args.epochs} epochs\n")
    print(summary.to_markdown(index=False, floatfmt=".4f"))


if __name__ == "__main__":
    main()
