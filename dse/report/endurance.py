"""The report's endurance section: writes per device of each training run against the
endurance of the devices that store its weights (:mod:`dse.devices.endurance`)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from dse.devices.endurance import endurance_table
from dse.report.data import ReportData
from dse.report.items import Builder, Section

FORMATS = {"cycles": ".3g", "max writes": ".4g", "p99 writes": ".4g", "mean writes": ".3g",
           "past endurance": ".3g", "runs to first failure": ".4g",
           "runs to 1 % failed": ".4g"}


def devices_of(data: ReportData, exp: str) -> list[str]:
    """The devices that hold ``exp``'s weights: its device card, else each chip's cell card."""
    e = data.models.get(exp, {}).get("experiment", {}) or \
        data.config.get("experiments", {}).get(exp, {})
    own = e.get("device_card")
    if own:
        return [own]
    cells = []
    for chip in data.chip_cards.values():
        cells += [s.card for s in getattr(chip, "error_sources", ()) if s.role == "cell"]
    return list(dict.fromkeys(cells))


def endurance_rows(data: ReportData) -> pd.DataFrame:
    """One row per (experiment, device, regime) with a per-device write record."""
    parts = []
    for exp, hist in data.writes.items():
        if hist.empty:
            continue
        for device in devices_of(data, exp):
            regimes = data.endurance.get(device)
            if not regimes:
                continue
            t = endurance_table(hist, regimes)
            parts.append(t.assign(experiment=exp, device=device))
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, ignore_index=True)
    first = ["experiment", "device", "regime"]
    return out[first + [c for c in out.columns if c not in first]]


def weak_vs_strong(rows: pd.DataFrame) -> pd.DataFrame:
    """Runs to first failure in the weak and strong regimes side by side (devices with both)."""
    if rows.empty:
        return rows
    both = rows[rows["regime"].isin(["weak", "strong"])]
    p = both.pivot_table(index=["experiment", "device"], columns="regime",
                         values="runs to first failure", aggfunc="first")
    if not {"weak", "strong"} <= set(p.columns):
        return pd.DataFrame()
    p = p.dropna(subset=["weak", "strong"]).reset_index()
    p["weak / strong"] = p["weak"] / p["strong"]
    return p.rename(columns={"weak": "runs (weak)", "strong": "runs (strong)"})


def writes_figure(writes: dict[str, pd.DataFrame]) -> Figure:
    """Histogram of the writes per device of each run (devices on a log axis)."""
    import matplotlib.pyplot as plt

    h = pd.concat([w.assign(experiment=e) for e, w in writes.items() if not w.empty],
                  ignore_index=True)
    h = h.groupby(["experiment", "writes"], as_index=False)["devices"].sum()
    fig, ax = plt.subplots(figsize=(6.0, 3.2))
    sns.lineplot(data=h, x="writes", y="devices", hue="experiment", marker="o", ax=ax,
                 markersize=3)
    ax.set_yscale("log")
    ax.set_xlabel("writes per device during training")
    ax.set_ylabel("devices")
    fig.tight_layout()
    return fig


def endurance_section(data: ReportData, dpi: int) -> Section | None:
    """Writes per device, the fraction past endurance and the runs a chip survives."""
    recorded = {e: w for e, w in data.writes.items() if not w.empty}
    if not data.writes and not data.problems.get("endurance"):
        return None
    s = Section("endurance", "Endurance",
                "Writes per device counted during each training run (writes.csv), against the "
                "endurance (cycles to failure) of the devices that hold its weights, per "
                "programming regime (the device cards' endurance: blocks, one source per number). "
                "One write "
                "counts as one cycle.")
    b = Builder(s, dpi)
    for msg in data.problems.get("endurance", []):
        b.failed(f"Could not read {msg}")
    missing = sorted(set(data.writes) - set(recorded))
    if missing:
        b.text(f"<p>No per-device write record (the trainer tallies totals only): "
               f"{', '.join(missing)}.</p>")
    if not recorded:
        return s
    b.figure("Writes per device", lambda: writes_figure(recorded),
             "How many devices were programmed k times during the run (all weight layers).")
    rows = endurance_rows(data)
    if rows.empty:
        b.text("<p>No endurance data for the devices of these runs.</p>")
        return s
    b.table("Endurance per training run", rows.drop(columns=["source"]), formats=FORMATS)
    ws = weak_vs_strong(rows)
    if not ws.empty:
        b.table("Weak vs strong programming: training runs to the first device failure", ws,
                formats={"runs (weak)": ".4g", "runs (strong)": ".4g", "weak / strong": ".3g"})
    sources: Any = rows[["device", "regime", "cycles", "source"]].drop_duplicates()
    b.table("Endurance sources", sources, formats={"cycles": ".3g"})
    return s
