"""Write the trimmed Stanford RRAM relaxation subsets shipped in config/measurements/.

Source: akashlevy/RRAM-Relaxation-Master-Model (MIT licence, Copyright (c) 2021 Akash Levy),
``data/tech{A,B,C}/relaxdata.min.tsv.gz`` (one read per cell nearest each nominal time point
after write-verify programming to 32 levels; columns addr, time, R, G, G_init, range_bin,
timept) and ``settings.json`` (gmax). Per technology the subset keeps, for each of the 32
programmed levels (range_bin 0..31; the few cells above gmax, bins > 31, are left out),
``--cells`` randomly chosen cells (seeded) with all their reads, in the ``relaxation`` format of
dse/devices/relaxation.py: cell, level (= range_bin), time (= the nominal time point, s),
conductance (µS, 5 significant digits).

    python benchmarks/stanford_subset.py --src ../shared/data/stanford-rram-relaxation \\
        --out config/measurements --cells 200 --seed 0
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ["addr", "time_s", "r_ohm", "g_s", "g_init_s", "range_bin", "timept_s"]
REPO = "https://github.com/akashlevy/RRAM-Relaxation-Master-Model"
COMMITS = {"A": "fbbabc3dcc11c8b1aa64b30eb9ebfc3bf65fa879",
           "B": "85c0b7ed7687ba1778d1cc9dc3ddf9287276fea1",
           "C": "9cb0b5b6127e7c39366c0a4c0e9efa7019991042"}


def subset(src: Path, tech: str, cells: int, seed: int) -> tuple[pd.DataFrame, float]:
    d = pd.read_csv(src / f"tech{tech}_relaxdata.min.tsv.gz", sep="\t", header=None,
                    names=COLUMNS)
    gmax = float(json.loads((src / f"tech{tech}_settings.json").read_text())["gmax"]) * 1e6
    per_cell = d.groupby("addr")["range_bin"].first()
    per_cell = per_cell[per_cell <= 31]
    rng = np.random.default_rng(seed)
    keep = []
    for _, addrs in per_cell.groupby(per_cell):
        idx = addrs.index.to_numpy()
        keep.extend(rng.choice(idx, size=min(cells, len(idx)), replace=False).tolist())
    out = d[d["addr"].isin(set(keep))].sort_values(["addr", "timept_s"])
    frame = pd.DataFrame({"cell": out["addr"], "level": out["range_bin"],
                          "time": out["timept_s"], "conductance": out["g_s"] * 1e6})
    return frame, gmax


def write(frame: pd.DataFrame, gmax: float, tech: str, path: Path, cells: int,
          seed: int) -> None:
    head = [
        f"# Stanford RRAM relaxation data, technology {tech}: {frame['cell'].nunique()} cells "
        f"({cells} per programmed level, seed {seed}) of the 16,384 of",
        f"# {REPO} data/tech{tech}/relaxdata.min.tsv.gz @ {COMMITS[tech]}",
        "# Licence: MIT, Copyright (c) 2021 Akash Levy (full text: "
        "LICENSE.stanford-rram-relaxation beside this file)",
        "# Cells write-verified to 32 levels, then read at the nominal times after programming;",
        "# time 0 = the first read. Written by benchmarks/stanford_subset.py.",
        "# unit: uS",
        f"# g_ref: {gmax:g}",
        "# synthetic: false",
    ]
    body = frame.to_csv(sep="\t", index=False, float_format="%.5g", lineterminator="\n")
    with gzip.open(path, "wt", compresslevel=9) as fh:
        fh.write("\n".join(head) + "\n" + body)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--cells", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    for tech in "ABC":
        frame, gmax = subset(a.src, tech, a.cells, a.seed)
        path = a.out / f"stanford-rram-tech{tech}.relaxation.tsv.gz"
        write(frame, gmax, tech, path, a.cells, a.seed)
        print(f"{path}: {frame['cell'].nunique()} cells, {len(frame)} rows, "
              f"{path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
