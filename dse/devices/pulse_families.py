"""The three analog pulse families: ``soft_bounds``, ``exp_step`` and ``piecewise``.

They share the state layout, noise model and D2D draw of :class:`dse.devices.analog.PulseDevice`
(read its docstring first); each family only defines its mean step in closed form
(``_mean_step``), its D2D bounds and its calibration parameters (``fit_params`` /
``fit_values`` / ``rescale_steps``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from dse.devices.analog import (
    BOUND_PARAMS,
    D2D_PARAMS,
    NOISE_PARAMS,
    FitParam,
    PulseDevice,
)
from dse.devices.base import register
from dse.devices.params import ParamSpec
from dse.errors import DseError

Tensor = torch.Tensor


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

    def _log_keep(self, st: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """ln(1 − α) per direction (per device with D2D), cached in the state by sample_devices."""
        if "log_keep_up" in st:
            return st["log_keep_up"], st["log_keep_down"]
        a_up = (self.values["alpha_up"] * st["up"]).clamp(max=1.0 - 1e-12)
        a_dn = (self.values["alpha_down"] * st["down"]).clamp(max=1.0 - 1e-12)
        return torch.log(1.0 - a_up), torch.log(1.0 - a_dn)

    def sample_devices(self, shape: Sequence[int], generator: torch.Generator,
                       dtype: torch.dtype = torch.float32,
                       init: float | Tensor | None = None) -> dict[str, Tensor]:
        st = super().sample_devices(shape, generator, dtype, init)
        st["log_keep_up"], st["log_keep_down"] = self._log_keep(st)
        return st

    def pulse_keys(self, state: Mapping[str, Tensor]) -> tuple[str, ...]:
        """With the nonlinearity on and ln(1 − α) cached, the D2D gains ``up``/``down`` are not
        read (saves two gathers per sparse update)."""
        if self.imperfections["nonlinearity"] and "log_keep_up" in state:
            return tuple(k for k in state if k not in ("up", "down"))
        return tuple(state)

    def _mean_step(self, x: Tensor, n: Tensor, st: Mapping[str, Tensor]) -> Tensor:
        u = (n + 0.5).clamp_(0.0, 1.0)  # 1 up, 0 down (½ for n = 0: no move)
        k = n.abs()
        lo, hi = st["lo"], st["hi"]
        if self.imperfections["nonlinearity"]:
            l_up, l_dn = self._log_keep(st)
            keep = torch.lerp(torch.broadcast_to(l_dn, x.shape), l_up, u)  # ln(1 − α)
            target = torch.lerp(torch.broadcast_to(lo, x.shape), hi, u)
            # x + (target − x)·(1 − (1 − α)^k), exact for k = 0
            return torch.addcmul(x, target.sub_(x), keep.mul_(k).exp_().sub_(1.0), value=-1.0)
        a_up = self.values["alpha_up"] * st["up"]
        a_dn = self.values["alpha_down"] * st["down"]
        step = torch.lerp(torch.broadcast_to(-a_dn, x.shape), a_up, u).mul_((hi - lo) * 0.5)
        return torch.minimum(torch.maximum(step.mul_(k).add_(x), lo), hi)

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

    @classmethod
    def rescale_steps(cls, values: dict[str, Any], f_up: float, f_down: float) -> dict[str, Any]:
        """Multiply the up/down step sizes (per-device fits renormalised to a mean gain of 1)."""
        return {**values, "alpha_up": min(values["alpha_up"] * f_up, 0.99),
                "alpha_down": min(values["alpha_down"] * f_down, 0.99)}


# ------------------------------------------------------------------------------ exp step
def _exp_move(x: Tensor, k: Tensor, S: Tensor, K: Tensor, B: Tensor) -> Tensor:
    """Conductance after ``k`` pulses of dx/dn = S·(1 − B·e^{K·x}), in closed form.

    S is the signed step scale of the direction, K the signed exponent. With w = B·e^{Kx} and
    τ = K·S·k the exact solution is Δx = S·k·f, f = (τ − ln(1 + w·(e^τ − 1)))/τ; for |τ| < 1e-3
    the series (1 − w)(1 − τw/2) replaces it (float32 cancellation). f is clipped at 0, which is
    aihwkit's max(y, 0) (no move past the saturation point); a finite-n divergence (w < 0 growing)
    runs into the bound. k = 0 gives exactly x. Fused elementwise ops only.
    """
    w = (K * x).exp_().mul_(B)
    tau = K * S * k
    big = tau.abs().sub_(1e-3).mul_(1e9).clamp_(0.0, 1.0)  # 1 where |τ| ≥ 1e-3
    tau_s = (1.0 - big).add_(tau)  # keeps the closed form finite where the series is used
    f_big = (tau_s - torch.exp(tau_s).sub_(1.0).mul_(w).add_(1.0).clamp_(min=1e-30).log_())
    f_big = f_big.div_(tau_s)
    f_small = (tau * w).mul_(-0.5).add_(1.0).mul_(1.0 - w)
    f = torch.lerp(f_small, f_big, big).clamp_(min=0.0)
    return torch.addcmul(x, f.mul_(k), S)


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
        u = (n + 0.5).clamp_(0.0, 1.0)  # 1 up, 0 down (½ for n = 0, which does not move)
        k = n.abs()
        if self.imperfections["nonlinearity"]:
            # up: dx/dn = s_up(1 − B_up e^{γ_up c x}); down: dx/dn = −s_dn(1 − B_dn e^{−γ_dn c x})
            S = torch.lerp(torch.broadcast_to(-co["s_dn"], x.shape), co["s_up"], u)
            K = (u * (v["gamma_up"] + v["gamma_down"]) - v["gamma_down"]).mul_(co["c"])
            B = u * (co["B_up"] - co["B_dn"]) + co["B_dn"]
            new = _exp_move(x, k, S, K, B)
        else:
            z = co["c"] * (st["lo"] + st["hi"]) / 2 + v["b"]
            y_up = (1.0 - v["A_up"] * torch.exp(v["gamma_up"] * z)).clamp(min=0.0)
            y_dn = (1.0 - v["A_down"] * torch.exp(-v["gamma_down"] * z)).clamp(min=0.0)
            step = torch.lerp(torch.broadcast_to(-co["s_dn"] * y_dn, x.shape),
                              co["s_up"] * y_up, u)
            new = step.mul_(k).add_(x)
        # a stuck device (hi = lo: aihwkit's max < min case) has c = ±inf and a NaN move
        new = torch.where(torch.isnan(new), x, new)
        return torch.minimum(torch.maximum(new, st["lo"]), st["hi"])

    def _kernel_mean_step(self, x: Tensor, n: Tensor, st: Mapping[str, Tensor]) -> Tensor:
        from dse.devices.pulse_kernels import exp_step_mean

        return exp_step_mean(self, x, n, st)

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

    FIT_STARTS: ClassVar[list[dict[str, float]]] = [
        {"gamma_up": -3.0, "gamma_down": -3.0}, {"gamma_up": 4.0, "gamma_down": 4.0}]

    @classmethod
    def fit_values(cls, theta: Mapping[str, float], summary: Mapping[str, Any]) -> dict[str, Any]:
        return {"a": cls.FIX_A, "b": cls.FIX_B, "g_min": summary["g_min"],
                "g_max": summary["g_max"], **theta}

    @classmethod
    def rescale_steps(cls, values: dict[str, Any], f_up: float, f_down: float) -> dict[str, Any]:
        ud = values["up_down"]
        s_up = values["step"] * (1.0 + min(ud, 0.0)) * f_up
        s_dn = values["step"] * (1.0 - max(ud, 0.0)) * f_down
        step = max(s_up, s_dn)
        ud = 1.0 - s_dn / s_up if s_up >= s_dn else s_up / s_dn - 1.0
        return {**values, "step": step, "up_down": ud}


# ------------------------------------------------------------------------------ piecewise
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
    GRID: ClassVar[int] = 1024  # conductance grid of the pulse coordinate
    INV_GRID: ClassVar[int] = 4096  # coordinate grid of its inverse

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
        m, mi = self.GRID, self.INV_GRID
        grid = np.linspace(nodes[0], nodes[-1], m)
        fwd, dfwd, inv, dinv, c0, inv_dc = [], [], [], [], [], []
        for key in ("up", "down"):
            mu = np.interp(grid, nodes, np.asarray(v[key], dtype=float))
            mu = np.maximum(mu, max(mu.max(), 1e-300) * 1e-9)
            c = np.concatenate([[0.0], np.cumsum((1 / mu[1:] + 1 / mu[:-1]) / 2 * np.diff(grid))])
            fwd.append(c)
            dfwd.append(np.append(np.diff(c), c[-1] - c[-2]))
            cg = np.linspace(c[0], c[-1], mi)
            gi = np.interp(cg, c, grid)
            inv.append(gi)
            dinv.append(np.append(np.diff(gi), gi[-1] - gi[-2]))
            c0.append(c[0])
            inv_dc.append((mi - 1) / (c[-1] - c[0]))
        sig = {k: np.interp(grid, nodes, np.asarray(v[k], dtype=float))
               for k in ("sigma_up", "sigma_down")}
        self._const_sigma = (float(v["sigma_up"][0])
                             if np.ptp(np.concatenate([v["sigma_up"], v["sigma_down"]])) == 0
                             else None)
        self._tables = {
            "fwd": np.concatenate(fwd), "dfwd": np.concatenate(dfwd),
            "inv": np.concatenate(inv), "dinv": np.concatenate(dinv),
            "sig": np.concatenate([sig["sigma_up"], sig["sigma_down"]]),
            "dsig": np.concatenate([np.append(np.diff(a), 0.0) for a in sig.values()]),
        }
        scal = {"g0": grid[0], "inv_dg": (m - 1) / (grid[-1] - grid[0]),
                "c0_up": c0[0], "c0_dn": c0[1], "idc_up": inv_dc[0], "idc_dn": inv_dc[1],
                "mu_up": np.interp((grid[0] + grid[-1]) / 2, nodes, v["up"]),
                "mu_dn": np.interp((grid[0] + grid[-1]) / 2, nodes, v["down"])}
        # Python floats, not NumPy scalars: a compiled kernel would take those as tensor inputs
        self._scal = {k: float(a) for k, a in scal.items()}
        self._cache: dict[tuple, dict[str, Tensor]] = {}

    def sample_devices(self, shape: Sequence[int], generator: torch.Generator,
                       dtype: torch.dtype = torch.float32,
                       init: float | Tensor | None = None) -> dict[str, Tensor]:
        """:meth:`PulseDevice.sample_devices`; also builds the tables for ``dtype`` on the
        generator's device, so a compiled kernel finds them built (traced, it would rebuild them
        from NumPy on every call)."""
        self._t(dtype, torch.empty(0, device=generator.device).device)  # "cuda" → "cuda:0"
        return super().sample_devices(shape, generator, dtype, init)

    def _t(self, dtype: torch.dtype, device: torch.device) -> dict[str, Tensor]:
        key = (dtype, str(device))
        if key not in self._cache:
            t = {k: torch.as_tensor(a, dtype=dtype, device=device)
                 for k, a in self._tables.items()}
            if dtype == torch.float32:  # (value, slope) pairs for the compiled kernel
                from dse.devices.pulse_kernels import pack_pairs

                for k in ("fwd", "inv"):
                    t[f"{k}_p"] = pack_pairs(self._tables[k], self._tables[f"d{k}"]).to(device)
            self._cache[key] = t
        return self._cache[key]

    @staticmethod
    def _lookup(table: Tensor, slope: Tensor, idx: Tensor, frac: Tensor) -> Tensor:
        flat = idx.reshape(-1)
        val = torch.index_select(table, 0, flat).view(idx.shape)
        return torch.index_select(slope, 0, flat).view(idx.shape).mul_(frac).add_(val)

    def _position(self, x: Tensor, down: Tensor) -> tuple[Tensor, Tensor]:
        """(table index, fraction) of ``x`` on the conductance grid of the chosen direction."""
        sc = self._scal
        pos = (x - sc["g0"]) * sc["inv_dg"]
        i = pos.clamp(0, self.GRID - 2).floor_()
        return (down * self.GRID + i).to(torch.int32), pos.sub_(i)

    def _mean_step(self, x: Tensor, n: Tensor, st: Mapping[str, Tensor]) -> Tensor:
        sc = self._scal
        sgn = torch.sign(n)
        u = (n + 0.5).clamp_(0.0, 1.0)  # 1 up, 0 down (½ for n = 0, which does not move)
        down = (-sgn).clamp_(0.0, 1.0)
        k = n.abs()
        gain = (st["up"] - st["down"]) * u + st["down"]
        if not self.imperfections["nonlinearity"]:
            mu = u * (sc["mu_up"] - sc["mu_dn"]) + sc["mu_dn"]
            new = mu.mul_(gain).mul_(sgn).mul_(k).add_(x)
            return torch.minimum(torch.maximum(new, st["lo"]), st["hi"])
        t = self._t(x.dtype, x.device)
        # pulse coordinate of x, moved by ±gain·k, mapped back (uniform grids: index_select)
        idx, frac = self._position(x, down)
        c = self._lookup(t["fwd"], t["dfwd"], idx, frac)
        c = c.add_(gain.mul_(k).mul_(sgn))
        c0 = down * (sc["c0_dn"] - sc["c0_up"]) + sc["c0_up"]
        pos = c.sub_(c0).mul_(down * (sc["idc_dn"] - sc["idc_up"]) + sc["idc_up"])
        j = pos.clamp(0, self.INV_GRID - 2).floor_()
        new = self._lookup(t["inv"], t["dinv"], (down * self.INV_GRID + j).to(torch.int32),
                           pos.sub_(j))
        new = new.sub_(x).mul_(k.clamp(max=1.0)).add_(x)  # n = 0 stays exactly put
        return torch.minimum(torch.maximum(new, st["lo"]), st["hi"])

    def _kernel_mean_step(self, x: Tensor, n: Tensor, st: Mapping[str, Tensor]) -> Tensor:
        from dse.devices.pulse_kernels import piecewise_mean

        return piecewise_mean(self, x, n, st)

    def _has_c2c(self) -> bool:
        return bool(np.any(self.values["sigma_up"] > 0) or np.any(self.values["sigma_down"] > 0))

    def _c2c_sigma(self, x: Tensor, n: Tensor, xm: Tensor,
                   st: Mapping[str, Tensor]) -> Tensor | float:
        if self._const_sigma is not None:
            return self._const_sigma
        t = self._t(x.dtype, x.device)
        idx, frac = self._position(x, (-torch.sign(n)).clamp_(0.0, 1.0))
        return self._lookup(t["sig"], t["dsig"], idx, frac).clamp_(min=0.0)

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

    @classmethod
    def rescale_steps(cls, values: dict[str, Any], f_up: float, f_down: float) -> dict[str, Any]:
        return {**values, "up": np.asarray(values["up"]) * f_up,
                "down": np.asarray(values["down"]) * f_down}
