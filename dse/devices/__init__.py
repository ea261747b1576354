"""Device models and the ``calibrate`` stage.

* Analog pulse families (``DeviceModel``): ``soft_bounds``, ``exp_step``, ``piecewise``
  (:mod:`dse.devices.analog`) and ``weak_reset`` (:mod:`dse.devices.weak_reset`).
* Binary-cell error models (``BitErrorModel``): ``rram_1t1r``, ``rram_2t2r``, ``pcsa``,
  ``stt_mram`` (:mod:`dse.devices.binary`); ``pcsa_physical``, a sense amplifier from its
  transistors (:mod:`dse.devices.pcsa_physical`, rates per stored value in
  :mod:`dse.devices.pcsa_rates`).
* Cards: :func:`load_card` (read + validate), :func:`from_card` (model instance).
* Measurements and fitting: :func:`read_measurements`, :func:`calibrate`,
  :func:`synthesize` and :func:`plot_fit`.
"""

from dse.devices import analog, binary, pcsa_physical, weak_reset  # noqa: F401  (register)
from dse.devices.base import (
    REGISTRY,
    BitErrorModel,
    DeviceModel,
    TruncDist,
    expand_operating_points,
    from_card,
    load_card,
    register,
    validate_card,
)
from dse.devices.calibrate import CalibrationResult, calibrate
from dse.devices.measurements import Measurements, read_measurements
from dse.devices.synthetic import synthesize

__all__ = [
    "REGISTRY",
    "BitErrorModel",
    "CalibrationResult",
    "DeviceModel",
    "Measurements",
    "TruncDist",
    "calibrate",
    "expand_operating_points",
    "from_card",
    "load_card",
    "plot_fit",
    "read_measurements",
    "register",
    "synthesize",
    "validate_card",
]


def plot_fit(result, path):
    """Write the calibration figure (see :func:`dse.devices.figure.plot_fit`)."""
    from dse.devices.figure import plot_fit as _plot

    return _plot(result, path)
