"""The validation suite's table: dse beside NeuroSim's published figures, term by term.

    python benchmarks/validation.py            # writes benchmarks/validation.md and .csv

The cases, their references and sources are in dse/chip/validation.py; tests/test_validation.py
runs the same comparison and asserts the tolerances. No training, no data set: VGG-8's layer
shapes are enough for an estimate.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

os.environ.setdefault("OMP_NUM_THREADS", "1")

from dse.chip.validation import CASES, GOAL, compare
from dse.pipeline.artifacts import load_chip

ROOT = Path(__file__).resolve().parents[1]
COMMAND = "python benchmarks/validation.py"


def table() -> pd.DataFrame:
    frames = [compare(c, load_chip(ROOT / "config" / "chips" / f"{c.chip}.yaml")) for c in CASES]
    return pd.concat(frames, ignore_index=True)


def markdown(t: pd.DataFrame) -> str:
    parts = [f"# Validation against published chip tables (issue 14)\n\nProduced by `{COMMAND}` "
             "(also run by `tests/test_validation.py`, which asserts the tolerances). Ratio = "
             f"dse / reference; goal ±{GOAL:.0%} or explained by component. Rows with a "
             "tolerance are where the models are meant to agree.\n"]
    for case, g in t.groupby("case", sort=False):
        view = g[["quantity", "unit", "reference", "dse", "ratio", "tolerance", "within"]]
        parts.append(f"## {case}\n\n" + view.to_markdown(index=False, floatfmt=".4g"))
        expl = g[g["explanation"] != ""][["quantity", "explanation"]].drop_duplicates()
        if len(expl):
            parts.append("Explanations:\n\n" + "\n".join(
                f"* **{q}**: {e}" for q, e in expl.itertuples(index=False)))
        srcs = g["source"].drop_duplicates()
        parts.append("Sources:\n\n" + "\n".join(f"* {s}" for s in srcs))
    return "\n\n".join(parts) + "\n"


def main() -> None:
    t = table()
    (ROOT / "benchmarks" / "validation.csv").write_text(t.to_csv(index=False))
    (ROOT / "benchmarks" / "validation.md").write_text(markdown(t))
    print(t[["case", "quantity", "reference", "dse", "ratio", "within"]].to_string())


if __name__ == "__main__":
    main()
