"""Mixed-precision epoch ÷ plain float epoch on aihwkit's side-by-side harness (issue 15).

The 784-256-10 sigmoid MLP without BatchNorm (digital biases), SGD lr 0.1, batch 16, mnist5k,
10 epochs, 1 torch thread; every run in its own process, the variants of one seed alternated
(float, mp, float, mp, ...), 5 seeds. Per run: the median epoch time of epochs 2..E (epoch 1
also holds the compile or the cache load of ``kernels: compiled``, reported apart as
``first_epoch_s`` and ``compile_s``), the last test accuracy, and the graphs compiled.

Variants: ``float`` (plain SGD on weights and biases, no devices), ``mp`` (``mixed_precision``
with the ``bulk-switching`` card and the schema defaults), ``mp-52.5`` (the same with
``weight_range`` 52.5: aihwkit's pulse threshold in weight units), each mixed-precision variant
with ``--kernels`` eager and/or compiled. Ratios: a run's median epoch ÷ the median epoch of the
float run of the same seed (the adjacent process). The kernel cache is the user's
(``~/.cache/dse/inductor`` or ``$DSE_KERNEL_CACHE``); ``--cold`` gives every compiled run a fresh
empty cache directory instead (the cold-compile figures).

    python benchmarks/mp_batch16.py --seeds 0 1 2 3 4 --kernels eager compiled
    python benchmarks/mp_batch16.py --seeds 0 --variants mp --kernels compiled --cold
    python benchmarks/mp_batch16.py --device cuda          # skips cleanly without a GPU
    python benchmarks/mp_batch16.py --seeds 0 1 2 --epochs 3 --step flat reference
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CARD = "bulk-switching"
VARIANTS = {"float": None, "mp": {}, "mp-52.5": {"weight_range": 52.5}}


def _entry(variant: str, kernels: str, seed: int, epochs: int, batch: int) -> dict[str, Any]:
    entry: dict[str, Any] = {"dataset": "mnist5k", "model": "mlp", "hidden": [256],
                             "activation": "sigmoid", "batchnorm": False, "precision": "float",
                             "epochs": epochs, "batch_size": batch, "lr": 0.1, "seed": seed,
                             "kernels": kernels}
    if VARIANTS[variant] is None:
        entry["algorithm"] = "standard"  # replaced by PlainSGD below
    else:
        entry.update(algorithm="mixed_precision", device_card=CARD,
                     mixed_precision=dict(VARIANTS[variant]))
    return entry


def worker(args: argparse.Namespace) -> None:
    """One training run in this process; prints one JSON line."""
    import dataclasses

    import torch
    from mp_step_profile import PlainSGD  # type: ignore[import-not-found]

    from dse.config import Experiment
    from dse.data import load_dataset
    from dse.devices import kernels
    from dse.pipeline.artifacts import load_card
    from dse.train import ALGORITHMS, train

    ALGORITHMS[PlainSGD.name] = PlainSGD
    torch.set_num_threads(args.threads)
    entry = _entry(args.variant, args.kernels[0], args.seeds[0], args.epochs, args.batch)
    if args.step[0] and "mixed_precision" in entry:
        entry["mixed_precision"]["step"] = args.step[0]
    exp = Experiment.from_dict(f"b16-{args.variant}", entry,
                               devices={CARD: {"card": f"config/devices/{CARD}.yaml"}})
    if VARIANTS[args.variant] is None:
        exp = dataclasses.replace(exp, algorithm=PlainSGD.name)
    cards = {CARD: load_card(REPO / "config" / "devices" / f"{CARD}.yaml")}
    data = load_dataset("mnist5k")
    t0 = time.perf_counter()
    res = train(exp, [data], args.device, cards=cards, progress=False)
    total = time.perf_counter() - t0
    sec = list(res.history["seconds"])
    print(json.dumps({"variant": args.variant, "kernels": args.kernels[0], "seed": args.seeds[0],
                      "step": args.step[0] or "default",
                      "epoch_s": statistics.median(sec[1:]) if len(sec) > 1 else sec[0],
                      "first_epoch_s": sec[0], "total_s": total,
                      "compile_s": kernels.STATS["first_call_seconds"],
                      "graphs": kernels.recompiles(), "test_acc": res.test_accuracy,
                      "pulses": int(res.history["pulses_up"].sum()
                                    + res.history["pulses_down"].sum())}))


def _run(variant: str, kernels: str, seed: int, args: argparse.Namespace,
         step: str = "") -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", "--variant", variant, "--kernels", kernels,
           "--step", step,
           "--seeds", str(seed), "--epochs", str(args.epochs), "--batch", str(args.batch),
           "--threads", str(args.threads), "--device", args.device]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    tmp = None
    if args.cold and kernels == "compiled":
        tmp = tempfile.mkdtemp(prefix="dse-cold-cache-")
        env["DSE_KERNEL_CACHE"] = tmp
    out = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{variant}/{kernels} seed {seed} failed:\n{out.stderr[-3000:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--variants", nargs="+", default=["mp", "mp-52.5"],
                   choices=[v for v in VARIANTS if v != "float"])
    p.add_argument("--kernels", nargs="+", default=["eager", "compiled"],
                   choices=["eager", "compiled"])
    p.add_argument("--step", nargs="+", default=[""], choices=["", "flat", "reference"],
                   help="mixed_precision.step ('': dse's default)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--cold", action="store_true", help="fresh kernel cache per compiled run")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--variant", default="float", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("--device cuda: no CUDA device here; skipped")
            return
    if args.worker:
        worker(args)
        return
    rows = []
    for seed in args.seeds:
        for variant in args.variants:
            for kernels, step in [(k, st) for k in args.kernels for st in args.step]:
                base = _run("float", "eager", seed, args)  # float, mp, float, ...: alternated
                row = _run(variant, kernels, seed, args, step)
                row["float_epoch_s"] = base["epoch_s"]
                row["float_acc"] = base["test_acc"]
                row["ratio"] = row["epoch_s"] / base["epoch_s"]
                rows.append(row)
    import pandas as pd

    table = pd.DataFrame(rows)
    summary = table.groupby(["variant", "kernels", "step"], sort=False).agg(
        ratio=("ratio", "median"), ratio_min=("ratio", "min"), ratio_max=("ratio", "max"),
        mp_epoch_s=("epoch_s", "median"), float_epoch_s=("float_epoch_s", "median"),
        test_acc=("test_acc", "mean"), acc_sd=("test_acc", "std"),
        float_acc=("float_acc", "mean"), compile_s=("compile_s", "median"),
        graphs=("graphs", "max")).reset_index()
    print(summary.to_markdown(index=False, floatfmt=".3g"))
    out = args.out or REPO / "results" / "benchmarks" / f"mp_batch16_{args.device}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)


if __name__ == "__main__":
    main()
