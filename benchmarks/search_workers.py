"""Wall time of the default co-design study with 1 vs 2 parallel workers (issue 6).

Each run is a fresh copy of the repository's tracked files in a temporary folder and
`snakemake --cores 2` asked for the study's outputs only (init, workers, aggregation; the
study trains its own models). Runs alternate between 1 and 2 workers so that machine load
affects both alike; the figure is the median over repeats of (2-worker wall / 1-worker wall).
With 2 workers on 2 cores each worker gets one torch thread (workflow/rules/common.smk,
worker_threads). Also printed: trials completed and trainings per trial of every run.

    python benchmarks/search_workers.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _copy_tree(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True,
                           capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name, follow_symlinks=False)


def run_study(workers: int, study: str, cores: int) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory(prefix=f"dse-w{workers}-") as tmp:
        root = Path(tmp)
        _copy_tree(root)
        (root / "workers.yaml").write_text(
            f"search:\n  {study}:\n    workers: {workers}\n")
        cmd = ["snakemake", "--cores", str(cores), "--quiet", "all",
               "--configfile", "config/config.yaml", "workers.yaml", "--",
               f"results/search/{study}/summary.json"]
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=root, check=True, capture_output=True)
        wall = time.perf_counter() - t0
        summary = json.loads((root / "results" / "search" / study / "summary.json").read_text())
    return wall, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", default="codesign")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    walls: dict[int, list[float]] = {1: [], 2: []}
    for r in range(args.repeats):
        for workers in (1, 2):
            wall, s = run_study(workers, args.study, args.cores)
            walls[workers].append(wall)
            print(f"repeat {r} workers {workers}: {wall:.1f} s wall, "
                  f"{s['trials_complete']} trials, {s['trainings']} trainings "
                  f"({s['trainings_per_trial']:.3f} per trial), Pareto size {s['pareto_size']}",
                  flush=True)
    ratios = [b / a for a, b in zip(walls[1], walls[2], strict=True)]
    print(f"median wall: 1 worker {statistics.median(walls[1]):.1f} s, "
          f"2 workers {statistics.median(walls[2]):.1f} s; "
          f"median ratio 2/1 = {statistics.median(ratios):.2f} "
          f"(ratios {', '.join(f'{x:.2f}' for x in ratios)})")


if __name__ == "__main__":
    main()
