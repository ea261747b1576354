"""The inject stage of a task stream whose tasks share their weights (e.g. metaplastic training
with a BatchNorm per task): every task is evaluated on the same fault maps, so each pass of maps
is drawn once and evaluated on every task in turn.

The result is exactly that of :func:`dse.chip.inject.inject` run once per task with the generator
restarted from the same state (what :func:`dse.pipeline.recipes.inject_chip` did before): the
same draws in the same order, the same weights and the same evaluation of each task. It applies
when the perturbed weights depend on nothing a task changes: the mapped layers' quantized
weights are equal in every task state, no ADC read-out (calibrated per task) and no stochastic
input encoder (reseeded from the generator); :func:`shareable` checks this.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from dse.chip.ber import OperatingPoint
from dse.chip.fault_eval import map_accuracies, split_first_layer
from dse.chip.inject import (
    AnalogNoise,
    StuckAt,
    check_layers,
    fault_passes,
    prepare,
    result_table,
)
from dse.chip.mapping import Mapping
from dse.errors import DseError
from dse.nn import evaluate

log = logging.getLogger(__name__)


@dataclass
class TaskImages:
    """One task of a stream: ``load()`` puts its state into the model; its test images."""

    load: Callable[[], None]
    x: torch.Tensor
    y: torch.Tensor


def shareable(model: Any, mapping: Mapping, loads: Sequence[Callable[[], None]]) -> bool:
    """Whether every task draws the same fault maps from the same generator state: no ADC
    read-out, no reseeded input encoder and the same quantized weights in every task state
    (each ``load`` is called; the last one stays loaded)."""
    if mapping.adc_bits is not None or hasattr(model.encoder, "reseed") or not loads:
        return False
    first = None
    with torch.no_grad():
        for load in loads:
            load()
            ws = [ly.quantized_weight().detach().clone() for _, ly in check_layers(model,
                                                                                    mapping)]
            if first is None:
                first = ws
            elif not all(torch.equal(a, b) for a, b in zip(first, ws, strict=True)):
                return False
    return True


def inject_tasks(model: Any, mapping: Mapping, tasks: Sequence[TaskImages],
                 points: Sequence[float | OperatingPoint], repeats: int,
                 generator: torch.Generator, *, batch: int = 25,
                 stuck_at: StuckAt | None = None, analog: AnalogNoise | None = None,
                 progress: bool = False, max_elements: float = 8e6) -> list[pd.DataFrame]:
    """One :func:`dse.chip.inject.inject` table per task, all on the same fault maps (drawn
    once from ``generator``); only for tasks :func:`shareable` accepts. The task loaded last
    stays loaded."""
    if mapping.adc_bits is not None or hasattr(model.encoder, "reseed"):
        raise DseError("inject_tasks: an ADC read-out or a reseeded encoder is per task; "
                       "use inject() per task")
    pts, stuck, use_analog = prepare(model, mapping, points, repeats, batch, stuck_at, analog)
    clean = []
    for t in tasks:
        t.load()
        clean.append(evaluate(model, t.x, t.y))
    maps = [(i, r) for i in range(len(pts)) for r in range(repeats)]
    accs = [np.full(len(maps), c) for c in clean]
    for chunk, weights, changed in fault_passes(model, mapping, pts, maps, generator, batch,
                                                stuck, analog if use_analog else None, False,
                                                progress, tasks[0].x.device):
        with torch.no_grad():  # the first layer's shared product, built once for all tasks
            split = split_first_layer(model, weights, changed)
        for t, acc in zip(tasks, accs, strict=True):
            t.load()
            acc[chunk] = map_accuracies(model, weights, t.x, t.y, max_elements, changed,
                                        split).cpu().numpy()
    noise_label = analog.label if use_analog and analog is not None else None
    tables = []
    for c, acc in zip(clean, accs, strict=True):
        table = result_table(pts, maps, acc, stuck, noise_label, None, False)
        table.attrs["clean_accuracy"] = c
        tables.append(table)
    return tables
