"""Issue 12 item 4: a mixed-precision LeNet deployed on its trained devices vs on a fresh chip.

A model trained by ``dse train`` (lenet-mixed-precision of config/config.yaml, which saves its
trained devices in ``devices.pt``, float16) goes onto each chip through the inject recipe's
deployment (:func:`dse.chip.deploy.deploy`, the code ``dse deploy`` runs): the trained devices as
they are (``devices: trained``, no reprogramming), and a fresh chip programmed by write-verify
and by open loop. The ADC read-out sums x·G of the deployed cells themselves (the device card's
floor g_min included). Chips (``--chips``): ``rram-1t1r-adc`` (the default study's, NeuroSim
V2.1's digital pair subtraction: each column converted) and ``rram-1t1r-adc-analog-sub`` (the
same chip with the pair's currents subtracted on the bit line, one conversion per pair).

Chip-independent rows: the in-situ accuracy and the ideal read-out (no ADC) of the trained
devices, noise-free and with the card's per-read noise. Per chip: the chip's 5-bit ADCs, the
same at 16 bits (second method: must equal the ideal read-out within noise), fresh chips, then
the card's relaxation at 1 s, 1 h, 1 day, 1 year and 10 years, with and without global drift
compensation.

    PYTHONPATH=$PWD dse --threads 1 train --config config/config.yaml \\
        --experiment lenet-mixed-precision --out /tmp/i12/train/lenet-mp
    PYTHONPATH=$PWD python benchmarks/in_situ_deployment.py \\
        --model /tmp/i12/train/lenet-mp --out benchmarks/in_situ_deployment.md
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

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
CHIPS = ("rram-1t1r-adc", "rram-1t1r-adc-analog-sub")
TIMES = {"1 s": 1.0, "1 h": 3600.0, "1 day": 86400.0, "1 year": 3.156e7, "10 years": 3.156e8}


def _fmt(acc: pd.Series) -> str:
    return f"{acc.mean():.3f} ± {acc.std(ddof=1):.3f}" if len(acc) > 1 else f"{acc.mean():.3f}"


@dataclasses.dataclass
class Bench:
    """The model, its devices and data, and how many maps per row."""

    model: Any
    dev: Any
    phys: Any
    quiet: Any  # the physics without read noise
    state: Any
    x: torch.Tensor
    y: torch.Tensor
    cal: torch.Tensor
    repeats: int
    seed: int

    def run(self, chip: Any, devices: str, ph: Any, adc: bool, scheme: str = "write_verify",
            times: tuple[float, ...] = ()) -> pd.DataFrame:
        mapping = map_model(self.model, chip)
        gen = torch.Generator().manual_seed(self.seed)
        s = DeploySettings(devices=(devices,), programming=scheme, times=times)
        table, _ = deploy(self.model, mapping, self.x, self.y, self.dev, ph, self.repeats, gen,
                          s, trained=self.state, calibration=self.cal, adc=adc)
        return table


def chip_rows(b: Bench, chip: Any) -> list[tuple[str, str]]:
    """Accuracy rows of one chip (label, mean ± std)."""
    wide = chip.replace(adc_bits=16)
    variants = [
        ("trained devices, noise-free read, chip ADC (ranges on the trained array)", chip,
         "trained", b.quiet, "write_verify"),
        ("**trained devices, card read noise, chip ADC (dse deploy; fidelity row)**", chip,
         "trained", b.phys, "write_verify"),
        ("trained devices, card read noise, 16-bit ADC (second method)", wide, "trained",
         b.phys, "write_verify"),
        ("fresh chip, write-verify, card read noise, chip ADC (dse deploy)", chip, "fresh",
         b.phys, "write_verify"),
        ("fresh chip, write-verify, card read noise, 16-bit ADC", wide, "fresh", b.phys,
         "write_verify"),
        ("fresh chip, open loop, card read noise, chip ADC", chip, "fresh", b.phys,
         "open_loop"),
    ]
    rows = [(label, _fmt(b.run(c, devices, ph, True, scheme)["accuracy"]))
            for label, c, devices, ph, scheme in variants]
    for devices in ("trained", "fresh"):
        t = b.run(chip, devices, b.phys, True, times=tuple(TIMES.values()))
        for lab, ts in TIMES.items():
            for comp in (False, True):
                sel = t[(t["time_s"] == ts) & (t["compensated"] == comp)]
                rows.append((f"{devices} devices + relaxation at {lab}"
                             + (", global drift compensation" if comp else ""),
                             _fmt(sel["accuracy"])))
    return rows


def main() -> int:  # long: one benchmark, its tables in order
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True, help="a `dse train` directory")
    p.add_argument("--chips", nargs="+", default=list(CHIPS), help="chip card names")
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
    exp = trained.experiment
    data = task_stream(exp["dataset"], exp.get("tasks"), int(exp.get("seed") or 0))[-1]
    b = Bench(model, dev, phys, quiet, unpack(trained.device_state), data.x_test, data.y_test,
              data.x_train[:1000], a.repeats, a.seed)
    chips = {n: load_chip(REPO / "config" / "chips" / f"{n}.yaml") for n in a.chips}
    first = next(iter(chips.values()))
    clean = {f"{n}.weight": ly.quantized_weight().detach().unsqueeze(0)
             for n, ly in model.quant_layers()}
    common = [
        ("in situ: the model's test accuracy after training (model.json)",
         f"{trained.meta['test_accuracy']:.3f}"),
        ("in situ: the trained weights (float32), ideal read-out",
         f"{float(map_accuracies(model, clean, b.x, b.y)[0]):.3f}"),
        ("trained devices (float16 state), noise-free read, ideal read-out",
         _fmt(b.run(first, "trained", quiet, False)["accuracy"])),
        ("trained devices, card read noise, ideal read-out",
         _fmt(b.run(first, "trained", phys, False)["accuracy"])),
        ("fresh chip, write-verify, card read noise, ideal read-out",
         _fmt(b.run(first, "fresh", phys, False)["accuracy"])),
    ]
    per_chip = {}
    for name, chip in chips.items():
        rows = chip_rows(b, chip)
        per_chip[f"{name} ({chip.sensing.pair_subtraction})"] = [v for _, v in rows]
        labels = [lab for lab, _ in rows]
    frame = pd.DataFrame({"deployment": labels, **per_chip})
    span = phys.g_max - phys.g_min
    text = "\n".join([
        f"Model: `{a.model}` (device card `{trained.device_card['name']}`: g_min "
        f"{phys.g_min:g}, span {span:g}, floor rho = g_min/span = {phys.g_min / span:.3f}), "
        f"{a.repeats} maps per row (mean ± std), seed {a.seed}, {len(b.x)} test images, ADC "
        f"ranges from 1000 training images, {time.perf_counter() - t0:.0f} s on {a.threads} "
        "thread(s).", "",
        pd.DataFrame(common, columns=["read-out-independent", "accuracy"]).to_markdown(
            index=False), "",
        frame.to_markdown(index=False), ""])
    print(text)
    if a.out:
        a.out.write_text("# In-situ deployment (issue 12 item 4)\n\nCommand: `PYTHONPATH=$PWD "
                         f"python benchmarks/in_situ_deployment.py --model {a.model} "
                         f"--repeats {a.repeats} --out {a.out}`\n\n{text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
