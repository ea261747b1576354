"""Binary RRAM cells over time after programming: their resistance laws with relaxation.

A binary cell card (``rram_1t1r``, ``rram_2t2r``) may carry a ``relaxation:`` block (the format
and model of :mod:`dse.devices.relaxation`, conductances in µS): the cell is then read at the
``time_s`` knob (seconds after programming, 0 = right after). A device programmed to the
log-normal resistance law ln R₀ ~ N(μ, σ²) (its LRS or HRS, :class:`ResistanceLaw`) reads at
time t as G(t) = G₀ + m(G₀, t) + √V(G₀, t)·ξ with G₀ = 1/R₀ (µS): the relaxation's mean drift m
and variance V at the device's own first read, ξ ~ N(0, 1) independent per device.

**Closed forms** (Gauss–Hermite quadrature over ln G₀, :data:`NODES` nodes per device; the
Gaussian step in closed form, so tails stay exact to the quadrature):

* survival P(R(t) > r) = P(G(t) < 1/r) = E_{G₀}[Φ((1/r − G₀ − m)/√V)];
* order flip of a pair (2T2R: the LRS device reads below the HRS device)
  P(G_L(t) < G_H(t)) = E_{G₀L, G₀H}[Φ((G₀H + m_H − G₀L − m_L)/√(V_L + V_H))];
* quadrature nodes of R(t) (:meth:`ResistanceLaw.nodes`: G₀ nodes × ξ nodes, for the sense
  amplifier's branch currents, :mod:`dse.devices.pcsa_rates`).

**Monte-Carlo** (:meth:`ResistanceLaw.sample`): R₀ drawn, relaxed by
:meth:`~dse.devices.relaxation.RelaxationModel.sample` (the code that relaxes analog cells at
deployment), R = 1/G(t); a different path from the quadrature, so it checks it. Conductances
are clipped at :data:`G_FLOOR` (a device never reads a negative conductance); the closed forms
ignore the clip (its mass is below 1e-9 for the shipped cards' HRS at 10 years).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import special

from dse.devices.relaxation import RelaxationModel, relaxation_from_entry
from dse.errors import DseError

NODES = 48  # Gauss–Hermite nodes per Gaussian dimension
G_FLOOR = 1e-3  # µS: the smallest conductance a relaxed device reads (1 GΩ)
TO_SIEMENS = 1e-6  # the relaxation block's unit, µS


def cell_relaxation(card: Mapping[str, Any], source: str | None) -> RelaxationModel | None:
    """The ``relaxation:`` block of a binary cell card (µS), or None."""
    entry = card.get("relaxation")
    if entry is None:
        return None
    return relaxation_from_entry(entry, "uS", "relaxation", source)


def _hermite(n: int = NODES) -> tuple[np.ndarray, np.ndarray]:
    z, w = np.polynomial.hermite_e.hermegauss(n)
    return z, w / w.sum()


@dataclass(frozen=True)
class ResistanceLaw:
    """A device's resistance (Ω): ln R₀ ~ N(mu, sigma²), read ``time_s`` after programming
    under ``relaxation`` (None or t = 0: the log-normal law itself)."""

    mu: float
    sigma: float
    relaxation: RelaxationModel | None = None
    time_s: float = 0.0

    @property
    def relaxed(self) -> bool:
        return self.relaxation is not None and self.time_s > 0

    def _g0(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(G₀ nodes µS, weights, mean drift, sd) of the law (no drift, no spread unrelaxed)."""
        z, w = _hermite()
        g0 = np.exp(-self.mu - self.sigma * z) / TO_SIEMENS
        if not self.relaxed:
            return g0, w, np.zeros_like(g0), np.full_like(g0, 1e-12)
        assert self.relaxation is not None
        g = torch.as_tensor(g0, dtype=torch.float64)
        m = self.relaxation.mean_shift(g, self.time_s).numpy()
        sd = np.sqrt(np.maximum(self.relaxation.variance(g, self.time_s).numpy(), 1e-300))
        return g0, w, m, sd

    def survival(self, r: np.ndarray) -> np.ndarray:
        """P(R > r) for resistances ``r`` (any shape)."""
        r = np.asarray(r, dtype=float)
        if not self.relaxed:
            with np.errstate(divide="ignore"):
                return special.ndtr(-(np.log(r) - self.mu) / self.sigma)
        g0, w, m, sd = self._g0()
        with np.errstate(divide="ignore"):
            g = (1.0 / r / TO_SIEMENS)[..., None]
        return special.ndtr((g - g0 - m) / sd) @ w

    def nodes(self) -> tuple[np.ndarray, np.ndarray]:
        """(resistances, weights) of a quadrature of the law (NODES, or NODES² relaxed)."""
        z, w = _hermite()
        if not self.relaxed:
            return np.exp(self.mu + self.sigma * z), w
        g0, wg, m, sd = self._g0()
        g = np.maximum((g0 + m)[:, None] + sd[:, None] * z[None, :], G_FLOOR)
        return (1.0 / (g * TO_SIEMENS)).ravel(), np.outer(wg, w).ravel()

    def lognormal(self) -> tuple[float, float]:
        """(mu, sigma) of the log-normal law with the same first two moments of ln R (the
        extent of a grid over the law)."""
        if not self.relaxed:
            return self.mu, self.sigma
        r, w = self.nodes()
        ln = np.log(r)
        mean = float(ln @ w)
        return mean, math.sqrt(max(float(((ln - mean) ** 2) @ w), 1e-30))

    def sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Seeded resistances of ``shape`` devices (Monte-Carlo, module docstring)."""
        r0 = np.exp(self.mu + self.sigma * rng.standard_normal(shape))
        if not self.relaxed:
            return r0
        assert self.relaxation is not None
        gen = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
        g0 = torch.as_tensor(1.0 / r0 / TO_SIEMENS, dtype=torch.float64)
        g = self.relaxation.sample(g0, [self.time_s], gen, floor=G_FLOOR)[0].numpy()
        return 1.0 / (g * TO_SIEMENS)


def order_flip(lrs: ResistanceLaw, hrs: ResistanceLaw) -> float:
    """P(R_LRS > R_HRS): the pair's devices read in the wrong order (module docstring)."""
    if not (lrs.relaxed or hrs.relaxed):
        return float(special.ndtr((lrs.mu - hrs.mu) / math.hypot(lrs.sigma, hrs.sigma)))
    gl, wl, ml, sl = lrs._g0()
    gh, wh, mh, sh = hrs._g0()
    x = ((gh + mh)[None, :] - (gl + ml)[:, None]) / np.sqrt(sl[:, None] ** 2 + sh[None, :] ** 2)
    return float(wl @ special.ndtr(x) @ wh)


def check_time(name: str, relaxation: RelaxationModel | None, time_s: np.ndarray) -> None:
    """DseError when ``time_s`` > 0 is asked of a card without a relaxation block."""
    t = np.asarray(time_s, dtype=float)
    if (t < 0).any() or not np.isfinite(t).all():
        raise DseError(f"{name}: time_s must be finite and >= 0 (seconds after programming)")
    if relaxation is None and (t > 0).any():
        raise DseError(f"{name}: time_s > 0 needs a relaxation: block in the cell card "
                       "(dse/devices/cell_relaxation.py); this card has none")
