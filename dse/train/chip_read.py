"""Training through a chip's read-out (``mixed_precision.chip``): the trainer's side.

The pipeline builds the chip's per-layer training read-outs (:mod:`dse.chip.train_readout`;
``dse.train`` does not import ``dse.chip``) and hands them to the trainer
(:meth:`dse.train.loop.Trainer.use_readout`). The trainer attaches each to its layer
(``layer.readout``, with ``layer.level_weight`` = s·(g_max − g_min), the weight of a pair at full
swing) and before every training forward pass gives it the layer's device pairs as cell levels
(``layer.cell_levels``, ``(*weight.shape, 2)``): G/(g_max − g_min) of the noise-free
conductances (the floor included: the cells' own currents), with the pair's read noise of this
pass (apparent − clean weight) on the G⁺ cell, so the ideal product of the level difference
equals the weights the training uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from dse.errors import DseError

ATTRIBUTES = ("readout", "cell_levels", "level_weight")


def attach(pairs: Sequence[Any], readouts: Mapping[str, Any], span: float) -> None:
    """Set every pair layer's ``readout`` and ``level_weight``; DseError naming a layer the
    read-outs do not cover."""
    missing = [p.name for p in pairs if p.name not in readouts]
    if missing:
        raise DseError(f"the chip read-out has no layer {missing[0]!r} of the model")
    for p in pairs:
        p.layer.readout = readouts[p.name]
        p.layer.level_weight = float(p.scale) * span


def set_levels(pairs: Sequence[Any], dev: Any, span: float) -> None:
    """The cell levels of every pair layer for this forward pass (module docstring)."""
    for p in pairs:
        lv = dev.read(p.state) / span
        plus = lv[: p.n] + (p.apparent - p.clean) / (p.scale * span)
        p.layer.cell_levels = torch.stack([plus, lv[p.n:]], -1).view(*p.shape, 2)


def detach(pairs: Sequence[Any]) -> None:
    """Remove what :func:`attach` and :func:`set_levels` set (nothing of it is saved)."""
    for p in pairs:
        for name in ATTRIBUTES:
            if name in vars(p.layer):
                delattr(p.layer, name)
