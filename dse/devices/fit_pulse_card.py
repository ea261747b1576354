"""The card of a pulse-family calibration (:mod:`dse.devices.fit_pulses`): device-to-device
spread from the per-device fits, the parameters of an unmeasured direction, and every parameter
entry with its provenance."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from dse.devices.analog import FitParam, PulseDevice
from dse.devices.fit_pulse_checks import card_key, from_base, missing_entry_note
from dse.devices.fitting import plain, provenance, unit_of
from dse.devices.measurements import Measurements
from dse.devices.params import param_entry


def spread(values: np.ndarray, se: np.ndarray) -> float:
    """Std of per-device estimates minus their mean estimation variance (≥ 0)."""
    if len(values) < 2:
        return 0.0
    return float(math.sqrt(max(float(np.var(values, ddof=1)) - float(np.mean(se**2)), 0.0)))


def d2d_terms(cls: type[PulseDevice], values: dict[str, Any], dfit: dict[str, Any],
               state: dict[str, torch.Tensor], inflation: float,
               ) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, tuple[float, str]]]:
    """Device-to-device spread from the per-device fit (step 2); rescales the mean steps."""
    d2d: dict[str, tuple[float, str]] = {}
    g, gse = dfit["gains"], dfit["se"] * inflation
    both = dfit["has_up"] & dfit["has_down"]
    mu_u = float(np.mean(g[dfit["has_up"], 0])) if dfit["has_up"].any() else 1.0
    mu_d = float(np.mean(g[dfit["has_down"], 1])) if dfit["has_down"].any() else 1.0
    values = cls.rescale_steps(values, mu_u, mu_d)
    state = {**state, "up": state["up"] / mu_u, "down": state["down"] / mu_d}
    u, d = g[:, 0] / mu_u, g[:, 1] / mu_d
    if both.sum() >= 2:
        gain, asym = (u + d)[both] / 2, (u - d)[both] / 2
        gse_ = np.sqrt((gse[both, 0] / mu_u) ** 2 + (gse[both, 1] / mu_d) ** 2) / 2
        d2d["dw_dtod"] = (spread(gain, gse_), "spread of per-device step gains")
        d2d["up_down_dtod"] = (spread(asym, gse_), "spread of per-device up/down asymmetry")
    else:
        sel = dfit["has_up"] if dfit["has_up"].sum() >= 2 else dfit["has_down"]
        col = 0 if sel is dfit["has_up"] else 1
        d2d["dw_dtod"] = (spread(g[sel, col] / (mu_u if col == 0 else mu_d),
                                  gse[sel, col]), "spread of per-device step gains")
    if dfit["per"] == 4:
        rng = float(values["g_max"] - values["g_min"])
        if dfit["has_up"].sum() >= 2:
            hi = g[dfit["has_up"], 3]
            values["g_max"] = float(np.mean(hi))
            d2d["g_max_dtod"] = (spread(hi, gse[dfit["has_up"], 3]) / rng,
                                 "spread of per-device upper bounds")
        if dfit["has_down"].sum() >= 2:
            lo = g[dfit["has_down"], 2]
            values["g_min"] = float(np.mean(lo))
            d2d["g_min_dtod"] = (spread(lo, gse[dfit["has_down"], 2]) / rng,
                                 "spread of per-device lower bounds")
    return values, state, d2d


def card_params(cls: type[PulseDevice], data: Measurements, values: Mapping[str, Any],
                 free: list[FitParam], se: Mapping[str, float], wn: Mapping[str, float],
                 noise: Mapping[str, float], d2d: Mapping[str, tuple[float, str]],
                 n_devices: int, unmeasured: Mapping[str, dict[str, str]]) -> dict[str, Any]:
    """The card's ``params`` with the provenance of every number."""
    prov, unit = provenance(data), data.unit
    params: dict[str, Any] = {}
    for k, v in values.items():
        if k not in cls.PARAMS:
            continue
        extra = {"stderr": se[k]} if k in se else {}
        if k in unmeasured:
            params[k] = param_entry(plain(v), unit_of(cls, k, unit), **unmeasured[k])
        elif k in ("sigma_up", "sigma_down"):
            params[k] = param_entry(plain(v), unit, source=f"{prov}; write-noise σ of the "
                                    "AR(1)+white ML fit of the residuals (constant over G)")
        elif any(p.name == k or p.name.startswith(f"{k}_") for p in free) or k in se:
            params[k] = param_entry(plain(v), unit_of(cls, k, unit),
                                    source=f"{prov}; least-squares trajectory fit", **extra)
        elif k in ("g_min", "g_max", "nodes"):
            params[k] = param_entry(plain(v), unit, source=f"{prov}; range of the smoothed "
                                    "measured trajectories (+2 %)")
        else:
            params[k] = param_entry(plain(v), unit_of(cls, k, unit),
                                    assumption=f"calibration convention of {cls.family} "
                                    "(fixed during the fit)")
    sigma_w = wn["sigma_w"]
    if "c2c_sigma" in cls.PARAMS:
        params["c2c_sigma"] = param_entry(sigma_w, unit, source=f"{prov}; AR(1)+white ML on the "
                                          "trajectory residuals", stderr=noise["sigma_w_se"])
        params["c2c_relative"] = param_entry(0.0, "1", assumption="the calibration models the "
                                             "write noise as additive")
    params["c2c_memory"] = param_entry(wn["phi"], "1", source=f"{prov}; residual AR(1) "
                                       f"coefficient {noise['phi']:.4f} divided by the "
                                       f"trajectory's own restoring factor {wn['restoring']:.4f}",
                                       stderr=noise["phi_se"])
    params["read_sigma"] = param_entry(noise["sigma_r"], unit, source=f"{prov}; AR(1)+white ML "
                                       "on the trajectory residuals", stderr=noise["sigma_r_se"])
    params["program_sigma"] = param_entry(sigma_w, unit, assumption="one-shot programming as "
                                          "precise as one pulse (the fitted write-noise σ)")
    for k in ("dw_dtod", "up_down_dtod", "g_max_dtod", "g_min_dtod"):
        if k in d2d:
            params[k] = param_entry(d2d[k][0], "1", source=f"{prov}; {d2d[k][1]} "
                                    f"({n_devices} devices, estimation variance removed)")
        elif n_devices > 1 and k in ("g_max_dtod", "g_min_dtod"):
            params[k] = param_entry(0.0, "1", assumption="the clip bounds of this family are not "
                                    "identifiable from trajectories that do not reach them")
        else:
            params[k] = param_entry(0.0, "1", assumption="one device in the file: no "
                                    "device-to-device spread measurable")
    return params


def unmeasured_direction(cls: type[PulseDevice], data: Measurements, missing: list[FitParam],
                values: dict[str, Any], base: Mapping[str, Any] | None,
                present: set[str]) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """Values and provenance of the parameters of an unmeasured direction (base card first)."""
    if not missing:
        return values, {}
    keys = {card_key(cls, p.name) for p in missing}
    direction = "down" if present == {"up"} else "up"
    base_name = base_source = None
    if base is not None:
        values = from_base(values, keys, cls(base))
        base_name, base_source = str(base.get("name")), str(base.get("source", ""))[:120]
    note = missing_entry_note(direction, data, base_name, base_source)
    return values, {k: note for k in keys}
