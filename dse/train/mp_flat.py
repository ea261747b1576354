"""One flat bank of device pairs for every layer of a ``mixed_precision`` trainer (``step: flat``).

The reference step (``step: reference``, :meth:`MixedPrecisionTrainer._transfer`) runs the
accumulate, threshold test, pulse, read and refresh of each weight layer as its own ~55 small torch
ops; at batch 16 their cost is the per-op dispatch (3–8 µs each), not the elements. Here the
accumulators, clean and apparent weights of all layers are one flat tensor each, the device state
one flat state (layer blocks ``[G⁺ of layer 0, G⁻ of layer 0, G⁺ of layer 1, ...]``) and every
per-layer number (ε, the scale s, the read-noise amplitude, where a pair's two devices are) a
per-pair table, so one set of ops per step serves every layer. The trainer's :class:`PairLayer` s
keep *views* of the flat tensors (``chi``, ``clean``, ``apparent``, ``state``): the chip read-out,
the array backward read, the checkpoint and the reference rewrite see the same numbers.

The rule is the reference's (module docstring of :mod:`dse.train.mixed_precision`); what differs
is the order of the random draws (one Gaussian tensor per step for the write noise of all layers,
one for their reads), so a seed gives another run of the same distribution
(``tests/test_mp_flat.py``). The initial write is the reference's, layer by layer, before the bank
is built: the devices and the weights start bit for bit as in the reference. Pulse tallies have
the reference's meaning (per layer: potentiation ``up``; refresh RESETs and push-pull depression
``down``) and stay in a tensor until :meth:`FlatBank.flush`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from dse.train.writes import current_tally

Tensor = torch.Tensor


@dataclass
class PairLayer:
    """The device pairs of one weight layer (flat state: G⁺ = devices [0, N), G⁻ = [N, 2N))."""

    name: str
    layer: nn.Module
    shape: torch.Size
    n: int
    scale: float  # weight units per conductance unit
    eps: float  # ε in weight units
    state: dict[str, Tensor]
    chi: Tensor  # (N,) accumulator, weight units
    clean: Tensor  # (N,) noise-free device weights s·(G⁺ − G⁻)
    apparent: Tensor  # (N,) the weights the training passes use (clean + read noise)
    work: Tensor  # (N,) scratch buffer of the threshold test (|χ|)


def _above(x: Tensor, level: Tensor, work: Tensor) -> Tensor:
    """Ascending indices where |x| ≥ level (elementwise; NumPy on the CPU, as
    :func:`dse.train.converters.indices_above`)."""
    if x.device.type != "cpu":
        return torch.nonzero(torch.abs(x, out=work) >= level).squeeze(1)
    a, w = x.numpy(), work.numpy()
    return torch.from_numpy(np.flatnonzero(np.abs(a, out=w) >= level.numpy()))


def _indices(mask: Tensor) -> Tensor:
    """Ascending indices of the true elements of a 1-d bool tensor (NumPy on the CPU)."""
    if mask.device.type != "cpu":
        return torch.nonzero(mask).squeeze(1)
    return torch.from_numpy(np.flatnonzero(mask.numpy()))


def _due(ga: Tensor, gb: Tensor, g_up: float, g_lo: float) -> Tensor:
    """aihwkit's refresh test of pairs (ga, gb): the larger above g_up, the smaller above g_lo."""
    if ga.device.type != "cpu":
        hit = (torch.minimum(ga, gb) > g_lo) & (torch.maximum(ga, gb) > g_up)
        return torch.nonzero(hit).squeeze(1)
    a, b = ga.numpy(), gb.numpy()
    hit = np.minimum(a, b) > g_lo
    hit &= np.maximum(a, b) > g_up
    return torch.from_numpy(np.flatnonzero(hit))


class FlatBank:
    """The flat pairs of a trainer (built after its per-layer pairs and their initial write)."""

    def __init__(self, tr: Any, compiled: bool = False) -> None:
        self.tr, self.dev = tr, tr.dev
        pairs = tr.pairs
        sizes = [p.n for p in pairs]
        offs = [0, *np.cumsum(sizes).tolist()]
        self.n = offs[-1]
        dt, device = pairs[0].chi.dtype, pairs[0].chi.device
        self.offsets = offs
        self.chi = torch.cat([p.chi for p in pairs])
        self.clean = torch.cat([p.clean for p in pairs])
        aliased = pairs[0].apparent is pairs[0].clean  # read_noise: off
        self.apparent = self.clean if aliased else torch.cat([p.apparent for p in pairs])
        self.work = torch.empty_like(self.chi)
        self.state: dict[str, Tensor] = {}
        for k, v in pairs[0].state.items():
            self.state[k] = v if v.dim() == 0 else torch.cat([p.state[k] for p in pairs])
        for p, o in zip(pairs, offs, strict=False):
            p.chi, p.clean = self.chi[o:o + p.n], self.clean[o:o + p.n]
            p.apparent = p.clean if aliased else self.apparent[o:o + p.n]
            p.work = self.work[o:o + p.n]
            p.state = {k: (v if v.dim() == 0 else v[2 * o:2 * (o + p.n)])
                       for k, v in self.state.items()}

        # per layer: ε, s, √2·σ_read·s (float) and where its devices start, its size (int);
        # a pair's row is found by its layer (one searchsorted over the layer offsets)
        sigma = tr.read_sigma or 0.0
        self.ftab = torch.tensor([[p.eps, p.scale, math.sqrt(2.0) * sigma * p.scale]
                                  for p in pairs], dtype=dt, device=device)
        self.itab = torch.tensor([[o, p.n] for p, o in zip(pairs, offs, strict=False)],
                                 dtype=torch.int64, device=device)
        # the same as 1-d columns (a gather of 1-d rows is ~6× faster than of 2-d rows here)
        self.cols = [c.contiguous() for c in (*self.ftab.unbind(1), *self.itab.unbind(1))]
        self.bounds = torch.tensor(offs[1:-1], dtype=torch.int64, device=device)
        self._sizes = torch.tensor(sizes, device=device)
        self.eps = self.cols[0].repeat_interleave(self._sizes)  # ε per pair (threshold test)
        self.tally = torch.zeros(len(pairs), 2, dtype=torch.float64, device=device)
        self._amp: Tensor | None = None  # √2·σ_read·s per pair (read_noise: step)
        self._kernel = None  # kernels: compiled: the fused transfer (dse/train/mp_flat_kernel.py)
        self._dense = None  # ... and its dense form over every pair (dse/train/mp_flat_dense.py)
        self.dense_mode = "auto"  # auto (by the last step's pulsed fraction), always, never
        self._frac = 0.0  # pulsed pairs ÷ pairs of the last step
        if compiled:
            from dse.train.mp_flat_kernel import FlatFlags, compiled_transfer

            flags = FlatFlags(push_pull=tr.push_pull, refresh=bool(tr.settings.refresh),
                              read_update=tr.read_mode == "update", c2c=self.dev.c2c_on,
                              g_up=tr._refresh_levels[0], g_lo=tr._refresh_levels[1])
            self._kernel = compiled_transfer(self.dev, flags)
            if device.type == "cpu":
                from dse.train.mp_flat_dense import DenseTransfer

                self._dense = DenseTransfer(self, flags)
            self._st = {k: self.state[k] for k in self.dev.pulse_keys(self.state)
                        if k not in ("x", "wn")}
        self.keys = self.dev.pulse_keys(self.state)

    # -- bookkeeping ---------------------------------------------------------------------------
    def _rows(self, idx: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
        """The layer of each pair ``idx``, its (ε, scale) and (first pair, size) per pair."""
        lid = torch.searchsorted(self.bounds, idx, right=True)
        eps, scale, _, base, half = (c.index_select(0, lid) if j != 2 else c
                                     for j, c in enumerate(self.cols))
        return lid, (eps, scale), (base, half)

    def _count(self, lid: Tensor, up: Tensor, down: Tensor | float) -> None:
        """Add per-pair ``up``/``down`` pulses to the tallies of the pairs' layers ``lid``."""
        up64 = up.to(torch.float64)
        self.tally[:, 0].index_add_(0, lid, up64)
        if isinstance(down, float):
            if down:
                self.tally[:, 1].index_add_(0, lid, torch.full_like(up64, down))
        else:
            self.tally[:, 1].index_add_(0, lid, up64 if down is up else down.to(torch.float64))

    def _record(self, dev_idx: Tensor, counts: Tensor) -> None:
        """Per-device write tallies (``recording_writes``; slow path, only when recording)."""
        tally = current_tally()
        if tally is None:
            return
        for p, o in zip(self.tr.pairs, self.offsets, strict=False):
            m = (dev_idx >= 2 * o) & (dev_idx < 2 * (o + p.n))
            tally.add_at(p.name, 2 * p.n, dev_idx[m] - 2 * o, counts[m].abs().round())

    def flush(self) -> dict[str, tuple[int, int]]:
        """The pulses tallied since the last call, per layer (one host read)."""
        vals = self.tally.tolist()
        self.tally.zero_()
        return {p.name: (int(u), int(d)) for p, (u, d) in zip(self.tr.pairs, vals, strict=True)
                if u or d}  # as the reference: a layer without pulses has no entry

    # -- reads ---------------------------------------------------------------------------------
    def read_step(self) -> None:
        """``read_noise: step``: a fresh read of every pair of every layer (two ops)."""
        tr = self.tr
        if not tr.read_sigma:
            self.apparent.copy_(self.clean)
            return
        if self._amp is None:
            self._amp = self.cols[2].repeat_interleave(self._sizes)
        torch.randn(self.n, generator=tr.noise_gen, out=self.work)
        torch.addcmul(self.clean, self.work, self._amp, out=self.apparent)

    def _set_weights(self, idx: Tensor, w: Tensor, lid: Tensor) -> None:
        """Clean weights ``w`` of pairs ``idx`` (of layers ``lid``); with ``read_noise: update``
        their reads."""
        self.clean.index_copy_(0, idx, w)
        if self.tr.read_mode != "update":
            return
        if self.tr.read_sigma:
            noise = torch.randn(w.shape, generator=self.tr.noise_gen, dtype=w.dtype,
                                device=w.device)
            w = torch.addcmul(w, noise, self.cols[2].index_select(0, lid))
        self.apparent.index_copy_(0, idx, w)

    # -- the step ------------------------------------------------------------------------------
    def transfer(self) -> None:
        """χ ← χ − η·(∂L/∂W + λ·W) per layer, then for all layers at once: n = trunc(χ/ε)
        where |χ| ≥ ε, χ ← χ − n·ε, the pulses, the reads and the refresh of the due pairs."""
        tr, dev = self.tr, self.dev
        wd = tr.exp.weight_decay
        for p in tr.pairs:
            g = p.layer.weight.grad
            if g is None:
                continue
            g = g.reshape(-1)
            if wd:
                g = g.add(p.clean, alpha=wd)
            p.chi.add_(g, alpha=-tr.lr)
        if self._use_dense():
            due = self._dense()
            self._frac = self._dense.pulsed / self.n
            if due.numel():
                self.rewrite(due)
            return
        idx = _above(self.chi, self.eps, self.work)
        k = idx.numel()
        self._frac = k / self.n
        if k == 0:
            return
        if self._kernel is not None and current_tally() is None:
            self._fused(idx)
            return
        lid, f, i = self._rows(idx)
        c, e = self.chi.index_select(0, idx), f[0]
        n = torch.div(c, e).trunc_()  # |n| ≥ 1
        self.chi.index_copy_(0, idx, torch.addcmul(c, n, e, value=-1.0))
        plus = idx + i[0]  # G⁺ of pair i of the layer at offset o: i + o; its G⁻: i + o + n
        if tr.push_pull:
            dev_idx, cnt = torch.cat([plus, plus + i[1]]), torch.cat([n, -n])
            cnt_abs = n.abs()
            self._count(lid, cnt_abs, cnt_abs)
        else:  # potentiation only: G⁺ for n > 0, G⁻ for n < 0; the partner is the other one
            shift = i[1] * n.signbit()
            dev_idx = plus + shift
            other = plus.add_(i[1]).sub_(shift)
            cnt = n.abs()
            self._count(lid, cnt, 0.0)
        self._record(dev_idx, cnt)
        sub = dev.take(self.state, dev_idx, self.keys)
        sub = dev.apply_pulses(sub, cnt, tr.dev_gen)
        dev.put(self.state, dev_idx, sub)
        g_new = dev.read(sub)
        if tr.push_pull:
            g_a, g_b = g_new[:k], g_new[k:]
            w = torch.sub(g_a, g_b).mul_(f[1])
        else:  # G⁺ − G⁻ = sign(n)·(pulsed − partner)
            g_a, g_b = g_new, self.state["x"].index_select(0, other)
            w = torch.sub(g_a, g_b).mul_(torch.copysign(f[1], n))
        self._set_weights(idx, w, lid)
        if tr.settings.refresh:
            due = _due(g_a, g_b, *tr._refresh_levels)
            if due.numel():
                self.rewrite(idx.index_select(0, due))

    def _use_dense(self) -> bool:
        """Whether this step runs the dense kernel: ``dense_mode`` always, or auto, a bank of at
        least :data:`~dse.train.mp_flat_dense.DENSE_MIN_PAIRS` pairs and the last step pulsed at
        least :data:`~dse.train.mp_flat_dense.DENSE_FRACTION` of them."""
        if self._dense is None or self.dense_mode == "never" or current_tally() is not None:
            return False
        from dse.train.mp_flat_dense import DENSE_FRACTION, DENSE_MIN_PAIRS

        if self.dense_mode == "always":
            return True
        return self.n >= DENSE_MIN_PAIRS and self._frac >= DENSE_FRACTION

    def _fused(self, idx: Tensor) -> None:
        """The transfer of pairs ``idx`` as one compiled call, then the scatters and the eager
        rewrite of the pairs due for a refresh."""
        from dse.devices import kernels

        if idx.numel() == 1:  # pad with an unpulsed pair (kept exactly): no size-1 graph
            idx = torch.cat([idx, (idx + 1) % self.n])
        st = self.state
        chi_new, due, dev_idx, x_new, wn_new = self._kernel(
            self.chi, st["x"], st["wn"], self._st, self.clean, self.apparent, self.tally, idx,
            self.bounds, self.ftab, self.itab, kernels.draw_keys(self.tr.dev_gen, 9))
        self.chi.index_copy_(0, idx, chi_new)
        st["x"].index_copy_(0, dev_idx, x_new)
        if st["wn"].dim():
            st["wn"].index_copy_(0, dev_idx, wn_new)
        sel = _indices(due)
        if sel.numel():
            self.rewrite(idx.index_select(0, sel))

    def rewrite(self, sel: Tensor) -> None:
        """Refresh pairs ``sel``: reset both devices to their lower bound, write the clean weight
        back open loop onto one of them (the reference ``_write_pairs``, for every layer)."""
        tr, dev = self.tr, self.dev
        k = sel.numel()
        lid, f, i = self._rows(sel)
        plus = sel + i[0]
        both = torch.cat([plus, plus + i[1]])  # G⁺s, then G⁻s
        scale = f[1]
        target = self.clean.index_select(0, sel).div_(scale)
        sub = dev.take(self.state, both, self.keys)
        sub = dev.set_conductance(sub, torch.full((2 * k,), tr.g_min, dtype=target.dtype,
                                                  device=target.device))
        g = dev.read(sub)
        rest = target - (g[:k] - g[k:])
        pos = torch.arange(k, device=sel.device)
        which = torch.where(rest >= 0, pos, pos + k)
        g_from = g.index_select(0, which)
        cnt = tr._pulses_between(g_from, g_from + rest.abs())
        pulses = torch.zeros_like(g).index_copy_(0, which, cnt)
        self._count(lid, cnt, 2.0)
        self._record(both, pulses)
        self._record(both, torch.ones_like(pulses))  # the RESETs
        sub = dev.apply_pulses(sub, pulses, tr.dev_gen)
        dev.put(self.state, both, sub)
        g = dev.read(sub)
        self._set_weights(sel, (g[:k] - g[k:]).mul_(scale), lid)

    def release(self) -> None:
        """Give every layer its own tensors again (the end of training: checkpoints then store
        each layer's tensors, not views of the bank)."""
        for p in self.tr.pairs:
            aliased = p.apparent is p.clean
            p.chi, p.clean, p.work = p.chi.clone(), p.clean.clone(), p.work.clone()
            p.apparent = p.clean if aliased else p.apparent.clone()
            p.state = {k: v.clone() for k, v in p.state.items()}
