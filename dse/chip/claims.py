"""The seeds' system-level claims beside dse's estimate of them (part of the validation suite,
:mod:`dse.chip.validation`; the derivations are in ``benchmarks/cost_checks.md``).

Each claim is a relative figure of a published chip study; dse computes the same ratio from its
chip and device cards, on the binarized 784-512-512-10 MLP of those papers (8-bit pixels into
the first layer, sign activations). None of them is meant to agree within a tolerance: the
row records the ratio and the assumptions under which the claim would hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from dse.chip.ber import ChipErrors
from dse.chip.card import ChipCard
from dse.chip.estimate import estimate, totals
from dse.chip.layer import LayerSpec
from dse.chip.mapping import map_model

MRAM = ("T. Hirtzlin et al., Implementing Binarized Neural Networks with Magnetoresistive RAM "
        "without Error Correction, NANOARCH 2019, arXiv 1908.04085, abstract ('can reach a "
        "factor two')")
RRAM = ("T. Hirtzlin et al., Outstanding Bit Error Tolerance of Resistive RAM-Based Binarized "
        "Neural Networks, AICAS 2019, arXiv 1904.03652, abstract (programming energy 'reduced "
        "by a factor of 30')")
SC = ("T. Hirtzlin et al., Stochastic Computing for Hardware Implementation of Binarized Neural "
      "Networks, IEEE Access 7, 76394-76403 (2019), arXiv 1906.00915, abstract ('62 % area')")

EXPLAIN = {
    "mram_system_gain_once": "a network programmed once and read 1e6 times gains nothing from "
    "cheaper writes: reading is unchanged. The factor 2 needs frequent rewrites (one full "
    "reprogramming per ~350 inferences on these cards, benchmarks/cost_checks.md) or costs of "
    "the strong ECC design that dse does not model (ECC logic, check-bit cells, larger write "
    "drivers); the write-error curve of stt-mram.yaml is itself an assumption.",
    "mram_system_gain_bound": "upper bound: every weight rewritten once per inference; between "
    "this and the programmed-once figure the claim's factor 2 is reached at ~350 inferences "
    "per reprogramming.",
    "rram_write_energy_reduction": "at the 4e-2 BER that error-aware training tolerates, with "
    "the physical PCSA's sense window re-tuned at each programming current (a weaker, more "
    "resistive pair discharges more slowly), the lower current saves this factor in write "
    "energy, paid for by a sense window ~16x the nominal (latency); the card's nominal 200 uA / "
    "50 ns and the cell's spread vs current are assumptions (the paper's curves are not "
    "available) and the pulse width is not a BER knob on it.",
    "rram_write_energy_reduction_fixed_window": "the same with the chip card's fixed sense "
    "window: the physical sense errors of the weaker cells rise at once, so little current "
    "can be saved; the factor 30 would need both a longer window and a tighter cell.",
    "sc_area_reduction": "not expressible: dse has no separate area for the fixed-point "
    "first-layer logic that stochastic computing removes (its area is arrays + ADCs + "
    "periphery only), so the area does not change.",
}


def mlp_specs(hidden: tuple[int, ...] = (512, 512), inputs: int = 784,
              classes: int = 10) -> list[LayerSpec]:
    """The binarized MLP of the seeds, as :func:`dse.chip.mapping.layer_specs` sees it."""
    sizes = (inputs, *hidden, classes)
    n = len(sizes) - 1
    return [LayerSpec(f"fc{i + 1}", "linear", "binary", rows=sizes[i], cols=sizes[i + 1],
                      in_bits=8 if i == 0 else 1, out_bits=1 if i < n - 1 else 8)
            for i in range(n)]


def _row(key: str, quantity: str, ref: float, dse: float, source: str) -> dict[str, Any]:
    return {"case": "seed claims", "quantity": key, "unit": "x", "reference": ref, "dse": dse,
            "ratio": dse / ref, "tolerance": None, "within": abs(dse / ref - 1) <= 0.25,
            "source": f"{quantity}: {source}", "explanation": EXPLAIN[key]}


def _tolerated_current(errs: ChipErrors, target: float = 4e-2) -> tuple[float, float, float]:
    """(programming current at BER ``target`` with the card's sense window, the same with the
    window re-tuned at every current, that window in s). A physical sense amplifier reads a
    weaker-programmed (more resistive) pair more slowly: with the nominal window its errors
    rise at once, with a longer window the cell's own spread decides (at a latency cost)."""
    import numpy as np

    currents = np.geomspace(2e-4, 2e-5, 12)
    knobs = set(errs.knobs) | {"vdd"}
    windows = np.geomspace(5e-11, 2e-8, 14) if "t_sense" in knobs else np.array([np.nan])

    def ber(i: float, w: float) -> float:
        op = {"i_prog": i} if np.isnan(w) else {"i_prog": i, "t_sense": w}
        return max(errs.ber(op), 1e-300)

    fixed = np.array([ber(i, np.nan) for i in currents])
    grid = np.array([[ber(i, w) for w in windows] for i in currents])
    tuned, best = grid.min(axis=1), windows[grid.argmin(axis=1)]

    def crossing(b: np.ndarray) -> int:
        above = np.nonzero(b >= target)[0]
        return int(above[0]) if above.size else len(b) - 1

    def at(b: np.ndarray) -> float:  # log-log interpolation at the first crossing
        k = max(crossing(b), 1)
        x0, x1 = np.log(b[k - 1]), np.log(b[k])
        f = 0.0 if x1 == x0 else float(np.clip((np.log(target) - x0) / (x1 - x0), 0, 1))
        return float(np.exp(np.log(currents[k - 1]) + f * np.log(currents[k] / currents[k - 1])))

    return at(fixed), at(tuned), float(best[crossing(tuned)])


def claims(chips: Mapping[str, ChipCard], models: Mapping[str, Any]) -> pd.DataFrame:
    """Rows of the claims (columns of :data:`dse.chip.validation.COLUMNS`); ``chips`` holds
    stt-mram-binary and rram-2t2r-pcsa-130nm, ``models`` their device models."""

    rows = []
    mram = chips["stt-mram-binary"]
    errs = ChipErrors(mram, models)
    mapping = map_model(mlp_specs(), mram)
    strong = {"i_write": 3.0e-4, "t_write": 1.0e-8}  # BER ~ 0 on stt-mram.yaml
    inf = totals(estimate(mapping, mram))["energy_per_inference_pJ"]
    prog = {k: totals(estimate(mapping, mram, write_energy_pj=errs.write_energy_pj(op)))
            ["deployment_pJ"] for k, op in (("weak", dict(mram.operating_point)),
                                             ("strong", strong))}
    for key, n in (("mram_system_gain_once", 1e6), ("mram_system_gain_bound", 1.0)):
        gain = (inf + prog["strong"] / n) / (inf + prog["weak"] / n)
        rows.append(_row(key, f"system energy, strong / weak write, {n:g} inferences per "
                         "programming", 2.0, gain, MRAM))
    rram = chips["rram-2t2r-pcsa-130nm"]
    errs = ChipErrors(rram, models)
    nominal = errs.write_energy_pj()
    assert nominal is not None
    i_fixed, i_tuned, window = _tolerated_current(errs)
    for key, i_tol, what in (("rram_write_energy_reduction", i_tuned,
                              f"sense window re-tuned per current ({window * 1e9:.2g} ns at "
                              "the tolerated current)"),
                             ("rram_write_energy_reduction_fixed_window", i_fixed,
                              "the card's fixed sense window")):
        tolerated = errs.write_energy_pj({"i_prog": i_tol})
        assert tolerated is not None
        rows.append(_row(key, f"write energy per cell, nominal / at BER 4e-2, {what}", 30.0,
                         nominal / tolerated, RRAM))
    rows.append(_row("sc_area_reduction", "area saved by stochastic first-layer inputs "
                     "(fraction)", 0.62, 0.0, SC))
    return pd.DataFrame(rows)
