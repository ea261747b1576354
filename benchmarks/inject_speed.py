"""Speed of fault injection: N fault maps on the 1000-image mnist5k test set versus N clean
evaluations of the same model, in the same process (goal: ratio <= 1.5).

    python benchmarks/inject_speed.py [--maps 100] [--batch 50] [--repeats 5] [--threads 2]

Both sides are timed alternately ``--repeats`` times; the ratio of the medians is reported.
The model is a binarized 784-512-512-10 MLP (``--precision ternary`` for ternary weights);
its weights do not matter for the timing, so it is built untrained (seeded).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from dse.chip.inject import inject
from dse.chip.mapping import map_model
from dse.data import load_dataset
from dse.nn import ModelSpec, build_model, evaluate
from dse.pipeline.artifacts import load_chip

CHIPS = {"binary": "config/chips/rram-2t2r-pcsa-130nm.yaml",
         "ternary": "config/chips/rram-2t2r-pcsa-130nm-ternary.yaml"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--maps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=25)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ber", type=float, default=1e-3)
    ap.add_argument("--precision", choices=sorted(CHIPS), default="binary")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    data = load_dataset("mnist5k")
    x, y = data.x_test, data.y_test
    g = torch.Generator().manual_seed(0)
    model = build_model(ModelSpec("mlp", data.input_shape, data.classes, args.precision,
                                  hidden=[512, 512]), g).eval()
    mapping = map_model(model, load_chip(CHIPS[args.precision]))

    def clean() -> None:
        for _ in range(args.maps):
            evaluate(model, x, y)

    def faulty() -> None:
        inject(model, mapping, x, y, [args.ber], args.maps, g, batch=args.batch)

    clean()
    faulty()  # warm-up
    t_clean, t_faulty = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        clean()
        t_clean.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        faulty()
        t_faulty.append(time.perf_counter() - t0)
    mc, mf = statistics.median(t_clean), statistics.median(t_faulty)
    print(f"{args.precision} 784-512-512-10, {len(x)} test images, {args.maps} maps, "
          f"batch {args.batch}, {args.threads} threads")
    print(f"clean evaluations: median {mc:.3f} s  ({', '.join(f'{t:.2f}' for t in t_clean)})")
    print(f"fault maps:        median {mf:.3f} s  ({', '.join(f'{t:.2f}' for t in t_faulty)})")
    print(f"ratio fault maps / clean evaluations: {mf / mc:.2f}  (goal <= 1.5); ratio of the "
          f"fastest runs {min(t_faulty) / min(t_clean):.2f} (less sensitive to other load)")


if __name__ == "__main__":
    main()
