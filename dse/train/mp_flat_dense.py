"""The flat bank's transfer as one dense masked kernel over every pair (``step: flat`` with
``kernels: compiled``, on the CPU, when many pairs are pulsed).

:mod:`dse.train.mp_flat_kernel` gathers the pulsed pairs (found by a NumPy threshold test),
updates them in one compiled call and scatters them back: its cost grows with the pulsed pairs
(~5 fields gathered and scattered per pulsed device). Here one ``torch.compile`` graph runs over
*all* pairs of every layer, in place and without an index: n = trunc(χ/ε) where |χ| ≥ ε (else
0), the family's :meth:`~dse.devices.analog.PulseDevice.pulse_values` (write noise from the
in-kernel generator of :mod:`dse.devices.kernels`, counter = the pair's position in the bank),
the clean and apparent weights, χ ← χ − n·ε, the per-layer pulse tallies and the refresh test;
every result is written with ``torch.where(n ≠ 0, new, old)``, so a pair without pulses keeps
its state exactly. Its cost is a pass over the whole bank (~13 values per pair), independent of
how many pairs are pulsed: :class:`dse.train.mp_flat.FlatBank` uses it when the pulsed fraction
is high (:data:`DENSE_FRACTION`) and the gathered kernel otherwise. The rewrite of the (few)
pairs due for a refresh stays eager (:meth:`FlatBank.rewrite`).

Every layer's tensors are passed as the layer's own views of the bank (``PairLayer``: G⁺ and G⁻
halves of the device state separately), so the kernel needs no slicing by offsets and Inductor
writes each mutated input in place. Per-layer numbers (ε, scale, read amplitude, first pair) come
in as a small tensor, not as constants: one graph per model structure and device flags, not per
threshold or weight range.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dse.devices import kernels
from dse.train.mp_flat_kernel import FlatFlags

Tensor = torch.Tensor

# pulsed pairs ÷ all pairs from which the dense kernel is used (benchmarks/README.md, "Mixed
# precision at batch 16, part 5"): the crossover of the two compiled paths interpolated between
# the two measured points (dense +0.9 ms at 1 % pulsed, −0.6 ms at 15–20 %): ~11 %
DENSE_FRACTION = 0.10
# ... and only for banks of at least this many pairs (measured at 203 k pairs only; smaller banks
# keep the gathered kernel, whose pulsed pairs stay in the cache)
DENSE_MIN_PAIRS = 50_000


def _pick(neg: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``b`` where ``neg`` else ``a`` (0-d tensors: shared by all devices, kept as they are)."""
    return torch.where(neg, b, a) if a.dim() else a


def dense_transfer(dev: Any, f: FlatFlags, chis: list[Tensor], cleans: list[Tensor],
                   apps: list[Tensor], xs: list[Tensor], wns: list[Tensor],
                   sts: list[dict[str, Tensor]], ftab: Tensor, itab: Tensor, tally: Tensor,
                   keys: Tensor) -> tuple[list[Tensor], Tensor]:
    """The transfer of every pair of every layer, in place; returns ``(due, counts)``.

    Per layer ``l``: ``chis[l]``, ``cleans[l]``, ``apps[l]`` its pairs' views; ``xs[2l]``,
    ``xs[2l + 1]`` (and ``wns``, ``sts``) the G⁺ and G⁻ halves of its devices; ``ftab[l]`` its
    ε, scale, √2·σ_read·scale; ``itab[l, 0]`` its first pair in the bank. ``due``: per layer,
    its pairs due for a refresh (bool; not concatenated: a concatenation of bool tensors is a
    slow scalar blend in Inductor's CPU code); ``counts``: pulsed and due pairs per layer."""
    dues, pulsed_n, due_n = [], [], []
    for lyr, c in enumerate(chis):
        eps, scale, amp = ftab[lyr, 0], ftab[lyr, 1], ftab[lyr, 2]
        counter = torch.arange(c.shape[0], dtype=torch.int32, device=c.device)
        counter = counter + itab[lyr, 0].to(torch.int32)
        n = torch.where(c.abs() >= eps, torch.trunc(c / eps), torch.zeros_like(c))
        pulsed = n != 0
        xp, xm, wp, wm = xs[2 * lyr], xs[2 * lyr + 1], wns[2 * lyr], wns[2 * lyr + 1]
        sp, sm = sts[2 * lyr], sts[2 * lyr + 1]
        k = n.abs()
        if f.push_pull:
            ga, wa = dev.pulse_values(xp, wp, n, sp, keys[0:3], counter, f.c2c)
            gb, wb = dev.pulse_values(xm, wm, -n, sm, keys[3:6], counter, f.c2c)
            xp.copy_(torch.where(pulsed, ga, xp))
            xm.copy_(torch.where(pulsed, gb, xm))
            if wp.dim():
                wp.copy_(torch.where(pulsed, wa, wp))
                wm.copy_(torch.where(pulsed, wb, wm))
            w = (ga - gb) * scale
            down = k
        else:  # potentiation only: G⁺ for n > 0, G⁻ for n < 0; the partner is the other one
            neg = n < 0
            st = {key: _pick(neg, v, sm[key]) for key, v in sp.items()}
            g, wn = dev.pulse_values(torch.where(neg, xm, xp), _pick(neg, wp, wm), k, st,
                                     keys[0:3], counter, f.c2c)
            ga, gb = torch.where(neg, xp, g), torch.where(neg, g, xm)  # new G⁺, G⁻
            xp.copy_(torch.where(pulsed, ga, xp))
            xm.copy_(torch.where(pulsed, gb, xm))
            if wp.dim():
                wp.copy_(torch.where(pulsed & ~neg, wn, wp))
                wm.copy_(torch.where(neg, wn, wm))
            w = (ga - gb) * scale
            down = torch.zeros_like(k)
        cl = cleans[lyr]
        if f.read_update:
            noise = kernels.normal(keys[6:9], counter, w.dtype)
            apps[lyr].copy_(torch.where(pulsed, w + amp * noise, apps[lyr]))
        cl.copy_(torch.where(pulsed, w, cl))
        c.copy_(c - n * eps)  # exact for n = 0
        tally[lyr, 0] += k.to(torch.float64).sum()
        tally[lyr, 1] += down.to(torch.float64).sum()
        if f.refresh:
            due = (torch.minimum(ga, gb) > f.g_lo) & (torch.maximum(ga, gb) > f.g_up) & pulsed
        else:
            due = torch.zeros_like(pulsed)
        dues.append(due.to(torch.int32))  # a bool or byte store: a slow scalar loop (C++)
        pulsed_n.append(pulsed.to(torch.int32).sum())
        due_n.append(due.to(torch.int32).sum())
    return dues, torch.stack([torch.stack(pulsed_n), torch.stack(due_n)])


class DenseTransfer:
    """The compiled :func:`dense_transfer` bound to a bank's layer views."""

    def __init__(self, bank: Any, flags: FlatFlags) -> None:
        from functools import partial

        self.bank = bank
        dev = bank.dev
        self.fn = kernels.compile_kernel(partial(dense_transfer, dev, flags),
                                         f"mixed_precision.dense_transfer ({dev.family})")
        self.read_update = flags.read_update
        self.pulsed = 0  # pulsed pairs of the last call
        self._v: tuple[list[Any], ...] | None = None  # the layers' views (built on first call)

    def _views(self) -> tuple[list[Any], ...]:
        tr, dev = self.bank.tr, self.bank.dev
        chis: list[Tensor] = []
        cleans: list[Tensor] = []
        apps: list[Tensor] = []
        xs: list[Tensor] = []
        wns: list[Tensor] = []
        sts: list[dict[str, Tensor]] = []
        for p in tr.pairs:
            chis.append(p.chi)
            cleans.append(p.clean)
            apps.append(p.apparent if self.read_update else p.clean)
            keys = [k for k in dev.pulse_keys(p.state) if k not in ("x", "wn")]
            for half in (slice(0, p.n), slice(p.n, 2 * p.n)):
                xs.append(p.state["x"][half])
                wn = p.state["wn"]
                wns.append(wn[half] if wn.dim() else wn)
                sts.append({k: (p.state[k][half] if p.state[k].dim() else p.state[k])
                            for k in keys})
        return chis, cleans, apps, xs, wns, sts

    def __call__(self) -> Tensor:
        """One dense step of every pair; returns the bank's pairs due for a refresh (found by
        NumPy on the CPU: the dense kernel is CPU-only)."""
        b = self.bank
        if self._v is None:
            self._v = self._views()
        due, counts = self.fn(*self._v, b.ftab, b.itab, b.tally,
                              kernels.draw_keys(b.tr.dev_gen, 9))
        pulsed, n_due = counts.tolist()
        self.pulsed = int(sum(pulsed))
        sel = [torch.from_numpy(np.flatnonzero(torch.ne(d, 0).numpy())).add_(o)
               for d, o, m in zip(due, b.offsets, n_due, strict=False) if m]
        if not sel:
            return torch.zeros(0, dtype=torch.int64)
        return sel[0] if len(sel) == 1 else torch.cat(sel)
