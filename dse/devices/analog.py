"""The common base of the analog pulse families (:class:`PulseDevice`).

The families ``soft_bounds``, ``exp_step`` and ``piecewise`` (:mod:`dse.devices.pulse_families`)
share one state layout and noise model:

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

from dse.devices.base import DeviceModel
from dse.devices.params import ParamSpec

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
        mid = torch.tensor([(self.g_min + self.g_max) / 2], dtype=torch.float64, device="cpu")
        one = torch.ones(1, dtype=torch.float64, device="cpu")  # a host-side scalar
        up = self._mean_step(mid, one, st) - mid
        down = mid - self._mean_step(mid, -one, st)
        return float((up.abs() + down.abs())[0] / 2)

    @property
    def program_sigma(self) -> float:
        s = float(self.values["program_sigma"])
        if s >= 0:
            return s
        mid = torch.tensor([(self.g_min + self.g_max) / 2], dtype=torch.float64, device="cpu")
        n = torch.ones(1, dtype=torch.float64, device="cpu")  # a host-side scalar
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
        g0 = (st["lo"] + st["hi"]) / 2 if init is None else torch.as_tensor(init, dtype=dtype,
                                                                          device=dev)
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
        x = torch.as_tensor(target, dtype=state["x"].dtype, device=state["x"].device)
        x = torch.broadcast_to(x, state["x"].shape)
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
        if self.kernels == "compiled":  # converts n inside the kernel (no extra pass)
            return self._apply_compiled(state, n, generator)
        if n.dtype != x.dtype:
            n = n.to(x.dtype)
        xm = self._mean_step(x, n, state)
        if self.imperfections["c2c"] and self._has_c2c():
            k = n.abs()
            phi = float(self.values["c2c_memory"])
            sigma = self._c2c_sigma(x, n, xm, state)
            xi = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            if phi >= 1.0:  # cumulative: the noise stays in the conductance
                xm = torch.addcmul(xm, xi, k.sqrt().mul_(sigma))
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
        keys ``keys[0:3]``, one :func:`~dse.devices.kernels.normal_moments` value per ``counter``
        value: a Gaussian in its first four moments; ``c2c`` = :attr:`c2c_on`). The same model
        as the eager :meth:`apply_pulses`, which draws Gaussians from a ``torch.Generator``; the
        mean step is the family's ``_kernel_mean_step`` (:mod:`dse.devices.pulse_kernels`)."""
        from dse.devices import kernels

        xm = self._kernel_mean_step(x, n, st)
        if c2c:
            k = n.abs()
            phi = float(self.values["c2c_memory"])
            sigma = self._c2c_sigma(x, n, xm, st)
            xi = kernels.normal_moments(keys, counter, x.dtype)
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

        return self.pulse_values(x, wn, n.to(x.dtype), st, keys, kernels.counter_like(x), c2c)

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
        t = target.clamp(self.g_min, self.g_max)
        s = self.program_sigma
        if self.imperfections["program_noise"] and s > 0:
            t = t + s * torch.randn(t.shape, generator=generator, dtype=t.dtype, device=t.device)
            t = t.clamp(self.g_min, self.g_max)
        return t

    # family hooks -----------------------------------------------------------------------
    def _mean_step(self, x: Tensor, n: Tensor, st: Mapping[str, Tensor]) -> Tensor:
        """Noise-free conductance after ``n`` signed pulses from ``x`` (vectorised)."""
        raise NotImplementedError

    def _kernel_mean_step(self, x: Tensor, n: Tensor, st: Mapping[str, Tensor]) -> Tensor:
        """:meth:`_mean_step` as traced into the compiled kernel (a family may rearrange it for
        a fused loop; the eager path always runs :meth:`_mean_step`)."""
        return self._mean_step(x, n, st)

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

