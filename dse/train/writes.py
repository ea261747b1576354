"""Writes per device during training: every device's count, its histogram and maximum.

The trainers tally pulses per layer and direction (``pulses.csv``); endurance needs them per
device. :func:`recording_writes` counts, for the run(s) trained inside it, how many times each
device was programmed:

* binary/ternary weights (``standard``, ``metaplastic``, error-aware training): each change of a
  quantized weight is one write of its cell (a 2T2R pair or a differential MTJ pair: both
  devices are programmed, so each device of the pair sees the count of its weight). The counts
  come from the same quantized weights as the trainer's level-change tally, so they sum to the
  ``pulses.csv`` total;
* ``weak_reset_bnn`` (eager kernels): the weak-RESET pulses of each device (BL and BLb), from the
  signed pulse-count tensor the trainer tallies (one pulse = one write);
* ``mixed_precision`` (eager kernels): every pulse of each device of a pair (G⁺ = devices
  [0, N), G⁻ = [N, 2N)) and each refresh RESET, added sparsely at the pulsed devices.

Layers whose trainer tallies only totals (``kernels: compiled`` of both device trainers, which
sum their pulses inside the kernels) are left out of the per-device counts:
:meth:`WriteTally.summary` lists what was counted, and the report says which runs have no
per-device record.

How it hooks in: the trainers' base class (:class:`dse.train.loop.Trainer`) sends the
per-element counts of its level-change and pulse tallies to the tally of the current
``recording_writes`` block (:func:`current_tally`, a :class:`contextvars.ContextVar`, so threads
training at once keep their own); outside a block nothing is counted.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
import torch

HISTOGRAM_COLUMNS = ["layer", "writes", "devices"]
_CURRENT: contextvars.ContextVar[WriteTally | None] = contextvars.ContextVar("dse_write_tally",
                                                                            default=None)


class WriteTally:
    """Per layer, the count of writes per device (flattened device order).

    The counts stay on the training device until read (:attr:`counts`, int64 on the CPU). A
    ±1 layer's flips are accumulated as ``Σ q·q_prev`` by one fused ``addcmul_`` per step
    (flips = (steps − Σ)/2, exact in float32 up to 2^24 steps): comparisons are slow on
    this CPU build (see ``Trainer._tally_levels``)."""

    def __init__(self) -> None:
        self._sums: dict[str, torch.Tensor] = {}  # generic counts (float64)
        self._dots: dict[str, tuple[torch.Tensor, list[int]]] = {}  # ±1 layers: Σ q·q_prev
        self.kind: dict[str, str] = {}  # layer -> "level changes" | "pulses"

    def add(self, layer: str, counts: torch.Tensor, kind: str) -> None:
        """Add a per-device count tensor (any shape, flattened)."""
        c = counts.detach().reshape(-1)
        if layer not in self._sums:
            self._sums[layer] = torch.zeros(c.numel(), dtype=torch.float64, device=c.device)
            self.kind.setdefault(layer, kind)
        self._sums[layer].add_(c)

    def add_at(self, layer: str, size: int, idx: torch.Tensor, counts: torch.Tensor) -> None:
        """Add ``counts`` to devices ``idx`` of a layer of ``size`` devices (sparse updates)."""
        if layer not in self._sums:
            self._sums[layer] = torch.zeros(size, dtype=torch.float64, device=counts.device)
            self.kind.setdefault(layer, "pulses")
        self._sums[layer].index_add_(0, idx, counts.detach().to(torch.float64))

    def add_flips(self, layer: str, q: torch.Tensor, prev: torch.Tensor) -> None:
        """Add the sign flips between two ±1 weight tensors (one write per flipped weight)."""
        if layer not in self._dots:
            self._dots[layer] = (torch.zeros(q.numel(), dtype=q.dtype, device=q.device), [0])
            self.kind.setdefault(layer, "level changes")
        dots, steps = self._dots[layer]
        dots.addcmul_(q.reshape(-1), prev.reshape(-1))
        steps[0] += 1

    @property
    def counts(self) -> dict[str, torch.Tensor]:
        """Writes per device of every layer (int64, CPU)."""
        out: dict[str, torch.Tensor] = {}
        for layer in self.kind:
            total = torch.zeros(0, dtype=torch.float64)
            if layer in self._dots:
                dots, steps = self._dots[layer]
                total = (steps[0] - dots.double().cpu()) / 2
            if layer in self._sums:
                s = self._sums[layer].cpu()
                total = s if total.numel() == 0 else total + s
            out[layer] = total.round().to(torch.int64)
        return out

    def histogram(self) -> pd.DataFrame:
        """``layer, writes, devices``: how many devices of each layer were written k times."""
        rows = []
        for layer, c in self.counts.items():
            values, n = torch.unique(c, return_counts=True)
            rows += [{"layer": layer, "writes": int(v), "devices": int(k)}
                     for v, k in zip(values.tolist(), n.tolist(), strict=True)]
        return pd.DataFrame(rows, columns=HISTOGRAM_COLUMNS)

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per layer: devices, total, maximum, mean and 99th percentile of the writes."""
        out = {}
        for layer, c in self.counts.items():
            f = c.double()
            out[layer] = {"kind": self.kind[layer], "devices": int(c.numel()),
                          "total": int(c.sum()), "max": int(c.max()) if c.numel() else 0,
                          "mean": float(f.mean()) if c.numel() else 0.0,
                          "p99": float(torch.quantile(f, 0.99)) if 0 < c.numel() < 2**24
                          else float("nan")}
        return out


def histogram_summary(hist: pd.DataFrame) -> pd.DataFrame:
    """Per layer and overall (``(all)``): devices, total, max and mean writes of a histogram."""
    if hist.empty:
        return pd.DataFrame(columns=["layer", "devices", "total", "max", "mean"])
    h = pd.concat([hist, hist.assign(layer="(all)")], ignore_index=True)
    h["product"] = h["writes"] * h["devices"]
    g = h.groupby("layer", sort=False)
    out = pd.DataFrame({"devices": g["devices"].sum(), "total": g["product"].sum(),
                        "max": g["writes"].max()})
    out["mean"] = out["total"] / out["devices"]
    return out.reset_index()


def current_tally() -> WriteTally | None:
    """The tally of the innermost :func:`recording_writes` block of this context (or None)."""
    return _CURRENT.get()


@contextmanager
def recording_writes() -> Iterator[WriteTally]:
    """Count the writes per device of every training run inside the block."""
    tally = WriteTally()
    token = _CURRENT.set(tally)
    try:
        yield tally
    finally:
        _CURRENT.reset(token)


def add_level_changes(tally: WriteTally, name: str, q: torch.Tensor, prev: torch.Tensor,
                      binary: bool) -> None:
    """One write per changed quantized weight (sign flips of ±1 layers, ternary level moves)."""
    if binary:
        tally.add_flips(name, q, prev)
    else:  # ternary levels: |Δ| ∈ {0, 1, 2}, one write per change
        tally.add(name, (q - prev).abs_().clamp_(max=1), "level changes")
