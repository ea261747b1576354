"""Device endurance (cycles to failure per programming regime) against the writes of training.

Endurance data is a mapping ``device card name -> regime -> {cycles, source | assumption,
conditions}``: each device card's ``endurance:`` block (config/devices/*.yaml; the config key
``endurance`` names a file that overrides them). A regime is how
the device is programmed (e.g. ``strong``: the nominal SET/RESET conditions; ``weak``: the
low-current / low-voltage conditions of the C2N papers); ``weak`` and ``strong`` are compared
side by side where a device has both.

:func:`endurance_table` compares a training run's writes per device (the ``writes.csv``
histogram of :mod:`dse.train.writes`) with each regime:

* ``past endurance``: the fraction of the devices written more times than the regime's cycles
  in this one run;
* ``runs to first failure``: how many such runs the chip survives before its most-written device
  reaches its endurance, ``floor(cycles / max writes)``;
* ``runs to 1 % failed``: the same for the 99th percentile of the writes.

One write counts as one cycle (conservative: a SET/RESET cycle is two writes of a cell that
alternates, so the true figures can be up to 2x longer). The writes of the weights' cells only:
digital memories (latent weights, BatchNorm) are not counted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dse.errors import DseError

REGIME_KEYS = ("cycles", "source", "assumption", "conditions")


@dataclass(frozen=True)
class Regime:
    """Cycles to failure of one programming regime, with its provenance."""

    name: str
    cycles: float
    provenance: str
    conditions: str = ""


def parse_endurance(data: Any, source: str = "endurance") -> dict[str, dict[str, Regime]]:
    """Check endurance data (device -> regime -> entry); one DseError line per problem."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise DseError("expected a mapping: device card name -> regime -> {cycles, source}",
                       source=source)
    out: dict[str, dict[str, Regime]] = {}
    for device, regimes in data.items():
        if not isinstance(regimes, Mapping) or not regimes:
            raise DseError(f"{device}: expected a mapping regime -> {{cycles, source}}",
                           source=source)
        out[str(device)] = {}
        for name, entry in regimes.items():
            where = f"{device}.{name}"
            if not isinstance(entry, Mapping):
                raise DseError(f"{where}: expected {{cycles, source}}", source=source)
            bad = sorted(set(entry) - set(REGIME_KEYS))
            if bad:
                raise DseError(f"{where}: unknown key(s) {', '.join(bad)} (allowed: "
                               f"{', '.join(REGIME_KEYS)})", source=source)
            cycles = entry.get("cycles")
            if isinstance(cycles, bool) or not isinstance(cycles, int | float) or \
                    not math.isfinite(cycles) or cycles < 1:
                raise DseError(f"{where}.cycles: expected a number >= 1 (cycles to failure), "
                               f"got {cycles!r}", source=source)
            prov = entry.get("source") or entry.get("assumption")
            if not isinstance(prov, str) or not prov.strip():
                raise DseError(f"{where}: give 'source:' (paper, venue, year, figure) or "
                               "'assumption:' (why this number)", source=source)
            out[str(device)][str(name)] = Regime(str(name), float(cycles), prov.strip(),
                                                 str(entry.get("conditions") or ""))
    return out


def _weighted_quantile(writes: pd.Series, devices: pd.Series, q: float) -> float:
    order = writes.argsort()
    w, n = writes.iloc[order].to_numpy(), devices.iloc[order].to_numpy()
    cum = n.cumsum()
    return float(w[min(int((cum >= q * cum[-1]).argmax()), len(w) - 1)])


def _runs(cycles: float, writes: float) -> float:
    return math.inf if writes <= 0 else float(math.floor(cycles / writes))


def endurance_table(histogram: pd.DataFrame, regimes: Mapping[str, Regime]) -> pd.DataFrame:
    """One row per regime: the run's writes per device against the regime's endurance."""
    h = histogram[histogram["devices"] > 0]
    if h.empty:
        return pd.DataFrame()
    total = int(h["devices"].sum())
    wmax = float(h["writes"].max())
    p99 = _weighted_quantile(h["writes"], h["devices"], 0.99)
    mean = float((h["writes"] * h["devices"]).sum() / total)
    rows = []
    for r in regimes.values():
        past = int(h.loc[h["writes"] > r.cycles, "devices"].sum())
        rows.append({"regime": r.name, "cycles": r.cycles, "devices": total,
                     "max writes": wmax, "p99 writes": p99, "mean writes": mean,
                     "past endurance": past / total,
                     "runs to first failure": _runs(r.cycles, wmax),
                     "runs to 1 % failed": _runs(r.cycles, p99), "source": r.provenance})
    return pd.DataFrame(rows)
