"""``weak_reset``: the HfOx weak-RESET model of Majumdar et al., IEEE TED 68(10), 2021.

Transcribed from ``Atreya95/Learning-with-memory-device-imperfections`` ``ConvNet/utils_device.py``,
vectorised over a state tensor:

* R = R0·exp(w), w = w_mean(t) + w_RTN + α·w_pink, t = cumulative RESET pulses of the device.
* w_mean(t) = m1·t + c1 for t < t*, else m2·t + t*·(m1 − m2) + c1.
* Device-to-device: m1, t*, c1, m2, R0 and the RTN amplitude are drawn once per device from the
  card's truncated distributions (inverse CDF from a seeded ``torch.Generator``).
* Random telegraph noise: a two-state chain with per-pulse matrix T = [[1−P_h, P_h], [P_l, 1−P_l]]
  raised to the power n (the step's pulses). As in the reference code, every call (also n = 0)
  redraws the level: w_RTN = state·U(0, U(0,1)·amp).
* 1/f noise: a 15-tap fractional (Kasdin) filter, out = Σ_k b_k·u_{t−k}, b_k = b_{k−1}(k−½)/k,
  u ~ U(0, 1); n new samples are shifted in per step; coupling α = 2.5e-2. The taps start at 0.

Fresh devices read R0 (the reference code initialises R = R0); from the first ``apply_pulses``
call on (every call updates every device, n = 0 included) R = R0·exp(w(t)), so c1 is the jump at
the first update. Pulses only raise the resistance: ``apply_pulses`` accepts n ≥ 0. ``read``
returns the conductance in µS (``resistance`` gives Ω). Imperfections: ``d2d``, ``rtn``, ``pink``,
``program_noise``; with ``d2d`` off every device takes the median of each distribution.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
import torch

from dse.devices import kernels, weak_reset_kernel
from dse.devices.base import DeviceModel, register
from dse.devices.params import ParamSpec, TruncDist

Tensor = torch.Tensor

_CODE = ("source: Majumdar et al. 2021 code, Atreya95/Learning-with-memory-device-imperfections "
         "ConvNet/utils_device.py (Majumdar et al., IEEE TED 68(10), 2021)")


def pink_coefficients(taps: int) -> np.ndarray:
    """b_0 = 1, b_k = b_{k−1}·(k − ½)/k (the reference code's ``b_tensor``)."""
    b = np.ones(taps)
    for k in range(1, taps):
        b[k] = b[k - 1] * (k - 0.5) / k
    return b


@register("weak_reset")
class WeakReset(DeviceModel):
    """Weak-RESET HfOx RRAM: R = R0·exp(w_mean + w_RTN + α·w_pink) (see the module docstring)."""

    PARAMS: ClassVar[dict[str, ParamSpec]] = {
        "m1": ParamSpec("1/pulse", "initial slope of ln R", kind="dist"),
        "t_star": ParamSpec("pulse", "knee of the piecewise-linear mean", kind="dist"),
        "c1": ParamSpec("1", "offset of ln(R/R0)", kind="dist"),
        "m2": ParamSpec("1/pulse", "slope of ln R after the knee", kind="dist"),
        "R0": ParamSpec("ohm", "initial (LRS) resistance", kind="dist"),
        "p_high": ParamSpec("1/pulse", "RTN low→high transition probability per pulse",
                            default=8e-4, note=_CODE, low=0.0, high=1.0),
        "p_low": ParamSpec("1/pulse", "RTN high→low transition probability per pulse",
                           default=2e-3, note=_CODE, low=0.0, high=1.0),
        "rtn_amp": ParamSpec("1", "per-device RTN amplitude bound", kind="dist",
                             default=TruncDist("uniform", (("low", 0.0), ("high", 0.5))),
                             note=_CODE),
        "pink_alpha": ParamSpec("1", "1/f-noise coupling α", default=2.5e-2, note=_CODE,
                                low=0.0),
        "pink_taps": ParamSpec("1", "taps of the fractional filter (the code's pole)",
                               default=15, note=_CODE, low=1),
        "nominal_pulses": ParamSpec("pulse", "pulses at which the nominal g_min is taken",
                                    default=1000,
                                    note="assumption: the 1000-pulse reference point of "
                                    "Majumdar et al. 2021 code", low=1),
        "program_sigma": ParamSpec("1", "std of ln R after one-shot programming",
                                   default=0.0546,
                                   note="assumption: the relative LRS spread of R0 "
                                   "(381.7/6988, Majumdar 2021 code)", low=0.0),
    }
    IMPERFECTIONS: ClassVar[tuple[str, ...]] = ("d2d", "rtn", "pink", "program_noise")
    D2D: ClassVar[tuple[str, ...]] = ("m1", "t_star", "c1", "m2", "R0", "rtn_amp")
    STATE_MUTABLE: ClassVar[tuple[str, ...]] = ("t", "updated", "rtn", "rtn_high", "hold", "pink",
                                                "r")
    PINK_SPARSE: ClassVar[float] = 0.5  # below this fraction of pulsed devices, gather their rows

    @property
    def idle_unchanged(self) -> bool:
        """Every call redraws the RTN level of every device (n = 0 included); without RTN a device
        given no pulse keeps its state (its 1/f taps shift only by its own pulses)."""
        return not self.imperfections["rtn"]

    def _prepare(self) -> None:
        self.taps = int(self.values["pink_taps"])
        self._b = pink_coefficients(self.taps)
        self._b_tuple = tuple(float(v) for v in self._b)  # a constant of the compiled kernel
        ph, pl = float(self.values["p_high"]), float(self.values["p_low"])
        self._T = torch.tensor([[1 - ph, ph], [pl, 1 - pl]], dtype=torch.float64)
        self._rtn_tab = torch.eye(2, dtype=torch.float64).reshape(1, 2, 2)

    @property
    def unit(self) -> str:
        return "uS"

    # RTN transition table: T^k for k = 0..max(n), by repeated multiplication, cached ------------
    def rtn_transitions(self, max_n: int) -> Tensor:
        """(max_n + 1, 2, 2) tensor of the per-step matrix raised to the powers 0..max_n."""
        tab = self._rtn_tab
        if tab.shape[0] <= max_n:
            powers = [tab[i] for i in range(tab.shape[0])]
            while len(powers) <= max_n:
                powers.append(powers[-1] @ self._T)
            self._rtn_tab = tab = torch.stack(powers)
        return tab[: max_n + 1]

    # nominal quantities --------------------------------------------------------------------
    def _median(self, name: str) -> float:
        return self.scalar(name)

    def mean_log_ratio(self, t: Tensor, m1: Tensor | float, t_star: Tensor | float,
                       c1: Tensor | float, m2: Tensor | float) -> Tensor:
        """w_mean(t) (piecewise linear in the cumulative pulse count)."""
        t_star_t = torch.as_tensor(t_star, dtype=t.dtype, device=t.device)
        return torch.where(t < t_star_t, m1 * t + c1, m2 * t + t_star_t * (m1 - m2) + c1)

    def _nominal_g(self, t: Tensor) -> Tensor:
        w = self.mean_log_ratio(t, self._median("m1"), self._median("t_star"),
                                self._median("c1"), self._median("m2"))
        return 1e6 / (self._median("R0") * torch.exp(w))

    @property
    def g_max(self) -> float:
        return float(self._nominal_g(torch.zeros(1, dtype=torch.float64))[0])

    @property
    def g_min(self) -> float:
        t = torch.full((1,), float(self.values["nominal_pulses"]), dtype=torch.float64)
        return float(self._nominal_g(t)[0])

    @property
    def dw_min(self) -> float:
        t = torch.arange(0, int(self.values["nominal_pulses"]) + 2, dtype=torch.float64)
        g = self._nominal_g(t)
        mid = (self.g_max + self.g_min) / 2
        i = int(torch.argmin((g[:-1] - mid).abs()))
        return float((g[i] - g[i + 1]).abs())

    # state ---------------------------------------------------------------------------------
    def sample_devices(self, shape: Sequence[int], generator: torch.Generator,
                       dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
        """Fresh devices at t = 0 with their D2D parameters (medians when d2d is off); compiled:
        1/f stream ids and the kept read ``r`` instead of stored taps (weak_reset_kernel)."""
        shape = tuple(shape)
        dev = generator.device
        st: dict[str, Tensor] = {}
        for name in self.D2D:
            v = self.values[name]
            key = name.lower()
            if self.imperfections["d2d"] and isinstance(v, TruncDist):
                st[key] = v.sample(shape, generator, dtype)
            else:
                st[key] = torch.tensor(self.scalar(name), dtype=dtype, device=dev)
        st["t"] = torch.zeros(shape, dtype=dtype, device=dev)
        st["updated"] = torch.tensor(False, device=dev)  # reads R0 until the first update
        st["rtn"] = torch.zeros(shape, dtype=dtype, device=dev)
        st["rtn_high"] = torch.zeros(shape, dtype=dtype, device=dev)  # RTN state, 0 or 1
        if self.kernels == "compiled":  # the kernel's read, kept (R0 until the first update)
            st["r"] = torch.broadcast_to(st["r0"], shape).to(dtype).clone()
        if self.imperfections["pink"] and self.kernels == "compiled":  # taps from the counter
            st["pink_id"] = weak_reset_kernel.pink_ids(shape, generator)
            st["pink"] = torch.zeros(shape, dtype=dtype, device=dev)
        elif self.imperfections["pink"]:
            st["hold"] = torch.zeros((*shape, 2 * self.taps), dtype=dtype, device=dev)
            st["pink"] = torch.zeros(shape, dtype=dtype, device=dev)
        return st

    def apply_pulses(self, state: dict[str, Tensor], n: Tensor,
                     generator: torch.Generator) -> dict[str, Tensor]:
        """Apply n ≥ 0 weak-RESET pulses per device; updates and returns ``state``.

        Every device is updated (n = 0 included), as in the reference code, but random numbers
        are drawn only where they can matter: the RTN switch decision only for pulsed devices
        (T⁰ = I: a device without pulses keeps its RTN state), the RTN level only for devices in
        the high state (the level of a low device is 0), and, when fewer than ``PINK_SPARSE`` of
        the devices are pulsed, the 1/f filter's fresh uniforms only for the min(n, taps) newest
        taps of the pulsed devices (the others only shift). The RTN
        decision r < P is clamp((P − r)·1e30, 0, 1); table lookups use ``index_select``.
        """
        t = state["t"]
        dev, dtype, shape = t.device, t.dtype, t.shape
        n = torch.broadcast_to(torch.as_tensor(n, device=dev), shape)
        n = n.to(dtype).round_() if n.dtype != dtype else n.round()
        if self.kernels == "compiled" and n.numel() >= 2:
            return self._apply_compiled(state, n, generator)
        if n.numel() and float(n.min()) < 0:
            raise ValueError("weak_reset devices take only RESET pulses (n >= 0)")
        n_max = int(n.max()) if n.numel() else 0
        state["t"] = t + n
        state["updated"] = torch.tensor(True, device=dev)
        flat_n = n.reshape(-1)
        moved = torch.nonzero(flat_n).squeeze(1) if n_max > 0 else None

        if self.imperfections["rtn"]:
            self._pulse_rtn(state, flat_n, moved, n_max, generator)
        if self.imperfections["pink"] and "pink_id" in state:  # a compiled-layout state
            state["pink"] = weak_reset_kernel.counter_pink(state["pink_id"], state["t"],
                                                           self._b_tuple, dtype)
        elif self.imperfections["pink"] and moved is not None:
            self._pulse_pink(state, flat_n, moved, n_max, generator)
        if "r" in state:  # a compiled-layout state keeps its read
            state["r"] = state["r0"] * torch.exp(self.log_ratio(state))
        return state

    def _pulse_rtn(self, state: dict[str, Tensor], flat_n: Tensor, moved: Tensor | None,
                   n_max: int, generator: torch.Generator) -> None:
        """RTN after the pulses: switch decisions for pulsed devices, levels for high ones."""
        dtype, dev, shape = state["t"].dtype, state["t"].device, state["t"].shape

        def rand(k: int) -> Tensor:
            return torch.rand(k, generator=generator, dtype=dtype, device=dev)

        high = state["rtn_high"].reshape(-1)
        if moved is not None:
            tab = self.rtn_transitions(n_max)
            # [P(low→high in k), k = 0..n_max] then [P(high→low in k)]
            flat = torch.cat([tab[:, 0, 1], tab[:, 1, 0]]).to(dtype=dtype, device=dev)
            h_m = high.index_select(0, moved)
            idx = torch.addcmul(flat_n.index_select(0, moved), h_m,
                                torch.full((), n_max + 1.0, dtype=dtype, device=dev))
            p = torch.index_select(flat, 0, idx.to(torch.int32))
            flip = p.sub_(rand(moved.numel())).mul_(1e30).clamp_(0.0, 1.0)  # 1 where r < P
            high = high.index_copy(0, moved, h_m.sub_(flip).abs_())
        on = torch.nonzero(high).squeeze(1)
        amp = state["rtn_amp"]
        amp = amp.reshape(-1).index_select(0, on) if amp.dim() else amp
        level = torch.zeros_like(high).index_copy_(
            0, on, rand(on.numel()).mul_(amp).mul_(rand(on.numel())))
        state["rtn_high"] = high.view(shape)
        state["rtn"] = level.view(shape)

    def _pulse_pink(self, state: dict[str, Tensor], flat_n: Tensor, moved: Tensor, n_max: int,
                    generator: torch.Generator) -> None:
        """The 1/f filter after the pulses: fresh uniforms for the min(n, taps) newest taps."""
        dtype, dev, shape = state["t"].dtype, state["t"].device, state["t"].shape

        def rand(k: int) -> Tensor:
            return torch.rand(k, generator=generator, dtype=dtype, device=dev)

        # buffer layout [fresh | taps]: after n pulses tap k is buffer[taps + k − n], i.e.
        # the old tap k − n, or one of the n fresh uniforms for k < n (the reference roll)
        m = self.taps
        b = torch.as_tensor(self._b, dtype=dtype, device=dev)
        buf = state["hold"].view(-1, 2 * m)
        sparse = moved.numel() < self.PINK_SPARSE * buf.shape[0]
        rows = buf.index_select(0, moved) if sparse else buf
        k = (flat_n.index_select(0, moved) if sparse else flat_n).clamp(max=float(m))
        start = (m - k).to(torch.long)
        if sparse:  # exactly min(n, taps) fresh uniforms per pulsed device
            fresh = torch.arange(m, device=dev) >= start.unsqueeze(1)  # the k newest slots
            rows[:, :m].masked_scatter_(fresh, rand(int(k.sum())))
        else:  # refill the min(max n, taps) newest slots of every device (cheaper in bulk)
            rows[:, m - min(n_max, m): m].uniform_(generator=generator)
        new = rows.unfold(1, m, 1)[torch.arange(rows.shape[0], device=dev), start]
        if sparse:
            buf[:, m:].index_copy_(0, moved, new)
            pink = state["pink"].reshape(-1).index_copy(0, moved, new @ b)
        else:
            buf[:, m:].copy_(new)
            pink = new @ b
        state["pink"] = pink.view(shape)

    # compiled path (kernels: compiled) ---------------------------------------------------------
    has_compiled_kernel: ClassVar[bool] = True

    def _pulse_kernel(self, t: Tensor, high: Tensor, amp: Tensor, pid: Tensor, n: Tensor,
                      keys: Tensor, mean: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """The dense update of every device as one fused kernel (:mod:`.weak_reset_kernel`)."""
        rtn = (float(self.values["p_high"]), float(self.values["p_low"]))
        return weak_reset_kernel.pulse(t, high, amp, pid, n, keys, mean,
                                       rtn=rtn if self.imperfections["rtn"] else None,
                                       b=self._b_tuple if self.imperfections["pink"] else None,
                                       alpha=float(self.values["pink_alpha"]))

    def _apply_compiled(self, state: dict[str, Tensor], n: Tensor,
                        generator: torch.Generator) -> dict[str, Tensor]:
        """:meth:`apply_pulses` through one fused kernel (dense: every device, n = 0 included,
        as the eager path with RTN on). Negative counts are checked on the CPU only (on a GPU
        the check would wait for the device)."""
        t = state["t"]
        if t.device.type == "cpu" and float(n.min()) < 0:
            raise ValueError("weak_reset devices take only RESET pulses (n >= 0)")
        shape, flat = t.shape, (lambda v: v.reshape(-1))
        rtn, pink = self.imperfections["rtn"], self.imperfections["pink"]
        amp = state["rtn_amp"]
        amp = flat(amp) if amp.dim() else amp
        zero = torch.zeros((), dtype=torch.int32, device=t.device)
        mean = tuple(flat(state[k]) if state[k].dim() else state[k]
                     for k in ("m1", "t_star", "c1", "m2", "r0"))
        out = self.kernel("apply_pulses", self._pulse_kernel)(
            flat(t), flat(state["rtn_high"]), amp, flat(self._pink_ids(state)) if pink else zero,
            flat(n), kernels.draw_keys(generator, 4), mean)
        state["t"] = out[0].view(shape)
        state["updated"] = torch.tensor(True, device=t.device)
        if rtn:
            state["rtn_high"], state["rtn"] = out[1].view(shape), out[2].view(shape)
        if pink:
            state["pink"] = out[-2].view(shape)
        state["r"] = out[-1].view(shape)
        return state

    def _pink_ids(self, state: Mapping[str, Tensor]) -> Tensor:
        """The devices' 1/f stream ids; a state sampled for ``kernels: eager`` (stored taps)
        cannot continue on the compiled path."""
        if "pink_id" not in state:
            raise ValueError("weak_reset: this state stores its 1/f taps (sampled with kernels: "
                             "eager); sample the devices after use_kernels('compiled')")
        return state["pink_id"]

    def taps_of(self, state: Mapping[str, Tensor]) -> Tensor:
        """The 1/f filter's taps u_{t−k}, k = 0..taps−1 (newest first), shaped (*state, taps)."""
        if "pink_id" in state:  # compiled layout: recomputed from the pulse count
            return torch.stack(weak_reset_kernel.counter_taps(
                state["pink_id"], state["t"], self.taps, state["t"].dtype), dim=-1)
        return state["hold"][..., self.taps:]

    def log_ratio(self, state: Mapping[str, Tensor]) -> Tensor:
        """w = ln(R/R0) of every device."""
        w = self.mean_log_ratio(state["t"], state["m1"], state["t_star"], state["c1"],
                                state["m2"])
        if self.imperfections["rtn"]:
            w = w + state["rtn"]
        if self.imperfections["pink"] and "pink" in state:
            w = w + float(self.values["pink_alpha"]) * state["pink"]
        return w

    def resistance(self, state: Mapping[str, Tensor]) -> Tensor:
        """R in Ω (R0 until the devices' first update, as the reference code initialises them)."""
        if "r" in state:  # compiled layout: the kernel's read after the last update
            return state["r"].clone()
        if "updated" in state and not bool(state["updated"]):
            return torch.broadcast_to(state["r0"], state["t"].shape).clone()
        return state["r0"] * torch.exp(self.log_ratio(state))

    def read_noise_sigma(self) -> float:
        """The model has no separate read noise."""
        return 0.0

    def read(self, state: dict[str, Tensor], generator: torch.Generator | None = None) -> Tensor:
        """Conductance in µS (the model has no separate read noise)."""
        return 1e6 / (state["r"] if "r" in state else self.resistance(state))

    def program(self, target: Tensor, generator: torch.Generator) -> Tensor:
        """One-shot programming to ``target`` µS (clipped to [g_min, g_max]), log-normal noise."""
        g = torch.as_tensor(target).clamp(self.g_min, self.g_max)
        s = float(self.values["program_sigma"])
        if self.imperfections["program_noise"] and s > 0:
            g = g * torch.exp(s * torch.randn(g.shape, generator=generator, dtype=g.dtype,
                                              device=g.device))
        return g


def fit_weak_reset_devices(t: np.ndarray, r_ohm: np.ndarray,
                           t_star_grid: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-device fit of the mean model on a (devices × reads) table (NaN = missing read).

    R0 is the read at t = 0 (the first read when t = 0 is absent, then c1 absorbs nothing).
    For every candidate knob t* the hinge model ln(R/R0) = c1 + m1·min(t, t*) + m2·max(t − t*, 0)
    is linear in (c1, m1, m2): all devices are solved at once (batched normal equations) and each
    keeps its best t*. Returns arrays ``R0, c1, m1, m2, t_star, sse, n``.
    """
    t = np.asarray(t, dtype=float)
    r = np.asarray(r_ohm, dtype=float)
    ok = np.isfinite(r) & (r > 0)
    first = np.argmax(ok, axis=1)
    r0 = r[np.arange(r.shape[0]), first]
    y = np.log(np.where(ok, r, 1.0) / r0[:, None])
    mask = ok & (t[None, :] > np.take(t, first)[:, None])
    if t_star_grid is None:
        tmax = float(np.nanmax(np.where(ok, t[None, :], np.nan)))
        t_star_grid = np.unique(np.geomspace(max(1.0, t[t > 0].min()), tmax, 80).round())
    best = np.full(r.shape[0], np.inf)
    out = {k: np.zeros(r.shape[0]) for k in ("c1", "m1", "m2", "t_star")}
    w = mask.astype(float)
    for ts in t_star_grid:  # a loop over candidate knots, vectorised over devices
        X = np.stack([np.ones_like(t), np.minimum(t, ts), np.maximum(t - ts, 0.0)], axis=-1)
        XtX = np.einsum("dp,pi,pj->dij", w, X, X) + 1e-12 * np.eye(3)
        Xty = np.einsum("dp,pi,dp->di", w, X, y)
        beta = np.linalg.solve(XtX, Xty[..., None])[..., 0]
        sse = np.einsum("dp,dp->d", w, (y - beta @ X.T) ** 2)
        better = sse < best
        best = np.where(better, sse, best)
        for j, k in enumerate(("c1", "m1", "m2")):
            out[k] = np.where(better, beta[:, j], out[k])
        out["t_star"] = np.where(better, ts, out["t_star"])
    # the model's form: w = m1·t + c1 before t*, continuous after (c1 + m1·t* + m2·(t − t*))
    out["R0"] = r0
    out["sse"] = best
    out["n"] = mask.sum(axis=1)
    if not math.isfinite(float(best.max(initial=0.0))):
        out["sse"] = np.nan_to_num(best, posinf=np.nan)
    return out
