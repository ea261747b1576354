"""The flat bank's transfer as one fused kernel per step (``step: flat`` with ``kernels:
compiled``, on the CPU).

:class:`dse.train.mp_flat.FlatBank` finds the pairs with |χ| ≥ ε of *every* layer (NumPy; a host
read is free on the CPU) and then calls :func:`flat_transfer` once: the layer of each pair (a
searchsorted over the layer offsets), its ε, scale and read amplitude (rows of two small tables),
n = trunc(χ/ε), the pulsed devices' gather, the family's pulse update
(:meth:`~dse.devices.analog.PulseDevice.pulse_values`, write noise from the in-kernel generator of
:mod:`dse.devices.kernels`), the clean and apparent weights, the per-layer pulse tallies and the
refresh test, in one ``torch.compile`` graph. Its fixed cost is one Dynamo call (~0.1 ms here)
instead of ~45 eager ops (3–8 µs each) plus their passes over the pulsed pairs. The refresh
rewrite of the (few) due pairs stays eager (:meth:`FlatBank.rewrite`).

The χ remainders and the conductances come back to the caller, which scatters them (a scatter
into a tensor the same kernel gathers from makes Inductor copy the whole tensor first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from dse.devices import kernels
from dse.train.mp_kernels import gather_state, push_pull_pulses

Tensor = torch.Tensor


@dataclass(frozen=True)
class FlatFlags:
    """Constants of the kernel (traced as constants: one graph per combination)."""

    push_pull: bool
    refresh: bool
    read_update: bool
    c2c: bool
    g_up: float
    g_lo: float


def flat_transfer(dev: Any, f: FlatFlags, chi: Tensor, x: Tensor, wn: Tensor,
                  st: dict[str, Tensor], clean: Tensor, apparent: Tensor, tally: Tensor,
                  idx: Tensor, bounds: Tensor, ftab: Tensor, itab: Tensor,
                  keys: Tensor) -> tuple[Tensor, ...]:
    """Pairs ``idx`` (ascending, of every layer): their pulses, weights, tallies and refresh
    test; returns ``(χ remainders, due mask, device indices, x_new, wn_new)``.

    ``ftab`` (layers × 3): ε, scale, √2·σ_read·scale; ``itab`` (layers × 2): the layer's
    first pair and its size (G⁺ of pair i of a layer at offset o is device i + o, its G⁻
    i + o + size); ``bounds``: the first pair of every layer but the first. Pairs in ``idx``
    with |χ| < ε (a padding entry) keep everything exactly."""
    lid = torch.searchsorted(bounds, idx, right=True)
    fr, ir = ftab[lid], itab[lid]
    eps, scale, amp = fr[:, 0], fr[:, 1], fr[:, 2]
    c = chi[idx]
    n = torch.trunc(c / eps)
    pulsed = n != 0
    counter = torch.arange(idx.shape[0], dtype=torch.int32, device=idx.device)
    plus = idx + ir[:, 0]
    if f.push_pull:
        dev_idx, x_new, wn_new, ga, gb = push_pull_pulses(dev, f.c2c, x, wn, st, plus,
                                                          plus + ir[:, 1], n, keys, counter)
        diff = ga - gb
        up = down = n.abs()
    else:  # potentiation only: G⁺ for n > 0, G⁻ for n < 0
        neg = (n < 0).to(idx.dtype)
        a = plus + ir[:, 1] * neg
        gb = x[plus + ir[:, 1] * (1 - neg)]
        wa = wn[a] if wn.dim() else wn
        up = n.abs()
        ga, wa = dev.pulse_values(x[a], wa, up, gather_state(st, a), keys[0:3], counter, f.c2c)
        dev_idx, x_new, wn_new = a, ga, wa
        diff = torch.sign(n) * (ga - gb)
        down = torch.zeros_like(up)
    w = torch.where(pulsed, diff * scale, clean[idx])
    clean.index_put_((idx,), w)
    if f.read_update:
        ap = w + amp * kernels.normal(keys[6:9], counter, w.dtype)
        apparent.index_put_((idx,), torch.where(pulsed, ap, apparent[idx]))
    hot = (lid[:, None] == torch.arange(tally.shape[0], device=idx.device)).to(torch.float64)
    tally.add_(torch.stack([(hot * up.to(torch.float64)[:, None]).sum(0),
                            (hot * down.to(torch.float64)[:, None]).sum(0)], 1))
    if f.refresh:
        due = (torch.minimum(ga, gb) > f.g_lo) & (torch.maximum(ga, gb) > f.g_up) & pulsed
    else:
        due = torch.zeros_like(pulsed)
    return c - n * eps, due, dev_idx, x_new, wn_new


def compiled_transfer(dev: Any, flags: FlatFlags) -> Any:
    """The compiled :func:`flat_transfer` of a device model and flags (compiled on first use,
    cached on disk by :func:`dse.devices.kernels.compile_kernel`)."""
    from functools import partial

    return kernels.compile_kernel(partial(flat_transfer, dev, flags),
                                  f"mixed_precision.flat_transfer ({dev.family})")
