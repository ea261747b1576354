"""``pcsa_physical``: a precharge sense amplifier from its transistors (decision, time, energy).

The PCSA of Zhao et al. (2009, "High speed, high stability and low power sensing amplifier for
MTJ/CMOS hybrid logic circuits", IEEE Trans. Magn. 45(10)) as used on the 2T2R HfO2 chips
(Bocquet et al., IEDM 2018; Hirtzlin et al., Front. Neurosci. 2020; Laborieux et al., AICAS 2020
/ TCAS-I 2021): two output nodes precharged to VDD, then discharged through the two branches
(latch NMOS, the cell's access transistor, the device R_BL or R_BLb, the shared tail NMOS); the
cross-coupled inverters regenerate the difference. Model, per sense:

1. **Discharge.** Branch b carries I_b = the current of its NMOS stack (one lumped EKV transistor
   of ``stack`` times the length, gate at VDD, drain at the mid-discharge node voltage) with R_b
   in its source, solved self-consistently (:mod:`dse.devices.mosfet`). The threshold of each
   stack carries its own mismatch δ_b ~ N(0, A_VT²/(2·W·L_stack)) (Pelgrom et al., IEEE JSSC 24(5)
   1989: σ(ΔV_T) = A_VT/√(WL) for a pair). The faster node reaches the trip point
   V_trip = ``trip_fraction``·VDD at t_1 = C_node·V_trip/I_f (I_f = max I_b); the two nodes then
   differ by ΔV = V_trip·(I_1 − I_2)/I_f.
2. **Regeneration.** The latch adds its own input-referred offset δ_L ~ N(0, σ_L²), σ_L² =
   (A_VT/√(W_p L)·g_mp/(g_mn + g_mp))² + 2kT/C_node (PMOS-pair mismatch weighted by its share of
   the loop transconductance, plus the kT/C noise of both nodes; the NMOS pair's mismatch is in
   δ_b). The difference grows as e^{t/τ}, τ = C_node/(g_mn + g_mp) with both evaluated at the
   latch's metastable point V_DD/2. The sense has *decided* when |ΔV + δ_L| reaches VDD/2::

       t_d = t_1 + τ·ln(max(VDD/2 / |ΔV + δ_L|, 1))          (∞ when ΔV + δ_L = 0)

3. **Reading in a window** t_w (``t_sense``): decided by t_w ⇔ t_w > t_1 and |ΔV + δ_L| ≥
   v_min = (VDD/2)·e^{−(t_w − t_1)/τ}. Ternary (one sense per synapse, Laborieux et al.): decided
   → ±1 by the sign, undecided → 0. Binary: decided → the sign, undecided → a coin (assumption:
   a half-resolved latch is read as either value with probability ½).

The cycle is the precharge (PMOS of width ``w_pre`` recharging a node from 0 to 0.9·VDD) plus the
window; energy per sense = c_switched·VDD² + I_leak·VDD·cycle, I_leak = the off current (EKV,
V_GS = 0, V_DS = VDD) of ``leak_width`` of NMOS, so the energy has a minimum near threshold where
the cycle grows faster than C·V² falls.

The error rates per stored value, on each pair's own resistance draw, are in
:mod:`dse.devices.pcsa_rates` (closed form and Monte-Carlo); they need the cell's LRS/HRS
distributions (:class:`~dse.devices.pcsa_rates.CellStats`), bound with :meth:`with_cell`.
"""

from __future__ import annotations

import copy
import math
from typing import Any, ClassVar

import numpy as np

from dse.devices.base import register
from dse.devices.bit_error import BitErrorModel
from dse.devices.mosfet import K_B, Mosfet, degenerated_current
from dse.devices.params import ParamSpec
from dse.errors import DseError

_PTM = ("source: PTM 130 nm bulk BSIM4 card (Zhao & Cao, IEEE TED 53(11) 2006; ptm.asu.edu; "
        "file vtr_flow/tech/PTM_130nm/130nm.pm of verilog-to-routing)")
_SIZE = ("assumption: PCSA transistor sizes of the chips are NOT FOUND (Hirtzlin 2020 and "
         "Laborieux 2021 bodies not available)")


def _p(unit: str, doc: str, default: float, note: str, low: float | None = 0.0,
       high: float | None = None) -> ParamSpec:
    return ParamSpec(unit, doc, default=default, note=note, low=low, high=high)


@register("pcsa_physical")
class PcsaPhysical(BitErrorModel):
    """Precharge sense amplifier from an EKV transistor model (see the module docstring)."""

    knobs: ClassVar[tuple[str, ...]] = ("vdd",)
    optional_knobs: ClassVar[dict[str, str]] = {"t_sense": "t_sense",
                                                 "temperature": "temperature", "dvth": "dvth"}
    PARAMS: ClassVar[dict[str, ParamSpec]] = {
        "vth_n": _p("V", "NMOS threshold |V_th| at t_nom", 0.3782, _PTM + ", NMOS vth0"),
        "vth_p": _p("V", "PMOS threshold |V_th| at t_nom", 0.321, _PTM + ", PMOS vth0"),
        "slope_n": _p("1", "NMOS sub-threshold slope factor n", 1.37, _PTM + ": derived "
                      "n = 1 + nfactor·(ε_si/X_dep)/C_ox, nfactor 1.5, ndep 1.54e18 cm^-3"),
        "slope_p": _p("1", "PMOS sub-threshold slope factor n", 1.34, _PTM + ": derived, "
                      "ndep 1.14e18 cm^-3"),
        "mu_n": _p("m2/(V*s)", "NMOS low-field mobility", 0.05928, _PTM + ", NMOS u0"),
        "mu_p": _p("m2/(V*s)", "PMOS low-field mobility", 0.00835, _PTM + ", PMOS u0"),
        "ua_n": _p("m/V", "NMOS mobility degradation U_a", 6e-10, _PTM + ", NMOS ua"),
        "ua_p": _p("m/V", "PMOS mobility degradation U_a", 2e-9, _PTM + ", PMOS ua"),
        "ub_n": _p("m2/V2", "NMOS mobility degradation U_b", 1.2e-18, _PTM + ", NMOS ub"),
        "ub_p": _p("m2/V2", "PMOS mobility degradation U_b", 0.5e-18, _PTM + ", PMOS ub"),
        "vsat_n": _p("m/s", "NMOS saturation velocity", 100370.0, _PTM + ", NMOS vsat"),
        "vsat_p": _p("m/s", "PMOS saturation velocity", 70000.0, _PTM + ", PMOS vsat"),
        "tox_n": _p("nm", "NMOS electrical oxide thickness", 2.25, _PTM + ", NMOS toxe"),
        "tox_p": _p("nm", "PMOS electrical oxide thickness", 2.35, _PTM + ", PMOS toxe"),
        "l_eff": _p("nm", "effective channel length", 49.0, _PTM + ": L_drawn 130 + xl (−60) "
                    "− 2·lint (10.5)"),
        "l_drawn": _p("nm", "drawn channel length (mismatch area)", 130.0,
                      "assumption: minimum drawn length of the 130 nm node"),
        "kt1": _p("V", "threshold temperature coefficient", -0.11, _PTM + ", kt1", low=None),
        "ute": _p("1", "mobility temperature exponent", -1.5, _PTM + ", ute", low=None),
        "at": _p("m/s", "saturation-velocity temperature coefficient", 33000.0, _PTM + ", at"),
        "t_nom": _p("K", "temperature of the parameters", 300.15, _PTM + ", tnom = 27 C"),
        "w_branch": _p("um", "width of the branch NMOS (latch, access, tail)", 0.6, _SIZE),
        "stack": _p("1", "series NMOS per branch", 3.0, "assumption: latch NMOS + the cell's "
                    "access transistor + the tail NMOS (Zhao 2009 topology on a 2T2R column)"),
        "w_latch_p": _p("um", "width of the latch PMOS", 0.4, _SIZE),
        "w_pre": _p("um", "width of the precharge PMOS", 0.4, _SIZE),
        "c_node": _p("fF", "capacitance of one discharged node", 5.0, "assumption: half of "
                     "the 10 fF switched per sense of config/chips/rram-2t2r-pcsa-130nm.yaml"),
        "c_switched": _p("fF", "capacitance switched per sense (C·VDD²)", 10.0, "assumption: "
                         "as sensing.sense_energy of config/chips/rram-2t2r-pcsa-130nm.yaml"),
        "a_vt": _p("mV*um", "Pelgrom threshold-mismatch coefficient A_VT", 3.0, "assumption: "
                   "~1 mV·um per nm of electrical oxide (Pelgrom, Tuinhout & Vertregt, IEDM "
                   "1998), ~3 nm at 130 nm; the chips' mismatch is NOT FOUND"),
        "trip_fraction": _p("1", "discharge (fraction of VDD) at which regeneration starts",
                            0.5, "assumption: the faster node crosses the mid-supply switching "
                            "point of the opposite inverter", high=1.0),
        "leak_width": _p("um", "width of off NMOS leaking per sense amplifier", 40.0,
                         "assumption: the PCSA's 11 transistors, its column's 126 unselected "
                         "access transistors and its share of the popcount counter, about "
                         "half off, ~0.3 um each"),
        "t_sense": _p("s", "sense window (default of the t_sense knob)", 1e-9,
                      "assumption: a default only; the window is an operating-point knob"),
        "temperature": _p("K", "temperature (default of the temperature knob)", 300.0,
                          "assumption: room temperature"),
        "dvth": _p("V", "global threshold shift (default of the dvth knob, a process corner)",
                   0.0, "assumption: typical corner", low=None),
        "vdd_min": _p("V", "lowest supply the model is used at", 0.15, "assumption: below "
                      "~6 kT/q the latch loses its regenerative gain; the model stops there"),
        "vdd_max": _p("V", "highest supply the model is used at", 1.32, "assumption: nominal "
                      "1.2 V of the 130 nm node + 10 %"),
    }
    BER_FIT: ClassVar[tuple[str, ...]] = ()

    cell: Any = None  # CellStats bound by with_cell

    def _prepare(self) -> None:
        v = self.values
        common = {"kt1": v["kt1"], "ute": v["ute"], "at": v["at"], "t_nom": v["t_nom"],
                  "l_eff": v["l_eff"] * 1e-9}
        self.nfet = Mosfet(vth=v["vth_n"], n=v["slope_n"], mu0=v["mu_n"], ua=v["ua_n"],
                           ub=v["ub_n"], vsat=v["vsat_n"], tox=v["tox_n"] * 1e-9, **common)
        self.pfet = Mosfet(vth=v["vth_p"], n=v["slope_p"], mu0=v["mu_p"], ua=v["ua_p"],
                           ub=v["ub_p"], vsat=v["vsat_p"], tox=v["tox_p"] * 1e-9, **common)
        self.w_branch = v["w_branch"] * 1e-6
        self.w_latch_p = v["w_latch_p"] * 1e-6
        self.w_pre = v["w_pre"] * 1e-6
        self.c_node = v["c_node"] * 1e-15
        self.c_switched = v["c_switched"] * 1e-15
        self.leak_width = v["leak_width"] * 1e-6
        self.stack = float(v["stack"])
        a_vt = v["a_vt"] * 1e-3 * 1e-6  # V·m
        l_d = v["l_drawn"] * 1e-9
        self.sigma_branch = a_vt / math.sqrt(2 * self.w_branch * self.stack * l_d)
        self.sigma_pair_p = a_vt / math.sqrt(self.w_latch_p * l_d)

    # ---------------------------------------------------------------- operating points
    def operating(self, **op: Any) -> dict[str, np.ndarray]:
        """Validated, broadcast knobs (vdd, t_sense, temperature, dvth) in SI units."""
        o = self._op(op)
        v, where = self.values, self.describe()
        if np.any(~np.isfinite(o["vdd"])) or np.any(o["vdd"] < v["vdd_min"]) \
                or np.any(o["vdd"] > v["vdd_max"]):
            bad = o["vdd"][(o["vdd"] < v["vdd_min"]) | (o["vdd"] > v["vdd_max"])
                           | ~np.isfinite(o["vdd"])]
            raise DseError(f"{where}: operating point vdd = {bad.flat[0]:g} V is outside the "
                           f"card's range params.vdd_min..vdd_max = {v['vdd_min']:g}.."
                           f"{v['vdd_max']:g} V; choose a supply inside it")
        if np.any(~(o["t_sense"] > 0)) or np.any(~np.isfinite(o["t_sense"])):
            bad = o["t_sense"][~(o["t_sense"] > 0) | ~np.isfinite(o["t_sense"])]
            raise DseError(f"{where}: operating point t_sense = {bad.flat[0]:g} s; the sense "
                           "window must be a positive, finite time in seconds")
        if np.any(~(o["temperature"] > 0)):
            raise DseError(f"{where}: operating point temperature must be > 0 K")
        return o

    # ---------------------------------------------------------------- circuit physics
    def branch_current(self, vdd: np.ndarray, resistance: np.ndarray,
                       temperature: np.ndarray | float = 300.0,
                       dvth: np.ndarray | float = 0.0) -> np.ndarray:
        """Discharge current of one branch (A) through a device of ``resistance`` (Ω)."""
        vdd = np.asarray(vdd, dtype=float)
        vd = vdd * (1.0 - self.values["trip_fraction"] / 2)
        return degenerated_current(self.nfet, self.w_branch, vdd, vd, resistance, temperature,
                                   dvth, self.stack)

    def latch_gm(self, vdd: np.ndarray, temperature: np.ndarray | float = 300.0,
                 dvth: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """(g_mn, g_mp) of the cross-coupled inverters at their metastable point VDD/2."""
        half = np.asarray(vdd, dtype=float) / 2
        gn = self.nfet.gm(self.w_branch, half, 0.0, half, temperature, dvth)
        gp = self.pfet.gm(self.w_latch_p, half, 0.0, half, temperature, dvth)
        return gn, gp

    def regeneration_tau(self, vdd: np.ndarray, temperature: np.ndarray | float = 300.0,
                         dvth: np.ndarray | float = 0.0) -> np.ndarray:
        """Time constant τ = C_node/(g_mn + g_mp) of the latch (s)."""
        gn, gp = self.latch_gm(vdd, temperature, dvth)
        return self.c_node / (gn + gp)

    def latch_sigma(self, vdd: np.ndarray, temperature: np.ndarray | float = 300.0,
                    dvth: np.ndarray | float = 0.0) -> np.ndarray:
        """σ_L of the latch's input-referred offset plus kT/C noise (V)."""
        gn, gp = self.latch_gm(vdd, temperature, dvth)
        mismatch = self.sigma_pair_p * gp / (gn + gp)
        noise2 = 2 * K_B * np.asarray(temperature, dtype=float) / self.c_node
        return np.sqrt(mismatch ** 2 + noise2)

    def discharge(self, vdd: np.ndarray, i_bl: np.ndarray,
                  i_blb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(t_1, ΔV) of the discharge phase from the two branch currents."""
        v_trip = self.values["trip_fraction"] * np.asarray(vdd, dtype=float)
        i_f = np.maximum(i_bl, i_blb)
        return self.c_node * v_trip / i_f, v_trip * (i_bl - i_blb) / i_f

    def decision_time(self, vdd: Any, r_bl: Any, r_blb: Any, offset: Any = 0.0,
                      temperature: Any = 300.0, dvth: Any = 0.0, delta_bl: Any = 0.0,
                      delta_blb: Any = 0.0) -> np.ndarray:
        """t_d (s) for devices R_BL, R_BLb (Ω): ∞ when the two sides are exactly balanced.

        ``offset`` is the latch offset δ_L (V), ``delta_bl``/``delta_blb`` the branch threshold
        mismatches δ_b (V); all default to a perfectly matched amplifier.
        """
        i1 = self.branch_current(vdd, r_bl, temperature, np.asarray(dvth) + delta_bl)
        i2 = self.branch_current(vdd, r_blb, temperature, np.asarray(dvth) + delta_blb)
        t1, dv = self.discharge(vdd, i1, i2)
        tau = self.regeneration_tau(vdd, temperature, dvth)
        dv_eff = np.abs(dv + np.asarray(offset, dtype=float))
        half = np.asarray(vdd, dtype=float) / 2
        with np.errstate(divide="ignore"):
            regen = tau * np.log(np.maximum(half / dv_eff, 1.0))
        return t1 + regen

    def precharge_time(self, vdd: Any, temperature: Any = 300.0, dvth: Any = 0.0) -> np.ndarray:
        """Time (s) for the precharge PMOS to lift a node from 0 to 0.9·VDD: ∫C dV / I_p."""
        vdd = np.asarray(vdd, dtype=float)
        x, w = np.polynomial.legendre.leggauss(16)
        frac = 0.45 * (x + 1.0)                       # node voltage / VDD on [0, 0.9]
        shape = (-1,) + (1,) * vdd.ndim
        v_node = frac.reshape(shape) * vdd
        i_p = self.pfet.current(self.w_pre, vdd, 0.0, vdd - v_node, temperature, dvth)
        return np.sum(w.reshape(shape) * 0.45 * vdd * self.c_node / i_p, axis=0)

    def cycle_time(self, **op: Any) -> np.ndarray:
        """Precharge + sense window (s): the time of one sense at the operating point."""
        o = self.operating(**op)
        return self.precharge_time(o["vdd"], o["temperature"], o["dvth"]) + o["t_sense"]

    def leakage_current(self, vdd: Any, temperature: Any = 300.0, dvth: Any = 0.0) -> np.ndarray:
        """Off current (A) of ``leak_width`` of NMOS at V_GS = 0, V_DS = VDD."""
        vdd = np.asarray(vdd, dtype=float)
        return self.nfet.current(self.leak_width, 0.0, 0.0, vdd, temperature, dvth)

    def energy_per_sense(self, **op: Any) -> dict[str, np.ndarray]:
        """Energy of one sense (J): ``dynamic`` C·VDD², ``leakage`` I_leak·VDD·cycle, ``total``."""
        o = self.operating(**op)
        vdd = o["vdd"]
        cycle = self.precharge_time(vdd, o["temperature"], o["dvth"]) + o["t_sense"]
        dyn = self.c_switched * vdd ** 2
        leak = self.leakage_current(vdd, o["temperature"], o["dvth"]) * vdd * cycle
        return {"dynamic": dyn, "leakage": leak, "total": dyn + leak, "cycle": cycle}

    def logic_delay(self, vdd: Any, temperature: Any = 300.0, dvth: Any = 0.0) -> np.ndarray:
        """V/I_on (Ω, ∝ the delay C·V/I of CMOS logic), I_on of a 1 µm NMOS at V_GS = V_DS = V."""
        vdd = np.asarray(vdd, dtype=float)
        return vdd / self.nfet.current(1e-6, vdd, 0.0, vdd, temperature, dvth)

    def logic_delay_scale(self, vdd: Any, vdd_ref: float, temperature: Any = 300.0,
                          dvth: Any = 0.0) -> np.ndarray:
        """Delay of CMOS logic at ``vdd`` (and temperature, corner) relative to ``vdd_ref`` at
        the typical corner and 300 K: for scaling a digital clock given at ``vdd_ref``."""
        return self.logic_delay(vdd, temperature, dvth) / self.logic_delay(vdd_ref)

    # ---------------------------------------------------------------- error rates
    def with_cell(self, cell: Any) -> PcsaPhysical:
        """A copy bound to the cell statistics (``CellStats``) its ``ber`` reads."""
        new = copy.copy(self)
        new.cell = cell
        return new

    def _need_cell(self) -> Any:
        if self.cell is None:
            raise DseError(f"{self.describe()}: the sense error depends on each pair's own "
                           "resistances; bind the cell card first (model.with_cell("
                           "CellStats.from_model(cell_model)))")
        return self.cell

    def ber(self, **op: Any) -> np.ndarray:
        """Binary read error rate of the bound cell pair (cell and sense errors together)."""
        from dse.devices.pcsa_rates import confusion

        m = confusion(self, self._need_cell(), "binary", **op)
        return 0.5 * (m[..., 0, 1] + m[..., 1, 0])

    def sample_errors(self, n: int, rng: np.random.Generator, **op: Any) -> np.ndarray:
        """``n`` seeded binary reads per operating point: True where the read value is wrong."""
        from dse.devices.pcsa_rates import sample_reads

        stored, read = sample_reads(self, self._need_cell(), "binary", n, rng, **op)
        return stored != read
