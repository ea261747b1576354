"""Paired in-process A/B of the mixed-precision step: a git ref's ``dse`` against this tree's.

The machine is shared, so step times of separate processes differ by more than a 5–10 % change;
here both versions run in *one* process: ``REF``'s ``dse`` package is extracted
(``git archive``) into a temporary directory and imported as ``dse_ref`` (its imports renamed),
the trainers of both are built by their own training loops on the network of
``benchmarks/mp_batch16.py``, warmed up one epoch, then stepped in rounds of ``--steps`` steps,
the old/new order alternated round by round. Printed: the median thread CPU time and wall time
per step, the median ratio to the float step (this tree's) and the paired median new ÷ ref.

    python benchmarks/mp_step_ab.py --ref main --rounds 10 --steps 150
"""

from __future__ import annotations

import argparse
import importlib
import io
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from mp_batch16 import CARD, REPO, VARIANTS, _entry  # type: ignore[import-not-found]
from mp_step_profile import Stream, _trainer  # type: ignore[import-not-found]

from dse.data import load_dataset

_IMPORT = re.compile(r"\b(from|import) dse\b")


def extract(ref: str, dest: Path) -> str:
    """``ref``'s ``dse`` package as ``dse_ref`` under ``dest`` (on sys.path); returns its name."""
    tar = subprocess.run(["git", "archive", ref, "dse"], cwd=REPO, check=True,
                         capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        tf.extractall(dest, filter="data")
    (dest / "dse").rename(dest / "dse_ref")
    for f in (dest / "dse_ref").rglob("*.py"):
        text = _IMPORT.sub(r"\1 dse_ref", f.read_text())
        f.write_text(text.replace('"dse.', '"dse_ref.'))
    sys.path.insert(0, str(dest))
    return "dse_ref"


def ref_stream(pkg: str, variant: str) -> Stream:
    """A mixed-precision trainer built by package ``pkg``'s own loop, as a :class:`Stream`."""
    mod = {m: importlib.import_module(f"{pkg}.{m}")
           for m in ("config", "seeds", "data", "pipeline.artifacts", "train.loop")}
    exp = mod["config"].Experiment.from_dict(
        f"b16-{variant}", _entry(variant, "eager", 0, 1, 16),
        devices={CARD: {"card": f"config/devices/{CARD}.yaml"}})
    cards = {CARD: mod["pipeline.artifacts"].load_card(REPO / "config" / "devices"
                                                       / f"{CARD}.yaml")}
    data = mod["data"].load_dataset("mnist5k")
    gen = mod["seeds"].generator(exp.seed, "train")
    _, model, trainer, _ = mod["train.loop"]._build(exp, data, torch.device("cpu"), gen, cards)
    model.train()
    trainer.start_task(0)
    return Stream(trainer, gen, data, mod["data"].batches)


def _table(cpu: dict[Any, list[float]], wall: dict[Any, list[float]]) -> None:
    print("| variant | code | cpu ms/step | wall ms/step | ratio to float (cpu) | new ÷ ref |")
    print("|---|---|--:|--:|--:|--:|")
    fl = cpu[("float", "new")]
    for (variant, code), ts in cpu.items():
        r = statistics.median(a / b for a, b in zip(ts, fl, strict=True))
        paired = ""
        if code == "new" and (variant, "ref") in cpu:
            paired = f"{statistics.median(a / b for a, b in zip(ts, cpu[(variant, 'ref')], strict=True)):.3f}"  # noqa: E501
        print(f"| {variant} | {code} | {statistics.median(ts):.3f} | "
              f"{statistics.median(wall[(variant, code)]):.3f} | {r:.2f} | {paired} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default="main")
    ap.add_argument("--variants", nargs="+", default=["mp", "mp-52.5"],
                    choices=[v for v in VARIANTS if v != "float"])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--warmup", type=int, default=250)
    ap.add_argument("--verbose", action="store_true", help="every round's cpu ms/step")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)  # as dse.train.train
    tmp = tempfile.TemporaryDirectory(prefix="dse-ref-")
    pkg = extract(args.ref, Path(tmp.name))
    data = load_dataset("mnist5k")
    pairs = [(v, code) for v in args.variants for code in ("ref", "new")]
    streams = {("float", "new"): Stream(*_trainer("float", "eager", data), data)}
    for v, code in pairs:
        streams[(v, code)] = ref_stream(pkg, v) if code == "ref" else Stream(
            *_trainer(v, "eager", data), data)
    for s in streams.values():
        s.run(args.warmup)
    cpu: dict[Any, list[float]] = {k: [] for k in streams}
    wall: dict[Any, list[float]] = {k: [] for k in streams}
    for rnd in range(args.rounds):
        order = list(streams)
        if rnd % 2:  # new before ref in every other round
            order = order[:1] + [k for i in range(1, len(order), 2) for k in order[i:i + 2][::-1]]
        for k in order:
            w0, c0 = time.perf_counter(), time.thread_time()
            streams[k].run(args.steps)
            cpu[k].append((time.thread_time() - c0) / args.steps * 1e3)
            wall[k].append((time.perf_counter() - w0) / args.steps * 1e3)
    print(f"ref {args.ref}, torch {torch.__version__}, 1 thread, {args.rounds} rounds of "
          f"{args.steps} steps after {args.warmup} warm-up steps")
    _table(cpu, wall)
    if args.verbose:
        for k, ts in cpu.items():
            print(k, " ".join(f"{t:.2f}" for t in ts))


if __name__ == "__main__":
    main()
