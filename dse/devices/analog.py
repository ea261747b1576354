"""Analog pulse families: ``soft_bounds``, ``exp_step`` and ``piecewise``.

All three share one state layout and noise model (:class:`PulseDevice`):

* State: ``x`` (the conductance, clipped to the device's own bounds ``[lo, hi]``), ``wn`` (the
  part of ``x`` that is still-relaxing write noise; a 0-d zero when the noise is fully
  cumulative) and the D2D tensors ``up``, ``down``, ``lo``, ``hi`` (0-d when D2D is off). Treat
  the state as opaque: ``read`` it, ``set_conductance`` to program it directly.
* Mean dynamics: each family maps ``(x, n)`` to the noise-free conductance after ``n`` pulses in
  closed form (a *pulse coordinate*: the mean trajectory G(n) is the solution of
  dG/dn = μ(G)), so ``n`` pulses cost the same as one and ``apply_pulses`` with ``n`` pulses equals
  ``n`` calls with one pulse in the mean. The step is evaluated at the actual conductance ``x``.
* Cycle-to-cycle (write) noise: per pulse a Gaussian of std
  ``c2c_sigma + c2c_relative·|mean step|``. With ``c2c_memory`` φ = 1 (aihwkit's pulsed devices)
  it stays in the conductance; with φ < 1 (what :mod:`dse.devices.calibrate` measures from the
  residual's autocorrelation) the displacement keeps the fraction φ per pulse:
  ``wn ← φⁿ·wn + σ·sqrt(Σ_{k<n} φ^{2k})·ξ``, ``x ← mean step + (wn_new − wn_old)``.
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
    "g_floor": ParamSpec("G", "HRS floor: no device's D2D bounds go below it", default=-math.inf,
                         note="assumption: no floor given (normalised cards); physical cards "
                         "give the HRS conductance"),
}


def _sqrt_counts(k: Tensor) -> Tensor:
    """sqrt of non-negative pulse counts by table lookup (faster than torch.sqrt on the CPU)."""
    if not k.dtype.is_floating_point or k.numel() < 4096 or float(k.max()) > 4096:
        return k.sqrt()
    table = torch.arange(int(k.max()) + 2, dtype=k.dtype, device=k.device).sqrt_()
    idx = k.reshape(-1).to(torch.int32)
    return torch.index_select(table, 0, idx).view(k.shape)


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
    STATE_MUTABLE: ClassVar[tuple[str, ...]] = ("x", "wn")

    @property
    def idle_unchanged(self) -> bool:
        """Devices with n = 0 stay exactly unchanged (see :meth:`apply_pulses`)."""
        return True

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
            floor = float(v.get("g_floor", -math.inf))
            if math.isfinite(floor):  # physical cards: no bound below the HRS floor
                st["lo"], st["hi"] = st["lo"].clamp(min=floor), st["hi"].clamp(min=floor)
        g0 = (st["lo"] + st["hi"]) / 2 if init is None else torch.as_tensor(init, dtype=dtype)
        st["x"] = torch.clamp(torch.broadcast_to(g0, shape).to(dtype=dtype, device=dev).clone(),
                              st["lo"], st["hi"])
        st["wn"] = self._fresh_wn(st["x"])
        return st

    def _fresh_wn(self, x: Tensor) -> Tensor:
        """The relaxing write-noise displacement (a 0-d zero when the noise is fully cumulative)."""
        if self.imperfections["c2c"] and self._has_c2c() and self.values["c2c_memory"] < 1.0:
            return torch.zeros_like(x)
        return torch.zeros((), dtype=x.dtype, device=x.device)

    def set_conductance(self, state: dict[str, Tensor], target: Tensor) -> dict[str, Tensor]:
        """Put the devices at ``target`` (clipped to their bounds), clearing the noise."""
        x = torch.broadcast_to(torch.as_tensor(target, dtype=state["x"].dtype), state["x"].shape)
        state["x"] = torch.clamp(x, state["lo"], state["hi"]).clone()
        state["wn"] = self._fresh_wn(state["x"])
        return state

    def apply_pulses(self, state: dict[str, Tensor], n: Tensor,
                     generator: torch.Generator) -> dict[str, Tensor]:
        """Apply signed pulse counts ``n`` (shaped like the state); updates, returns ``state``.

        State: ``x`` (the conductance), ``wn`` (the part of it that is relaxing write noise,
        0-d when the write noise is fully cumulative), and the D2D tensors. Written with fused
        elementwise ops (lerp, addcmul; no ``torch.where``/``log1p``/``searchsorted``, which are
        slow on the CPU); devices with n = 0 stay exactly unchanged.
        """
        x, wn = state["x"], state["wn"]
        n = torch.as_tensor(n, device=x.device)
        if n.dtype != x.dtype:
            n = n.to(x.dtype)
        if self.kernels == "compiled":
            return self._apply_compiled(state, n, generator)
        xm = self._mean_step(x, n, state)
        if self.imperfections["c2c"] and self._has_c2c():
            k = n.abs()
            phi = float(self.values["c2c_memory"])
            sigma = self._c2c_sigma(x, n, xm, state)
            xi = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            if phi >= 1.0:  # cumulative: the noise stays in the conductance
                xm = torch.addcmul(xm, xi, _sqrt_counts(k).mul_(sigma))
            else:
                # φ^k of the displacement stays; the k pulses add σ²·(1 − φ^{2k})/(1 − φ²)
                decay = (k * math.log(phi)).exp_() if phi > 0 else (1.0 - k).clamp_(min=0.0)
                var = torch.addcmul(torch.ones_like(decay), decay, decay, value=-1.0)
                noise = xi.mul_(var.mul_(1.0 / (1.0 - phi * phi)).sqrt_().mul_(sigma))
                wn_new = torch.addcmul(noise, decay, wn)
                xm = xm.add_(wn_new).sub_(wn)
                wn = wn_new
        state["x"] = torch.clamp(xm, state["lo"], state["hi"])
        state["wn"] = wn
        return state

    # compiled path (kernels: compiled) ---------------------------------------------------------
    has_compiled_kernel: ClassVar[bool] = True

    @property
    def c2c_on(self) -> bool:
        """Whether :meth:`apply_pulses` draws write noise (a plain bool, for tracing)."""
        return bool(self.imperfections["c2c"] and self._has_c2c())

    def pulse_values(self, x: Tensor, wn: Tensor, n: Tensor, st: Mapping[str, Tensor],
                     keys: Tensor, counter: Tensor, c2c: bool) -> tuple[Tensor, Tensor]:
        """The pulse update as a pure function, traced into fused kernels: ``(x, wn)`` after
        ``n`` pulses, the write noise from the in-kernel generator (:mod:`dse.devices.kernels`,
        keys ``keys[0:3]``, one Gaussian per ``counter`` value; ``c2c`` = :attr:`c2c_on`). The
        same model as the eager :meth:`apply_pulses`, which draws from a ``torch.Generator``."""
        from dse.devices import kernels

        xm = self._mean_step(x, n, st)
        if c2c:
            k = n.abs()
            phi = float(self.values["c2c_memory"])
            sigma = self._c2c_sigma(x, n, xm, st)
            xi = kernels.normal(keys, counter, x.dtype)
            if phi >= 1.0:
                xm = xm + xi * k.sqrt() * sigma
            else:
                decay = torch.exp(k * math.log(phi)) if phi > 0 else (1.0 - k).clamp(min=0.0)
                var = (1.0 - decay * decay) * (1.0 / (1.0 - phi * phi))
                wn_new = xi * var.sqrt() * sigma + decay * wn
                xm = xm + wn_new - wn
                wn = wn_new
        return torch.clamp(xm, st["lo"], st["hi"]), wn

    def _pulse_kernel(self, x: Tensor, wn: Tensor, n: Tensor, st: dict[str, Tensor],
                      keys: Tensor, c2c: bool) -> tuple[Tensor, Tensor]:
        from dse.devices import kernels

        return self.pulse_values(x, wn, n, st, keys, kernels.counter_like(x), c2c)

    def _apply_compiled(self, state: dict[str, Tensor], n: Tensor,
                        generator: torch.Generator) -> dict[str, Tensor]:
        """:meth:`apply_pulses` through one fused kernel (compiled on first use)."""
        from dse.devices import kernels

        if state["x"].numel() < 2:  # sizes 0/1 would be specialised: not worth a compile
            return self._apply_small(state, n, generator)
        fn = self.kernel("apply_pulses", self._pulse_kernel)
        st = {k: state[k] for k in self.pulse_keys(state) if k not in ("x", "wn")}
        state["x"], state["wn"] = fn(state["x"], state["wn"], n, st,
                                     kernels.draw_keys(generator), self.c2c_on)
        return state

    def _apply_small(self, state: dict[str, Tensor], n: Tensor,
                     generator: torch.Generator) -> dict[str, Tensor]:
        from dse.devices import kernels

        st = {k: state[k] for k in self.pulse_keys(state) if k not in ("x", "wn")}
        state["x"], state["wn"] = self._pulse_kernel(state["x"], state["wn"], n, st,
                                                     kernels.draw_keys(generator), self.c2c_on)
        return state

    def read(self, state: dict[str, Tensor], generator: torch.Generator | None = None) -> Tensor:
        """Conductances (``unit``); read noise when ``generator`` is given and switched on.

        Without read noise this is the state's own tensor: do not modify it in place.
        """
        x = state["x"]
        s = float(self.values["read_sigma"])
        if generator is not None and self.imperfections["read_noise"] and s > 0:
            x = x + s * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        return x

    def read_at(self, state: Mapping[str, Tensor], idx: Tensor,
                generator: torch.Generator | None = None) -> Tensor:
        """:meth:`read` of devices ``idx`` of a flat state (gathers the conductance only)."""
        return self.read({"x": state["x"].index_select(0, idx)}, generator)

    def window(self, state: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Each device's own bounds ``(lo, hi)``, broadcast to the conductances' shape."""
        x = state["x"]
        return torch.broadcast_to(state["lo"], x.shape), torch.broadcast_to(state["hi"], x.shape)

    def read_noise_sigma(self) -> float:
        """σ of the additive read noise of :meth:`read` (0 when switched off)."""
        return float(self.values["read_sigma"]) if self.imperfections["read_noise"] else 0.0

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

    def _c2c_sigma(self, x: Tensor, n: Tensor, xm: Tensor,
                   st: Mapping[str, Tensor]) -> Tensor | float:
        """Per-pulse write-noise std for a move from ``x`` to ``xm`` by ``n`` pulses."""
        if not self.values["c2c_relative"]:
            return float(self.values["c2c_sigma"])
        k = n.abs().clamp(min=1.0)
        return self.values["c2c_sigma"] + self.values["c2c_relative"] * (xm - x).abs_().div_(k)

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

    @classmethod
    def rescale_steps(cls, values: dict[str, Any], f_up: float, f_down: float) -> dict[str, Any]:
        """Multiply the up/down step sizes (per-device fits renormalised to a mean gain of 1)."""
        raise NotImplementedError


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
        self._scal = {"g0": grid[0], "inv_dg": (m - 1) / (grid[-1] - grid[0]),
                      "c0_up": c0[0], "c0_dn": c0[1], "idc_up": inv_dc[0], "idc_dn": inv_dc[1],
                      "mu_up": float(np.interp((grid[0] + grid[-1]) / 2, nodes, v["up"])),
                      "mu_dn": float(np.interp((grid[0] + grid[-1]) / 2, nodes, v["down"]))}
        self._cache: dict[tuple, dict[str, Tensor]] = {}

    def _t(self, dtype: torch.dtype, device: torch.device) -> dict[str, Tensor]:
        key = (dtype, str(device))
        if key not in self._cache:
            self._cache[key] = {k: torch.as_tensor(a, dtype=dtype, device=device)
                                for k, a in self._tables.items()}
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
