"""The calibration figure: measured vs fitted-mean vs simulated responses (seaborn, Agg)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from dse.devices.calibrate import CalibrationResult

MAX_SERIES = 4
_KNOB_UNITS = {"i_": (1e6, "µA"), "t_": (1e9, "ns"), "vd": (1.0, "V")}  # display units by prefix


def _warned(fit: dict) -> str:
    n = len(fit.get("warnings") or [])
    return f"; {n} warning{'s' if n != 1 else ''} in fit.warnings" if n else ""


def _pulses_figure(result: CalibrationResult):
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.lines import Line2D

    c = result.curves
    devices = list(dict.fromkeys(c["device"]))[:2]
    c = c[c["device"].isin(devices)]
    dirs = [d for d in ("up", "down") if (c["direction"] == d).any()]
    fig, axes = plt.subplots(1, len(dirs), figsize=(4.6 * len(dirs), 3.6), sharey=True,
                             squeeze=False)
    fit = result.fit
    unit = result.card.get("unit") or ("uS" if result.family == "weak_reset" else "")
    for ax, d in zip(axes[0], dirs, strict=True):
        sub = c[c["direction"] == d]
        names = list(dict.fromkeys(sub["series"]))[:MAX_SERIES]
        pal = sns.color_palette("deep", len(names))
        for col, name in zip(pal, names, strict=True):
            s = sub[sub["series"] == name]
            ax.plot(s["pulse"], s["measured"], color=col, lw=0.6, alpha=0.45)
            ax.plot(s["pulse"], s["simulated"], color="0.35", lw=0.5, alpha=0.45)
            ax.plot(s["pulse"], s["fitted"], color=col, lw=2.2)
            ax.plot(s["pulse"], s["smoothed"], color="black", lw=0.9, ls="--")
        ax.set_title(f"{d} pulses", fontsize=9)
        ax.set_xlabel("pulse")
    axes[0][0].set_ylabel(f"conductance [{unit}]" if unit else "conductance")
    handles = [Line2D([], [], color="C0", lw=0.6, alpha=0.6, label="measured"),
               Line2D([], [], color="black", lw=0.9, ls="--",
                      label=f"measured, smoothed ({fit['smoothing_window']} pulses)"),
               Line2D([], [], color="C0", lw=2.2, label="fitted mean"),
               Line2D([], [], color="0.35", lw=0.6, label="simulated from the card")]
    axes[0][-1].legend(handles=handles, fontsize=7, loc="best")
    fig.suptitle(f"{result.card['name']} ({result.family})\nR² {fit['r2']:.3f} of the mean "
                 f"trajectory, residual σ {fit['residual_sigma']:.3g}{_warned(fit)}", fontsize=9)
    fig.tight_layout()
    return fig


def _ber_figure(result: CalibrationResult):
    import matplotlib.pyplot as plt
    import seaborn as sns

    from dse.devices.base import REGISTRY

    t = result.ber_table
    curve = result.ber_curve
    assert t is not None and curve is not None
    knobs = [k for k in REGISTRY[result.family].knobs]
    x = knobs[0]
    hue = next((k for k in t.columns if k not in (x, "trials", "errors", "rate", "lo", "hi",
                                                     "fitted")), None)
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    sns.lineplot(data=curve, x=x, y="fitted", hue=hue, ax=ax, legend=hue is not None,
                 palette="viridis" if hue else None)
    pos = t[t["rate"] > 0]
    ax.errorbar(pos[x], pos["rate"], yerr=[pos["rate"] - pos["lo"], pos["hi"] - pos["rate"]],
                fmt="o", ms=3, color="black", lw=0.8, label="measured (95 % CI)")
    zero = t[t["rate"] == 0]
    if len(zero):
        ax.plot(zero[x], zero["hi"], "v", ms=4, color="grey", label="0 errors (upper 95 %)")
    scale, unit = _KNOB_UNITS.get(x[:2], (1.0, ""))
    ax.xaxis.set_major_formatter(lambda v, _pos: f"{v * scale:g}")
    ax.set_xlabel(f"{x} [{unit}]" if unit else x)
    ax.set_yscale("log")
    ax.set_ylabel("bit error rate")
    ax.set_title(f"{result.card['name']} ({result.family})\nprobit R² "
                 f"{result.fit['r2']:.3f}, deviance {result.fit['deviance']:.3g}"
                 f"{_warned(result.fit)}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def fit_figure(result: CalibrationResult) -> Any:
    """The figure of a calibration: measured vs fitted (written by the wiring)."""
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    if result.kind == "relaxation":
        from dse.devices.fit_relaxation import relaxation_figure

        return relaxation_figure(result)
    return _ber_figure(result) if result.kind == "ber" else _pulses_figure(result)


def curves_summary(result: CalibrationResult) -> pd.DataFrame:
    """Per-series summary (points, R² of the smoothed curve) — handy for logs and tests."""
    rows = []
    for s, grp in result.curves.groupby("series"):
        sm, fit = grp["smoothed"].to_numpy(), grp["fitted"].to_numpy()
        tot = float(np.sum((sm - sm.mean()) ** 2))
        rows.append({"series": s, "points": len(grp),
                     "r2": 1 - float(np.sum((sm - fit) ** 2)) / tot if tot > 0 else np.nan})
    return pd.DataFrame(rows)
