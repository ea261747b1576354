"""Accuracy versus ADC resolution on the analog crossbar chip, and the inject speed with the ADC on.

    python benchmarks/adc_bits.py [--model mlp|lenet] [--precision float|binary] [--epochs 10]
        [--bits 2 3 4 5 6 7 8] [--parallel-rows 128 32] [--repeats 10] [--threads 2]
        [--maps 100] [--speed-repeats 5] [--out CSV]

1. Trains a network on mnist5k with ``dse.train.train`` (784-512-512-10 MLP, or LeNet-5; float
   weights and ReLU, or ``--precision binary``: binary weights and sign activations; Adam 0.005,
   batch 100, seed 0).
2. Maps it on ``config/chips/rram-1t1r-adc.yaml`` with ``adc_bits`` (and ``parallel_rows``)
   replaced, and runs the inject stage (``dse.chip.inject.inject``) at the chip's two analog points:
   without device noise (the ADC alone, deterministic) and with the programming + read noise of
   the chip's analog card ``reram-es-gong2018`` (``--repeats`` maps, mean and 95 % CI). The ADC
   ranges are calibrated on the first 1000 training images. Energy per inference and its ADC
   share come from the estimate stage. Table: ``results/benchmarks/adc_bits.csv``.
3. Speed: ``--maps`` fault maps (programming + read noise; and stuck-at cells only, which takes the
   sparse first-layer path) through ``inject`` with the ADC on and off, versus ``--maps`` clean
   ``dse.train.evaluate`` calls of the same model, alternated ``--speed-repeats`` times in this
   process; ratio of the medians (``--maps 0`` skips it; ``--bits`` with no value skips the
   sweep).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from dse.chip.ber import OperatingPoint
from dse.chip.estimate import estimate, totals
from dse.chip.inject import AnalogNoise, StuckAt, inject, summarize
from dse.chip.mapping import map_model
from dse.config import Experiment
from dse.data import load_dataset
from dse.devices import from_card
from dse.nn import evaluate
from dse.pipeline.artifacts import load_card, load_chip
from dse.train import train

CHIP = "config/chips/rram-1t1r-adc.yaml"
DEVICE = "config/devices/reram-es-gong2018.yaml"
POINTS = [OperatingPoint(ber=0.0, noise=False), OperatingPoint(ber=0.0, noise=True)]


def sweep(model, chip, analog, x, y, cal, bits_list, rows_list, repeats) -> pd.DataFrame:
    rows = []
    for prow in rows_list:
        for bits in [None, *bits_list]:
            c = chip.replace(parallel_rows=prow,
                                    adc_bits=bits if bits is not None else chip.adc_bits)
            mapping = map_model(model, c)
            t0 = time.perf_counter()
            table = inject(model, mapping, x, y, POINTS, repeats,
                           torch.Generator().manual_seed(0), analog=analog,
                           adc=bits is not None, adc_calibration=cal)
            seconds = time.perf_counter() - t0
            s = summarize(table).set_index("noise")
            energy = estimate(mapping, c)
            tot = totals(energy)
            adc_pj = float(energy[energy["component"] == "adc"]["energy_pJ"].sum())
            noisy = s.drop(index="none").iloc[0]
            rows.append({
                "parallel_rows": prow, "adc_bits": bits if bits is not None else "ideal",
                "clean": table.attrs["clean_accuracy"],
                "adc_only": float(s.loc["none", "mean"]),
                "with_noise": float(noisy["mean"]), "noise_ci95_low": float(noisy["ci95_low"]),
                "noise_ci95_high": float(noisy["ci95_high"]),
                "energy_per_inference_pJ": tot["energy_per_inference_pJ"] if bits else None,
                "adc_share": adc_pj / tot["energy_per_inference_pJ"] if bits else None,
                "seconds": seconds,
            })
    return pd.DataFrame(rows)


def speed(model, chip, analog, x, y, maps, repeats) -> dict[str, list[float]]:
    mapping = map_model(model, chip)
    g = torch.Generator().manual_seed(0)
    noisy = [OperatingPoint(ber=0.0, noise=True)]
    quiet = [OperatingPoint(ber=0.0, noise=False)]
    stuck = StuckAt(sa0=1e-3, sa1=1e-3)
    runs = {
        "clean": lambda: [evaluate(model, x, y) for _ in range(maps)],
        "noise, ADC off": lambda: inject(model, mapping, x, y, noisy, maps, g, analog=analog,
                                         adc=False),
        "noise, ADC on": lambda: inject(model, mapping, x, y, noisy, maps, g, analog=analog),
        "stuck-at, ADC off": lambda: inject(model, mapping, x, y, quiet, maps, g,
                                            stuck_at=stuck, adc=False),
        "stuck-at, ADC on": lambda: inject(model, mapping, x, y, quiet, maps, g,
                                           stuck_at=stuck),
    }
    for f in runs.values():  # warm-up
        f()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeats):
        for k, f in runs.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=("mlp", "lenet"), default="mlp")
    ap.add_argument("--precision", choices=("float", "binary"), default="float")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--bits", type=int, nargs="*", default=[2, 3, 4, 5, 6, 7, 8],
                    help="ADC resolutions of the sweep (none: skip the sweep)")
    ap.add_argument("--parallel-rows", type=int, nargs="+", default=[128, 32])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--maps", type=int, default=100)
    ap.add_argument("--speed-repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("results/benchmarks/adc_bits.csv"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    data = load_dataset("mnist5k")
    exp = Experiment(name=f"{args.precision}-{args.model}", dataset="mnist5k", model=args.model,
                     hidden=[512, 512], precision=args.precision, epochs=args.epochs,
                     batch_size=100, lr=0.005, seed=0)
    t0 = time.perf_counter()
    result = train(exp, [data], progress=False)
    model = result.model.eval()
    print(f"trained {exp.name} in {time.perf_counter() - t0:.0f} s: test accuracy "
          f"{result.test_accuracy:.4f}", flush=True)
    chip = load_chip(CHIP)
    analog = AnalogNoise(from_card(load_card(DEVICE)), read=True)
    x, y = data.x_test, data.y_test
    cal = data.x_train[:1000]

    if args.bits:
        table = sweep(model, chip, analog, x, y, cal, args.bits, args.parallel_rows,
                      args.repeats)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False)
        print(table.drop(columns=["seconds"]).to_markdown(index=False, floatfmt=".4g"))

    if args.maps > 0:
        times = speed(model, chip, analog, x, y, args.maps, args.speed_repeats)
        base = statistics.median(times["clean"])
        print(f"\n{args.precision} {args.model}, {len(x)} test images, {args.maps} maps per run, "
              f"{args.threads} threads, {CHIP} (5-bit, 128 parallel rows)")
        for k, ts in times.items():
            med = statistics.median(ts)
            print(f"{k:18s} median {med:7.3f} s  ratio {med / base:5.2f}  "
                  f"(fastest {min(ts) / min(times['clean']):5.2f})  "
                  f"[{', '.join(f'{t:.2f}' for t in ts)}]")


if __name__ == "__main__":
    main()
