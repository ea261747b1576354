"""The physical PCSA model: errors per stored value, energy and latency versus supply (issue 13).

    python benchmarks/pcsa_physics.py [--n 200000] [--seed 0] [--i-prog 6e-5]
        [--figures benchmarks/figures] [--out results/benchmarks]

Sense amplifier ``config/devices/pcsa-130nm-physical.yaml`` (family ``pcsa_physical``) reading
``config/devices/hfo2-2t2r.yaml`` pairs programmed at ``--i-prog`` (default 60 µA: the weak,
low-energy programming regime, whose LRS spread makes error rates measurable; the nominal
200 µA cell is in the claims table). At every supply the sense window is the best one for the
encoding (``dse.devices.pcsa_rates.best_window`` over 51 windows from 10 ps to 1 µs).

1. ``pcsa_rates.csv`` / ``pcsa_rates.png``: the confusion matrix per stored value, closed form
   against a seeded Monte-Carlo of ``--n`` pairs per stored value (z = difference / binomial σ).
2. ``pcsa_cost.csv`` / ``pcsa_energy.png`` / ``pcsa_latency.png``: energy per sense (dynamic,
   leakage) at the best window and at a window of 3 × the median ±1 decision time, decision and
   cycle times, and the latency, energy and TOPS/W of one inference of a 784-512-512-10 MLP
   (8-bit input pixels, sign activations) mapped on ``rram-2t2r-pcsa-130nm`` (binary) /
   ``rram-2t2r-pcsa-130nm-ternary`` (ternary), timed by ``dse.chip.latency`` with the physical
   sense cycle and the digital clock scaled by the model's logic delay. Energy per inference =
   the estimate stage's components at that supply (digital energies ∝ V², as the estimate
   does), the sense-amplifier row replaced by the physical dynamic energy C·VDD² per sense,
   plus the leakage of every sense amplifier of the chip (``leak_width`` each, which includes
   its column's counter share) over the whole inference latency (no power gating).
3. ``pcsa_claims.csv``: binary vs ternary at nominal and near-threshold supply, for the weak and
   the nominal cell; a fixed 1 ns window; temperature / process corners; sensitivity of the
   ternary result to the assumed (NOT FOUND) circuit numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from dse.chip.estimate import estimate, totals
from dse.chip.latency import latency, pcsa_timing, throughput
from dse.chip.mapping import LayerSpec, map_model
from dse.devices import from_card
from dse.devices.pcsa_rates import (
    VALUES,
    CellStats,
    best_window,
    confusion,
    error_rate,
    sample_confusion,
)
from dse.pipeline.artifacts import load_card, load_chip

log = logging.getLogger("pcsa_physics")
VDDS = [0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 1.0, 1.2]
WINDOWS = np.logspace(-11, -6, 51)
CHIPS = {"binary": "config/chips/rram-2t2r-pcsa-130nm.yaml",
         "ternary": "config/chips/rram-2t2r-pcsa-130nm-ternary.yaml"}
MLP = [LayerSpec("fc1", "linear", "P", 784, 512, in_bits=8, out_bits=1),
       LayerSpec("fc2", "linear", "P", 512, 512, in_bits=1, out_bits=1),
       LayerSpec("fc3", "linear", "P", 512, 10, in_bits=1, out_bits=8)]
P_ZERO = 1 / 3   # fraction of zero weights assumed for the ternary weight error rate


def rates(pcsa, cell: CellStats, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for enc, values in VALUES.items():
        for vdd in VDDS:
            w, _ = best_window(pcsa, cell, enc, WINDOWS, P_ZERO, vdd=vdd)
            exact = confusion(pcsa, cell, enc, vdd=vdd, t_sense=w)
            mc = sample_confusion(pcsa, cell, enc, n, rng, vdd=vdd, t_sense=w) / n
            for i, s in enumerate(values):
                for j, r in enumerate(values):
                    p = exact[i, j]
                    sig = np.sqrt(p * (1 - p) / n)
                    rows.append({"encoding": enc, "vdd": vdd, "window_ns": w * 1e9,
                                 "stored": s, "read": r, "p_model": p, "p_mc": mc[i, j],
                                 "sigma": sig, "z": (mc[i, j] - p) / sig if sig > 0 else 0.0})
            log.info("%s %.2f V done", enc, vdd)
    return pd.DataFrame(rows)


def inference_cost(pcsa, chip, enc: str, vdd: float, window: float) -> dict[str, float]:
    """Latency, energy and TOPS/W of one MLP inference at ``vdd`` (sense energy physical)."""
    c = chip.at({"vdd": vdd})
    mapping = map_model([dataclasses.replace(s, precision=enc) for s in MLP], c)
    table = estimate(mapping, c)
    e_dyn = float(pcsa.energy_per_sense(vdd=vdd, t_sense=window)["dynamic"]) * 1e15
    sense_rows = table["component"] == "sense_amps"
    table.loc[sense_rows, "energy_per_op_fJ"] = e_dyn
    table.loc[sense_rows, "energy_pJ"] = table.loc[sense_rows, "count"] * e_dyn * 1e-3
    tot = totals(table)
    lat = latency(mapping, c, pcsa_timing(c, pcsa, vdd=vdd, t_sense=window))
    lat_s = float(lat["latency_ns"].sum()) * 1e-9
    leak_pj = sum(lm.sense_amps for lm in mapping.layers) * float(
        pcsa.leakage_current(vdd)) * vdd * lat_s * 1e12
    energy = tot["energy_per_inference_pJ"] + leak_pj
    out = throughput(lat, energy, tot["area_mm2"])
    sense_pj = float(table.loc[sense_rows, "energy_pJ"].sum())
    return {**out, "energy_per_inference_pJ": energy, "leakage_pJ": leak_pj,
            "sense_share": sense_pj / energy}


def cost(pcsa, cell: CellStats) -> pd.DataFrame:
    chips = {k: load_chip(v) for k, v in CHIPS.items()}
    r_l, r_h = np.exp(cell.mu_lrs), np.exp(cell.mu_hrs)
    rows = []
    for enc in VALUES:
        for vdd in np.round(np.arange(0.15, 1.201, 0.05), 3):
            w, err = best_window(pcsa, cell, enc, WINDOWS, P_ZERO, vdd=vdd)
            e = pcsa.energy_per_sense(vdd=vdd, t_sense=w)
            t_pm1 = float(pcsa.decision_time(vdd, r_l, r_h))
            e3 = pcsa.energy_per_sense(vdd=vdd, t_sense=3 * t_pm1)
            rows.append({"encoding": enc, "vdd": vdd, "window_ns": w * 1e9, "weight_error": err,
                         "t_d_pm1_ns": t_pm1 * 1e9,
                         "t_d_zero_10pct_ns": float(pcsa.decision_time(vdd, r_h, 1.1 * r_h))
                         * 1e9,
                         "cycle_ns": float(e["cycle"]) * 1e9,
                         "e_dynamic_fJ": float(e["dynamic"]) * 1e15,
                         "e_leakage_fJ": float(e["leakage"]) * 1e15,
                         "e_sense_fJ": float(e["total"]) * 1e15,
                         "e_sense_3td_fJ": float(e3["total"]) * 1e15,
                         **inference_cost(pcsa, chips[enc], enc, vdd, w)})
    return pd.DataFrame(rows)


def claims(pcsa, cell_model, i_prog_weak: float) -> pd.DataFrame:
    chips = {k: load_chip(v) for k, v in CHIPS.items()}
    rows = []

    def row(case: str, enc: str, vdd: float, cell: CellStats, window: float | None = None,
            model=pcsa, **op) -> None:
        w, _ = best_window(model, cell, enc, WINDOWS, P_ZERO, vdd=vdd) if window is None \
            else (window, None)
        m = confusion(model, cell, enc, vdd=vdd, t_sense=w, **op)
        d = {"case": case, "encoding": enc, "vdd": vdd, "window_ns": w * 1e9,
             "weight_error": float(error_rate(m, P_ZERO)),
             "p(+1->0)": float(m[-1, 1]) if enc == "ternary" else 0.0,
             "p(+1->-1)": float(m[-1, 0]),
             "p(0->+-1)": float(m[1, 0] + m[1, 2]) if enc == "ternary" else np.nan, **op}
        if case.startswith("best window"):
            d.update(inference_cost(model, chips[enc], enc, vdd, w))
            d["e_sense_fJ"] = float(model.energy_per_sense(vdd=vdd, t_sense=w)["total"]) * 1e15
        rows.append(d)

    cells = {"nominal cell (200 uA)": CellStats.from_model(cell_model),
             f"weak cell ({i_prog_weak * 1e6:.0f} uA)": CellStats.from_model(cell_model,
                                                                          i_prog_weak)}
    for cname, cell in cells.items():
        for vdd in (1.2, 0.6, 0.5, 0.4, 0.3):
            for enc in VALUES:
                row(f"best window, {cname}", enc, vdd, cell)
                row(f"1 ns window, {cname}", enc, vdd, cell, window=1e-9)
    cell = cells[f"weak cell ({i_prog_weak * 1e6:.0f} uA)"]
    for vdd in (1.2, 0.5):   # corners at the typical corner's best window, and a tracking one
        for enc in VALUES:
            w, _ = best_window(pcsa, cell, enc, WINDOWS, P_ZERO, vdd=vdd)
            for t, dv in ((250.0, 0.0), (350.0, 0.0), (300.0, 0.03), (300.0, -0.03)):
                row("corner, fixed window", enc, vdd, cell, window=w, temperature=t, dvth=dv)
                track = w * float(pcsa.logic_delay(vdd, t, dv) / pcsa.logic_delay(vdd))
                row("corner, window tracks logic delay", enc, vdd, cell, window=track,
                    temperature=t, dvth=dv)
    for name, factor in (("w_branch", 0.5), ("w_branch", 2.0), ("a_vt", 0.5), ("a_vt", 2.0),
                         ("c_node", 0.5), ("c_node", 2.0), ("trip_fraction", 0.6),
                         ("trip_fraction", 1.4)):
        alt = pcsa.replace(**{name: pcsa.values[name] * factor})
        for vdd in (1.2, 0.5):
            row(f"sensitivity {name} x{factor:g}", "ternary", vdd, cell, model=alt)
    return pd.DataFrame(rows)


def figures(r: pd.DataFrame, c: pd.DataFrame, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    curves = {"binary": [(1, -1, "+1 → −1")],
              "ternary": [(1, 0, "+1 → 0"), (1, -1, "+1 → −1"), (0, 1, "0 → +1")]}
    for ax, (enc, cs) in zip(axes, curves.items(), strict=True):
        for s, rd, label in cs:
            d = r[(r.encoding == enc) & (r.stored == s) & (r.read == rd)]
            line, = ax.semilogy(d.vdd, d.p_model, label=f"{label} model")
            ok = d.p_mc > 0
            ax.errorbar(d.vdd[ok], d.p_mc[ok], yerr=3 * d.sigma[ok], fmt="o", ms=4,
                        color=line.get_color(), label=f"{label} Monte-Carlo ±3σ")
        ax.set(title=f"{enc}, best window per supply", xlabel="VDD (V)")
        ax.set_ylim(1e-7, 1)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("P(read | stored)")
    fig.tight_layout()
    fig.savefig(folder / "pcsa_rates.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for enc, style in (("binary", "-"), ("ternary", "--")):
        d = c[c.encoding == enc]
        ax.loglog(d.vdd, d.e_sense_fJ, style, label=f"total, {enc} window")
        ax.loglog(d.vdd, d.e_leakage_fJ, style, label=f"leakage, {enc} window")
        i = d.e_sense_fJ.idxmin()
        ax.plot(d.vdd[i], d.e_sense_fJ[i], "k*", ms=9)
    d = c[c.encoding == "binary"]
    ax.loglog(d.vdd, d.e_sense_3td_fJ, "-.", label="total, window 3 × t_d(±1)")
    i = d.e_sense_3td_fJ.idxmin()
    ax.plot(d.vdd[i], d.e_sense_3td_fJ[i], "k*", ms=9)
    ax.loglog(d.vdd, d.e_dynamic_fJ, ":", label="dynamic C·VDD²")
    ax.set(xlabel="VDD (V)", ylabel="energy per sense (fJ)",
           title="PCSA energy per sense (★ minimum)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "pcsa_energy.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4.2))
    d = c[c.encoding == "binary"]
    ax.semilogy(d.vdd, d.t_d_pm1_ns, label="decision time, median ±1 pair")
    ax.semilogy(d.vdd, d.t_d_zero_10pct_ns, label="decision time, zero pair 10 % apart")
    for enc in VALUES:
        d = c[c.encoding == enc]
        ax.semilogy(d.vdd, d.cycle_ns, "--", label=f"sense cycle, {enc} window")
        ax.semilogy(d.vdd, d.latency_ns / 1e3, "-.", label=f"MLP latency (µs), {enc}")
    ax.set(xlabel="VDD (V)", ylabel="time (ns; MLP in µs)", title="PCSA timing")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "pcsa_latency.png", dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--i-prog", type=float, default=6e-5)
    ap.add_argument("--figures", type=Path, default=Path("benchmarks/figures"))
    ap.add_argument("--out", type=Path, default=Path("results/benchmarks"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    pcsa = from_card(load_card("config/devices/pcsa-130nm-physical.yaml"))
    cell_model = from_card(load_card("config/devices/hfo2-2t2r.yaml"))
    cell = CellStats.from_model(cell_model, args.i_prog)
    args.out.mkdir(parents=True, exist_ok=True)
    r = rates(pcsa, cell, args.n, args.seed)
    r.to_csv(args.out / "pcsa_rates.csv", index=False)
    c = cost(pcsa, cell)
    c.to_csv(args.out / "pcsa_cost.csv", index=False)
    k = claims(pcsa, cell_model, args.i_prog)
    k.to_csv(args.out / "pcsa_claims.csv", index=False)
    figures(r, c, args.figures)
    big = r[r.p_model * args.n >= 5]
    pd.set_option("display.width", 200)
    print(f"closed form vs Monte-Carlo: {len(r)} entries, max |z| = {r.z.abs().max():.2f}, "
          f"{int((r.z.abs() > 3).sum())} beyond 3 sigma; entries with >= 5 expected errors: "
          f"{len(big)}, max |z| {big.z.abs().max():.2f}")
    for enc in VALUES:
        d = c[c.encoding == enc]
        i = d.e_sense_fJ.idxmin()
        print(f"{enc}: minimum energy per sense {d.e_sense_fJ[i]:.3g} fJ at {d.vdd[i]:.2f} V "
              f"(window {d.window_ns[i]:.3g} ns); at 1.2 V {d.e_sense_fJ.iloc[-1]:.3g} fJ")
        j = d.e_sense_3td_fJ.idxmin()
        print(f"  window 3 t_d(±1): minimum {d.e_sense_3td_fJ[j]:.3g} fJ at {d.vdd[j]:.2f} V; "
              f"energy per inference minimum at {d.vdd[d.energy_per_inference_pJ.idxmin()]:.2f}"
              f" V, TOPS/W maximum at {d.vdd[d.tops_per_w.idxmax()]:.2f} V")
    print(c.round(4).to_string(index=False))
    print(k.round(6).to_string(index=False))


if __name__ == "__main__":
    main()
