"""Dataflow of a mapped network: layer pipelining and weight duplication (chip card
``dataflow:``; issue 14).

``dataflow.schedule``
    ``sequential`` (default): the layers of one inference run one after another; a new image
    starts when the last layer is done, so inferences/s = 1 / Σ layer latencies.
    ``pipelined``: every layer has its own arrays (weight-stationary), so layer l works on image
    n while layer l+1 works on image n−1 (DNN+NeuroSim ``Param.cpp`` ``pipeline = true``); the
    slowest layer sets the cycle: inferences/s = 1 / max layer latency. The latency of one
    image stays the sum.

``dataflow.speed_up`` (S, default 1: no duplication)
    DNN+NeuroSim's ``speedUpDegree`` (``Chip.cpp`` ``ChipDesignInitialize``): the arrays of the
    layers with large feature maps are replicated, each copy computing a share of the output
    positions, so those layers stop dominating the pipeline cycle. NeuroSim's rule, with a
    convolution's feature-map side taken as √(output positions) (equal to its input side for
    the stride-1, same-padded layers NeuroSim's networks use): with the largest side s_max and
    the smallest convolutional side s_min, S is capped at ⌊s_max / s_min⌋ (no idle period
    otherwise), the bound side is b = ⌈s_max / S⌉ and layer l gets d_l = ⌈(s_l / b)²⌉ copies
    (at least 1, at most its positions). A layer with d copies takes ⌈P / d⌉ positions' time
    and d × its tiles of area; its energy is unchanged (the same operations on more arrays).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

SCHEDULES = ("sequential", "pipelined")


def duplication(layers: Sequence[Any], chip: Any) -> dict[str, int]:
    """Copies of each layer's arrays ({name: d_l}; all 1 when ``chip.speed_up`` is 1).

    ``layers``: anything with ``name``, ``kind`` and ``positions`` (LayerSpec, LayerMapping)."""
    speed_up = int(getattr(chip, "speed_up", 1) or 1)
    if speed_up <= 1 or not layers:
        return {lm.name: 1 for lm in layers}
    sides = {lm.name: math.sqrt(lm.positions) for lm in layers}
    conv = [sides[lm.name] for lm in layers if lm.kind == "conv"] or list(sides.values())
    s_max, s_min = max(sides.values()), min(conv)
    s = max(1, min(speed_up, math.floor(s_max / s_min + 1e-9)))
    bound = math.ceil(s_max / s - 1e-9)
    return {lm.name: max(1, min(lm.positions, math.ceil((sides[lm.name] / bound) ** 2 - 1e-9)))
            for lm in layers}


def cycle_ns(layer_latency_ns: Sequence[float], schedule: str) -> float:
    """Time between two images (ns): the sum of the layer latencies, or their maximum when the
    layers are pipelined."""
    return float(max(layer_latency_ns) if schedule == "pipelined" else sum(layer_latency_ns))
