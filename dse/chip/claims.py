"""The seeds' system-level claims beside dse's estimate of them (part of the validation suite,
:mod:`dse.chip.validation`; the derivations are in ``benchmarks/cost_checks.md``).

Each claim is a relative figure of a published chip study; dse computes the same ratio from its
chip and device cards, on the binarized 784-512-512-10 MLP of those papers (8-bit pixels into
the first layer, sign activations). None of them is meant to agree within a tolerance: the
row records the ratio and the assumptions under which the claim would hold.
"""

from __future__ import annotations

import math
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
    "rram_write_energy_reduction": "at the 4e-2 BER that error-aware training tolerates, the "
    "card's BER-vs-current curve allows x4.7 lower write energy from the current alone; the "
    "card's nominal 200 uA / 50 ns and curve shape are assumptions (the paper's curves are not "
    "available) and the pulse width is not a BER knob on it.",
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


def claims(chips: Mapping[str, ChipCard], models: Mapping[str, Any]) -> pd.DataFrame:
    """Rows of the claims (columns of :data:`dse.chip.validation.COLUMNS`); ``chips`` holds
    stt-mram-binary and rram-2t2r-pcsa-130nm, ``models`` their device models."""
    import numpy as np

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
    i = np.geomspace(2e-4, 2e-5, 400)
    ber = np.array([errs.ber({"i_prog": v}) for v in i])
    i_tol = float(np.interp(math.log(4e-2), np.log(ber), i))
    nominal, tolerated = errs.write_energy_pj(), errs.write_energy_pj({"i_prog": i_tol})
    assert nominal is not None and tolerated is not None
    rows.append(_row("rram_write_energy_reduction", "write energy per cell, nominal / at BER "
                     "4e-2", 30.0, nominal / tolerated, RRAM))
    rows.append(_row("sc_area_reduction", "area saved by stochastic first-layer inputs "
                     "(fraction)", 0.62, 0.0, SC))
    return pd.DataFrame(rows)
