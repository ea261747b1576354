"""Analog pulse families: ``soft_bounds``, ``exp_step`` and ``piecewise``.

All three share one state layout and noise model (:class:`PulseDevice`):

* ``g``: the persistent conductance, ``wn``: the write-noise displacement; the device conducts
  ``x = g + wn``, clipped to its own bounds ``[lo, hi]``.
* Mean dynamics: each family maps ``(x, n)`` to the noise-free conductance after ``n`` pulses in
  closed form (a *pulse coordinate*: the mean trajectory G(n) is the solution of
  dG/dn = μ(G)), so ``n`` pulses cost the same as one and ``apply_pulses`` with ``n`` pulses equals
  ``n`` calls with one pulse in the mean. The step is evaluated at the actual conductance ``x``.
* Cycle-to-cycle (write) noise: per pulse a Gaussian of std
  ``c2c_sigma + c2c_relative·|mean step|`` is added to ``wn``, which keeps the fraction
  ``c2c_memory`` (φ) of its value per pulse: ``wn ← φⁿ·wn + σ·sqrt(Σ_{k<n} φ^{2k})·ξ``. φ = 1 is
  the fully cumulative noise of aihwkit's pulsed devices; φ < 1 is what
  :mod:`dse.devices.calibrate` measures from the residual's autocorrelation.
* Read noise: ``read(state, generator)`` adds an independent N(0, read_sigma²) per read.
* Device-to-device (D2D, drawn once in ``sample_devices``), after aihwkit's ``PulsedDevice``
  (``rpu_pulsed_device.cpp::populate``): step gain ``γ ~ N(1, dw_dtod)`` and asymmetry
  ``r ~ N(0, up_down_dtod)`` give per-device step scales ``up = γ + r``, ``down = γ − r``
  (clipped at 0); bounds ``hi = g_max + g_max_dtod·(g_max − g_min)·ξ``, same for ``lo``.

Imperfection switches (card ``imperfections:``): ``d2d``, ``c2c``, ``nonlinearity`` (off: a
constant step per direction equal to the family's step in the middle of the range, hard bounds),
``read_noise``, ``program_noise``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from dse.devices.base import DeviceModel, ParamSpec, register
from dse.errors import DseError

Tensor = torch.Tensor

_NO = "assumption: not given by the card; off by default"

NOISE_PARAMS: dict[str, ParamSpec] = {
    "c2c_sigma": ParamSpec("G", "per-pulse write-noise std, additive", default=0.0, note=_NO,
                           low=0.0),
    "c2c_relative": ParamSpec("1", "per-pulse write-noise std relative to the mean step "
                              "(aihwkit dw_min_std)", default=0.0, note=_NO, low=0.0),
    "c2c_memory": ParamSpec("1", "fraction of the write-noise displacement kept per pulse "
                            "(1 = fully cumulative)", default=1.0,
                            note="assumption: fully cumulative write noise, as aihwkit's pulsed "
                            "devices", low=0.0, high=1.0),
    "read_sigma": ParamSpec("G", "read-noise std, independent per read", default=0.0, note=_NO,
                            low=0.0),
    "program_sigma": ParamSpec("G", "one-shot programming noise std", default=-1.0,
                               note="assumption: as precise as one pulse (the per-pulse write "
                               "noise at the middle of the range)", low=-1.0),
}
D2D_PARAMS: dict[str, ParamSpec] = {
    "dw_dtod": ParamSpec("1", "device-to-device std of the step gain (relative)", default=0.0,
                         note=_NO, low=0.0),
    "up_down_dtod": ParamSpec("1", "device-to-device std of the up/down asymmetry", default=0.0,
                              note=_NO, low=0.0),
    "g_max_dtod": ParamSpec("1", "device-to-device std of g_max, relative to g_max - g_min",
                            default=0.0, note=_NO, low=0.0),
    "g_min_dtod": ParamSpec("1", "device-to-device std of g_min, relative to g_max - g_min",
                            default=0.0, note=_NO, low=0.0),
}
BOUND_PARAMS: dict[str, ParamSpec] = {
    "g_min": ParamSpec("G", "lower conductance bound"),
    "g_max": ParamSpec("G", "upper conductance bound"),
}


@dataclass
class FitParam:
    """One free parameter of a trajectory fit: name, start, bounds, the direction it shapes."""

    name: str
    init: float
    low: float
    high: float
    direction: str | None = None  # "up" / "down" / None (both)


class PulseDevice(DeviceModel):
    """Shared state, noise and D2D handling of the analog pulse families."""

    IMPERFECTIONS: ClassVar[tuple[str, ...]] = ("d2d", "c2c", "nonlinearity", "read_noise",
                                                "program_noise")
    D2D_BOUNDS_FIT: ClassVar[bool] = False  # per-device fits resolve the bounds (soft bounds)

    # bounds --------------------------------------------------------------------------------
    @property
    def g_min(self) -> float:
        return float(self.values["g_min"])

    @property
    def g_max(self) -> float:
        return float(self.values["g_max"])

    @property
    def dw_min(self) -> float:
        st = self.nominal_state(torch.float64)
        mid = torch.tensor([(self.g_min + self.g_max) / 2], dtype=torch.float64)
        up = self._mean_step(mid, torch.ones(1, dtype=torch.float64), st) - mid
        down = mid - self._mean_step(mid, -torch.ones(1, dtype=torch.float64), st)
        return float((up.abs() + down.abs())[0] / 2)

    @property
    def program_sigma(self) -> float:
        s = float(self.values["program_sigma"])
        if s >= 0:
            return s
        mid = torch.tensor([(self.g_min + self.g_max) / 2], dtype=torch.float64)
        n = torch.ones(1, dtype=torch.float64)
        st = self.nominal_state(torch.float64)
        step = (self._mean_step(mid, n, st) - mid).abs()
        return float(self._c2c_sigma(mid, n, mid + step, st)[0])

    # state ---------------------------------------------------------------------------------
    def nominal_state(self, dtype: torch.dtype = torch.float32,
                      device: torch.device | str = "cpu") -> dict[str, Tensor]:
        """0-d tensors of a nominal device (no D2D spread)."""

        def t(v: float) -> Tensor:
            return torch.tensor(v, dtype=dtype, device=device)

        return {"up": t(1.0), "down": t(1.0), "lo": t(self.g_min), "hi": t(self.g_max)}

    def sample_devices(self, shape: Sequence[int], generator: torch.Generator,
                       dtype: torch.dtype = torch.float32,
                       init: float | Tensor | None = None) -> dict[str, Tensor]:
        """Draw D2D parameters once; devices start at ``init`` (default: middle of the range)."""
        shape = tuple(shape)
        dev = generator.device
        st = self.nominal_state(dtype, dev)
        if self.imperfections["d2d"]:
            v = self.values
            rng = self.g_max - self.g_min

            def randn() -> Tensor:
                return torch.randn(shape, generator=generator, dtype=dtype, device=dev)

            gain = 1.0 + v["dw_dtod"] * randn()
            r = v["up_down_dtod"] * randn()
            st["up"] = (gain + r).clamp(min=0.0)
            st["down"] = (gain - r).clamp(min=0.0)
            hi = self.g_max + v["g_max_dtod"] * rng * randn()
            lo = self.g_min + v["g_min_dtod"] * rng * randn()
            mid = (hi + lo) / 2  # aihwkit: a device with max < min is stuck in the middle
            st["hi"] = torch.where(hi < lo, mid, hi)
            st["lo"] = torch.where(hi < lo, mid, lo)
        g0 = (st["lo"] + st["hi"]) / 2 if init is None else torch.as_tensor(init, dtype=dtype)
        st["g"] = torch.clamp(torch.broadcast_to(g0, shape).to(dtype=dtype, device=dev).clone(),
                              st["lo"], st["hi"])
        st["wn"] = torch.zeros(shape, dtype=dtype, device=dev)
        return st

    def set_conductance(self, state: dict[str, Tensor], target: Tensor) -> dict[str, Tensor]:
        """Put the devices at ``target`` (clipped to their bounds), clearing the noise."""
        g = torch.broadcast_to(torch.as_tensor(target, dtype=state["g"].dtype), state["g"].shape)
        state["g"] = torch.clamp(g, state["lo"], state["hi"]).clone()
        state["wn"] = torch.zeros_like(state["g"])
        return state

    def apply_pulses(self, state: dict[str, Tensor], n: Tensor,
                     generator: torch.Generator) -> dict[str, Tensor]:
        """Apply signed pulse counts ``n`` (shaped like the state); updates and returns ``state``."""
        g, wn = state["g"], state["wn"]
        n = torch.as_tensor(n).to(dtype=g.dtype, device=g.device)
        x = g + wn
        xm = self._mean_step(x, n, state)
        g_new = xm - wn
        if self.imperfections["c2c"] and self._has_c2c():
            k = n.abs()
            phi = float(self.values["c2c_memory"])
            sigma = self._c2c_sigma(x, n, xm, state)
            if phi >= 1.0:
                decay = torch.ones_like(k)
                var = k
            else:
                decay = torch.where(k > 0, torch.exp(k * math.log(max(phi, 1e-300))), 1.0)
                var = (1.0 - decay * decay) / (1.0 - phi * phi)
            xi = torch.randn(g.shape, generator=generator, dtype=g.dtype, device=g.device)
            wn = decay * wn + sigma * torch.sqrt(var) * xi
        x_new = torch.clamp(g_new + wn, state["lo"], state["hi"])
        state["g"] = x_new - wn
        state["wn"] = wn
        return state

    def read(self, state: dict[str, Tensor], generator: torch.Generator | None = None) -> Tensor:
        """Conductances (``unit``); read noise when ``generator`` is given and it is switched on."""
        x = state["g"] + state["wn"]
        s = float(self.values["read_sigma"])
        if generator is not None and self.imperfections["read_noise"] and s > 0:
            x = x + s * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        return x

    def program(self, target: Tensor, generator: torch.Generator) -> Tensor:
        """One-shot programming of ``target`` (clipped to the nominal range) with noise."""
        t = torch.as_tensor(target).clamp(self.g_min, self.g_max)
        s = self.program_sigma
        if self.imperfections["program_noise"] and s > 0:
            t = t + s * torch.randn(t.shape, generator=generator, dtype=t.dtype, device=t.device)
            t = t.clamp(self.g_min, self.g_max)
        return t

    # family hooks -----------------------------------------------------------------------
    def _mean_step(self, x: Tensor, n: Tensor, st: Mapping[str, Tensor]) -> Tensor:
        """Noise-free conductance after ``n`` signed pulses from ``x`` (vectorised)."""
        raise NotImplementedError

    def _has_c2c(self) -> bool:
        return self.values["c2c_sigma"] > 0 or self.values["c2c_relative"] > 0

    def _c2c_sigma(self, x: Tensor, n: Tensor, xm: Tensor, st: Mapping[str, Tensor]) -> Tensor:
        """Per-pulse write-noise std for a move from ``x`` to ``xm`` by ``n`` pulses."""
        k = n.abs().clamp(min=1.0)
        return self.values["c2c_sigma"] + self.values["c2c_relative"] * (xm - x).abs() / k

    # fitting hooks (dse.devices.calibrate) ---------------------------------------------------
    def trajectory(self, x0: float | Tensor, pulses: np.ndarray | Tensor, direction: int,
                   st: Mapping[str, Tensor] | None = None) -> Tensor:
        """Mean conductance after ``pulses`` (≥ 0) pulses of one direction from ``x0`` (float64)."""
        p = torch.as_tensor(pulses, dtype=torch.float64)
        st = st if st is not None else self.nominal_state(torch.float64)
        x = torch.as_tensor(x0, dtype=torch.float64).expand(p.shape)
        return torch.clamp(self._mean_step(x, direction * p, st), st["lo"], st["hi"])

    @classmethod
    def fit_params(cls, summary: Mapping[str, Any]) -> list[FitParam]:
        """Free shape parameters of the population trajectory fit, with starts and bounds."""
        raise NotImplementedError

    @classmethod
    def fit_values(cls, theta: Mapping[str, float], summary: Mapping[str, Any]) -> dict[str, Any]:
        """Card parameter values from a fitted ``theta`` (the inverse of :meth:`fit_params`)."""
        return dict(theta)


def _summary_slope(summary: Mapping[str, Any], direction: str) -> float:
    s = summary.get(f"slope_{direction}")
    return float(s) if s else 1e-3 * summary["range"]


# ------------------------------------------------------------------------------ soft bounds
@register("soft_bounds")
class SoftBounds(PulseDevice):
    """Step proportional to the distance to the bound, asymmetric up/down.

    Up: ΔG = α_up·(g_max − G); down: ΔG = −α_down·(G − g_min) (aihwkit ``SoftBoundsDevice`` with
    α = dw_min/|w_bound|). Closed form for n pulses: G_n = g_max − (g_max − G_0)(1 − α_up)ⁿ.
    """

    PARAMS: ClassVar[dict[str, ParamSpec]] = {
        **BOUND_PARAMS,
        "alpha_up": ParamSpec("1", "fraction of the distance to g_max covered per up pulse",
                              low=0.0, high=1.0),
        "alpha_down": ParamSpec("1", "fraction of the distance to g_min covered per down pulse",
                                low=0.0, high=1.0),
        **NOISE_PARAMS, **D2D_PARAMS,
    }
    D2D_BOUNDS_FIT: ClassVar[bool] = True

    def _mean_step(self, x: Tensor, n: Tensor, st: Mapping[str, Tensor]) -> Tensor:
        up = n > 0
        k = n.abs()
        lo, hi = st["lo"], st["hi"]
        a_up = self.values["alpha_up"] * st["up"]
        a_dn = self.values["alpha_down"] * st["down"]
        if self.imperfections["nonlinearity"]:
            a = torch.where(up, a_up, a_dn).clamp(0.0, 1.0 - 1e-12)
            target = torch.where(up, hi, lo)
            return target - (target - x) * torch.exp(k * torch.log1p(-a))
        half = (hi - lo) / 2
        step = torch.where(up, a_up * half, -a_dn * half)
        return torch.minimum(torch.maximum(x + step * k, lo), hi)

    @classmethod
    def fit_params(cls, summary: Mapping[str, Any]) -> list[FitParam]:
        lo, hi, rng = summary["min"], summary["max"], summary["range"]
        span = 0.5 * rng
        a_up = min(0.3, max(1e-6, _summary_slope(summary, "up") / span))
        a_dn = min(0.3, max(1e-6, _summary_slope(summary, "down") / span))
        return [
            FitParam("g_max", hi + 0.5 * rng, hi - 0.5 * rng, hi + 1e3 * rng, "up"),
            FitParam("alpha_up", a_up, 1e-9, 0.9, "up"),
            FitParam("g_min", lo - 0.5 * rng, lo - 1e3 * rng, lo + 0.5 * rng, "down"),
            FitParam("alpha_down", a_dn, 1e-9, 0.9, "down"),
        ]


# ------------------------------------------------------------------------------ exp step
def _exp_advance(x: Tensor, n: Tensor, s: Tensor, B: Tensor, kappa: Tensor) -> Tensor:
    """Solve dx/dn = s·(1 − B·e^{κx}) from ``x`` for ``n`` ≥ 0 pulses, in closed form.

    With u = κx and τ = κ·s·n the solution is Δu = τ − log1p(B·e^{u}·expm1(τ)); the step stops
    where 1 − B·e^{κx} ≤ 0 (aihwkit's max(y, 0)). Stable for κ → 0 (second-order expansion).
    """
    u = kappa * x
    w = B * torch.exp(u)
    y0 = 1.0 - w
    tau = kappa * s * n
    small = tau.abs() < 1e-4
    arg = 1.0 + w * torch.expm1(torch.where(small, torch.zeros_like(tau), tau))
    safe = arg > 1e-30
    big = torch.where(safe, arg, torch.ones_like(arg))
    tau_safe = torch.where(small, torch.ones_like(tau), tau)
    f_big = (tau - torch.log(big)) / tau_safe
    f_small = y0 - w * y0 * tau / 2
    f = torch.where(small, f_small, f_big)
    dx = s * n * f
    dx = torch.where(safe | small, dx, torch.sign(s * n) * 1e30)  # finite-n divergence -> bound
    return torch.where((y0 > 0) & (n > 0), x + dx, x)


@register("exp_step")
class ExpStep(PulseDevice):
    """aihwkit's ``ExpStepDevice`` (``rpu_expstep_device.cpp``), a NeuroSim-style exponential
    nonlinearity with its own parameters per direction.

    z = 2a·G/(g_max − g_min) + b; up step = s_up·max(1 − A_up·e^{γ_up·z}, 0); down step =
    s_down·max(1 − A_down·e^{−γ_down·z}, 0), with s_up = step·(1 + min(up_down, 0)) and
    s_down = step·(1 − max(up_down, 0)) (aihwkit's up/down bias). ``n`` pulses use the exact
    solution of the continuous-pulse ODE (steps are small against the range).
    """

    PARAMS: ClassVar[dict[str, ParamSpec]] = {
        **BOUND_PARAMS,
        "step": ParamSpec("G", "step scale (aihwkit dw_min)", low=0.0),
        "up_down": ParamSpec("1", "up/down asymmetry (aihwkit up_down)", low=-1.0, high=1.0),
        "a": ParamSpec("1", "z-scale (aihwkit es_a)"),
        "b": ParamSpec("1", "z-offset (aihwkit es_b)"),
        "A_up": ParamSpec("1", "up nonlinearity amplitude (aihwkit A_up)"),
        "A_down": ParamSpec("1", "down nonlinearity amplitude (aihwkit A_down)"),
        "gamma_up": ParamSpec("1", "up nonlinearity exponent (aihwkit gamma_up)"),
        "gamma_down": ParamSpec("1", "down nonlinearity exponent (aihwkit gamma_down)"),
        **NOISE_PARAMS, **D2D_PARAMS,
    }

    def _coeffs(self, st: Mapping[str, Tensor]) -> dict[str, Tensor | float]:
        v = self.values
        rng = st["hi"] - st["lo"]
        c = 2.0 * v["a"] / rng
        ud = v["up_down"]
        return {
            "c": c,
            "s_up": v["step"] * (1.0 + min(ud, 0.0)) * st["up"],
            "s_dn": v["step"] * (1.0 - max(ud, 0.0)) * st["down"],
            "B_up": v["A_up"] * math.exp(v["gamma_up"] * v["b"]),
            "B_dn": v["A_down"] * math.exp(-v["gamma_down"] * v["b"]),
        }

    def _mean_step(self, x: Tensor, n: Tensor, st: Mapping[str, Tensor]) -> Tensor:
        v = self.values
        co = self._coeffs(st)
        up = n > 0
        k = n.abs()
        if self.imperfections["nonlinearity"]:
            # down moves are up moves of u = -x with κ = γ_down·c (e^{-γ z} = e^{-γ b}·e^{γ c u})
            sgn = torch.where(up, 1.0, -1.0).to(x.dtype)
            kappa = torch.where(up, v["gamma_up"] * co["c"], v["gamma_down"] * co["c"])
            s = torch.where(up, co["s_up"], co["s_dn"])
            B = torch.where(up, torch.as_tensor(co["B_up"], dtype=x.dtype),
                            torch.as_tensor(co["B_dn"], dtype=x.dtype))
            new = sgn * _exp_advance(sgn * x, k, s, B, kappa)
        else:
            z = co["c"] * (st["lo"] + st["hi"]) / 2 + v["b"]
            y_up = (1.0 - v["A_up"] * torch.exp(v["gamma_up"] * z)).clamp(min=0.0)
            y_dn = (1.0 - v["A_down"] * torch.exp(-v["gamma_down"] * z)).clamp(min=0.0)
            step = torch.where(up, co["s_up"] * y_up, -co["s_dn"] * y_dn)
            new = x + step * k
        return torch.minimum(torch.maximum(new, st["lo"]), st["hi"])

    FIX_A: ClassVar[float] = -0.5  # calibration convention (aihwkit ReRamESPresetDevice a, b)
    FIX_B: ClassVar[float] = -0.5

    @classmethod
    def fit_params(cls, summary: Mapping[str, Any]) -> list[FitParam]:
        rng = summary["range"]
        s0 = max(_summary_slope(summary, "up"), _summary_slope(summary, "down"), 1e-9 * rng)
        return [
            FitParam("step", s0, 1e-6 * s0, 1e3 * s0, None),
            FitParam("up_down", 0.0, -0.99, 0.99, None),
            FitParam("A_up", -0.5, -60.0, 0.95, "up"),
            FitParam("gamma_up", 1.0, -15.0, 15.0, "up"),
            FitParam("A_down", -0.5, -60.0, 0.95, "down"),
            FitParam("gamma_down", 1.0, -15.0, 15.0, "down"),
        ]

    @classmethod
    def fit_values(cls, theta: Mapping[str, float], summary: Mapping[str, Any]) -> dict[str, Any]:
        return {"a": cls.FIX_A, "b": cls.FIX_B, "g_min": summary["g_min"],
                "g_max": summary["g_max"], **theta}


# ------------------------------------------------------------------------------ piecewise
def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Linear interpolation on increasing ``xp``, extrapolated with the end slopes."""
    i = torch.searchsorted(xp, x.contiguous()).clamp(1, xp.numel() - 1)
    x0, x1 = xp[i - 1], xp[i]
    f0, f1 = fp[i - 1], fp[i]
    return f0 + (f1 - f0) * (x - x0) / (x1 - x0)


@register("piecewise")
class Piecewise(PulseDevice):
    """Data-driven: mean step and C2C σ per direction tabulated at conductance nodes.

    Linear interpolation between ``nodes`` (aihwkit ``PiecewiseStepDevice`` idea, in absolute
    conductance). ``n`` pulses follow the pulse coordinate P(G) = ∫ dG/μ(G), tabulated once on a
    fine grid and inverted by interpolation (exact for the interpolated μ up to the grid).
    The bounds are the first and last node.
    """

    PARAMS: ClassVar[dict[str, ParamSpec]] = {
        "nodes": ParamSpec("G", "conductance nodes (increasing)", kind="table"),
        "up": ParamSpec("G", "mean up step at the nodes", kind="table", low=0.0),
        "down": ParamSpec("G", "mean |down step| at the nodes", kind="table", low=0.0),
        "sigma_up": ParamSpec("G", "C2C std of an up step at the nodes", kind="table", low=0.0),
        "sigma_down": ParamSpec("G", "C2C std of a down step at the nodes", kind="table",
                                low=0.0),
        **{k: v for k, v in NOISE_PARAMS.items() if k not in ("c2c_sigma", "c2c_relative")},
        **D2D_PARAMS,
    }
    GRID: ClassVar[int] = 1024

    def _prepare(self) -> None:
        v = self.values
        nodes = np.asarray(v["nodes"], dtype=float)
        for k in ("up", "down", "sigma_up", "sigma_down"):
            if len(v[k]) != len(nodes):
                raise DseError(f"params.{k}: {len(v[k])} values for {len(nodes)} nodes",
                               source=self.source)
        if not np.all(np.diff(nodes) > 0):
            raise DseError("params.nodes: must be strictly increasing", source=self.source)
        v["g_min"], v["g_max"] = float(nodes[0]), float(nodes[-1])
        grid = np.linspace(nodes[0], nodes[-1], self.GRID)
        coords = []
        for key in ("up", "down"):
            mu = np.interp(grid, nodes, np.asarray(v[key], dtype=float))
            mu = np.maximum(mu, max(mu.max(), 1e-300) * 1e-9)
            inv = 1.0 / mu
            c = np.concatenate([[0.0], np.cumsum((inv[1:] + inv[:-1]) / 2 * np.diff(grid))])
            coords.append(c if key == "up" else c - c[-1])  # both increasing in G
        self._tables = {"grid": grid, "up": coords[0], "down": coords[1]}
        self._cache: dict[tuple, dict[str, Tensor]] = {}

    def _t(self, dtype: torch.dtype, device: torch.device) -> dict[str, Tensor]:
        key = (dtype, str(device))
        if key not in self._cache:
            v = self.values
            self._cache[key] = {
                **{k: torch.as_tensor(a, dtype=dtype, device=device)
                   for k, a in self._tables.items()},
                **{k: torch.as_tensor(np.asarray(v[k], dtype=float), dtype=dtype, device=device)
                   for k in ("nodes", "up", "down", "sigma_up", "sigma_down")}}
        return self._cache[key]

    def _mean_step(self, x: Tensor, n: Tensor, st: Mapping[str, Tensor]) -> Tensor:
        t = self._t(x.dtype, x.device)
        up = n > 0
        k = n.abs()
        if self.imperfections["nonlinearity"]:
            # move along the pulse coordinate of the direction, scaled by the device's step gain
            c_up = _interp(x, t["grid"], t["up"])
            c_dn = _interp(x, t["grid"], t["down"])
            c = torch.where(up, c_up + st["up"] * k, c_dn - st["down"] * k)
            new = torch.where(up, _interp(c, t["up"], t["grid"]),
                              _interp(c, t["down"], t["grid"]))
            new = torch.where(k > 0, new, x)
        else:
            mid = torch.full((1,), (self.g_min + self.g_max) / 2, dtype=x.dtype, device=x.device)
            mu_up = _interp(mid, t["nodes"], t["up"])[0]
            mu_dn = _interp(mid, t["nodes"], t["down"])[0]
            new = x + torch.where(up, mu_up * st["up"], -mu_dn * st["down"]) * k
        return torch.minimum(torch.maximum(new, st["lo"]), st["hi"])

    def _has_c2c(self) -> bool:
        return bool(np.any(self.values["sigma_up"] > 0) or np.any(self.values["sigma_down"] > 0))

    def _c2c_sigma(self, x: Tensor, n: Tensor, xm: Tensor, st: Mapping[str, Tensor]) -> Tensor:
        t = self._t(x.dtype, x.device)
        s_up = _interp(x, t["nodes"], t["sigma_up"]).clamp(min=0.0)
        s_dn = _interp(x, t["nodes"], t["sigma_down"]).clamp(min=0.0)
        return torch.where(n > 0, s_up, s_dn)

    NODES: ClassVar[int] = 6  # calibration: nodes spread over the measured range

    @classmethod
    def fit_params(cls, summary: Mapping[str, Any]) -> list[FitParam]:
        out = []
        for d in ("up", "down"):
            s = _summary_slope(summary, d)
            out += [FitParam(f"{d}_{i}", s, 1e-4 * s, 1e3 * s, d) for i in range(cls.NODES)]
        return out

    @classmethod
    def fit_values(cls, theta: Mapping[str, float], summary: Mapping[str, Any]) -> dict[str, Any]:
        nodes = np.linspace(summary["g_min"], summary["g_max"], cls.NODES)
        out: dict[str, Any] = {"nodes": nodes}
        for d in ("up", "down"):
            out[d] = np.array([theta[f"{d}_{i}"] for i in range(cls.NODES)])
        sig = float(summary.get("c2c_sigma", 0.0))
        out["sigma_up"] = np.full(cls.NODES, sig)
        out["sigma_down"] = np.full(cls.NODES, sig)
        return out
