"""Synthetic measurement files generated from a reference card (``dse synthesize``).

They let the default study calibrate with no external data, and let tests check that each
family recovers its own parameters. Every file says so in its header (``# synthetic: true``,
the generating command and the reference card), and a card calibrated from it says so in its
``source:``.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from dse.devices.base import DeviceModel
from dse.devices.bit_error import BitErrorModel
from dse.devices.cards import from_card
from dse.devices.measurements import header_lines
from dse.devices.weak_reset import WeakReset
from dse.errors import DseError


def _header(card: Mapping[str, Any], model: Any, fmt: str, seed: int, command: str) -> str:
    return "# SYNTHETIC measurements: simulated by dse from a device card, not measured\n" + \
        header_lines({"synthetic": "true", "format": fmt,
                      "reference-card": f"{card.get('name')} ({card.get('family')})",
                      "generated-by": command or "dse.devices.synthesize",
                      "unit": getattr(model, "unit", "") or "1", "seed": seed})


def _pulse_trains(model: DeviceModel, devices: int, cycles: int, pulses: int,
                  seed: int) -> pd.DataFrame:
    gen = torch.Generator().manual_seed(seed)
    lo, hi = model.g_min, model.g_max
    st = model.sample_devices((devices,), gen, dtype=torch.float64,
                              init=lo + 0.05 * (hi - lo))
    rows = []
    ones = torch.ones(devices, dtype=torch.float64)
    for c in range(cycles):
        for d, name in ((1, "up"), (-1, "down")):
            for p in range(1, pulses + 1):  # a loop over pulses, vectorised over devices
                model.apply_pulses(st, d * ones, gen)
                g = model.read(st, gen).numpy()
                rows.append(pd.DataFrame({"device": [f"d{i}" for i in range(devices)],
                                          "cycle": c, "direction": name, "pulse": p,
                                          "conductance": g}))
    return pd.concat(rows, ignore_index=True)


def _single_direction_ramps(model: DeviceModel, ramps: int, pulses: int, direction: int,
                            seed: int) -> pd.DataFrame:
    """``ramps`` ramps of one device in one direction, each restarted from the far end of the
    range (a lookup-table measurement: reset, then a SET ramp; or set, then a RESET ramp)."""
    gen = torch.Generator().manual_seed(seed)
    lo, hi = model.g_min, model.g_max
    start = lo + 0.05 * (hi - lo) if direction > 0 else hi - 0.05 * (hi - lo)
    st = model.sample_devices((ramps,), gen, dtype=torch.float64)  # one draw per ramp: C2C
    st_dev = {k: (v[:1].expand_as(v).clone() if v.dim() and v.shape[0] == ramps else v)
              for k, v in st.items()}  # ... of one device (the D2D draw of ramp 0 for all)
    model.set_conductance(st_dev, torch.full((ramps,), start, dtype=torch.float64))
    ones = torch.full((ramps,), float(direction), dtype=torch.float64)
    cols = []
    for _ in range(pulses):  # a loop over pulses, vectorised over ramps
        model.apply_pulses(st_dev, ones, gen)
        cols.append(model.read(st_dev, gen).numpy())
    g = np.stack(cols, axis=1)
    name = "up" if direction > 0 else "down"
    return pd.DataFrame({f"r{i}_{name}": g[i] for i in range(ramps)})


def _weak_reset_trains(model: WeakReset, devices: int, pulses: int, every: int,
                       seed: int) -> pd.DataFrame:
    gen = torch.Generator().manual_seed(seed)
    st = model.sample_devices((devices,), gen, dtype=torch.float64)
    rows = []
    n = torch.full((devices,), float(every), dtype=torch.float64)
    for t in range(0, pulses + 1, every):  # a loop over read points, vectorised over devices
        if t:
            model.apply_pulses(st, n, gen)
        rows.append(pd.DataFrame({"device": [f"d{i}" for i in range(devices)], "cycle": 0,
                                  "direction": "down", "pulse": t,
                                  "conductance": model.read(st).numpy()}))
    return pd.concat(rows, ignore_index=True)


def synthesize(card: Mapping[str, Any], fmt: str = "long", *, devices: int = 4,
               cycles: int = 1, pulses: int = 200, every: int = 1, trials: int = 100_000,
               operating_points: Sequence[Mapping[str, float]] | None = None, seed: int = 0,
               command: str = "", direction: str = "alternating") -> str:
    """The text of a synthetic measurement file in format ``fmt`` simulated from ``card``.

    Pulse families: ``long`` (``devices`` × ``cycles`` up/down ramps of ``pulses`` pulses; for
    weak_reset one RESET train read every ``every`` pulses), ``updown`` (one device, one cycle)
    or ``ramps`` (one device, ``cycles`` set/reset column pairs; with ``direction`` up or down,
    ``cycles`` single-direction ramps, each from the far end of the range). Binary cells: ``ber``
    (``trials`` per operating point, errors ~ Binomial(trials, ber)).
    """
    model = from_card(card)
    buf = io.StringIO()
    buf.write(_header(card, model, fmt, seed, command))
    if isinstance(model, BitErrorModel):
        if fmt != "ber":
            raise DseError(f"binary-cell family {model.family} makes only the ber format")
        ops = list(operating_points or model.operating_points())
        if not ops:
            raise DseError("no operating points: give them in the card or as an argument")
        cols = [k for k in (*model.knobs, *model.optional_knobs) if k in ops[0]]
        frame = pd.DataFrame([{k: op[k] for k in cols} for op in ops])
        p = model.ber(**{k: frame[k].to_numpy() for k in cols})
        rng = np.random.default_rng(seed)
        frame["trials"] = trials
        frame["errors"] = rng.binomial(trials, p)
        frame.to_csv(buf, index=False, float_format="%.6g")
        return buf.getvalue()
    if fmt == "ber":
        raise DseError(f"the ber format needs a binary-cell family, not {model.family}")
    if isinstance(model, WeakReset):
        if fmt != "long":
            raise DseError("weak_reset makes only the long format (RESET trains per device)")
        _weak_reset_trains(model, devices, pulses, every, seed).to_csv(buf, index=False,
                                                                        float_format="%.6g")
        return buf.getvalue()
    if fmt == "long":
        frame = _pulse_trains(model, devices, cycles, pulses, seed)
        frame.to_csv(buf, index=False, float_format="%.6g")
    elif fmt == "ramps" and direction in ("up", "down"):
        out = _single_direction_ramps(model, cycles, pulses, 1 if direction == "up" else -1, seed)
        out.to_csv(buf, index=False, float_format="%.6g")
    elif fmt in ("updown", "ramps"):
        frame = _pulse_trains(model, 1, 1 if fmt == "updown" else cycles, pulses, seed)
        cols = {}
        for (c, d), grp in frame.groupby(["cycle", "direction"], sort=False):
            cols[f"c{c}_{d}"] = grp["conductance"].to_numpy()
        out = pd.DataFrame(cols)
        if fmt == "updown":
            out.to_csv(buf, index=False, header=False, float_format="%.6g")
        else:
            out.to_csv(buf, index=False, float_format="%.6g")
    else:
        raise DseError(f"unknown format '{fmt}' (long, updown, ramps, ber)")
    return buf.getvalue()
