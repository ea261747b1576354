"""Post-programming conductance relaxation: the ``relaxation`` measurement format and the model.

**Format** ``relaxation`` (tab, comma or semicolon separated, optionally gzip-compressed; ``#``
lines are comments, ``# key: value`` lines header metadata)::

    # unit: uS          conductance unit (required)
    # g_ref: 40         the technology's full-scale conductance, same unit (default: max G0)
    cell	level	time	conductance
    17	5	0	48.12
    17	5	0.1	48.90
    ...

``cell``: a cell identifier; ``time``: seconds since programming, 0 = the first read after the
cell was programmed (write-verified) to its level; ``conductance`` > 0. Every cell needs one
time-0 row and at least one later read. ``level`` (optional, an integer): the programmed level;
without it the cells are grouped by their time-0 conductance G0 into ``# levels: N`` equal bins
over [0, g_ref] (default 32, the Stanford data's ``range_bin``). Bad rows raise one
:class:`~dse.errors.DseError` line naming the file and the row.

**Model** (fitted by :mod:`dse.devices.fit_relaxation`). A cell programmed to G₀ reads at time
t > 0 as ``G(t) = G₀ + μ(G₀, t) + W(t) + e``, with

* G₀ the first read (the verify read that ended the programming) and ΔG = G(t) − G₀;
* the mean drift ``μ = Σⱼ aⱼ(G₀)·φⱼ(t)`` and ``W`` a process with independent increments and
  variance ``V(G₀, t) = s₀² + Σⱼ sⱼ(G₀)²·φⱼ(t)`` for t > 0 (``s₀``: the spread already there at
  the first read after 0, faster than the data resolve; it includes the noise of both reads);
* the basis ``φ₁,₂ = 1 − exp(−t/τ₁,₂)`` (fast components that saturate) and
  ``φ₃ = log₁₀(1 + t/τ₃)`` (the slow growth linear in log-time that carries the extrapolation to
  10 years).

Independent increments: a cell's later reads stay correlated, as measured (the covariance of
two reads of the Stanford cells is 0.6–0.9 of the earlier one's variance). The per-read noise of
an inference (µs reads) is not separable in these data (reads 10 ms apart are still correlated,
1/f-like): it is the card's ``inference.read_noise``, added per read on top of ``G(t)``.
``a`` and ``s`` are tabulated per level and interpolated linearly in G₀ (clamped at the end
levels); τ₁, τ₂, τ₃ are shared by the levels of a technology. :meth:`RelaxationModel.sample`
draws the conductances of programmed cells at a list of times (cumulative increments: the same
cells followed in time); :meth:`RelaxationModel.for_window` rescales a fit to a device whose
conductance window differs (an explicit assumption of the card that does it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from dse.errors import DseError

Tensor = torch.Tensor

COLUMNS = ("cell", "time", "conductance")
N_BASIS = 3
TAU_NAMES = ("tau_1", "tau_2", "tau_3")
TABLE_NAMES = ("levels", "drift_1", "drift_2", "drift_3", "sigma_0", "sigma_1", "sigma_2",
               "sigma_3")
DEFAULT_LEVELS = 32


# ------------------------------------------------------------------------------ model
def basis(t: Tensor | np.ndarray | float, taus: Sequence[float]) -> Tensor:
    """``(…, 3)``: φ₁, φ₂ (saturating, τ₁, τ₂) and φ₃ = log₁₀(1 + t/τ₃) at times ``t`` (s)."""
    t = torch.as_tensor(np.array(t, dtype=float), dtype=torch.float64)
    return torch.stack([-torch.expm1(-t / taus[0]), -torch.expm1(-t / taus[1]),
                        torch.log1p(t / taus[2]) / math.log(10.0)], dim=-1)


def _vbasis(t: float, taus: Sequence[float]) -> Tensor:
    """``(4,)``: the variance basis, 1(t > 0) (the jump s₀²) then φ₁..φ₃."""
    return torch.cat([torch.tensor([1.0 if t > 0 else 0.0], dtype=torch.float64),
                      basis(t, taus)])


@dataclass(frozen=True)
class RelaxationModel:
    """Per-level relaxation tables (module docstring), conductances in :attr:`unit`."""

    unit: str
    g_ref: float
    taus: tuple[float, float, float]
    levels: np.ndarray  # (K,) increasing programmed conductances
    drift: np.ndarray  # (K, 3) aⱼ
    sigma: np.ndarray  # (K, 4) s₀ (the jump at 0⁺), s₁..s₃ ≥ 0
    source: str = ""

    def __post_init__(self) -> None:
        k = len(self.levels)
        if k < 1 or self.drift.shape != (k, N_BASIS) or self.sigma.shape != (k, N_BASIS + 1):
            raise DseError(f"relaxation: tables of {k} levels need shapes ({k}, 3) / ({k}, 4)")
        if k > 1 and not np.all(np.diff(self.levels) > 0):
            raise DseError("relaxation.levels: must be strictly increasing")
        if (self.sigma < 0).any():
            raise DseError("relaxation: sigma_0..sigma_3 must be >= 0")
        if min(self.taus) <= 0:
            raise DseError("relaxation: tau_1..tau_3 must be > 0")

    def for_window(self, g_max: float) -> RelaxationModel:
        """The same relaxation in a device of full scale ``g_max``: every conductance of the
        tables scaled by g_max/g_ref (assumption of the caller: relaxation scales with the
        window)."""
        k = g_max / self.g_ref
        return replace(self, g_ref=g_max, levels=self.levels * k, drift=self.drift * k,
                       sigma=self.sigma * k)

    def _table(self, g: Tensor, table: np.ndarray) -> Tensor:
        """Per-level ``table`` (K, C) interpolated linearly at conductances ``g`` -> (…, C)."""
        lv = torch.as_tensor(self.levels, dtype=g.dtype, device=g.device)
        tab = torch.as_tensor(table, dtype=g.dtype, device=g.device).reshape(len(lv), -1)
        if len(lv) == 1:
            return tab[0].expand(*g.shape, tab.shape[1])
        i = torch.searchsorted(lv, g.contiguous()).clamp(1, len(lv) - 1)
        w = ((g - lv[i - 1]) / (lv[i] - lv[i - 1])).clamp(0.0, 1.0).unsqueeze(-1)
        return torch.lerp(tab[i - 1], tab[i], w)

    def mean_shift(self, g0: Tensor, t: float) -> Tensor:
        """μ(G₀, t): the mean drift of cells programmed to ``g0``."""
        phi = basis(t, self.taus).to(g0)
        return (self._table(g0, self.drift) * phi).sum(-1)

    def variance(self, g0: Tensor, t: float) -> Tensor:
        """V(G₀, t): the variance of ΔG (0 at t = 0, s₀² + … just after)."""
        return (self._table(g0, self.sigma).square() * _vbasis(t, self.taus).to(g0)).sum(-1)

    def sample(self, g0: Tensor, times: Sequence[float], generator: torch.Generator,
               floor: float = 0.0) -> Tensor:
        """Conductances of cells programmed to ``g0`` at each of ``times`` (s, ≥ 0), shape
        ``(len(times), *g0.shape)``, read-noise free. The same cells are followed in time:
        increments between consecutive times are independent, with the mean and variance of
        the model, so each time's marginal is exact. Clipped below at ``floor``."""
        ts = [float(t) for t in times]
        if any(t < 0 or not math.isfinite(t) for t in ts):
            raise DseError(f"relaxation times must be finite and >= 0, got {list(times)}")
        order = np.argsort(ts, kind="stable")
        a = self._table(g0, self.drift)
        s2 = self._table(g0, self.sigma).square()
        out = torch.empty((len(ts), *g0.shape), dtype=g0.dtype, device=g0.device)
        x = torch.zeros_like(g0)
        prev = torch.zeros(N_BASIS + 1, dtype=g0.dtype, device=g0.device)
        for k in order:
            phi = _vbasis(ts[k], self.taus).to(g0)
            d = phi - prev  # ≥ 0: each basis function increases with t
            mu = (a * d[1:]).sum(-1)
            sd = (s2 * d).sum(-1).clamp_(min=0.0).sqrt_()
            xi = torch.randn(g0.shape, generator=generator, dtype=g0.dtype, device=g0.device)
            x = x + mu + sd * xi
            out[k] = (g0 + x).clamp_(min=floor)
            prev = phi
        return out

    # card entries ------------------------------------------------------------------------
    def to_entry(self, source: str) -> dict[str, Any]:
        """The ``relaxation:`` block of a device card (and of a calibrated relaxation card)."""
        def e(v: Any, unit: str) -> dict[str, Any]:
            v = [float(x) for x in v] if isinstance(v, np.ndarray) else float(v)
            return {"value": v, "unit": unit, "source": source}

        out: dict[str, Any] = {"g_ref": e(self.g_ref, self.unit)}
        out.update({n: e(t, "s") for n, t in zip(TAU_NAMES, self.taus, strict=True)})
        out["levels"] = e(self.levels, self.unit)
        for j in range(N_BASIS):
            out[f"drift_{j + 1}"] = e(self.drift[:, j], self.unit)
        for j in range(N_BASIS + 1):
            out[f"sigma_{j}"] = e(self.sigma[:, j], self.unit)
        return out


def relaxation_from_entry(entry: Any, unit: str, where: str,
                          source: str | None = None) -> RelaxationModel:
    """Parse a ``relaxation:`` block (keys of :meth:`RelaxationModel.to_entry`); every entry
    needs ``value``, ``unit`` and ``source:``/``assumption:`` (or the block has one)."""
    if not isinstance(entry, Mapping):
        raise DseError(f"{where}: expected a mapping of relaxation parameters", source=source)
    block_prov = any(isinstance(entry.get(k), str) and entry[k].strip()
                     for k in ("source", "assumption"))
    need = ("g_ref", *TAU_NAMES, *TABLE_NAMES)
    unknown = sorted(set(entry) - {*need, "source", "assumption"})
    if unknown:
        raise DseError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: "
                       f"{', '.join(need)}, source)", source=source)
    vals: dict[str, Any] = {}
    for name in need:
        w = f"{where}.{name}"
        e = entry.get(name)
        if not isinstance(e, Mapping) or "value" not in e:
            raise DseError(f"{w}: missing (a mapping {{value, unit, source}})", source=source)
        if not block_prov and not any(isinstance(e.get(k), str) and e[k].strip()
                                      for k in ("source", "assumption")):
            raise DseError(f"{w}: give 'source:' or 'assumption:'", source=source)
        want = "s" if name in TAU_NAMES else unit
        if e.get("unit") != want:
            raise DseError(f"{w}.unit: '{e.get('unit')}' but '{want}' is required (the card's "
                           "conductance unit, seconds for tau)", source=source)
        v = e["value"]
        if name in TABLE_NAMES:
            ok = isinstance(v, list) and v and all(isinstance(x, int | float) and
                                                   not isinstance(x, bool) and math.isfinite(x)
                                                   for x in v)
            if not ok:
                raise DseError(f"{w}.value: expected a list of finite numbers", source=source)
            vals[name] = np.asarray(v, dtype=float)
        else:
            if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v) \
                    or v <= 0:
                raise DseError(f"{w}.value: '{v}' must be a positive number", source=source)
            vals[name] = float(v)
    k = len(vals["levels"])
    bad = [n for n in TABLE_NAMES if len(vals[n]) != k]
    if bad:
        raise DseError(f"{where}.{bad[0]}: {len(vals[bad[0]])} values for {k} levels",
                       source=source)
    prov = str(entry.get("source") or entry.get("assumption") or "")
    try:
        return RelaxationModel(
            unit=unit, g_ref=vals["g_ref"], taus=tuple(vals[n] for n in TAU_NAMES),
            levels=vals["levels"],
            drift=np.stack([vals[f"drift_{j + 1}"] for j in range(N_BASIS)], axis=1),
            sigma=np.stack([vals[f"sigma_{j}"] for j in range(N_BASIS + 1)], axis=1),
            source=prov)
    except DseError as exc:
        raise DseError(f"{where}: {exc}", source=source) from None
