"""Global drift compensation: one reference read per layer (aihwkit ``GlobalDriftCompensation``).

aihwkit (``inference/compensation/drift.py``) reads each analog tile once right after
programming with an all-ones input and keeps ``baseline = Σ|y₀|``; at inference time t it reads
the same reference again and scales the tile's outputs by ``α = baseline / Σ|y_t|``. A pure
global drift, every conductance multiplied by the same factor κ(t), is undone exactly (α = 1/κ);
a drift that differs from cell to cell is undone on average only.

In dse a layer's weights are read as the differential conductances (up to the layer's fixed
scale), so with the all-ones input y = W·1, the row sums of the weight matrix. The functions
take weights with M leading map/time dimensions and reduce over the rest; the reference reads
may carry read noise (pass weights read with it): the compensation factor is then drawn once per
layer and map, as on the chip.
"""

from __future__ import annotations

import torch

from dse.errors import DseError

Tensor = torch.Tensor


def reference_read(w: Tensor, lead: int = 1) -> Tensor:
    """Σ|W·1| per map: ``w`` (*M, out, in...) with ``lead`` leading dimensions -> (*M,)."""
    if w.dim() < lead + 2:
        raise DseError(f"drift compensation: weights of shape {tuple(w.shape)} need {lead} map "
                       "dimension(s) plus (out, in...)")
    rows = w.flatten(lead + 1).sum(-1)  # (*M, out): the all-ones input's outputs
    return rows.abs().sum(-1)


def global_drift_factor(w_programmed: Tensor, w_now: Tensor, lead: int = 1) -> Tensor:
    """α = Σ|W₀·1| / Σ|W_t·1| per map (shape (*M,)), W₀ read right after programming."""
    base = reference_read(w_programmed, lead)
    now = reference_read(w_now, lead)
    tiny = torch.finfo(now.dtype).tiny
    return base / now.clamp(min=tiny)


def compensate(w_programmed: Tensor, w_now: Tensor, lead: int = 1) -> Tensor:
    """``w_now`` scaled by its layer's global drift factor (the output scaling applied to the
    weights: the same products)."""
    alpha = global_drift_factor(w_programmed, w_now, lead)
    return w_now * alpha.reshape(*alpha.shape, *([1] * (w_now.dim() - lead)))
