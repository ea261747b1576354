"""The default co-design study's trade-offs on a grid (issue 6): accuracy and energy per
inference of the `codesign` study's designs, binary vs ternary, over the PCSA supply voltage.

The study's TPE sampler only visits what it finds promising; this evaluates every design of a
precision x vdd grid through the same function a trial calls (`evaluate_design`, same seeds,
same repeats, same model cache), so the two precisions can be compared at equal supply.

    python benchmarks/search_front.py --threads 2
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dse import seeds
from dse.config import load_config
from dse.pipeline import Layout
from dse.pipeline.design import evaluate_design, trial_settings
from dse.search import design_for, parse_study


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config/config.yaml")
    ap.add_argument("--study", default="codesign")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--results", default="results",
                    help="results folder holding the calibrated device cards")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    spec = parse_study(config, args.study)
    vdds = np.round(np.arange(0.35, 1.2001, 0.05), 2)
    rows = []
    layout = Layout.at(args.results)
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("binary", "ternary"):
            for vdd in vdds:
                params = {"precision": precision, "vdd": float(vdd)}
                design = design_for(spec, config, params)
                settings = trial_settings(config, spec.repeats,
                                          seeds.trial_seed(spec.seed, params))
                result = evaluate_design(config, design, layout, Path(tmp), settings,
                                         study=spec.name)
                rows.append({"precision": precision, "vdd": vdd, **result.metrics})
    table = pd.DataFrame(rows)
    cols = ["precision", "vdd", "accuracy", "accuracy_std", "clean_accuracy", "ber",
            "energy_per_inference_pJ", "area_mm2", "training_pJ"]
    print(table[[c for c in cols if c in table]].to_string(index=False, float_format="%.4g"))


if __name__ == "__main__":
    main()
