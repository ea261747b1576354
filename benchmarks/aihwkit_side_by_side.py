"""dse mixed precision beside aihwkit 1.2.0 on the same work, in one run (issue 15).

The issue's harness: the 784-256-10 sigmoid MLP without BatchNorm, digital biases, SGD lr 0.1,
batch 16, mnist5k (dse's own 4000/1000 split, exported to an ``.npz`` so both frameworks train
and test on the same images; each shuffles with its own seeded permutations), 1 thread, every
run its own process, the processes of one seed alternated: dse float, dse mixed precision
(defaults, ``weight_range`` 52.5), aihwkit float, aihwkit ``MixedPrecisionReRamSBPreset``, aihwkit
``MixedPrecisionReRamESPreset``. Ratio = a run's median epoch (epochs 2..E) ÷ the median epoch
of the float run of the same framework and seed; both float runs are reported, so the
frameworks' float loops can be compared too.

aihwkit needs Python >= 3.12; it runs from its own virtual environment, given by ``--peer``:

    /root/.pyenv/versions/3.12.1/bin/python -m venv /work/venv-aihwkit
    /work/venv-aihwkit/bin/pip install torch==2.14.1 aihwkit==1.2.0
    python benchmarks/aihwkit_side_by_side.py --peer /work/venv-aihwkit/bin/python \
        --seeds 0 1 2 --epochs 5

The peer process imports only torch, numpy and aihwkit (this file's ``peer`` part has no dse
import); the dse runs are ``benchmarks/mp_batch16.py``'s workers.
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
PEER_VARIANTS = ("float", "MixedPrecisionReRamSBPreset", "MixedPrecisionReRamESPreset")


def peer(args: argparse.Namespace) -> None:
    """One aihwkit (or plain torch) training run in this process; prints one JSON line."""
    import numpy as np
    import torch
    from torch import nn

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    d = np.load(args.data)
    x_tr, y_tr = torch.from_numpy(d["x_train"]), torch.from_numpy(d["y_train"])
    x_te, y_te = torch.from_numpy(d["x_test"]), torch.from_numpy(d["y_test"])
    perms = torch.from_numpy(d["perms"])  # (epochs, n): one shuffle per epoch
    if args.variant == "float":
        model: nn.Module = nn.Sequential(nn.Linear(784, 256), nn.Sigmoid(), nn.Linear(256, 10))
        opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    else:
        from aihwkit.nn import AnalogLinear, AnalogSequential
        from aihwkit.optim import AnalogSGD
        from aihwkit.simulator import presets

        cfg = getattr(presets, args.variant)()
        model = AnalogSequential(AnalogLinear(784, 256, bias=True, rpu_config=cfg), nn.Sigmoid(),
                                 AnalogLinear(256, 10, bias=True, rpu_config=cfg))
        opt = AnalogSGD(model.parameters(), lr=args.lr)
        opt.regroup_param_groups(model)
    loss_fn = nn.CrossEntropyLoss()
    seconds = []
    for e in range(args.epochs):
        model.train()
        t0 = time.perf_counter()
        for idx in perms[e % len(perms)].split(args.batch):
            opt.zero_grad()
            loss_fn(model(x_tr[idx]), y_tr[idx]).backward()
            opt.step()
        seconds.append(time.perf_counter() - t0)
    model.eval()
    with torch.no_grad():
        acc = float((model(x_te).argmax(1) == y_te).float().mean())
    print(json.dumps({"framework": "aihwkit" if args.variant != "float" else "torch",
                      "variant": args.variant, "seed": args.seed,
                      "epoch_s": statistics.median(seconds[1:]) if len(seconds) > 1
                      else seconds[0], "first_epoch_s": seconds[0], "test_acc": acc}))


def export_data(path: Path, epochs: int, seed: int) -> None:
    """dse's mnist5k split (flattened, float32 in [0, 1]) and one permutation per epoch."""
    import numpy as np
    import torch

    from dse.data import load_dataset

    data = load_dataset("mnist5k")
    gen = torch.Generator().manual_seed(seed)
    perms = torch.stack([torch.randperm(len(data.y_train), generator=gen) for _ in range(epochs)])
    np.savez(path, x_train=data.x_train.reshape(len(data.y_train), -1).numpy(),
             y_train=data.y_train.numpy(), x_test=data.x_test.reshape(len(data.y_test), -1).numpy(),
             y_test=data.y_test.numpy(), perms=perms.numpy())


def _peer_run(python: str, variant: str, seed: int, data: Path,
              args: argparse.Namespace) -> dict[str, Any]:
    cmd = [python, __file__, "--peer-worker", "--variant", variant, "--seed", str(seed),
           "--data", str(data), "--epochs", str(args.epochs), "--threads", str(args.threads)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    env.pop("PYTHONPATH", None)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"aihwkit {variant} seed {seed} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _dse_run(variant: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, str(REPO / "benchmarks" / "mp_batch16.py"), "--worker", "--variant",
           variant, "--kernels", "eager", "--seeds", str(seed), "--epochs", str(args.epochs),
           "--batch", "16", "--threads", str(args.threads)]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS=str(args.threads))
    out = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"dse {variant} seed {seed} failed:\n{out.stderr[-3000:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    return {"framework": "dse", "variant": variant, "seed": seed, "epoch_s": row["epoch_s"],
            "first_epoch_s": row["first_epoch_s"], "test_acc": row["test_acc"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--peer", help="python of the aihwkit 1.2.0 environment")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "aihwkit_side_by_side.csv")
    p.add_argument("--peer-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--variant", default="float", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.peer_worker:
        peer(args)
        return
    if not args.peer or not Path(args.peer).exists():
        raise SystemExit("--peer: give the python of an environment with aihwkit 1.2.0 "
                         "(see this script's docstring)")
    import pandas as pd

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            data = Path(tmp) / f"mnist5k-{seed}.npz"
            export_data(data, args.epochs, seed)
            runs = [("dse", "float"), ("dse", "mp"), ("torch", "float"),
                    ("aihwkit", PEER_VARIANTS[1]), ("dse", "float"), ("dse", "mp-52.5"),
                    ("torch", "float"), ("aihwkit", PEER_VARIANTS[2])]
            base: dict[str, float] = {}
            for fw, variant in runs:  # alternated processes: each run next to its baseline
                row = (_dse_run(variant, seed, args) if fw == "dse"
                       else _peer_run(args.peer, variant, seed, data, args))
                if variant == "float":
                    base[row["framework"]] = row["epoch_s"]
                row["float_epoch_s"] = base["dse" if fw == "dse" else "torch"]
                row["ratio"] = row["epoch_s"] / row["float_epoch_s"]
                print(json.dumps(row), flush=True)
                rows.append(row)
    df = pd.DataFrame(rows)
    df.to_csv(args.out, index=False)
    summary = (df[df.variant != "float"].groupby(["framework", "variant"])
               .agg(ratio_median=("ratio", "median"), ratio_min=("ratio", "min"),
                    ratio_max=("ratio", "max"), acc=("test_acc", "median"),
                    epoch_s=("epoch_s", "median")))
    floats = df[df.variant == "float"].groupby("framework").epoch_s.median()
    print(summary.to_markdown())
    print("float epoch (median s):", floats.to_dict())


if __name__ == "__main__":
    main()
