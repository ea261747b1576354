"""The training, device and inject benchmarks on a CUDA GPU, each as a ratio against its float
baseline on the same GPU (interleaved, median of ``--repeats``; CUDA events bracket each call).

    python benchmarks/gpu.py [--repeats 10] [--out benchmarks/results/gpu.json]

Without a GPU it prints why and exits 0 (nothing is written). Rows:
* ``apply_pulses`` of each shipped analog family and the weak-RESET model on a 784×512 state,
  ÷ one Adam step of a 784×512 parameter;
* one mixed-precision training epoch (784-256-10 sigmoid MLP, batch 16, the
  ``bulk-switching`` card) ÷ plain SGD: run by ``benchmarks/mp_batch16.py --device cuda``;
* fault injection: 100 fault maps of a binarised 784-512-512-10 MLP on 1000 images ÷ 100 clean
  evaluations (the same comparison as ``benchmarks/inject_speed.py`` on the CPU).

The CPU figures of the same comparisons are in ``benchmarks/README.md``; the device threading
itself is tested on the CPU by ``tests/test_device_threading.py``.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("benchmarks.gpu")


def _ms(fn: Callable[[], object]) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end)


def _ratio(name: str, fn: Callable[[], object], base: Callable[[], object],
           repeats: int) -> dict[str, float | str]:
    fn(), base()  # warm-up (compiled kernels: the compile or the cache load)
    a, b = [], []
    for _ in range(repeats):
        a.append(_ms(fn))
        b.append(_ms(base))
    ms, base_ms = statistics.median(a), statistics.median(b)
    log.info("%-48s %8.3f ms  baseline %8.3f ms  ratio %6.2f", name, ms, base_ms, ms / base_ms)
    return {"name": name, "ms": ms, "baseline_ms": base_ms, "ratio": ms / base_ms}


def device_rows(repeats: int, dev: torch.device) -> list[dict[str, float | str]]:
    from dse.devices import from_card
    from dse.pipeline.artifacts import load_card

    gen = torch.Generator(device=dev).manual_seed(0)
    p = torch.nn.Parameter(torch.randn(784, 512, device=dev, generator=gen))
    p.grad = torch.randn(784, 512, device=dev, generator=gen)
    opt = torch.optim.Adam([p], lr=1e-3)
    rows = []
    for card in ("bulk-switching", "reram-es-gong2018", "hfo2-weak-reset"):
        model = from_card(load_card(REPO / "config" / "devices" / f"{card}.yaml"))
        state = model.sample_devices((784, 512), gen)  # on the generator's device
        low = 0 if card == "hfo2-weak-reset" else -2
        n = torch.randint(low, 3, (784, 512), generator=gen, device=dev).float()
        rows.append(_ratio(f"apply_pulses {card} / Adam",
                           lambda m=model, s=state, n=n: m.apply_pulses(s, n, gen),
                           opt.step, repeats))
    return rows


def inject_rows(repeats: int, dev: torch.device) -> list[dict[str, float | str]]:
    from dse.chip.inject import inject
    from dse.chip.mapping import map_model
    from dse.data import load_dataset
    from dse.nn import ModelSpec, build_model, evaluate
    from dse.pipeline.artifacts import load_chip

    data = load_dataset("mnist5k").to(dev)
    x, y = data.x_test, data.y_test
    model = build_model(ModelSpec("mlp", data.input_shape, data.classes, "binary",
                                  hidden=[512, 512]), torch.Generator().manual_seed(0))
    model = model.to(dev).eval()
    mapping = map_model(model, load_chip(REPO / "config" / "chips" / "rram-2t2r-pcsa-130nm.yaml"))
    gen = torch.Generator(device=dev).manual_seed(0)
    return [_ratio("inject 100 maps / 100 clean evaluations",
                   lambda: inject(model, mapping, x, y, [1e-3], 100, gen, batch=25),
                   lambda: [evaluate(model, x, y) for _ in range(100)], repeats)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "gpu.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not torch.cuda.is_available():
        log.info("benchmarks/gpu.py: no CUDA device here (torch.cuda.is_available() is False): "
                 "skipped, nothing written")
        return 0
    dev = torch.device("cuda")
    rows = device_rows(args.repeats, dev) + inject_rows(args.repeats, dev)
    log.info("mixed-precision steps: python benchmarks/mp_batch16.py --device cuda")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"gpu": torch.cuda.get_device_name(), "rows": rows},
                                   indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
