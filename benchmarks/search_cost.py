"""Search cost: trials per second of a co-design study, for one checkout of dse (issue 13).

Runs ``python -m dse.cli search`` (init, one worker, aggregate) of study ``--study`` from the
config of checkout ``--tree`` (its own code: ``PYTHONPATH=--tree``) in a fresh results folder,
one torch thread, and reports from its ``trials.csv``: the trials that reused a trained model
(median and mean seconds, trials per second = 1 / median) and those that trained. Compare two
checkouts (e.g. before and after a change, ``git archive COMMIT | tar -x -C DIR``) run by run,
alternating, on the same machine load::

    git archive 99b18e9 | (mkdir -p /tmp/before && tar -x -C /tmp/before)
    python benchmarks/search_cost.py --tree /tmp/before --config /tmp/before/config/config.yaml
    python benchmarks/search_cost.py --tree . --config /tmp/before/config/config.yaml
    python benchmarks/search_cost.py --tree . --config config/config.yaml

(the second line: the *old* study's space with the new code; the third: the new default study.)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml


def run(tree: Path, config: Path, study: str, out: Path) -> dict[str, float]:
    cfg = yaml.safe_load(config.read_text())
    cfg["results_dir"] = str(out / "results")
    cfg["search"] = {study: cfg["search"][study]}
    path = out / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PYTHONPATH": str(tree.resolve()), "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dse.cli", "search", "--config", str(path),
                    "--study", study], cwd=tree, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    trials = pd.read_csv(out / "results" / "search" / study / "trials.csv")
    done = trials[trials["state"] == "COMPLETE"]
    reuse = done[~done["trained"].astype(bool)]["seconds"]
    train = done[done["trained"].astype(bool)]["seconds"]
    return {"trials": len(done), "trainings": len(train), "wall_s": wall,
            "reuse_median_s": float(reuse.median()), "reuse_mean_s": float(reuse.mean()),
            "reuse_trials_per_s": 1.0 / float(reuse.median()),
            "train_median_s": float(train.median()) if len(train) else float("nan"),
            "all_trials_per_s": len(done) / float(done["seconds"].sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", type=Path, default=Path("."))
    ap.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    ap.add_argument("--study", default="codesign")
    ap.add_argument("--keep", type=Path, default=None,
                    help="run in this folder and keep its results (default: a temporary one)")
    args = ap.parse_args()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        out = run(args.tree, args.config.resolve(), args.study, args.keep.resolve())
    else:
        with tempfile.TemporaryDirectory() as tmp:
            out = run(args.tree, args.config.resolve(), args.study, Path(tmp))
    print(json.dumps({"tree": str(args.tree), "config": str(args.config), **out}, indent=1))


if __name__ == "__main__":
    main()
