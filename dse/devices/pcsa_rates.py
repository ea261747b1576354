"""Error rates per stored value of a 2T2R pair read by a ``pcsa_physical`` sense amplifier.

Stored values and their pairs (device on BL, device on BLb): +1 = (LRS, HRS), −1 = (HRS, LRS),
0 = (HRS, HRS) (ternary only, Laborieux et al. 2020). Each branch's device is drawn from the cell
card's log-normal LRS/HRS distribution (:class:`CellStats`) and each branch's NMOS stack has its
own threshold mismatch, so a read error is evaluated on the pair's *own* resistances: cell
variability and sense failures are correlated, not multiplied as independent rates.

Confusion matrices ``M[stored, read]`` (rows sum to 1), values in the order of :data:`VALUES`:
binary (−1, +1), ternary (−1, 0, +1).

**Closed form** (:func:`confusion`). The read depends on the two branch currents I_1, I_2 and the
latch offset δ_L (Gaussian, integrated exactly: P(read +1 | I_1, I_2) = Φ((ΔV − v_min)/σ_L),
P(read −1 | ·) = Φ((−v_min − ΔV)/σ_L), see :mod:`dse.devices.pcsa_physical`). The distribution
of each branch current is computed exactly on a fine grid of ln I: its CDF at every grid edge is
P(I ≤ i) = E_u[P(v ≥ v*(i, u))] where (u, v) are the branch's two Gaussian inputs (ln R and the
threshold mismatch δ) and v* solves the branch equation for the other input at current i; the
input that moves the current more (the resistance at high supply, the mismatch deep below
threshold) is integrated in closed form (Φ) and the other by Gauss–Hermite quadrature, so the
integrand stays smooth. Bin masses are CDF differences, and the pair is a double sum over the two
branches' bins. Vectorised; only the operating points are looped over.

**Monte-Carlo** (:func:`sample_confusion`). Seeded draws of every pair's two resistances, two
branch mismatches and its latch offset; the branch currents are solved forward (a different code
path: bisection on the source voltage for the sampled R); counts per stored and read value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from dse.devices.cell_relaxation import ResistanceLaw, check_time
from dse.devices.mosfet import resistance_for_current, solve_decreasing
from dse.errors import DseError

VALUES = {"binary": (-1, 1), "ternary": (-1, 0, 1)}
# stored value -> (BL state, BLb state); "L" = LRS, "H" = HRS
PAIRS = {1: ("L", "H"), -1: ("H", "L"), 0: ("H", "H")}
_Z = 6.0  # grid half-width in standard deviations (tail mass ~1e-9)
BINS = 400  # ln-current bins per branch


@dataclass(frozen=True)
class CellStats:
    """Log-normal device resistances of a pair at programming, ln R_LRS ~ N(mu_lrs,
    sigma_lrs²), same for HRS; read ``time_s`` after programming under ``relaxation``
    (:mod:`dse.devices.cell_relaxation`; None: the log-normal laws themselves)."""

    mu_lrs: float
    sigma_lrs: float
    mu_hrs: float
    sigma_hrs: float
    relaxation: Any = None
    time_s: float = 0.0

    def state(self, s: str) -> tuple[float, float]:
        return (self.mu_lrs, self.sigma_lrs) if s == "L" else (self.mu_hrs, self.sigma_hrs)

    def law(self, s: str) -> ResistanceLaw:
        """The resistance law of a device in state ``s`` ("L" or "H") when read."""
        return ResistanceLaw(*self.state(s), self.relaxation, self.time_s)

    @classmethod
    def from_model(cls, model: Any, i_prog: float | None = None,
                   time_s: float = 0.0) -> CellStats:
        """From an RRAM cell model with ``lrs(i_prog)`` and ``hrs()`` (e.g. ``rram_2t2r``);
        ``i_prog`` defaults to the card's ``i_ref``; ``time_s`` > 0 needs its relaxation."""
        if not (hasattr(model, "lrs") and hasattr(model, "hrs")):
            raise DseError(f"{model.describe()}: not a cell with LRS/HRS distributions; the "
                           "sense amplifier needs a cell card such as family rram_2t2r")
        i = model.scalar("i_ref") if i_prog is None else float(i_prog)
        relax = getattr(model, "relaxation", None)
        check_time(model.describe(), relax, np.asarray(time_s))
        mu_l, s_l = model.lrs(np.asarray(i))
        mu_h, s_h = model.hrs()
        return cls(float(mu_l), float(s_l), float(mu_h), float(s_h), relax, float(time_s))


def _check_encoding(encoding: str) -> tuple[int, ...]:
    if encoding not in VALUES:
        raise DseError(f"encoding '{encoding}': the PCSA reads binary or ternary weights")
    return VALUES[encoding]


# ---------------------------------------------------------------------------- closed form
def _threshold_for_current(model: Any, vdd: float, r: np.ndarray, current: np.ndarray,
                           temperature: float) -> np.ndarray:
    """Branch threshold shift δ (V) at which a device R carries ``current`` (±inf if none)."""
    vd = vdd * (1.0 - model.values["trip_fraction"] / 2)
    r, i = np.broadcast_arrays(np.asarray(r, float), np.asarray(current, float))
    feasible = i * r < vd
    vs = np.minimum(i * r, vd)

    def excess(d: np.ndarray) -> np.ndarray:
        return model.nfet.current(model.w_branch, vdd, vs, vd, temperature, d,
                                  model.stack) - i

    lo, hi = np.full(i.shape, -1.0), np.full(i.shape, 1.0)
    d = solve_decreasing(excess, lo, hi)
    d = np.where(excess(hi) > 0, np.inf, d)      # even δ = +1 V is too strong
    d = np.where(excess(lo) < 0, -np.inf, d)     # even δ = −1 V is too weak
    return np.where(feasible, d, -np.inf)


def branch_distribution(model: Any, vdd: float, temperature: float, dvth: float,
                        law: ResistanceLaw, bins: int, nodes: int = 48
                        ) -> tuple[np.ndarray, np.ndarray]:
    """(currents, masses) of a branch whose device resistance follows ``law`` (log-normal, or
    relaxed after programming): bin centres of a grid in ln I and the exact probability of each
    bin (see the module docstring; a relaxed law's grid spans its log-normal match)."""
    sd = model.sigma_branch
    mu, sigma = law.lognormal()
    r_med = math.exp(mu)

    def cur(r: float, d: float) -> float:
        return float(model.branch_current(vdd, r, temperature, dvth + d))

    i_med = cur(r_med, 0.0)
    a = (math.log(cur(math.exp(mu - _Z * sigma), 0.0) / i_med),
         math.log(i_med / cur(math.exp(mu + _Z * sigma), 0.0)))
    b = (math.log(cur(r_med, -_Z * sd) / i_med), math.log(i_med / cur(r_med, _Z * sd)))
    x_hi = math.log(i_med) + 1.05 * math.hypot(a[0], b[0])
    x_lo = math.log(i_med) - 1.05 * math.hypot(a[1], b[1])
    edges = np.linspace(x_lo, x_hi, bins + 1)
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()
    i_edge = np.exp(edges)[:, None]
    with np.errstate(divide="ignore"):
        if a[0] + a[1] >= b[0] + b[1]:   # the resistance dominates: Φ over ln R, nodes over δ
            r_star = resistance_for_current(model.nfet, model.w_branch, vdd,
                                            vdd * (1 - model.values["trip_fraction"] / 2),
                                            i_edge, temperature, dvth + sd * z[None, :],
                                            model.stack)
            cond = law.survival(r_star)
        else:                            # the mismatch dominates: Φ over δ, nodes over R
            r_k, w = law.nodes()
            d_star = _threshold_for_current(model, vdd, r_k[None, :], i_edge, temperature) - dvth
            cond = special.ndtr(-d_star / sd)
    cdf = cond @ w
    cdf = np.maximum.accumulate(np.clip(cdf, 0.0, 1.0))
    mass = np.diff(cdf)
    mass[0] += cdf[0]
    mass[-1] += 1.0 - cdf[-1]
    return np.exp(0.5 * (edges[1:] + edges[:-1])), mass


def _read_probabilities(model: Any, vdd: float, t_w: float, temperature: float, dvth: float,
                        i1: np.ndarray, i2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P(read +1), P(read −1) given branch currents (latch offset integrated in closed form)."""
    t1, dv = model.discharge(vdd, i1, i2)
    tau = float(model.regeneration_tau(vdd, temperature, dvth))
    sig = float(model.latch_sigma(vdd, temperature, dvth))
    v_min = np.where(t_w > t1, 0.5 * vdd * np.exp(-(t_w - t1) / tau), np.inf)
    return special.ndtr((dv - v_min) / sig), special.ndtr((-v_min - dv) / sig)


def _distributions(model: Any, cell: CellStats, vdd: float, temperature: float, dvth: float,
                   bins: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Branch-current distributions of the LRS and HRS devices at one supply point."""
    return {s: branch_distribution(model, vdd, temperature, dvth, cell.law(s), bins)
            for s in ("L", "H")}


def _confusion_at(model: Any, dist: dict[str, tuple[np.ndarray, np.ndarray]], encoding: str,
                  vdd: float, t_w: float, temperature: float, dvth: float) -> np.ndarray:
    values = VALUES[encoding]
    out = np.zeros((len(values), len(values)))
    for row, stored in enumerate(values):
        (c1, m1), (c2, m2) = dist[PAIRS[stored][0]], dist[PAIRS[stored][1]]
        p_pos, p_neg = _read_probabilities(model, vdd, t_w, temperature, dvth,
                                           c1[:, None], c2[None, :])
        weight = m1[:, None] * m2[None, :]
        pos, neg = float(np.sum(weight * p_pos)), float(np.sum(weight * p_neg))
        undecided = max(1.0 - pos - neg, 0.0)
        if encoding == "ternary":
            out[row] = (neg, undecided, pos)
        else:   # undecided: a coin
            out[row] = (neg + undecided / 2, pos + undecided / 2)
    return out / out.sum(axis=1, keepdims=True)


def confusion(model: Any, cell: CellStats, encoding: str, bins: int = BINS,
              **op: Any) -> np.ndarray:
    """Closed-form confusion matrices (shape ``(*op_shape, k, k)``) at the operating points.

    The branch-current distributions are computed once per (vdd, temperature, dvth) and shared
    by every sense window at that point. ``bins`` per branch: the error of the double sum falls
    as 1/bins² (150 bins: ~0.5 % relative, 400: < 0.1 %, measured against 2400).
    """
    _check_encoding(encoding)
    o = model.operating(**op)
    shape = o["vdd"].shape
    k = len(VALUES[encoding])
    out = np.empty((*shape, k, k))
    cache: dict[tuple[float, float, float], dict] = {}
    for idx in np.ndindex(shape):
        vdd, t_w, temp, dv = (float(o[key][idx]) for key in
                              ("vdd", "t_sense", "temperature", "dvth"))
        if (vdd, temp, dv) not in cache:
            cache[(vdd, temp, dv)] = _distributions(model, cell, vdd, temp, dv, bins)
        out[idx] = _confusion_at(model, cache[(vdd, temp, dv)], encoding, vdd, t_w, temp, dv)
    return out


# ---------------------------------------------------------------------------- Monte-Carlo
def _sample_pairs(model: Any, cell: CellStats, stored: np.ndarray, binary: bool,
                  rng: np.random.Generator, o: dict[str, np.ndarray]) -> np.ndarray:
    """Read values of the stored values ``stored`` (shape ``(*op_shape, n)``)."""
    vdd, t_w, temp, dvth = (o[k][..., None] for k in ("vdd", "t_sense", "temperature", "dvth"))
    def draw(lrs: np.ndarray) -> np.ndarray:
        """Branch currents of devices in LRS where ``lrs``, HRS elsewhere (own R and δ each)."""
        r = np.where(lrs, cell.law("L").sample(lrs.shape, rng),
                     cell.law("H").sample(lrs.shape, rng))
        d = model.sigma_branch * rng.standard_normal(lrs.shape)
        return model.branch_current(vdd, r, temp, dvth + d)

    i1, i2 = draw(stored == 1), draw(stored == -1)   # +1 = (LRS, HRS), −1 = (HRS, LRS)
    t1, dv = model.discharge(vdd, i1, i2)
    tau = model.regeneration_tau(vdd, temp, dvth)
    dv_eff = dv + model.latch_sigma(vdd, temp, dvth) * rng.standard_normal(dv.shape)
    with np.errstate(over="ignore"):
        v_min = np.where(t_w > t1, 0.5 * vdd * np.exp(-(t_w - t1) / tau), np.inf)
    decided = np.abs(dv_eff) >= v_min
    sign = np.where(dv_eff >= 0, 1, -1)
    if binary:
        coin = np.where(rng.random(dv.shape) < 0.5, 1, -1)
        return np.where(decided, sign, coin)
    return np.where(decided, sign, 0)


def sample_confusion(model: Any, cell: CellStats, encoding: str, n: int,
                     rng: np.random.Generator, **op: Any) -> np.ndarray:
    """Monte-Carlo counts ``C[..., stored, read]`` from ``n`` seeded pairs per stored value."""
    values = _check_encoding(encoding)
    o = model.operating(**op)
    shape = o["vdd"].shape
    counts = np.zeros((*shape, len(values), len(values)), dtype=np.int64)
    for row, v in enumerate(values):
        stored = np.full((*shape, n), v)
        read = _sample_pairs(model, cell, stored, encoding == "binary", rng, o)
        for col, r in enumerate(values):
            counts[..., row, col] = np.sum(read == r, axis=-1)
    return counts


def sample_reads(model: Any, cell: CellStats, encoding: str, n: int,
                 rng: np.random.Generator, **op: Any) -> tuple[np.ndarray, np.ndarray]:
    """(stored, read) of ``n`` pairs per operating point with uniformly random stored values."""
    values = np.asarray(_check_encoding(encoding))
    o = model.operating(**op)
    stored = values[rng.integers(0, len(values), size=(*o["vdd"].shape, n))]
    return stored, _sample_pairs(model, cell, stored, encoding == "binary", rng, o)


# ---------------------------------------------------------------------------- windows
def error_rate(matrix: np.ndarray, p_zero: float = 1 / 3) -> np.ndarray:
    """Weight error rate of a confusion matrix: ±1 equally likely, zeros a fraction ``p_zero``
    (ternary only)."""
    k = matrix.shape[-1]
    prior = np.array([0.5, 0.5]) if k == 2 else np.array([(1 - p_zero) / 2, p_zero,
                                                          (1 - p_zero) / 2])
    wrong = 1.0 - np.diagonal(matrix, axis1=-2, axis2=-1)
    return wrong @ prior


def best_window(model: Any, cell: CellStats, encoding: str, windows: np.ndarray,
                p_zero: float = 1 / 3, rtol: float = 0.01, atol: float = 1e-9,
                **op: Any) -> tuple[float, float]:
    """(window, error rate) at one operating point (scalar knobs), searched over ``windows`` (s)
    and refined between the neighbouring candidates.

    Ternary: the window of the lowest error rate (±1 read as 0 when too short, 0 read as ±1
    when too long), refined by a bounded scalar minimisation in ln t. Binary: the shortest
    window within ``rtol`` (relative) + ``atol`` (absolute) of the lowest error rate (the error
    falls monotonically to a plateau, so a longer window only costs time), refined by
    bisection in ln t.
    """
    from scipy.optimize import minimize_scalar

    windows = np.sort(np.asarray(windows, dtype=float))
    o = model.operating(t_sense=windows, **op)
    if o["vdd"].size != windows.size:
        raise DseError("best_window: give one operating point (scalar vdd, temperature, dvth)")
    vdd, temp, dv = (float(o[k].flat[0]) for k in ("vdd", "temperature", "dvth"))
    dist = _distributions(model, cell, vdd, temp, dv, BINS)

    def err(t: float) -> float:
        return float(error_rate(_confusion_at(model, dist, encoding, vdd, t, temp, dv),
                                p_zero))

    e = np.array([err(t) for t in windows])
    if encoding == "ternary":
        i = int(np.argmin(e))
        lo, hi = np.log(windows[max(i - 1, 0)]), np.log(windows[min(i + 1, windows.size - 1)])
        if hi > lo:
            res = minimize_scalar(lambda x: err(math.exp(x)), bounds=(lo, hi),
                                  method="bounded", options={"xatol": 1e-3})
            if res.fun < e[i]:
                return math.exp(res.x), float(res.fun)
        return float(windows[i]), float(e[i])
    target = e.min() * (1 + rtol) + atol
    i = int(np.argmax(e <= target))
    if i == 0:
        return float(windows[0]), float(e[0])
    lo, hi = math.log(windows[i - 1]), math.log(windows[i])
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if err(math.exp(mid)) <= target else (mid, hi)
    return math.exp(hi), err(math.exp(hi))
