"""ECG memory–accuracy trade-off (Penkovsky et al., DATE 2020, doi 10.23919/DATE48585.2020.9116439):
``ecg-cnn`` in float, with only its classifier binarised, and binarised whole; weight memory
(bits), clean test accuracy (and macro-averaged recall over the AAMI classes), and the accuracy
under bit errors on the RRAM 2T2R chip through the inject recipe (``dse.pipeline.recipes``:
direct BERs plus the chip's operating points from its device cards, as ``dse deploy`` runs it).

The float network is not deployable on a binary chip: its row gives the clean accuracy only.
Memory counts weights only (32 bits per float weight, 1 per binary weight, dse.nn.memory);
BatchNorm parameters are listed apart.

    python benchmarks/ecg_memory.py                                  # ecg-synthetic (SYNTHETIC)
    python benchmarks/ecg_memory.py --dataset mitbih --data-root data --epochs 10
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from dse.chip.inject import summarize
from dse.chip.mapping import map_model
from dse.config import Experiment
from dse.data import load_dataset
from dse.nn.memory import memory_table
from dse.pipeline import InjectSettings, Layout
from dse.pipeline.artifacts import load_chip, load_model, save_model
from dse.pipeline.recipes import chip_models, inject_chip
from dse.train import train

CHIP = "rram-2t2r-pcsa-130nm"
CONFIG = {"data_root": "data", "download": False, "seed": 0,
          "devices": {"hfo2-2t2r": {"card": "config/devices/hfo2-2t2r.yaml"},
                      "pcsa-130nm": {"card": "config/devices/pcsa-130nm.yaml"}},
          "chips": {CHIP: f"config/chips/{CHIP}.yaml"}}


def macro_recall(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, classes: int) -> float:
    """Mean over the classes present of the fraction of their beats classified right."""
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
    recalls = [float((pred[y == c] == c).float().mean()) for c in range(classes)
               if bool((y == c).any())]
    return sum(recalls) / len(recalls)


def run(binarize: str, seed: int, args: argparse.Namespace, out: Path) -> list[dict]:
    exp = Experiment.from_dict(f"ecg-{binarize}", {
        "dataset": args.dataset, "model": "ecg-cnn", "width": args.width, "hidden": args.hidden,
        "precision": "binary", "binarize": binarize, "epochs": args.epochs, "seed": seed,
        "lr": args.lr})
    data = load_dataset(args.dataset, args.data_root)
    t0 = time.perf_counter()
    result = train(exp, [data], "cpu", progress=False)
    seconds = time.perf_counter() - t0
    mem = memory_table(result.model).iloc[-1]
    base = {"binarize": binarize, "seed": seed, "weight_bits": int(mem["bits"]),
            "weight_kB": mem["bits"] / 8 / 1024, "bn_bits": int(mem["other_bits"]),
            "clean": result.test_accuracy,
            "macro_recall": macro_recall(result.model, data.x_test, data.y_test, data.classes),
            "train_s": seconds}
    if binarize == "none":
        return [base]
    trained = load_model(save_model(result, out / f"{binarize}-{seed}"))
    chip = load_chip(CONFIG["chips"][CHIP])
    mapping = map_model(trained.model, chip, experiment=exp.name)
    models = chip_models(CONFIG, chip, Layout.at(out / "results"))
    settings = InjectSettings(repeats=args.repeats, seed=seed, ber=tuple(args.ber),
                              operating_points="card")
    config = {**CONFIG, "data_root": args.data_root}
    summary = summarize(inject_chip(config, trained, mapping, chip, models, settings))
    rows = []
    for _, r in summary.iterrows():
        point = "direct" if pd.isna(r.get("i_prog", float("nan"))) else \
            f"i_prog={r['i_prog']:.1e} vdd={r.get('vdd', float('nan')):.2f}"
        rows.append({**base, "point": point, "ber": r["ber"], "mean": r["mean"],
                     "ci95_low": r["ci95_low"], "ci95_high": r["ci95_high"]})
    return rows


def figure(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    clean = table.groupby("binarize", sort=False).agg(bits=("weight_bits", "first"),
                                                     clean=("clean", "mean"))
    a.scatter(clean["bits"] / 8 / 1024, 100 * clean["clean"])
    for name, r in clean.iterrows():
        a.annotate(str(name), (r["bits"] / 8 / 1024, 100 * r["clean"]),
                   textcoords="offset points", xytext=(5, 5))
    a.set_xscale("log")
    a.set(xlabel="weight memory (kB)", ylabel="clean test accuracy (%)",
          title="memory vs accuracy")
    direct = table[(table["point"] == "direct") & (table["ber"] > 0)]
    for name, d in direct.groupby("binarize", sort=False):
        d = d.groupby("ber")["mean"].mean()
        b.plot(d.index, 100 * d.values, marker="o", label=str(name))
    b.set_xscale("log")
    b.set(xlabel="bit error rate", ylabel="test accuracy (%)", title=f"bit errors on {CHIP}")
    b.legend(title="binarize")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="ecg-synthetic")
    p.add_argument("--data-root", default="data")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--hidden", type=int, nargs="+", default=[64])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.005)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--ber", type=float, nargs="+", default=[0.0, 1e-3, 1e-2, 3e-2, 1e-1])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/ecg_memory.csv"))
    p.add_argument("--figure", type=Path, default=Path("benchmarks/figures/ecg_memory.png"))
    args = p.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for binarize in ("none", "classifier", "whole"):
                rows += run(binarize, seed, args, Path(tmp))
    table = pd.DataFrame(rows)
    table.to_csv(args.out, index=False)
    figure(table, args.figure)
    clean = table.groupby("binarize", sort=False)[["weight_bits", "weight_kB", "bn_bits",
                                                   "clean", "macro_recall", "train_s"]].mean()
    print(clean.to_markdown(floatfmt=".4g"))
    direct = table[table["point"] == "direct"].pivot_table(index="ber", columns="binarize",
                                                            values="mean")
    print(direct.to_markdown(floatfmt=".4f"))
    ops = table[table["point"].fillna("direct") != "direct"]
    if len(ops):
        print(ops.pivot_table(index=["point", "ber"], columns="binarize",
                              values="mean").to_markdown(floatfmt=".4g"))


if __name__ == "__main__":
    main()
