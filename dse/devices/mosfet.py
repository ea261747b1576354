"""A MOSFET drive model valid from sub-threshold to strong inversion (EKV + BSIM4 mobility).

Used by the physical sense-amplifier family (:mod:`dse.devices.pcsa_physical`). All functions are
vectorised over numpy arrays (broadcasting) and work on magnitudes: for a PMOS pass the
source-referenced magnitudes V_SG, V_SB = 0, V_SD.

Drain current (EKV, Enz, Krummenacher & Vittoz, Analog Integr. Circ. Sig. Process. 8 (1995);
the single-expression interpolation of the forward and reverse currents)::

    V_P = (V_G − V_th) / n                                 pinch-off voltage
    i_f = F((V_P − V_S)/U_T),  i_r = F((V_P − V_D)/U_T),   F(v) = ln²(1 + e^{v/2})
    I   = I_spec · (i_f − i_r) / (1 + V_DS,eff / (E_c·L))  I_spec = 2 n μ_eff C_ox (W/L) U_T²

* weak inversion (V_G < V_th): I = I_spec·e^{(V_G−V_th)/(nU_T)}·(e^{−V_S/U_T} − e^{−V_D/U_T}),
  so the current falls by e per n·U_T of gate voltage (slope n·U_T·ln 10 ≈ 81 mV/decade here);
* strong inversion: I = μ_eff C_ox (W/L)(V_G − V_th − nV_S)²/(2n) in saturation.

Mobility degradation by the vertical field, BSIM4 ``mobMod = 0`` (BSIM4 manual, eq. for μ_eff)::

    μ_eff = μ_0 / (1 + U_a·E + U_b·E²),   E = (V_ov + 2·V_th)/t_ox,
    V_ov  = 2nU_T·ln(1 + e^{(V_P−V_S)/(2U_T)})          (→ V_G − V_th − nV_S above threshold)

Velocity saturation: E_c = 2·v_sat/μ_eff (BSIM's E_sat), applied to the smooth minimum of V_DS
and the saturation voltage V_P − V_S, V_DS,eff = V_DS·V_DSsat/√(V_DS² + V_DSsat²).

Temperature (BSIM4 / PTM temperature parameters): V_th(T) = V_th + kt1·(T/T_nom − 1),
μ_0(T) = μ_0·(T/T_nom)^ute, v_sat(T) = v_sat − at·(T/T_nom − 1), U_T = kT/q.

Series transistors with one gate voltage and one width are, in the EKV model, exactly one
transistor of the summed length (the charge-sheet current is a function of V_P − V_S and V_P −
V_D only), which is how a stack of transistors is lumped (``length_factor``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

K_B = 1.380649e-23     # J/K
Q_E = 1.602176634e-19  # C
EPS_OX = 3.9 * 8.8541878128e-12  # F/m, SiO2


def thermal_voltage(temperature_k: np.ndarray | float) -> np.ndarray:
    """U_T = kT/q in volts."""
    return K_B * np.asarray(temperature_k, dtype=float) / Q_E


def _softplus(x: np.ndarray) -> np.ndarray:
    """ln(1 + e^x), overflow-free."""
    return np.logaddexp(0.0, x)


@dataclass(frozen=True)
class Mosfet:
    """One transistor type of a technology (SI units; threshold as a magnitude)."""

    vth: float        # V, |V_th| at T_nom
    n: float          # sub-threshold slope factor
    mu0: float        # m²/(V·s), low-field mobility at T_nom
    ua: float         # m/V, first-order mobility degradation
    ub: float         # m²/V², second-order mobility degradation
    vsat: float       # m/s at T_nom
    tox: float        # m, electrical oxide thickness
    l_eff: float      # m, effective channel length of one transistor
    kt1: float = 0.0  # V, threshold temperature coefficient
    ute: float = 0.0  # mobility temperature exponent
    at: float = 0.0   # m/s, saturation-velocity temperature coefficient
    t_nom: float = 300.15  # K

    @property
    def cox(self) -> float:
        """Gate capacitance per area, F/m²."""
        return EPS_OX / self.tox

    def at_temperature(self, temperature_k: np.ndarray | float) -> dict[str, np.ndarray]:
        """Temperature-dependent parameters (vth, mu0, vsat, ut) as broadcastable arrays."""
        t = np.asarray(temperature_k, dtype=float)
        r = t / self.t_nom - 1.0
        return {"vth": self.vth + self.kt1 * r, "mu0": self.mu0 * (t / self.t_nom) ** self.ute,
                "vsat": self.vsat - self.at * r, "ut": thermal_voltage(t)}

    def current(self, width: np.ndarray | float, vg: np.ndarray, vs: np.ndarray, vd: np.ndarray,
                temperature_k: np.ndarray | float = 300.0, dvth: np.ndarray | float = 0.0,
                length_factor: float = 1.0) -> np.ndarray:
        """Drain current (A) for gate, source, drain voltages referred to the bulk (V).

        ``dvth`` shifts the threshold (mismatch or a process corner); ``length_factor`` lumps
        that many series transistors of this length (see the module docstring).
        """
        p = self.at_temperature(temperature_k)
        ut = p["ut"]
        vth = p["vth"] + np.asarray(dvth, dtype=float)
        vp = (np.asarray(vg, dtype=float) - vth) / self.n
        vs = np.asarray(vs, dtype=float)
        vd = np.asarray(vd, dtype=float)
        xf = (vp - vs) / (2 * ut)
        xr = (vp - vd) / (2 * ut)
        i_f = _softplus(xf) ** 2
        i_r = _softplus(xr) ** 2
        v_dsat = 2 * ut * _softplus(xf)               # → V_P − V_S in strong inversion
        v_ov = self.n * v_dsat                          # → V_G − V_th − nV_S
        e_eff = (v_ov + 2 * vth) / self.tox
        mu = p["mu0"] / (1.0 + self.ua * e_eff + self.ub * e_eff ** 2)
        length = self.l_eff * length_factor
        i_spec = 2 * self.n * mu * self.cox * (np.asarray(width, dtype=float) / length) * ut ** 2
        vds = np.maximum(vd - vs, 0.0)
        v_eff = vds * v_dsat / np.sqrt(vds ** 2 + v_dsat ** 2 + 1e-300)
        e_c = 2 * p["vsat"] / mu
        return i_spec * (i_f - i_r) / (1.0 + v_eff / (e_c * length))

    def gm(self, width: np.ndarray | float, vg: np.ndarray, vs: np.ndarray, vd: np.ndarray,
           temperature_k: np.ndarray | float = 300.0, dvth: np.ndarray | float = 0.0,
           length_factor: float = 1.0, h: float = 1e-4) -> np.ndarray:
        """Gate transconductance dI/dV_G (S), central difference of :meth:`current`."""
        up = self.current(width, np.asarray(vg) + h, vs, vd, temperature_k, dvth, length_factor)
        dn = self.current(width, np.asarray(vg) - h, vs, vd, temperature_k, dvth, length_factor)
        return (up - dn) / (2 * h)

    def replace(self, **kw: float) -> Mosfet:
        return dataclasses.replace(self, **kw)


def solve_decreasing(f: Callable[[np.ndarray], np.ndarray], lo: np.ndarray, hi: np.ndarray,
                     iterations: int = 80, rtol: float = 1e-11) -> np.ndarray:
    """Root of a decreasing function on [lo, hi] (f(lo) ≥ 0 ≥ f(hi)), elementwise.

    Illinois (modified regula falsi) iterations: they keep the root bracketed and converge
    superlinearly; stop when every step moved x by less than ``rtol`` of the bracket.
    """
    f_lo, f_hi = f(lo), f(hi)
    width = np.maximum(hi - lo, 1e-300)
    x = 0.5 * (lo + hi)
    side = np.zeros(lo.shape, dtype=np.int8)
    for _ in range(iterations):
        denom = f_lo - f_hi
        ok = denom > 0
        x_new = np.where(ok, lo + f_lo * (hi - lo) / np.where(ok, denom, 1.0), 0.5 * (lo + hi))
        x_new = np.clip(x_new, lo, hi)
        step = np.abs(x_new - x)
        x = x_new
        fx = f(x)
        pos = fx > 0
        # Illinois: halve the value kept at the other end when the same end moves twice
        f_hi = np.where(pos & (side == 1), f_hi / 2, f_hi)
        f_lo = np.where(~pos & (side == -1), f_lo / 2, f_lo)
        lo, f_lo = np.where(pos, x, lo), np.where(pos, fx, f_lo)
        hi, f_hi = np.where(pos, hi, x), np.where(pos, f_hi, fx)
        side = np.where(pos, 1, -1).astype(np.int8)
        if np.all((step <= rtol * width) | (fx == 0)):
            break
    return x


def degenerated_current(fet: Mosfet, width: float, vg: np.ndarray, vd: np.ndarray,
                        resistance: np.ndarray, temperature_k: np.ndarray | float = 300.0,
                        dvth: np.ndarray | float = 0.0, length_factor: float = 1.0
                        ) -> np.ndarray:
    """Current through a transistor with a resistor R in its source (drain at ``vd``).

    Solves I_D(V_S) = V_S / R for V_S ∈ [0, V_D] (I_D falls and V_S/R rises with V_S, so the
    root is unique); vectorised over every broadcast argument.
    """
    vg, vd, r, t, dv = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in
                                             (vg, vd, resistance, temperature_k, dvth)))
    lo = np.zeros(vd.shape)
    hi = np.minimum(vd, fet.current(width, vg, lo, vd, t, dv, length_factor) * r)  # I ≤ I(R=0)
    vs = solve_decreasing(lambda v: fet.current(width, vg, v, vd, t, dv, length_factor) - v / r,
                          lo, hi)
    return vs / r


def resistance_for_current(fet: Mosfet, width: float, vg: np.ndarray, vd: np.ndarray,
                           current: np.ndarray, temperature_k: np.ndarray | float = 300.0,
                           dvth: np.ndarray | float = 0.0, length_factor: float = 1.0
                           ) -> np.ndarray:
    """The source resistance R that makes :func:`degenerated_current` equal ``current``.

    Inverse of :func:`degenerated_current` in R (the current falls monotonically with R): solves
    I_D(V_S) = I for V_S, R = V_S / I; 0 where even R = 0 gives less than I.
    """
    vg, vd, i, t, dv = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in
                                             (vg, vd, current, temperature_k, dvth)))
    def excess(v: np.ndarray) -> np.ndarray:
        return fet.current(width, vg, v, vd, t, dv, length_factor) - i

    lo = np.zeros(vd.shape)
    vs = solve_decreasing(excess, lo, vd.copy())
    return np.where(excess(lo) > 0, vs / i, 0.0)
