"""Target chips: chip cards, and the ``map``, ``inject`` and ``estimate`` stages.

* :mod:`dse.chip.card` — :class:`ChipCard` (frozen dataclass; change with ``chip.replace``);
  :mod:`dse.chip.card_parse` — :func:`chip_from_dict` (card files are read by the wiring,
  :func:`dse.pipeline.artifacts.load_chip`).
* :mod:`dse.chip.sensing` — sensing schemes (``pcsa``, ``adc``) with their parameters.
* :mod:`dse.chip.adc` — ADC energy/area models ``neurosim_sar`` and ``murmann_survey``.
* :mod:`dse.chip.mapping` — :func:`map_model` (a model or :class:`LayerSpec` s ->
  :class:`Mapping`).
* :mod:`dse.chip.inject` — :func:`inject` (Monte-Carlo fault maps, vectorised), :func:`summarize`.
* :mod:`dse.chip.ber` — operating points, :class:`ChipErrors` (device cards -> BER, write energy).
* :mod:`dse.chip.estimate` — :func:`estimate` (energy/area per layer and component), :func:`totals`.
* :mod:`dse.chip.latency` — :func:`latency` (per layer), :func:`throughput` (latency, inferences/s,
  TOPS, TOPS/W, TOPS/mm²), :func:`timing` / :func:`pcsa_timing` (:class:`Timing` of a chip).

Importing this package is cheap (no torch); the stage modules load on first use. The stage
functions whose names are also module names are imported from their modules:
``from dse.chip.inject import inject``, ``from dse.chip.estimate import estimate``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "ChipCard": "dse.chip.card", "ErrorSource": "dse.chip.card",
    "chip_from_dict": "dse.chip.card_parse",
    "ADC_MODELS": "dse.chip.adc",
    "ENCODINGS": "dse.chip.encoding",
    "SENSING": "dse.chip.sensing",
    "LayerSpec": "dse.chip.layer", "LayerMapping": "dse.chip.mapping",
    "Mapping": "dse.chip.mapping", "layer_specs": "dse.chip.mapping",
    "map_model": "dse.chip.mapping",
    "OperatingPoint": "dse.chip.ber", "ChipErrors": "dse.chip.ber",
    "combine_ber": "dse.chip.ber", "points_from_ber": "dse.chip.ber",
    "summarize": "dse.chip.inject", "StuckAt": "dse.chip.inject",
    "AnalogNoise": "dse.chip.inject", "perturbed_weights": "dse.chip.inject",
    "map_accuracies": "dse.chip.fault_eval",
    "totals": "dse.chip.estimate",
    "by_component": "dse.chip.estimate",
    "Timing": "dse.chip.latency", "timing": "dse.chip.latency",
    "pcsa_timing": "dse.chip.latency", "throughput": "dse.chip.latency",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'dse.chip' has no attribute {name!r}")
