"""Bit-error tolerance of binarized / ternarized MLPs on mnist5k: test accuracy versus weight BER
from 1e-5 to 0.3, and the BER at which the mean accuracy has dropped by 1 point, for binary and
ternary weights, narrow (784-128-128-10) and wide (784-512-512-10) networks.

    python benchmarks/ber_tolerance.py [--epochs 10] [--repeats 20] [--threads 2]
                                       [--out results/benchmarks/ber_tolerance.csv]

Published claim (abstracts, Hirtzlin et al., AICAS 2019, arXiv 1904.03652; NANOARCH 2019, arXiv
1908.04085): "little impact" up to BER 1e-4 for RRAM BNNs
(Hirtzlin et al., AICAS 2019) and up to 1e-3 for ST-MRAM BNNs (NANOARCH 2019), on MNIST and
CIFAR-10 with larger networks and full training; their accuracy-vs-BER tables are NOT FOUND.
Standard training (no error-aware training); every fault map is drawn by dse.chip.inject.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dse.chip.inject import inject, summarize
from dse.chip.mapping import map_model
from dse.config import Experiment
from dse.data import task_stream
from dse.pipeline.artifacts import load_chip
from dse.train import train

CHIPS = {"binary": "config/chips/rram-2t2r-pcsa-130nm.yaml",
         "ternary": "config/chips/rram-2t2r-pcsa-130nm-ternary.yaml"}
GRID = [0.0, *np.logspace(-5, np.log10(0.3), 17).tolist()]


def ber_at_drop(summary: pd.DataFrame, drop: float) -> float:
    """Smallest BER at which the mean accuracy has dropped by ``drop`` (log-BER interpolation
    between the grid points around the first crossing; NaN if never)."""
    s = summary[summary["ber"] > 0].sort_values("ber")
    b, d = s["ber"].to_numpy(), s["drop"].to_numpy()
    above = np.nonzero(d >= drop)[0]
    if len(above) == 0:
        return float("nan")
    i = above[0]
    if i == 0:
        return float(b[0])
    t = (drop - d[i - 1]) / (d[i] - d[i - 1])
    return float(10 ** (np.log10(b[i - 1]) + t * (np.log10(b[i]) - np.log10(b[i - 1]))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--widths", type=int, nargs="+", default=[128, 512])
    ap.add_argument("--precisions", nargs="+", default=["binary", "ternary"])
    ap.add_argument("--out", type=Path, default=Path("results/benchmarks/ber_tolerance.csv"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)

    tasks = task_stream("mnist5k", None, args.seed)
    x, y = tasks[0].x_test, tasks[0].y_test
    rows, curves = [], []
    for precision in args.precisions:
        chip = load_chip(CHIPS[precision])
        for width in args.widths:
            name = f"{precision}-{width}"
            exp = Experiment.from_dict(name, {"dataset": "mnist5k", "hidden": [width, width],
                                              "precision": precision, "epochs": args.epochs,
                                              "batch_size": 100, "lr": 0.005},
                                       seed=args.seed)
            t0 = time.perf_counter()
            model = train(exp, tasks, progress=False).model.eval()
            t1 = time.perf_counter()
            mapping = map_model(model, chip)
            table = inject(model, mapping, x, y, GRID, args.repeats,
                           torch.Generator().manual_seed(args.seed), batch=50)
            t2 = time.perf_counter()
            s = summarize(table)
            s.insert(0, "network", name)
            curves.append(s)
            at = s.set_index("ber")["mean"]
            rows.append({"network": f"784-{width}-{width}-10 {precision}",
                         "clean": table.attrs["clean_accuracy"],
                         "acc@1e-4": float(np.interp(-4, np.log10(s["ber"][1:]), at[1:])),
                         "acc@1e-3": float(np.interp(-3, np.log10(s["ber"][1:]), at[1:])),
                         "BER at -1 point": ber_at_drop(s, 0.01),
                         "BER at -5 points": ber_at_drop(s, 0.05),
                         "train s": t1 - t0, "inject s": t2 - t1})
            print(f"{name}: clean {rows[-1]['clean']:.4f}, -1 point at BER "
                  f"{rows[-1]['BER at -1 point']:.3g}", flush=True)
    out = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pd.concat(curves).to_csv(args.out, index=False)
    print()
    print(out.to_markdown(index=False, floatfmt=".4g"))
    print(f"\ncurves (mean, 95% CI per BER): {args.out}")


if __name__ == "__main__":
    main()
