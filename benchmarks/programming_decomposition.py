"""Issue 12's deployment decomposition: today's inject functions, then the corrected programming.

A LeNet trained in situ by ``dse train`` (lenet-mixed-precision of config/config.yaml) is put on
fresh devices of its own device card on the ``rram-1t1r-adc`` chip (mapping by
``dse.chip.mapping.map_model``; weights encoded as the analog encoding does, D = w/w_max·span).
``--repeats`` chips (fault maps) per row, seeded; accuracy on the test set with an ideal
read-out and through the chip's 5-bit ADCs (``dse.chip.adc_quant``, calibrated as inject does).

Rows 1-4, today's functions (``dse.chip.inject.perturbed_weights`` with ``AnalogNoise`` of the
card, switches of the card's imperfections): the issue's table for reference.
Rows 5-8, ``dse.chip.programming`` with the card's ``inference:`` physics: open loop (off cell
at its own floor) and write-verify of the pair difference, without and with the card's per-read
noise. Read noise is drawn once per chip here: for the *mean* accuracy a per-inference or per-MVM
redraw gives the same expectation (each image sees one independent draw either way); only the
spread between chips differs. Rows 9+: write-verify, then the card's relaxation
(``dse.devices.relaxation``) at times after programming, with and without global drift
compensation (``dse.chip.drift``; one noisy reference read per layer right after programming).

    PYTHONPATH=$PWD dse train --config config/config.yaml --experiment lenet-mixed-precision \\
        --out results/train/lenet-mixed-precision
    PYTHONPATH=$PWD python benchmarks/programming_decomposition.py \\
        --model results/train/lenet-mixed-precision --out benchmarks/programming_decomposition.md
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from dse.chip.adc_quant import build_readout
from dse.chip.drift import global_drift_factor
from dse.chip.inject import AnalogNoise, map_accuracies, perturbed_weights
from dse.chip.mapping import map_model
from dse.chip.programming import program, summarize
from dse.data import task_stream
from dse.devices import from_card
from dse.devices.inference import inference_physics
from dse.pipeline.artifacts import load_chip
from dse.pipeline.artifacts import load_model as load

REPO = Path(__file__).resolve().parents[1]
TIMES = {"1 s": 1.0, "1 h": 3600.0, "1 day": 86400.0, "1 year": 3.156e7, "10 years": 3.156e8}


class Deployment:
    """The trained model, its chip mapping, data, ADC read-out and device card."""

    def __init__(self, model_dir: Path, chip: Path, repeats: int, seed: int) -> None:
        self.trained = load(model_dir)
        self.model = self.trained.model.eval()
        self.card = self.trained.meta["device_card"]
        self.dev = from_card(self.card)
        self.phys = inference_physics(self.dev)
        self.mapping = map_model(self.model, load_chip(chip))
        exp = self.trained.experiment
        data = task_stream(exp["dataset"], exp.get("tasks"), int(exp.get("seed") or 0))[-1]
        self.x, self.y = data.x_test, data.y_test
        self.readout = build_readout(self.model, self.mapping, data.x_train[:1000])
        self.repeats, self.seed = repeats, seed
        self.span = self.phys.g_max - self.phys.g_min
        self.layers = self.model.quant_layers()
        self.reports: list[dict[str, Any]] = []

    def accuracy(self, weights: dict[str, torch.Tensor], adc: bool) -> np.ndarray:
        ctx = self.readout.attached(self.model) if adc and self.readout is not None \
            else contextlib.nullcontext()
        if not adc:
            weights = {k: v for k, v in weights.items() if not k.endswith(".cell_levels")}
        with ctx:
            return map_accuracies(self.model, weights, self.x, self.y, changed=1.0).numpy()

    def clean(self, adc: bool) -> float:
        w = {f"{n}.weight": ly.quantized_weight().detach().unsqueeze(0)
             for n, ly in self.layers}
        return float(self.accuracy(w, adc)[0])

    # today's functions ------------------------------------------------------------------
    def today(self, overrides: dict[str, bool], adc: bool) -> np.ndarray:
        gen = torch.Generator().manual_seed(self.seed)
        m = from_card(self.card, overrides)
        w = perturbed_weights(self.model, self.mapping, torch.zeros(self.repeats), gen,
                              analog=AnalogNoise(m, read=True), cell_levels=adc)
        return self.accuracy(w, adc)

    # the corrected programming -------------------------------------------------------------
    def programmed(self, scheme: str, read: bool, adc: bool, times: list[float] | None = None,
                   record: str | None = None, d2d: bool = True) -> dict[str, np.ndarray]:
        """Accuracy per chip for ``scheme`` (key "0"), and at each of ``times`` (keys "t" and
        "t+comp"); ``d2d``: False = nominal devices (no device-to-device spread)."""
        gen = torch.Generator().manual_seed(self.seed)
        phys, r = self.phys, self.repeats
        dev = self.dev if d2d else from_card(self.card, {"d2d": False})
        ws: dict[str, dict[str, torch.Tensor]] = {"0": {}}
        for name, layer in self.layers:
            wq = layer.quantized_weight().detach()
            w_max = float(wq.abs().max())
            d = (wq / w_max * self.span).reshape(-1).repeat(r)  # (R·N,) targets, R chips
            state = dev.sample_devices((2 * d.numel(),), gen)
            res = program(scheme, dev, state, d, phys, gen)
            if record:
                self.reports.append({"row": record, "layer": name,
                                     **summarize(res, phys).as_dict()})
            g = dev.read(state).to(d.dtype)
            n = d.numel()
            series = {"0": g}
            if times:
                relax = phys.relaxation.sample(g, times, gen, floor=self.dev.values["g_floor"])
                series.update({str(t): relax[k] for k, t in enumerate(times)})
            ref = None
            for key, gg in series.items():
                if read:
                    gg = phys.read(gg, gen)
                w = ((gg[:n] - gg[n:]) * (w_max / self.span)).view(r, *wq.shape)
                # the cells' own levels, (G - g_min)/span, for the ADC columns (off cells at
                # their floor, not at level 0)
                lv = torch.stack([gg[:n], gg[n:]], -1).sub_(phys.g_min).div_(self.span)
                lv = lv.view(r, *wq.shape, 2)
                ws.setdefault(key, {}).update({f"{name}.weight": w, f"{name}.cell_levels": lv})
                if key == "0":
                    ref = w  # the layer's reference read right after programming
                else:  # output scaling by α, applied to the cells (before the ADC)
                    alpha = global_drift_factor(ref, w).view(r, *([1] * wq.dim()))
                    ws.setdefault(f"{key}+comp", {}).update({
                        f"{name}.weight": w * alpha, f"{name}.cell_levels": lv * alpha[..., None]})
        return {k: self.accuracy(v, adc) for k, v in ws.items()}


def rows(dep: Deployment, adc: bool) -> list[tuple[str, np.ndarray]]:
    out: list[tuple[str, np.ndarray]] = []
    today: list[tuple[str, dict[str, bool]]] = [
        ("today's inject (fresh D2D, open loop at the nominal g_min, card read_sigma frozen)",
         {}),
        ("programming noise only (today: card program_sigma)",
         {"d2d": False, "read_noise": False}),
        ("fresh-device bound clipping only (today)", {"program_noise": False, "read_noise": False}),
        ("card read_sigma as read noise only (today)", {"d2d": False, "program_noise": False}),
    ]
    for label, ov in today:
        out.append((label, dep.today(ov, adc)))
    tag = "adc" if adc else "ideal"
    new: list[tuple[str, Callable[[], dict[str, np.ndarray]]]] = [
        ("open loop on nominal devices (no D2D): programming noise σ_prog(G) only",
         lambda: dep.programmed("open_loop", False, adc, d2d=False)),
        ("open loop, off cell at its own floor: + fresh D2D windows",
         lambda: dep.programmed("open_loop", False, adc)),
        ("open loop + read noise (card inference.read_noise)",
         lambda: dep.programmed("open_loop", True, adc, record=f"open_loop ({tag})")),
        ("write-verify of G+ - G- on the same fresh devices",
         lambda: dep.programmed("write_verify", False, adc)),
    ]
    for label, fn in new:
        out.append((label, fn()["0"]))
    times = list(TIMES.values())
    res = dep.programmed("write_verify", True, adc, times, record=f"write_verify ({tag})")
    out.append(("write-verify + read noise, t = 0 (fidelity row)", res["0"]))
    for lab, t in TIMES.items():
        out.append((f"write-verify + read noise + relaxation at {lab}", res[str(t)]))
        out.append((f"  same at {lab}, global drift compensation", res[f"{t}+comp"]))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True, help="a `dse train` directory")
    p.add_argument("--chip", type=Path, default=REPO / "config" / "chips" / "rram-1t1r-adc.yaml")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    dep = Deployment(a.model, a.chip, a.repeats, a.seed)
    table: dict[str, dict[str, str]] = {}
    for adc in (False, True):
        col = "chip ADC (5 bit)" if adc else "ideal read-out"
        table.setdefault("in situ (trained weights, no deployment error)", {})[col] = \
            f"{dep.clean(adc):.3f}"
        for label, acc in rows(dep, adc):
            table.setdefault(label, {})[col] = f"{acc.mean():.3f} ± {acc.std(ddof=1):.3f}"
    frame = pd.DataFrame(table).T.rename_axis("deployment variant").reset_index()
    prog = pd.DataFrame(dep.reports)
    cols = ["row", "layer", "pairs", "residual_rms", "residual_mean", "unreachable",
            "unconverged", "pulses", "iterations", "energy_j", "time_s"]
    text = "\n".join([
        f"Model: `{a.model}` (in-situ test accuracy {dep.trained.meta.get('test_accuracy', '?')}),"
        f" device card `{dep.card['name']}`, chip `{dep.mapping.chip}`, {a.repeats} chips per "
        f"row (mean ± std), seed {a.seed}, {len(dep.x)} test images, "
        f"{time.perf_counter() - t0:.0f} s.", "",
        frame.to_markdown(index=False), "",
        "Programming per layer (all chips of a row together; residual in uS, energy J, "
        "time s cell by cell):", "",
        prog[cols].to_markdown(index=False, floatfmt=".4g"), ""])
    print(text)
    if a.out:
        a.out.write_text("# Deployment decomposition (issue 12)\n\nCommand: `PYTHONPATH=$PWD "
                         f"python benchmarks/programming_decomposition.py --model {a.model} "
                         f"--repeats {a.repeats} --out {a.out}`\n\n{text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
