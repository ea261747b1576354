"""Binary-cell error models: operating point → bit error rate.

* ``rram_1t1r`` / ``rram_2t2r``: log-normal LRS and HRS resistances whose LRS median and spread
  depend on the programming (compliance) current ``i_prog``. 1T1R: an error when a cell crosses
  the reference (the geometric mean of the LRS and HRS medians at that operating point); 2T2R: an
  error when the two devices' order flips, P(R_LRS > R_HRS), which is always the smaller of the two
  (√(σ_L² + σ_H²) ≤ σ_L + σ_H): why 2T2R needs no ECC (Bocquet IEDM 2018, Hirtzlin 2020 abstracts).
* ``pcsa``: a precharge sense amplifier near threshold: the sense fails when VDD is below a
  per-read minimum voltage V_th ~ N(v_fail, v_sigma) (a probit in VDD); a failed sense outputs a
  random bit, so BER = floor + (½ − floor)·Φ((v_fail − VDD)/v_sigma).
* ``stt_mram``: write error rate of an STT-MRAM cell. Thermally activated reversal for long
  pulses, rate 1/τ with τ = τ0·exp[Δ(1 − i)] (i = I/I_c0 < 1); precessional reversal for short
  pulses (i > 1), WER_prec = 1 − exp[−(π²Δ/4)·exp(−2(i − 1)·t/τ_D)] (initial angle θ0² ~
  Exp(1/Δ)). The two mechanisms act together: WER = exp(−t/τ)·WER_prec. Write energy I·V·t with
  V = I·R_mean.

Every model also samples its physical process (``sample_errors``) so tests can check that the
sampled error rate equals ``ber``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from scipy import special, stats

from dse.devices.base import register
from dse.devices.bit_error import BitErrorModel
from dse.devices.cell_relaxation import ResistanceLaw, cell_relaxation, check_time, order_flip
from dse.devices.domains import ensure_finite
from dse.devices.params import ParamSpec

_LRS = ("source: LRS resistance R0 ~ N(6988 ohm, 381.7 ohm) of the HfOx weak-RESET model, "
        "Majumdar et al. 2021 code (Majumdar et al., IEEE TED 2021; code "
        "Atreya95/Learning-with-memory-device-imperfections), taken as the LRS median at i_ref")
_NOTE_BER = ("assumption: the papers' BER-vs-programming curves are NOT FOUND "
             "(Hirtzlin et al., Front. Neurosci. 13:1383 (2020)); shape assumed")


_NOTE_PCSA = ("assumption: PCSA BER versus supply voltage is NOT FOUND (Laborieux et al., AICAS "
              "2020, arXiv 2005.01973, and arXiv 2007.14234); "
              "near-threshold failure assumed around 0.35 V at 130 nm")


class _Cell(BitErrorModel):
    """Shared checks of the cells: operating points in their physical domain (and the card's
    calibrated ``operating_range``) are checked by ``_op``; results must be finite."""

    def _finite(self, what: str, out: np.ndarray, op: dict[str, np.ndarray]) -> np.ndarray:
        return ensure_finite(self.describe(), what, out, op, self.source)


class _RramCell(_Cell):
    """Shared LRS/HRS statistics of the RRAM cells."""

    knobs: ClassVar[tuple[str, ...]] = ("i_prog",)
    optional_knobs: ClassVar[dict[str, str]] = {"t_prog": "t_prog", "time_s": "time_s"}
    PARAMS: ClassVar[dict[str, ParamSpec]] = {
        "r_lrs": ParamSpec("ohm", "median LRS resistance at i_ref", low=0.0, default=6988.0,
                           note=_LRS),
        "sigma_lrs": ParamSpec("1", "std of ln R_LRS at i_ref", low=0.0, default=0.0546,
                               note="source: relative LRS spread 381.7/6988 of the same code "
                               "(Majumdar et al., IEEE TED 2021; code "
                               "Atreya95/Learning-with-memory-device-imperfections)"),
        "i_ref": ParamSpec("A", "reference programming current", low=0.0, default=200e-6,
                           note="assumption: the compliance current of the LRS data is NOT "
                           "FOUND; 200 uA assumed"),
        "lrs_exponent": ParamSpec("1", "R_LRS ∝ (i_ref/i_prog)^p", default=1.0,
                                  note="assumption: filament conductance proportional to the "
                                  "programming current (R_LRS ∝ 1/I_prog); " + _NOTE_BER),
        "sigma_exponent": ParamSpec("1", "σ_LRS ∝ (i_ref/i_prog)^q", default=1.0,
                                    note="assumption: weaker programming broadens the LRS "
                                    "distribution in proportion; " + _NOTE_BER),
        "r_hrs": ParamSpec("ohm", "median HRS resistance", low=0.0, default=69880.0,
                           note="source: on/off ratio 10 of the 130 nm RRAM, DNN+NeuroSim V1.4 "
                           "manual Table VI, times r_lrs"),
        "sigma_hrs": ParamSpec("1", "std of ln R_HRS", low=0.0, default=0.35,
                               note="assumption: HRS spread NOT FOUND (Hirtzlin et al., Front. "
                                    "Neurosci. 13:1383 (2020)); "
                               "several times the LRS spread, as usual for HRS"),
        "v_prog": ParamSpec("V", "programming voltage (write energy)", low=0.0, default=2.0,
                            note="source: DNN+NeuroSim V1.4 Param.cpp writeVoltage = 2 V"),
        "t_prog": ParamSpec("s", "programming pulse width (default of the t_prog knob)",
                            low=0.0, default=50e-9,
                            note="source: CiMLoop rram_neurosim_default.cell.yaml set pulse "
                            "2 V / 50 ns (E = V^2 G t from the NeuroSim / CiMLoop defaults)"),
        "time_s": ParamSpec("s", "time after programming at which the cell is read (default "
                            "of the time_s knob; > 0 needs the card's relaxation: block)",
                            low=0.0, default=0.0,
                            note="assumption: read right after programming"),
    }
    BER_FIT: ClassVar[tuple[str, ...]] = ("r_hrs", "sigma_lrs", "sigma_exponent")
    DEVICES_PER_BIT: ClassVar[int] = 1

    def lrs(self, i_prog: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean of ln R_LRS, std of ln R_LRS) at programming current ``i_prog``."""
        v = self.values
        ratio = v["i_ref"] / np.asarray(i_prog, dtype=float)
        mu = math.log(v["r_lrs"]) + v["lrs_exponent"] * np.log(ratio)
        return mu, v["sigma_lrs"] * ratio ** v["sigma_exponent"]

    def hrs(self) -> tuple[float, float]:
        return math.log(self.values["r_hrs"]), float(self.values["sigma_hrs"])

    @property
    def relaxation(self) -> Any:
        """The card's relaxation model (dse/devices/cell_relaxation.py), or None."""
        if not hasattr(self, "_relaxation"):
            self._relaxation = cell_relaxation(self.card, self.source)
        return self._relaxation

    def laws(self, i_prog: float, time_s: float = 0.0) -> tuple[ResistanceLaw, ResistanceLaw]:
        """(LRS, HRS) resistance laws of one operating point, read ``time_s`` after
        programming."""
        check_time(self.describe(), self.relaxation, np.asarray(time_s))
        mu_l, s_l = self.lrs(np.asarray(i_prog))
        mu_h, s_h = self.hrs()
        return (ResistanceLaw(float(mu_l), float(s_l), self.relaxation, float(time_s)),
                ResistanceLaw(mu_h, s_h, self.relaxation, float(time_s)))

    def _relaxed(self, o: dict[str, np.ndarray], rate: Any) -> np.ndarray | None:
        """``rate(lrs_law, hrs_law)`` at every operating point when any reads after
        programming (None when none does: the closed forms at t = 0 apply)."""
        check_time(self.describe(), self.relaxation, o["time_s"])
        if not (o["time_s"] > 0).any():
            return None
        out = np.empty(o["i_prog"].shape)
        for idx in np.ndindex(out.shape):
            out[idx] = rate(*self.laws(float(o["i_prog"][idx]), float(o["time_s"][idx])))
        return out

    def _sample_relaxed(self, o: dict[str, np.ndarray], n: int, rng: np.random.Generator,
                        errors: Any) -> np.ndarray | None:
        """``errors(lrs_law, hrs_law, n)`` (bool, n draws) per operating point when any reads
        after programming, else None."""
        check_time(self.describe(), self.relaxation, o["time_s"])
        if not (o["time_s"] > 0).any():
            return None
        out = np.empty((*o["i_prog"].shape, n), dtype=bool)
        for idx in np.ndindex(o["i_prog"].shape):
            lrs, hrs = self.laws(float(o["i_prog"][idx]), float(o["time_s"][idx]))
            out[idx] = errors(lrs, hrs, n, rng)
        return out

    def write_energy(self, **op: Any) -> np.ndarray:
        """E = devices·V·I·t per bit write (2T2R programs both devices of the pair)."""
        o = self._op(op)
        return self._finite("write energy", self.DEVICES_PER_BIT * self.values["v_prog"]
                            * o["i_prog"] * o["t_prog"], o)


@register("rram_1t1r")
class Rram1T1R(_RramCell):
    """One device per bit, read against a reference at the geometric mean of the medians."""

    def ber(self, **op: Any) -> np.ndarray:
        o = self._op(op)
        relaxed = self._relaxed(o, lambda lrs, hrs: 0.5 * (
            lrs.survival(np.exp((lrs.mu + hrs.mu) / 2))
            + 1.0 - hrs.survival(np.exp((lrs.mu + hrs.mu) / 2))))
        if relaxed is not None:  # the reference stays where it was set, at programming
            return self._finite("BER", relaxed, o)
        mu_l, s_l = self.lrs(o["i_prog"])
        mu_h, s_h = self.hrs()
        ref = (mu_l + mu_h) / 2
        p_l = special.ndtr((mu_l - ref) / s_l)  # LRS read above the reference
        p_h = special.ndtr((ref - mu_h) / s_h)  # HRS read below the reference
        return self._finite("BER", 0.5 * (p_l + p_h), o)

    def sample_errors(self, n: int, rng: np.random.Generator, **op: Any) -> np.ndarray:
        o = self._op(op)

        def errors(lrs: ResistanceLaw, hrs: ResistanceLaw, n: int,
                   rng: np.random.Generator) -> np.ndarray:
            ref = (lrs.mu + hrs.mu) / 2
            bit = rng.random(n) < 0.5
            return np.where(bit, np.log(lrs.sample((n,), rng)) > ref,
                            np.log(hrs.sample((n,), rng)) < ref)

        relaxed = self._sample_relaxed(o, n, rng, errors)
        if relaxed is not None:
            return relaxed
        mu_l, s_l = self.lrs(o["i_prog"])
        mu_h, s_h = self.hrs()
        ref = ((mu_l + mu_h) / 2)[..., None]
        bit = rng.random((*mu_l.shape, n)) < 0.5  # stored bit: True = LRS
        ln_r = np.where(bit, mu_l[..., None] + s_l[..., None] * rng.standard_normal(bit.shape),
                        mu_h + s_h * rng.standard_normal(bit.shape))
        return (ln_r < ref) != bit


@register("rram_2t2r")
class Rram2T2R(_RramCell):
    """Two complementary devices per bit; the sense amplifier compares them."""

    DEVICES_PER_BIT: ClassVar[int] = 2

    def ber(self, **op: Any) -> np.ndarray:
        o = self._op(op)
        relaxed = self._relaxed(o, order_flip)
        if relaxed is not None:
            return self._finite("BER", relaxed, o)
        mu_l, s_l = self.lrs(o["i_prog"])
        mu_h, s_h = self.hrs()
        return self._finite("BER", special.ndtr((mu_l - mu_h) / np.sqrt(s_l**2 + s_h**2)), o)

    def sample_errors(self, n: int, rng: np.random.Generator, **op: Any) -> np.ndarray:
        o = self._op(op)
        relaxed = self._sample_relaxed(
            o, n, rng, lambda lrs, hrs, n, rng: lrs.sample((n,), rng) > hrs.sample((n,), rng))
        if relaxed is not None:
            return relaxed
        mu_l, s_l = self.lrs(o["i_prog"])
        mu_h, s_h = self.hrs()
        shape = (*mu_l.shape, n)
        ln_l = mu_l[..., None] + s_l[..., None] * rng.standard_normal(shape)
        ln_h = mu_h + s_h * rng.standard_normal(shape)
        return ln_l > ln_h


@register("pcsa")
class Pcsa(_Cell):
    """Precharge sense amplifier BER versus supply voltage (probit in VDD)."""

    knobs: ClassVar[tuple[str, ...]] = ("vdd",)
    PARAMS: ClassVar[dict[str, ParamSpec]] = {
        "v_fail": ParamSpec("V", "median minimum operating voltage of a sense", low=0.0,
                            default=0.35, note=_NOTE_PCSA),
        "v_sigma": ParamSpec("V", "spread of that voltage (read to read, cell to cell)",
                             low=0.0, default=0.04, note=_NOTE_PCSA),
        "ber_floor": ParamSpec("1", "error rate of a successful sense (the cell's own errors)",
                               low=0.0, high=0.5, default=0.0,
                               note="assumption: cell errors are modelled by the rram cards"),
    }
    BER_FIT: ClassVar[tuple[str, ...]] = ("v_fail", "v_sigma", "ber_floor")

    def _p_fail(self, vdd: np.ndarray) -> np.ndarray:
        v = self.values
        return special.ndtr((v["v_fail"] - vdd) / v["v_sigma"])

    def ber(self, **op: Any) -> np.ndarray:
        o = self._op(op)
        floor = self.values["ber_floor"]
        return self._finite("BER", floor + (0.5 - floor) * self._p_fail(o["vdd"]), o)

    def sample_errors(self, n: int, rng: np.random.Generator, **op: Any) -> np.ndarray:
        o = self._op(op)
        v = self.values
        shape = (*o["vdd"].shape, n)
        v_th = v["v_fail"] + v["v_sigma"] * rng.standard_normal(shape)
        failed = o["vdd"][..., None] < v_th
        coin = rng.random(shape) < 0.5
        cell = rng.random(shape) < v["ber_floor"]
        return np.where(failed, coin, cell)


@register("stt_mram")
class SttMram(_Cell):
    """STT-MRAM write error rate versus write current and pulse width (two regimes)."""

    knobs: ClassVar[tuple[str, ...]] = ("i_write", "t_write")
    PARAMS: ClassVar[dict[str, ParamSpec]] = {
        "delta": ParamSpec("1", "thermal stability factor Δ = E_b/kT", low=0.0, default=60.0,
                           note="assumption: the usual 10-year-retention value; "
                           "ST-MRAM write-error curves of the papers are NOT FOUND"),
        "tau0": ParamSpec("s", "attempt time of thermal activation", low=0.0, default=1e-9,
                          note="assumption: the usual 1 ns attempt time"),
        "i_c0": ParamSpec("A", "critical switching current", low=0.0, default=100e-6,
                          note="assumption: I_c0 NOT FOUND for the papers' cells"),
        "tau_d": ParamSpec("s", "precessional time constant τ_D = 1/(α·ω0)", low=0.0,
                           default=1e-9, note="assumption: chosen so that WER reaches 1e-6 near "
                           "2·I_c0 and 10 ns"),
        "r_p": ParamSpec("ohm", "parallel-state resistance", low=0.0, default=1400.0,
                         note="source: DNN+NeuroSim V1.4 manual Table VI, 22 nm STT-MRAM "
                         "Ron = 1.4 kOhm"),
        "r_ap": ParamSpec("ohm", "antiparallel-state resistance", low=0.0, default=3920.0,
                          note="source: same table, on/off ratio 2.8 times r_p"),
    }
    BER_FIT: ClassVar[tuple[str, ...]] = ("delta", "i_c0", "tau_d")

    def _parts(self, i_write: np.ndarray, t_write: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        v = self.values
        i = np.asarray(i_write, dtype=float) / v["i_c0"]
        tau = v["tau0"] * np.exp(v["delta"] * np.maximum(1.0 - i, 0.0))
        log_not_thermal = -np.asarray(t_write, dtype=float) / tau
        x = (math.pi**2 * v["delta"] / 4) * np.exp(-2.0 * np.maximum(i - 1.0, 0.0) * t_write
                                                     / v["tau_d"])
        return log_not_thermal, x

    def ber(self, **op: Any) -> np.ndarray:
        o = self._op(op)
        log_th, x = self._parts(o["i_write"], o["t_write"])
        return self._finite("BER", np.exp(log_th) * -np.expm1(-x), o)

    def write_energy(self, **op: Any) -> np.ndarray:
        """E = I·V·t with V = I·(R_P + R_AP)/2."""
        o = self._op(op)
        r = (self.values["r_p"] + self.values["r_ap"]) / 2
        return self._finite("write energy", o["i_write"] ** 2 * r * o["t_write"], o)

    def sample_errors(self, n: int, rng: np.random.Generator, **op: Any) -> np.ndarray:
        o = self._op(op)
        v = self.values
        log_th, _ = self._parts(o["i_write"], o["t_write"])
        shape = (*o["i_write"].shape, n)
        i = (o["i_write"] / v["i_c0"])[..., None]
        t = o["t_write"][..., None]
        # thermal switching time ~ Exp(τ): no switch within t with probability exp(-t/τ)
        no_thermal = rng.exponential(1.0, shape) > -log_th[..., None]
        # precessional: θ0² ~ Exp(mean 1/Δ); no switch if θ0² < (π²/4)·exp(-2(i-1)t/τ_D)
        theta2 = rng.exponential(1.0 / v["delta"], shape)
        no_prec = theta2 < (math.pi**2 / 4) * np.exp(-2.0 * np.maximum(i - 1.0, 0.0) * t
                                                     / v["tau_d"])
        return no_thermal & no_prec


def binomial_ci(errors: np.ndarray, trials: np.ndarray,
                level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Clopper-Pearson interval of an error rate (for figures and tests)."""
    a = (1 - level) / 2
    k = np.asarray(errors, dtype=float)
    n = np.asarray(trials, dtype=float)
    lo = np.where(k > 0, stats.beta.ppf(a, k, n - k + 1), 0.0)
    hi = np.where(k < n, stats.beta.ppf(1 - a, k + 1, n - k), 1.0)
    return lo, hi
