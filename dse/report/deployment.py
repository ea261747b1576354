"""The report's deployment section: analog networks on the chip after programming, over time.

From the inject stage's ``{chip}.deploy.csv`` (per devices option, programming scheme, time
after programming and compensation: mean and 95 % CI over the maps) and ``{chip}.programming.csv``
(per fresh programming and layer: residual, unreachable fraction, pulses, energy, time), written
by :func:`dse.chip.deploy.deploy` through the inject recipe:

* accuracy vs time after programming, per chip and experiment, with CI bands, with and without
  global drift compensation, trained vs fresh devices;
* in-situ vs deployed accuracy side by side (training's test accuracy, the chip's clean ADC
  read, the deployment at t = 0 on the trained and on fresh devices);
* programming residual and unreachable fraction per layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from dse.report.data import ReportData
from dse.report.items import Builder, Section

ZERO_AT = 0.1  # t = 0 (right after programming) is drawn at this abscissa (s) on the log axis


def _label(devices: str, programming: str, compensated: bool) -> str:
    return f"{devices} ({programming})" + (", compensated" if compensated else "")


def deployment_time_figure(summary: pd.DataFrame, title: str | None = None) -> Figure:
    """Accuracy vs time after programming, one panel per experiment: a line and 95 % CI band
    per (devices, programming), dashed with global drift compensation (t = 0 drawn at
    :data:`ZERO_AT` s); dotted grey: the in-situ accuracy (the model's clean accuracy)."""
    exps = list(dict.fromkeys(summary["experiment"]))
    n = len(exps)
    fig = Figure(figsize=(4.6 * min(n, 3), 3.4 * -(-n // 3)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(-(-n // 3), min(n, 3), squeeze=False).ravel())
    keys = list(dict.fromkeys(zip(summary["devices"], summary["programming"], strict=True)))
    pal = dict(zip(keys, sns.color_palette("deep", len(keys)), strict=True))
    for ax, exp in zip(axes, exps, strict=False):
        e = summary[summary["experiment"] == exp]
        for (dv, pr), g in e.groupby(["devices", "programming"], sort=False):
            zero = g[g["time_s"] == 0]
            for comp in (False, True):
                c = pd.concat([zero, g[(g["time_s"] > 0) & (g["compensated"] == comp)]])
                if comp and len(c) == len(zero):
                    continue
                c = c.sort_values("time_s")
                x = c["time_s"].where(c["time_s"] > 0, ZERO_AT)
                ax.plot(x, c["mean"] * 100, marker="o", ms=3.5, color=pal[(dv, pr)],
                        ls="--" if comp else "-", label=_label(dv, pr, comp))
                ax.fill_between(x, c["ci95_low"].fillna(c["mean"]) * 100,
                                c["ci95_high"].fillna(c["mean"]) * 100, color=pal[(dv, pr)],
                                alpha=0.15 if comp else 0.25, lw=0)
        clean = e["clean_accuracy"].dropna()
        if len(clean):
            ax.axhline(float(clean.iloc[0]) * 100, color="0.5", ls=":", lw=1, label="in situ")
        ax.set_xscale("log")
        ax.set_title(exp, fontsize=10)
        ax.set_xlabel("time after programming (s; t = 0 drawn at 0.1 s)")
        ax.set_ylabel("test accuracy (%)")
        ax.legend(fontsize=7)
    for ax in axes[n:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return fig


def _side_by_side(data: ReportData) -> pd.DataFrame:
    rows = []
    for (exp, chip), s in data.deployment.items():
        meta = data.models.get(exp, {})
        row: dict[str, Any] = {"experiment": exp, "chip": chip,
                               "in situ (training)": meta.get("test_accuracy"),
                               "chip, trained weights, clean": s["adc_accuracy"].iloc[0]
                               if "adc_accuracy" in s else None}
        now = s[(s["time_s"] == 0)]
        for _, r in now.iterrows():
            key = f"t = 0, {r['devices']} ({r['programming']})"
            row[key] = round(float(r["mean"]), 4)
            row[key + " CI"] = f"[{r['ci95_low']:.3f}, {r['ci95_high']:.3f}]"
        rows.append(row)
    return pd.DataFrame(rows)


def _programming(data: ReportData) -> pd.DataFrame:
    rows = []
    for (exp, chip), p in data.programming.items():
        for _, r in p.iterrows():
            rows.append({"experiment": exp, "chip": chip, "devices": r.get("devices"),
                         "scheme": r.get("scheme"), "layer": r.get("layer"),
                         "pairs": r.get("pairs"), "residual rms": r.get("residual_rms"),
                         "residual mean (bias)": r.get("residual_mean"),
                         "unreachable": r.get("unreachable"),
                         "unconverged": r.get("unconverged"), "pulses": r.get("pulses"),
                         "energy (J)": r.get("energy_j"), "time (s)": r.get("time_s")})
    return pd.DataFrame(rows)


def deployment_section(data: ReportData, dpi: int) -> Section | None:
    """The deployment section (module docstring); None when no analog chip deployed."""
    if not data.deployment and not data.problems.get("deployment"):
        return None
    s = Section("deployment", "Analog deployment over time",
                "Analog networks programmed onto the chip: on fresh devices (programming "
                "scheme of inject.programming) and on the very devices they were trained on "
                "(in situ, no reprogramming), read with the device card's read noise through "
                "the chip's ADCs, at t = 0 and at the times of inject.times after programming "
                "with the card's relaxation model, with and without global drift compensation.")
    b = Builder(s, dpi)
    for msg in data.problems.get("deployment", []):
        b.failed(msg)
    chips = list(dict.fromkeys(chip for _, chip in data.deployment))
    for chip in chips:
        t = pd.concat([d.assign(experiment=exp) for (exp, c), d in data.deployment.items()
                       if c == chip], ignore_index=True)
        b.figure(chip, lambda t=t, c=chip: deployment_time_figure(t, c),
                 "Mean accuracy over the maps; bands: 95 % confidence interval of the mean; "
                 "dashed: global drift compensation; dotted: in-situ (clean) accuracy.")
    b.table("In situ vs deployed (t = 0)", lambda: _side_by_side(data),
            "In situ: the test accuracy training ended with (model.json); clean: the trained "
            "weights read through the chip's ADCs without device errors.",
            formats={k: ".4f" for k in ("in situ (training)", "chip, trained weights, clean")})
    if data.programming:
        b.table("Programming per layer (fresh devices)", lambda: _programming(data),
                "Residual of the pair difference G+ - G- (conductance units of the card) on the "
                "reachable pairs, its mean (a sign-dependent bias would show), fraction of "
                "targets outside the pair's own window, of pairs the verify loop did not "
                "accept; pulses, energy and time (cell by cell) over all maps.",
                formats={"residual rms": ".3g", "residual mean (bias)": ".2g",
                         "unreachable": ".4f", "unconverged": ".4f", "energy (J)": ".3g",
                         "time (s)": ".3g"})
    return s
