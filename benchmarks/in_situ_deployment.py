"""Issue 12 item 4: a mixed-precision LeNet deployed on its trained devices vs on a fresh chip.

A model trained by ``dse train`` (lenet-mixed-precision of config/config.yaml, which saves its
trained devices in ``devices.pt``, float16) goes onto ``rram-1t1r-adc`` through the inject
recipe's deployment (:func:`dse.chip.deploy.deploy`, the code ``dse deploy`` runs): the trained
devices as they are (``devices: trained``, no reprogramming), and a fresh chip programmed by
write-verify and by open loop. A decomposition switches the card's per-read noise and the chip's
5-bit ADCs off one at a time; the noise-free, ideal read of the trained devices against the
model's own (float32) weights measures what float16 storage costs. Then the card's relaxation at
1 s, 1 h, 1 day, 1 year and 10 years, with and without global drift compensation.

    PYTHONPATH=$PWD dse train --config config/config.yaml --experiment lenet-mixed-precision \\
        --out results/train/lenet-mixed-precision
    PYTHONPATH=$PWD python benchmarks/in_situ_deployment.py \\
        --model results/train/lenet-mixed-precision --out benchmarks/in_situ_deployment.md
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import pandas as pd
import torch

from dse.chip.deploy import DeploySettings, deploy
from dse.chip.fault_eval import map_accuracies
from dse.chip.mapping import map_model
from dse.data import task_stream
from dse.devices import from_card
from dse.devices.inference import Polynomial, inference_physics
from dse.pipeline.artifacts import load_chip, load_model
from dse.train.device_state import unpack

REPO = Path(__file__).resolve().parents[1]
TIMES = {"1 s": 1.0, "1 h": 3600.0, "1 day": 86400.0, "1 year": 3.156e7, "10 years": 3.156e8}


def _fmt(acc: pd.Series) -> str:
    return f"{acc.mean():.3f} ± {acc.std(ddof=1):.3f}" if len(acc) > 1 else f"{acc.mean():.3f}"


def main() -> int:  # long: one benchmark table, its rows in order
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True, help="a `dse train` directory")
    p.add_argument("--chip", type=Path, default=REPO / "config" / "chips" / "rram-1t1r-adc.yaml")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    trained = load_model(a.model)
    model = trained.model.eval()
    dev = from_card(trained.device_card)
    phys = inference_physics(dev)
    quiet = dataclasses.replace(phys, read_noise=Polynomial((0.0,), phys.g_max))
    mapping = map_model(model, load_chip(a.chip))
    exp = trained.experiment
    data = task_stream(exp["dataset"], exp.get("tasks"), int(exp.get("seed") or 0))[-1]
    x, y, cal = data.x_test, data.y_test, data.x_train[:1000]
    state = unpack(trained.device_state)
    clean = {f"{n}.weight": ly.quantized_weight().detach().unsqueeze(0)
             for n, ly in model.quant_layers()}
    rows: list[tuple[str, str]] = [
        ("in situ: the model's test accuracy after training (model.json)",
         f"{trained.meta['test_accuracy']:.3f}"),
        ("in situ: the trained weights (float32), ideal read-out",
         f"{float(map_accuracies(model, clean, x, y)[0]):.3f}")]

    def run(devices: str, ph: object, adc: bool, scheme: str = "write_verify",
            times: tuple[float, ...] = ()) -> pd.DataFrame:
        gen = torch.Generator().manual_seed(a.seed)
        s = DeploySettings(devices=(devices,), programming=scheme, times=times)
        table, _ = deploy(model, mapping, x, y, dev, ph, a.repeats, gen, s, trained=state,
                             calibration=cal, adc=adc)
        return table

    variants = [
        ("trained devices (float16 state), noise-free read, ideal read-out", "trained", quiet,
         False, "write_verify"),
        ("trained devices, noise-free read, chip ADC (ranges on the trained array)", "trained",
         quiet, True, "write_verify"),
        ("trained devices, card read noise, ideal read-out", "trained", phys, False,
         "write_verify"),
        ("**trained devices, card read noise, chip ADC (dse deploy; fidelity row)**",
         "trained", phys, True, "write_verify"),
        ("fresh chip, write-verify, card read noise, chip ADC (dse deploy)", "fresh", phys, True,
         "write_verify"),
        ("fresh chip, open loop, card read noise, chip ADC", "fresh", phys, True, "open_loop"),
    ]
    for label, devices, ph, adc, scheme in variants:
        t = run(devices, ph, adc, scheme)
        rows.append((label, _fmt(t["accuracy"])))
    times = tuple(TIMES.values())
    for devices in ("trained", "fresh"):
        t = run(devices, phys, True, times=times)
        for lab, ts in TIMES.items():
            for comp in (False, True):
                sel = t[(t["time_s"] == ts) & (t["compensated"] == comp)]
                rows.append((f"{devices} devices + relaxation at {lab}"
                             + (", global drift compensation" if comp else ""),
                             _fmt(sel["accuracy"])))
    frame = pd.DataFrame(rows, columns=["deployment", "accuracy"])
    text = "\n".join([
        f"Model: `{a.model}` (device card `{trained.device_card['name']}`), chip "
        f"`{mapping.chip}`, {a.repeats} maps per row (mean ± std), seed {a.seed}, {len(x)} test "
        f"images, {time.perf_counter() - t0:.0f} s on {a.threads} thread(s).", "",
        frame.to_markdown(index=False), ""])
    print(text)
    if a.out:
        a.out.write_text("# In-situ deployment (issue 12 item 4)\n\nCommand: `PYTHONPATH=$PWD "
                         f"python benchmarks/in_situ_deployment.py --model {a.model} "
                         f"--repeats {a.repeats} --out {a.out}`\n\n{text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
