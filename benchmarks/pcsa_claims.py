"""The seeds' claims on the ternary single-sense read, checked in accuracy (issue 13, part 2).

Every design goes through the co-design trial function (``evaluate_design``: the study's
model cache, validation split, seeds and repeats; the physical PCSA of the chip cards reads
each pair, per stored value) with the default ``codesign`` study's network (bnn-mlp, binary or
ternary), and its test accuracy is measured as the study measures its Pareto designs
(``on_test``). Written to ``results/benchmarks/pcsa_claims_accuracy.csv``.

1. binary vs ternary at nominal (1.2 V) and near-threshold supplies, each with the sense
   window of lowest weight error at that supply (``dse.devices.pcsa_rates.best_window``), and
   with the chips' fixed card windows (0.08 ns binary, 0.25 ns ternary);
2. PVT: at 1.2 V and 0.5 V, window fixed at the typical corner's best, temperature 250 / 350 K
   and a global threshold shift of ±30 mV.

    OMP_NUM_THREADS=1 python benchmarks/pcsa_claims.py
    OMP_NUM_THREADS=1 python benchmarks/pcsa_claims.py --i-prog 6e-5 --vdd 1.2 0.5 0.4 \
        --out results/benchmarks/pcsa_claims_accuracy_weak.csv      # the low-energy cell
"""

from __future__ import annotations

import argparse
import copy
import logging
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dse import seeds
from dse.config import load_config
from dse.devices.pcsa_rates import CellStats, best_window
from dse.pipeline import Layout
from dse.pipeline.artifacts import load_chip, load_device_models
from dse.pipeline.design import evaluate_design, trial_settings
from dse.search import design_for, parse_study

log = logging.getLogger("pcsa_claims")
WINDOWS = np.geomspace(2e-11, 1e-7, 41)
CARD_WINDOW = {"binary": 8e-11, "ternary": 2.5e-10}
CORNERS = [{"temperature": 250.0}, {"temperature": 350.0}, {"dvth": 0.03}, {"dvth": -0.03}]


def evaluate(config: dict, spec, layout: Layout, cache: Path, params: dict) -> dict:
    design = design_for(spec, config, params)
    settings = trial_settings(config, spec.repeats, seeds.trial_seed(spec.seed, params))
    val = evaluate_design(config, design, layout, cache, settings, study=spec.name,
                          validation=spec.validation)
    test = evaluate_design(config, design, layout, cache, settings, study=spec.name,
                           validation=spec.validation, estimate_too=False, on_test=True)
    m = val.metrics
    return {**params, "window_ns": params["t_sense"] * 1e9, "validation_accuracy": m["accuracy"],
            "test_accuracy": test.metrics["accuracy"],
            "test_accuracy_std": test.metrics["accuracy_std"], "ber": m["ber"],
            "energy_per_inference_nJ": m["energy_per_inference_pJ"] / 1e3,
            "latency_us": m.get("latency_ns", np.nan) / 1e3, "tops_per_w": m.get("tops_per_w")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config/config.yaml")
    ap.add_argument("--vdd", type=float, nargs="+", default=[1.2, 0.6, 0.5, 0.45, 0.4])
    ap.add_argument("--i-prog", type=float, default=None,
                    help="programming current of the 2T2R cells (A; default: the chip card's "
                         "nominal 200 uA); 6e-5 = the low-energy regime of benchmarks/README.md")
    ap.add_argument("--out", default="results/benchmarks/pcsa_claims_accuracy.csv")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    config = load_config(args.config)
    config = copy.deepcopy(config)
    config["search"]["codesign"]["parameters"].update(
        {"temperature": {"low": 200.0, "high": 400.0}, "dvth": {"low": -0.1, "high": 0.1},
         "i_prog": {"low": 1e-5, "high": 5e-4}})
    spec = parse_study(config, "codesign")
    models = load_device_models([Path("config/devices/hfo2-2t2r.yaml"),
                                 Path("config/devices/pcsa-130nm-physical.yaml")])
    cell_model, pcsa = models["hfo2-2t2r"], models["pcsa-130nm-physical"]
    i_prog = args.i_prog or \
        load_chip(config["chips"]["rram-2t2r-pcsa-130nm"]).operating_point["i_prog"]
    cell = CellStats.from_model(cell_model, i_prog)
    layout = Layout.at("results")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        for precision in ("binary", "ternary"):
            for vdd in args.vdd:
                w, _ = best_window(pcsa, cell, precision, WINDOWS, vdd=vdd)
                for kind, window in (("best", w), ("card", CARD_WINDOW[precision])):
                    base = {"precision": precision, "vdd": vdd, "t_sense": window,
                            "temperature": 300.0, "dvth": 0.0, "i_prog": i_prog}
                    rows.append({"case": f"window {kind}", **evaluate(config, spec, layout,
                                                                      cache, base)})
                    log.info("%s", rows[-1])
                    if kind != "best" or vdd not in (1.2, 0.5):
                        continue
                    for corner in CORNERS:
                        rows.append({"case": "corner " + ", ".join(f"{k} {v:g}" for k, v in
                                                                   corner.items()),
                                     **evaluate(config, spec, layout, cache,
                                                {**base, **corner})})
                        log.info("%s", rows[-1])
    table = pd.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(table.to_string(index=False, float_format="%.4g"))


if __name__ == "__main__":
    main()
