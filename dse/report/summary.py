"""The report's opening section: the answer first. One table of every study's Pareto designs
(the knee marked) with their parameters, validation and test accuracy, energy, latency and area,
and one sentence per chip of what limits it, derived from the study's trials."""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd

from dse.report.data import ReportData, Study
from dse.report.items import Builder, Section

TOLERANCE = 0.02  # accuracy within 2 points of a chip's best counts as "holding"
UNITS = {"vdd": (1.0, "V"), "t_sense": (1e9, "ns"), "temperature": (1.0, "K"),
         "dvth": (1e3, "mV"), "i_prog": (1e6, "µA"), "adc_bits": (1.0, "bits")}


def _value(name: str, v: Any) -> str:
    if isinstance(v, float | np.floating) and not pd.isna(v):
        scale, unit = UNITS.get(name, (1.0, ""))
        return f"{v * scale:.3g} {unit}".strip()
    return str(v)


def trial_chip(config: dict[str, Any], study: str, row: pd.Series) -> str:
    """The chip a trial ran on (the study's ``chip``: one name, or one per precision)."""
    spec = config.get("search", {}).get(study, {})
    chip = spec.get("chip")
    if isinstance(chip, str):
        return chip
    exp = config.get("experiments", {}).get(spec.get("experiment"), {})
    precision = row.get("param_precision", exp.get("precision", "binary"))
    return str((chip or {}).get(precision, "?"))


def summary_table(data: ReportData) -> pd.DataFrame:
    """Every study's Pareto designs, one row each (the knee marked)."""
    rows = []
    for name, st in data.studies.items():
        params = [c for c in st.pareto.columns if c.startswith("param_")]
        for _, r in st.pareto.iterrows():
            rows.append({
                "study": name, "trial": int(r["number"]),
                "knee": "knee" if bool(r.get("knee", False)) else "",
                "chip": trial_chip(data.config, name, r),
                "parameters": ", ".join(f"{p.removeprefix('param_')} = "
                                        f"{_value(p.removeprefix('param_'), r[p])}"
                                        for p in params),
                "validation accuracy": r.get("accuracy"),
                "test accuracy": r.get("test_accuracy"),
                "energy / inference (nJ)": r.get("energy_per_inference_pJ", np.nan) / 1e3,
                "latency (µs)": r.get("latency_ns", np.nan) / 1e3,
                "area (mm²)": r.get("area_mm2"), "TOPS/W": r.get("tops_per_w"),
            })
    return pd.DataFrame(rows)


def _dominant_energy(data: ReportData, chip: str) -> str:
    for (_, c), table in data.estimates.items():
        if c != chip or table.empty:
            continue
        inf = table[table["scope"] == "inference"].groupby("component")["energy_pJ"].sum()
        if inf.sum() > 0:
            top = inf.idxmax()
            return (f" Its energy per inference is mostly {top} ({100 * inf[top] / inf.sum():.0f}"
                    " % at the card's nominal point).")
    return ""


def _numeric_params(trials: pd.DataFrame) -> list[str]:
    return [c for c in trials.columns if c.startswith("param_")
            and pd.api.types.is_numeric_dtype(trials[c]) and trials[c].nunique() > 1]


def limit_sentence(st: Study, chip: str, trials: pd.DataFrame, data: ReportData) -> str:
    """What limits ``chip`` in study ``st``: the parameter bound beyond which the accuracy
    falls more than :data:`TOLERANCE` under its best, and whether read errors are the cause
    (their BER 10x that of the designs that hold)."""
    best = float(trials["accuracy"].max())
    good = trials[trials["accuracy"] >= best - TOLERANCE]
    bad = trials[trials["accuracy"] < best - TOLERANCE]
    lead = f"<b>{html.escape(chip)}</b> (study {html.escape(st.name)}, best accuracy {best:.3f})"
    if bad.empty:
        return (f"{lead}: the accuracy stays within {100 * TOLERANCE:.0f} points of its best "
                "over everything searched, so cost alone separates its designs."
                + _dominant_energy(data, chip))
    found: tuple[float, str, str, float, pd.DataFrame] | None = None
    for p in _numeric_params(trials):
        lo, hi = good[p].min(), good[p].max()
        for side, mask, bound in (("below", bad[p] < lo, lo), ("above", bad[p] > hi, hi)):
            share = float(mask.mean())
            if share > 0 and (found is None or share > found[0]):
                found = (share, p, side, float(bound), bad[mask])
    if found is None or found[0] < 0.5:
        return (f"{lead}: {len(bad)} of {len(trials)} designs lose more than "
                f"{100 * TOLERANCE:.0f} points with no single parameter bound separating them."
                + _dominant_energy(data, chip))
    share, p, side, bound, beyond = found
    name = p.removeprefix("param_")
    cause = "the accuracy falls"
    if "ber" in trials and float(beyond["ber"].median()) > 10 * max(float(good["ber"].median()),
                                                                     1e-12):
        worst = beyond.loc[beyond["accuracy"].idxmin()]
        cause = (f"the read errors dominate (weight error rate {beyond['ber'].median():.2g} "
                 f"median, accuracy down to {worst['accuracy']:.3f})")
    elif name == "adc_bits":
        cause = "ADC quantization costs accuracy"
    return (f"{lead}: {side} {name} = {_value(name, bound)} {cause} ({100 * share:.0f} % of the "
            f"designs beyond it lose more than {100 * TOLERANCE:.0f} points)."
            + _dominant_energy(data, chip))


def summary_section(data: ReportData, dpi: int) -> Section | None:
    """The opening section (left out without any study)."""
    if not data.studies:
        return None
    s = Section("summary", "Summary: the co-design answer",
                "Every study's Pareto-optimal designs (selected on validation images held out "
                "of training; the test accuracy measured once, after the search), the knee "
                "(the balanced compromise) marked, and what limits each chip.")
    b = Builder(s, dpi)
    b.table("Pareto designs of every study", lambda: summary_table(data),
            formats={"validation accuracy": ".3f", "test accuracy": ".3f",
                     "energy / inference (nJ)": ".3g", "latency (µs)": ".3g",
                     "area (mm²)": ".3g", "TOPS/W": ".3g"})
    sentences = []
    for name, st in data.studies.items():
        done = st.trials[st.trials["state"] == "COMPLETE"]
        if done.empty or "accuracy" not in done:
            continue
        chips = done.apply(lambda r, n=name: trial_chip(data.config, n, r), axis=1)
        for chip in dict.fromkeys(chips):
            sentences.append(limit_sentence(st, chip, done[chips == chip], data))
    if sentences:
        b.text("<ul>" + "".join(f"<li>{x}</li>" for x in sentences) + "</ul>",
               "What limits each chip")
    return s
