"""Device models and the ``calibrate`` stage.

* Analog pulse families (``DeviceModel``): ``soft_bounds``, ``exp_step``, ``piecewise``
  (:mod:`dse.devices.pulse_families`, their base :mod:`dse.devices.analog`) and ``weak_reset``
  (:mod:`dse.devices.weak_reset`).
* Binary-cell error models (``BitErrorModel``): ``rram_1t1r``, ``rram_2t2r``, ``pcsa``,
  ``stt_mram`` (:mod:`dse.devices.binary`); ``pcsa_physical``, a sense amplifier from its
  transistors (:mod:`dse.devices.pcsa_physical`, rates per stored value in
  :mod:`dse.devices.pcsa_rates`).
* Cards: :func:`validate_card` (check a parsed card), :func:`from_card` (model instance); card
  files are read by the wiring (:func:`dse.pipeline.artifacts.load_card`).
* Measurements and fitting: :func:`parse_measurements` (files are read by the wiring,
  :func:`dse.pipeline.artifacts.read_measurements`), :func:`calibrate`,
  :func:`synthesize` and :func:`fit_figure`; :func:`pair_measurements` pairs a SET file with a
  RESET file (formats: ``docs/measurements.md``); :class:`FitLimits` are the plausibility
  thresholds of a fit.
"""

from dse.devices import (  # noqa: F401  (register the families)
    binary,
    pcsa_physical,
    pulse_families,
    weak_reset,
)
from dse.devices.base import REGISTRY, DeviceModel, register
from dse.devices.bit_error import BitErrorModel, expand_operating_points
from dse.devices.calibrate import CalibrationResult, FitLimits, calibrate
from dse.devices.cards import from_card, validate_card
from dse.devices.measurements import Measurements, pair_measurements, parse_measurements
from dse.devices.params import TruncDist
from dse.devices.synthetic import synthesize

__all__ = [
    "REGISTRY",
    "BitErrorModel",
    "CalibrationResult",
    "DeviceModel",
    "FitLimits",
    "Measurements",
    "TruncDist",
    "calibrate",
    "expand_operating_points",
    "fit_figure",
    "from_card",
    "pair_measurements",
    "parse_measurements",
    "register",
    "synthesize",
    "validate_card",
]


def fit_figure(result):
    """The calibration figure (see :func:`dse.devices.figure.fit_figure`)."""
    from dse.devices.figure import fit_figure as _figure

    return _figure(result)
