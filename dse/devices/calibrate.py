"""The ``calibrate`` stage: fit a device family to a measurement file and write its card.

``relaxation`` files (``--family relaxation``): :mod:`dse.devices.fit_relaxation`.

Pulse families (``soft_bounds``, ``exp_step``, ``piecewise``):

1. **Mean trajectory** G(n) per direction by least squares (``scipy.optimize.least_squares``) on
   the family's own closed-form trajectory, every series with its own starting conductance: a
   fit of the trajectory, not a regression of ΔG on the measured G (read noise biases that one).
2. **Device-to-device**: when the file has several devices, each device gets its own step gains
   (and bounds, for soft bounds) with the shape fixed; the spread of those, minus their estimation
   variance, gives ``dw_dtod``, ``up_down_dtod`` (and ``g_max_dtod``, ``g_min_dtod``).
3. **Noise**: the residuals r = W + e are modelled as cumulative write noise W (AR(1): each pulse
   adds N(0, σ_w²) and keeps the fraction φ) plus independent read noise e ~ N(0, σ_r²). A
   Gaussian maximum-likelihood fit of this ARMA(1,1) (innovations through ``scipy.signal.lfilter``)
   separates them; the residual's lag-1 autocorrelation (reported) is what tells them apart. φ is
   divided by the mean dynamics' own restoring factor to give ``c2c_memory``.
4. Quality: R² of the fitted mean trajectory against the measured one smoothed over
   ``min(50, N/10)`` pulses, the residual σ, parameter standard errors (Jacobian covariance
   inflated by the residual's long-run variance), and the step σ of a simulation from the card.
5. Plausibility (:mod:`dse.devices.plausibility`): conductance bounds are searched only within
   ``bound_margin`` × the measured range beyond the data (and >= 0 in a physical unit); the card
   is refused (R² below ``min_r2``, a step of the wrong sign, noise above the signal, a negative
   physical conductance) or flagged in ``fit.warnings`` (a bound the data do not determine, a
   large standard error, an unmeasured direction). A single-direction file fits the measured
   direction; the other comes from ``base`` or is mirrored, and its parameters say so.

``weak_reset``: per-device hinge fits of ln(R/R0) (:func:`fit_weak_reset_devices`), then the D2D
distributions by maximum likelihood on the per-device values. Binary-cell families: binomial
maximum likelihood of the BER table over the family's ``BER_FIT`` parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dse.devices.analog import PulseDevice
from dse.devices.base import family_class
from dse.devices.bit_error import BitErrorModel
from dse.devices.fit_ber import calibrate_ber
from dse.devices.fit_pulses import calibrate_pulses
from dse.devices.fit_weak_reset import calibrate_weak_reset
from dse.devices.fitting import CalibrationResult, single_thread
from dse.devices.measurements import Measurements
from dse.devices.plausibility import FitLimits
from dse.devices.weak_reset import WeakReset
from dse.errors import DseError

__all__ = ["CalibrationResult", "FitLimits", "calibrate"]


def calibrate(data: Measurements, family: str, *, name: str | None = None,
              base: Mapping[str, Any] | None = None, seed: int = 0,
              limits: FitLimits | Mapping[str, Any] | None = None) -> CalibrationResult:
    """Fit ``family`` to ``data`` and return the calibrated card (+ curves for the figure).

    ``base``: an optional card whose parameter values (and provenance) are kept for parameters
    the measurements cannot determine (BER families; noise terms of ``weak_reset``; the
    unmeasured direction of a single-direction pulse file). ``limits``: the quality and
    plausibility thresholds (:class:`~dse.devices.plausibility.FitLimits` or its mapping); an
    implausible fit raises :class:`DseError`, a doubtful one is flagged in ``fit.warnings``.
    """
    if not isinstance(limits, FitLimits):
        limits = FitLimits.from_mapping(limits, data.path)
    if data.kind == "relaxation" or family == "relaxation":  # dse/devices/fit_relaxation.py
        from dse.devices.fit_relaxation import calibrate_relaxation

        if data.kind != family:
            raise DseError(f"relaxation files are fitted with --family relaxation, and only "
                           f"they (got a {data.kind} file and --family {family})",
                           source=data.path)
        return calibrate_relaxation(data, name or "relaxation-calibrated")
    cls = family_class(family, data.path)
    if base is not None and base.get("family") != family:
        raise DseError(f"base card family '{base.get('family')}' differs from --family {family}",
                       source=data.path)
    name = name or f"{family}-calibrated"
    fitter = next(f for kind, f in _FITTERS if issubclass(cls, kind))
    with single_thread():
        return fitter(data, cls, name, base, seed, limits)


_FITTERS: list[tuple[type, Callable[..., CalibrationResult]]] = [
    (WeakReset, calibrate_weak_reset),
    (PulseDevice, calibrate_pulses),
    (BitErrorModel, calibrate_ber),
]
