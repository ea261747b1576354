"""In-process step times of mixed-precision training at batch 16 against the float step (issue 15).

The network of ``benchmarks/mp_batch16.py`` (784-256-10 sigmoid MLP, no BatchNorm, digital
biases, SGD lr 0.1, batch 16, mnist5k, 1 thread), its trainers built by the training loop, all in
one process: after a warm-up epoch of each trainer (so the accumulators and pulse densities are
those of training, not of the first steps), ``--repeats`` rounds of ``--steps`` steps per
variant, the variants interleaved round by round. Per round and variant: wall time and thread
CPU time (``time.thread_time``: the machine is shared) per step; printed: the medians and the
median ratio to the float step of the same round. ``--profile`` instead runs cProfile over
``--steps`` steps of one variant (after the warm-up) and prints the top functions.

    python benchmarks/mp_step_profile.py --repeats 7 --steps 200
    python benchmarks/mp_step_profile.py --profile mp-52.5 --steps 200
    python benchmarks/mp_step_profile.py --kernels eager compiled --step flat reference
    python benchmarks/mp_step_profile.py --kernels compiled --dense never always auto

``--dense`` (``kernels: compiled``, ``step: flat``): the flat bank's dense kernel over every pair
(dse/train/mp_flat_dense.py) ``always``, ``never`` (the gathered kernel of mp_flat_kernel.py) or
``auto`` (dse's rule, the default); each mode its own trainer, interleaved with the others.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import pstats
import statistics
import time
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from mp_batch16 import CARD, REPO, VARIANTS, _entry  # type: ignore[import-not-found]

from dse import seeds
from dse.config import Experiment
from dse.data import batches, load_dataset
from dse.pipeline.artifacts import load_card
from dse.train import ALGORITHMS, Trainer
from dse.train.loop import _build


class PlainSGD(Trainer):
    """Plain float training: SGD (lr) on every parameter (the harness's float run)."""

    name: ClassVar[str] = "plain_sgd"

    def start_task(self, task: int) -> None:
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=self.exp.lr)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.optimizer is not None
        self.optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(logits := self.model(x), y)
        loss.backward()
        self.optimizer.step()
        return loss.detach(), logits.detach()


def _trainer(variant: str, kernels: str, data: Any, step: str | None = None,
             dense: str = "auto") -> tuple[Trainer, torch.Generator]:
    ALGORITHMS[PlainSGD.name] = PlainSGD
    entry = _entry(variant, kernels, 0, 1, 16)
    if step is not None and "mixed_precision" in entry:
        entry["mixed_precision"]["step"] = step
    exp = Experiment.from_dict(f"b16-{variant}", entry,
                               devices={CARD: {"card": f"config/devices/{CARD}.yaml"}})
    if VARIANTS[variant] is None:
        exp = dataclasses.replace(exp, algorithm=PlainSGD.name)
    cards = {CARD: load_card(REPO / "config" / "devices" / f"{CARD}.yaml")}
    gen = seeds.generator(exp.seed, "train")
    _, model, trainer, _ = _build(exp, data, torch.device("cpu"), gen, cards)
    model.train()
    trainer.start_task(0)
    bank = getattr(trainer, "_flat", None)
    if bank is not None:
        bank.dense_mode = dense
    return trainer, gen


class Stream:
    """Endless batch-16 steps of one trainer (epoch after epoch of the training set)."""

    def __init__(self, trainer: Trainer, gen: torch.Generator, data: Any,
                 batch_fn: Any = batches) -> None:
        self.trainer, self.gen, self.data, self.batch_fn = trainer, gen, data, batch_fn
        self._it = iter(())

    def run(self, steps: int) -> None:
        for _ in range(steps):
            try:
                xb, yb = next(self._it)
            except StopIteration:
                self._it = iter(self.batch_fn(self.data.x_train, self.data.y_train, 16, self.gen))
                xb, yb = next(self._it)
            self.trainer.step(xb, yb)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=["float", "mp", "mp-52.5"],
                    choices=list(VARIANTS))
    ap.add_argument("--kernels", nargs="+", default=["eager"], choices=["eager", "compiled"])
    ap.add_argument("--step", nargs="+", default=[None], choices=[None, "flat", "reference"],
                    help="mixed_precision.step (default: dse's default)")
    ap.add_argument("--dense", nargs="+", default=["auto"], choices=["auto", "always", "never"],
                    help="the flat bank's dense kernel (kernels: compiled, step: flat)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=250, help="steps before timing (1 epoch)")
    ap.add_argument("--profile", default=None, choices=list(VARIANTS))
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)  # as dse.train.train
    data = load_dataset("mnist5k")
    combos = [(v, k, st, d) for v in dict.fromkeys(["float", *args.variants])
              for k in (args.kernels if v != "float" else ["eager"])
              for st in (args.step if v != "float" else [None])
              for d in (args.dense if k == "compiled" and st in (None, "flat") else ["auto"])]
    if args.profile:
        combos = [(args.profile, args.kernels[0], args.step[0], args.dense[0])]
    plain = args.kernels == ["eager"] and args.step == [None]  # the variant names alone
    names = [v if v == "float" or plain else
             f"{v}/{k}/{st or 'default'}" + (f"/dense-{d}" if len(args.dense) > 1 else "")
             for v, k, st, d in combos]
    streams = {n: Stream(*_trainer(v, k, data, st, d), data)
               for n, (v, k, st, d) in zip(names, combos, strict=True)}
    for s in streams.values():
        s.run(args.warmup)
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        streams[names[0]].run(args.steps)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
        return
    wall: dict[str, list[float]] = {v: [] for v in names}
    cpu: dict[str, list[float]] = {v: [] for v in names}
    for _ in range(args.repeats):
        for v, s in streams.items():
            w0, c0 = time.perf_counter(), time.thread_time()
            s.run(args.steps)
            wall[v].append((time.perf_counter() - w0) / args.steps * 1e3)
            cpu[v].append((time.thread_time() - c0) / args.steps * 1e3)
    print(f"torch {torch.__version__}, 1 thread, kernels {args.kernels}, step {args.step}, "
          f"dense {args.dense}, "
          f"{args.repeats} rounds "
          f"of {args.steps} steps after {args.warmup} warm-up steps")
    print("| variant | wall ms/step | cpu ms/step | wall ratio | cpu ratio |")
    print("|---|--:|--:|--:|--:|")
    for v in names:
        rw = statistics.median(a / b for a, b in zip(wall[v], wall["float"], strict=True))
        rc = statistics.median(a / b for a, b in zip(cpu[v], cpu["float"], strict=True))
        print(f"| {v} | {statistics.median(wall[v]):.3f} | {statistics.median(cpu[v]):.3f} | "
              f"{rw:.2f} | {rc:.2f} |")


if __name__ == "__main__":
    main()
