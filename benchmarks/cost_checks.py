"""Cross-checks of the chip cost model against published figures; prints the numbers quoted in
benchmarks/cost_checks.md.

    python benchmarks/cost_checks.py

No training: the layer shapes of the default networks come from dse.nn.build_model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dse.chip.adc import MurmannSurvey, NeuroSimSar
from dse.chip.ber import ChipErrors
from dse.chip.estimate import by_component, estimate, totals
from dse.chip.mapping import layer_specs, map_model
from dse.nn import ModelSpec, build_model
from dse.pipeline.artifacts import load_chip, load_device_models

HW_SAR = {(130, 4): 495, (130, 5): 645, (130, 6): 812, (130, 8): 1196,
          (22, 4): 32.6, (22, 5): 42.4, (22, 6): 53.2, (22, 8): 78.1}          # fJ
HW_SURVEY = {(130, 4): 12.9, (130, 5): 13.1, (130, 6): 14.9, (130, 8): 23.9,
             (22, 4): 0.46, (22, 5): 0.46, (22, 6): 0.53, (22, 8): 0.85}       # pJ
HW_CELL = {130: (0.58, 33.6, 2.0), 22: (0.55, 30.3, 1.8)}                    # V, fJ LRS, HRS


def md(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, floatfmt=".4g")


def adc_table() -> pd.DataFrame:
    rows = []
    for (node, bits), ref in HW_SAR.items():
        e = NeuroSimSar.energy_fj(bits, node)
        rows.append({"model": "neurosim_sar", "node nm": node, "bits": bits,
                     "reference": f"{ref} fJ", "dse": f"{e:.4g} fJ",
                     "error %": 100 * (e / ref - 1)})
    for (node, bits), ref in HW_SURVEY.items():
        e = MurmannSurvey.energy_fj(bits, node) * 1e-3
        rows.append({"model": "murmann_survey", "node nm": node, "bits": bits,
                     "reference": f"{ref} pJ", "dse": f"{e:.4g} pJ",
                     "error %": 100 * (e / ref - 1)})
    return pd.DataFrame(rows)


def cell_table() -> pd.DataFrame:
    base = load_chip("config/chips/rram-1t1r-adc.yaml")
    rows = []
    for node, (v, lrs, hrs) in HW_CELL.items():
        chip = base.replace(node_nm=node, read_voltage_v=v, lrs_fraction=1.0)
        e_l = chip.cell_read_fj
        e_h = chip.replace(lrs_fraction=0.0).cell_read_fj
        rows.append({"node nm": node, "V_read": v, "E(LRS) reference": lrs, "E(LRS) dse": e_l,
                     "error %": 100 * (e_l / lrs - 1), "E(HRS) reference": hrs,
                     "E(HRS) dse": e_h, "error % ": 100 * (e_h / hrs - 1)})
    return pd.DataFrame(rows)


def bnn_specs(precision: str = "binary", hidden=(512, 512)):
    net = build_model(ModelSpec("mlp", (1, 28, 28), 10, precision, hidden=list(hidden)))
    return layer_specs(net)


def mram_weak_vs_strong() -> str:
    chip = load_chip("config/chips/stt-mram-binary.yaml")
    errs = ChipErrors(chip, load_device_models(["config/devices/stt-mram.yaml"]))
    weak = dict(chip.operating_point)
    strong = {"i_write": 3.0e-4, "t_write": 1.0e-8}
    mapping = map_model(bnn_specs(), chip)
    out = []
    res = {}
    for label, op in (("weak (chip nominal)", weak), ("strong", strong)):
        w = errs.write_energy_pj(op)
        t = totals(estimate(mapping, chip, write_energy_pj=w))
        res[label] = (w, t)
        out.append({"programming": label, "i_write uA": op["i_write"] * 1e6,
                    "t_write ns": op["t_write"] * 1e9, "BER": errs.ber(op),
                    "write pJ/cell": w, "program all cells nJ": t["deployment_pJ"] * 1e-3,
                    "inference nJ": t["energy_per_inference_pJ"] * 1e-3})
    (ww, tw), (ws, ts) = res["weak (chip nominal)"], res["strong"]
    inf = tw["energy_per_inference_pJ"]
    r = ws / ww
    # (I + W_s) / (I + W_w) = 2  with W_w = W_s / r  ->  W_s = I / (1 - 2/r)
    ws_needed = inf / (1 - 2 / r)
    rewrites = ws_needed / ts["deployment_pJ"]
    text = md(pd.DataFrame(out))
    text += (f"\n\nWrite-energy ratio strong/weak = {r:.2f}. System energy per inference "
             f"(inference + share of programming) halves when programming is "
             f"{ws_needed / (inf + ws_needed):.0%} of the strong system's energy, i.e. when every "
             f"weight is rewritten once per {1 / rewrites:.3g} inferences "
             f"({rewrites:.3g} full reprogrammings per inference).")
    return text


def rram_programming() -> str:
    chip = load_chip("config/chips/rram-2t2r-pcsa-130nm.yaml")
    errs = ChipErrors(chip, load_device_models(["config/devices/hfo2-2t2r.yaml",
                                                 "config/devices/pcsa-130nm.yaml"]))
    i = np.geomspace(2e-4, 2e-5, 400)
    ber = np.array([errs.ber({"i_prog": v}) for v in i])
    rows = []
    for target in (1e-4, 1e-3, 4e-2):
        v = float(np.interp(np.log(target), np.log(ber), i))
        rows.append({"BER": target, "i_prog uA": v * 1e6,
                     "write pJ/cell": errs.write_energy_pj({"i_prog": v}),
                     "reduction vs 200 uA": errs.write_energy_pj() / errs.write_energy_pj(
                         {"i_prog": v})})
    return md(pd.DataFrame(rows))


def ternary_low_supply() -> str:
    tern = load_chip("config/chips/rram-2t2r-pcsa-130nm-ternary.yaml")
    binary = load_chip("config/chips/rram-2t2r-pcsa-130nm.yaml")
    errs = ChipErrors(tern, load_device_models(["config/devices/hfo2-2t2r.yaml",
                                                 "config/devices/pcsa-130nm.yaml"]))
    rows = []
    for chip, prec in ((binary, "binary"), (tern, "ternary")):
        for vdd in (1.2, 0.6, 0.45):
            c = chip.replace(supply_v=vdd)
            t = estimate(map_model(bnn_specs(prec), c), c)
            rows.append({"chip": chip.name, "vdd V": vdd, "BER (cards)": errs.ber({"vdd": vdd}),
                         "inference nJ": totals(t)["energy_per_inference_pJ"] * 1e-3})
    return md(pd.DataFrame(rows))


def stochastic_input() -> str:
    chip = load_chip("config/chips/rram-2t2r-pcsa-130nm.yaml")
    real = totals(estimate(map_model(bnn_specs(), chip), chip))["energy_per_inference_pJ"]
    rows = [{"first-layer input": "real pixels (8 bits)", "inference nJ": real * 1e-3,
             "saving": 1.0}]
    for length in (8, 4, 2, 1):
        net = build_model(ModelSpec("mlp", (1, 28, 28), 10, "binary", hidden=[512, 512],
                                    input="stochastic", bitstream_length=length))
        e = totals(estimate(map_model(layer_specs(net), chip), chip))["energy_per_inference_pJ"]
        rows.append({"first-layer input": f"stochastic, L = {length}",
                     "inference nJ": e * 1e-3, "saving": real / e})
    return md(pd.DataFrame(rows))


def breakdown() -> str:
    parts = []
    for name, prec in (("rram-2t2r-pcsa-130nm", "binary"), ("stt-mram-binary", "binary"),
                       ("rram-2t2r-pcsa-130nm-ternary", "ternary"),
                       ("rram-1t1r-adc", "float")):
        chip = load_chip(f"config/chips/{name}.yaml")
        t = estimate(map_model(bnn_specs(prec), chip), chip)
        c = by_component(t)
        c["energy %"] = 100 * c["energy_pJ"] / c["energy_pJ"].sum()
        c["area %"] = 100 * c["area_um2"] / c["area_um2"].sum()
        tt = totals(t)
        parts.append(f"**{name}** ({prec} 784-512-512-10): "
                     f"{tt['energy_per_inference_pJ'] * 1e-3:.4g} nJ per inference, "
                     f"{tt['area_mm2']:.3g} mm²\n\n" + c.reset_index().to_markdown(
                         index=False, floatfmt=".3g"))
    return "\n\n".join(parts)


def main() -> None:
    print("## ADC energy per conversion\n")
    print(md(adc_table()))
    ratios = [f"{n} nm {b} b: {MurmannSurvey.energy_fj(b, n) / NeuroSimSar.energy_fj(b, n):.1f}x"
              for n, b in ((130, 5), (130, 8), (22, 5), (22, 8))]
    print("\nmurmann_survey / neurosim_sar ratio:", ", ".join(ratios))
    print("\n## Cell read energy\n")
    print(md(cell_table()))
    print("\n## Weak ST-MRAM programming\n")
    print(mram_weak_vs_strong())
    print("\n## RRAM programming energy vs BER\n")
    print(rram_programming())
    print("\n## Ternary near threshold\n")
    print(ternary_low_supply())
    print("\n## Stochastic-computing input\n")
    print(stochastic_input())
    print("\n## Breakdown of the shipped chips\n")
    print(breakdown())


if __name__ == "__main__":
    main()
