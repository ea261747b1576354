"""Epoch time of binarized / ternary networks relative to the same float network (issue 2).

784-512-512-10 mlp, batch 100, mnist5k (4000 training images), Adam, torch threads set
explicitly. The networks run interleaved, epoch by epoch, in one process, so machine load
affects them alike; the figure is the median over repeats of (quantized epoch / float epoch).
The float baseline keeps the sign activation, so only the weight quantizer differs; a float
network with ReLU is timed alongside. Then the 10-epoch test accuracies of the binary and
ternary networks (the issue's accuracy floor, >= 0.90).

    python benchmarks/train_overhead.py --threads 2 --repeats 7 --epochs 10
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from dse.config import Experiment
from dse.data import batches, load_dataset
from dse.nn import ModelSpec, build_model
from dse.train import train
from dse.train.loop import Trainer

VARIANTS = {  # name: (weight precision, hidden activation)
    "float": ("float", "sign"),
    "binary": ("binary", "sign"),
    "ternary": ("ternary", "sign"),
    "float-relu": ("float", "relu"),
}


def _trainer(name: str, precision: str, activation: str, shape: tuple[int, int, int]) -> Trainer:
    exp = Experiment.from_dict(name, {"precision": precision, "activation": activation})
    gen = torch.Generator().manual_seed(0)
    spec = ModelSpec("mlp", shape, 10, precision=precision, activation=activation)
    tr = Trainer(exp, build_model(spec, gen), torch.device("cpu"), gen)
    tr.start_task(0)
    return tr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--epochs", type=int, default=10, help="epochs for the accuracy figures")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset("mnist5k")
    trainers = {n: _trainer(n, p, a, data.input_shape) for n, (p, a) in VARIANTS.items()}
    times: dict[str, list[float]] = {k: [] for k in trainers}
    for _ in range(args.repeats):
        for name, tr in trainers.items():
            t0 = time.perf_counter()
            for xb, yb in batches(data.x_train, data.y_train, 100, tr.generator):
                tr.step(xb, yb)
            times[name].append(time.perf_counter() - t0)
    print(f"threads={args.threads} repeats={args.repeats} torch={torch.__version__}")
    for name, ts in times.items():
        ratios = [t / b for t, b in zip(ts, times["float"], strict=True)]
        print(f"{name:10s} median epoch {statistics.median(ts):.3f} s   "
              f"median ratio to float {statistics.median(ratios):.2f}x")
    for prec in ("binary", "ternary"):
        exp = Experiment.from_dict(prec, {"precision": prec, "epochs": args.epochs})
        res = train(exp, [data], progress=False)
        accs = ", ".join(f"{a:.3f}" for a in res.history["test_acc"])
        print(f"{prec} 784-512-512-10 test accuracy per epoch: {accs}")


if __name__ == "__main__":
    main()
