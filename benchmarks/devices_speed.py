"""Speed of one ``apply_pulses`` step per device family, relative to one Adam step.

For each family: one ``apply_pulses`` call on a state shaped like a 784×512 layer, divided by
one ``torch.optim.Adam`` step on a 784×512 parameter, both measured in this process (median of
``--repeats`` interleaved runs). Goals (issue 15): ≤ 2× for soft bounds, exp step and
piecewise, ≤ 4× for weak_reset with all noise terms. ``--kernels eager compiled`` measures both
paths (the compiled one after its first call, whose time — compile or disk-cache load — is
printed apart). Also the memory of the weak-RESET state of a 784-3000-10 network (two devices
per weight; goal ≤ 1 GB) and the peak RSS of the process holding it.

Pulses: analog families get n ∈ {-2, ..., 2} (uniform, 80 % of the devices pulsed; a dense
mixed-precision transfer), weak_reset n ∈ {0, ..., 14} (the reference code's clamp at 14).

    python benchmarks/devices_speed.py [--threads 1] [--repeats 15] [--kernels eager compiled]
                                       [--only weak_reset]
"""

from __future__ import annotations

import argparse
import copy
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from dse.devices import DeviceModel, calibrate, from_card
from dse.pipeline.artifacts import load_card, read_measurements

REPO = Path(__file__).resolve().parents[1]
SHAPE = (784, 512)


def _time(fn: Callable[[], object]) -> float:
    """CPU time of this thread (torch runs single-threaded here): on a shared machine, wall time
    also counts the slices other processes take, which would penalise the longer call."""
    t = time.thread_time()
    fn()
    return time.thread_time() - t


def _models() -> dict[str, DeviceModel]:
    cards = REPO / "config" / "devices"
    pw = calibrate(read_measurements(REPO / "config" / "measurements"
                                     / "reram-es-gong2018.ramps.synthetic.csv"), "piecewise")
    wr = load_card(cards / "hfo2-weak-reset.yaml")
    return {
        "soft_bounds (bulk-switching)": from_card(load_card(cards / "bulk-switching.yaml")),
        "exp_step (reram-es-gong2018)": from_card(load_card(cards / "reram-es-gong2018.yaml")),
        "piecewise (calibrated)": from_card(pw.card),
        "weak_reset, all noise": from_card(wr),
        "weak_reset, mean + D2D only": from_card(wr, {"rtn": False, "pink": False}),
    }


def speed(repeats: int, modes: list[str],
          only: str = "") -> list[tuple[str, float, float, float]]:
    gen = torch.Generator().manual_seed(0)
    p = torch.nn.Parameter(torch.randn(SHAPE, generator=gen))
    opt = torch.optim.Adam([p], lr=1e-3)
    p.grad = torch.randn(SHAPE, generator=gen)
    rows = []
    models = [(f"{name} [{mode}]", model, mode) for name, model in _models().items()
              for mode in modes if only in name]
    for name, model, mode in models:
        model = copy.copy(model)
        model.__dict__.pop("_kernel_cache", None)
        model.use_kernels(mode)
        state = model.sample_devices(SHAPE, gen)
        if name.startswith("weak_reset"):
            n = torch.randint(0, 15, SHAPE, generator=gen)
        else:
            n = torch.randint(-2, 3, SHAPE, generator=gen)
        t0 = time.perf_counter()
        model.apply_pulses(state, n, gen)  # warm-up (compiled: the compile or cache load)
        if mode == "compiled":
            print(f"{name}: first call {time.perf_counter() - t0:.1f} s", flush=True)
        opt.step()
        adam, dev = [], []
        for _ in range(repeats):  # interleaved, so load changes hit both alike
            adam.append(_time(opt.step))
            dev.append(_time(lambda m=model, s=state, n=n: m.apply_pulses(s, n, gen)))
        a, d = statistics.median(adam), statistics.median(dev)
        rows.append((name, d * 1e3, a * 1e3, d / a))
    # the floor of any family with cycle-to-cycle noise: one Gaussian per device
    adam, rnd = [], []
    for _ in range(repeats):
        adam.append(_time(opt.step))
        rnd.append(_time(lambda: torch.randn(SHAPE, generator=gen)))
    a, r = statistics.median(adam), statistics.median(rnd)
    rows.append(("(floor: one torch.randn)", r * 1e3, a * 1e3, r / a))
    return rows


def weak_reset_memory(mode: str) -> tuple[int, float]:
    """Bytes of the weak-RESET state of a 784-3000-10 network (BL and BLb devices)."""
    model = from_card(load_card(REPO / "config" / "devices" / "hfo2-weak-reset.yaml"))
    model.use_kernels(mode)
    gen = torch.Generator().manual_seed(0)
    total = 0
    for shape in ((2, 784, 3000), (2, 3000, 10)):
        total += DeviceModel.state_bytes(model.sample_devices(shape, gen))
    state = model.sample_devices((2, 784, 3000), gen)
    n = torch.randint(0, 15, (2, 784, 3000), generator=gen)
    model.apply_pulses(state, n, gen)
    return total, _time(lambda: model.apply_pulses(state, n, gen))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--kernels", nargs="+", default=["eager"], choices=["eager", "compiled"])
    ap.add_argument("--only", default="", help="only the families whose name contains this")
    ap.add_argument("--memory-only", action="store_true",
                    help="only the 784-3000-10 weak-RESET state (peak RSS of this process)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), state {SHAPE}, "
          f"median of {args.repeats}")
    if not args.memory_only:
        rows = speed(args.repeats, args.kernels, args.only)
        print(f"{'family':43s} {'apply_pulses ms':>16s} {'Adam ms':>9s} {'ratio':>7s}")
        for name, d, a, r in rows:
            print(f"{name:43s} {d:16.2f} {a:9.2f} {r:7.2f}")
    for mode in args.kernels:
        nbytes, seconds = weak_reset_memory(mode)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
        print(f"[{mode}] weak_reset state, 784-3000-10 network (2 devices/weight): "
              f"{nbytes / 2**20:.0f} MiB; one apply_pulses on the 2x784x3000 layer state: "
              f"{seconds:.2f} s CPU; peak RSS of this process so far {peak:.0f} MiB")


if __name__ == "__main__":
    main()
