"""Fused kernels of the mixed-precision transfer (``kernels: compiled``).

The same rule as :meth:`dse.train.mixed_precision.MixedPrecisionTrainer._transfer` (the eager
reference), as three functions that ``torch.compile`` fuses (:mod:`dse.devices.kernels`):

* :func:`accumulate` (dense, every weight): χ ← χ − η·(∂L/∂W + λ·W); n = trunc(χ/ε); χ ← χ − n·ε.
  One pass over the layer; returns n.
* :func:`transfer` (the pulsed pairs ``idx``): gathers their devices, applies the pulses with the
  family's :meth:`~dse.devices.analog.PulseDevice.pulse_values` (write noise drawn in the kernel),
  scatters the conductances back, writes the clean and (``read_noise: update``) the apparent
  weights, tallies the pulses in a tensor and returns aihwkit's refresh test of those pairs.
* :func:`rewrite` (the pairs due for a refresh, and the initial write): both devices reset to
  their lower bound, the difference written open loop onto one of them with the number of
  potentiation pulses of the card's nominal trajectory (looked up in the kernel).

Formulations. On the CPU the pulsed pairs are found between the kernels (``flatnonzero``; a host
sync is free there) and the transfer touches only them (gather/scatter: at the densities of
training, 1–30 % of the pairs, cheaper than a dense pass, which would draw noise for every
device). On a GPU the transfer and the rewrite run *dense and masked* over every pair (``idx`` =
all pairs, unpulsed pairs keep their values exactly, refresh only where due), so the step has no
host–device synchronisation. The random streams differ from the eager path's (the in-kernel
generator is keyed by draws from the trainer's device generator): the two agree in distribution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from dse.devices import kernels

Tensor = torch.Tensor


@dataclass(frozen=True)
class TransferFlags:
    """Constants of a trainer's kernels (traced as constants: one graph per combination)."""

    push_pull: bool
    refresh: bool
    read_update: bool  # read_noise: update (apparent weights redrawn when a pair is written;
    # with σ = 0 they equal the clean ones, a separate tensor all the same)
    c2c: bool  # the device draws write noise
    dense: bool  # masked over every pair (GPU) instead of the pulsed pairs only (CPU)
    g_up: float  # refresh levels (conductance units)
    g_lo: float
    g_min: float  # the reset level of a refresh


def accumulate(chi: Tensor, grad: Tensor, clean: Tensor, lr: Tensor, eps: Tensor,
               weight_decay: float) -> Tensor:
    """χ ← χ − lr·(g + λ·W); n = trunc(χ/ε); χ ← χ − n·ε (in place); returns n (float)."""
    g = grad.reshape(-1)
    if weight_decay:
        g = g + weight_decay * clean
    c = chi - lr * g
    n = torch.trunc(c / eps)
    chi.copy_(c - n * eps)
    return n


def gather_state(st: dict[str, Tensor], idx: Tensor) -> dict[str, Tensor]:
    """The device-state fields of the devices ``idx`` (0-dim fields are shared constants)."""
    return {k: (v[idx] if v.dim() else v) for k, v in st.items()}


def push_pull_pulses(dev: Any, c2c: bool, x: Tensor, wn: Tensor, st: dict[str, Tensor],
                     a: Tensor, b: Tensor, n: Tensor, keys: Tensor,
                     counter: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Push-pull pulses inside a kernel: ``n`` signed pulses to the devices ``a`` (G⁺) and
    ``-n`` to ``b`` (G⁻), noise keyed by ``keys[0:3]`` / ``keys[3:6]``. Returns (the devices
    written, their new values, their new write-noise state, the new G⁺ and G⁻)."""
    wa = wn[a] if wn.dim() else wn
    wb = wn[b] if wn.dim() else wn
    ga, wa = dev.pulse_values(x[a], wa, n, gather_state(st, a), keys[0:3], counter, c2c)
    gb, wb = dev.pulse_values(x[b], wb, -n, gather_state(st, b), keys[3:6], counter, c2c)
    wn_new = torch.cat([wa, wb]) if wn.dim() else wn
    return torch.cat([a, b]), torch.cat([ga, gb]), wn_new, ga, gb


def transfer(dev: Any, f: TransferFlags, x: Tensor, wn: Tensor, st: dict[str, Tensor],
             idx: Tensor, n_all: Tensor, clean: Tensor, apparent: Tensor, tally: Tensor,
             keys: Tensor, scale: Tensor, read_amp: Tensor) -> tuple[Tensor, ...]:
    """Pulse pairs ``idx`` by ``n_all[idx]``; returns the refresh test of those pairs (bool)
    and the devices' new values ``(due, dev_idx, x_new, wn_new)`` for the caller to scatter.

    ``x``/``wn``/``st``: the layer's flat device state (G⁺ = [0, N), G⁻ = [N, 2N)); ``tally``:
    float64 (2,) [potentiation, depression] pulses, added to in place. The conductances are
    scattered by the caller (:meth:`KernelTransfer.step`): a scatter into ``x`` inside a kernel
    that also gathers the partners from ``x`` makes Inductor copy all of ``x`` first.
    """
    half = clean.shape[0]
    n = n_all[idx]
    pulsed = n != 0
    counter = torch.arange(idx.shape[0], dtype=torch.int32, device=idx.device)
    if f.push_pull:
        dev_idx, x_new, wn_new, ga, gb = push_pull_pulses(dev, f.c2c, x, wn, st, idx,
                                                          idx + half, n, keys, counter)
        diff = ga - gb
        k = n.abs().sum(dtype=torch.float64)
        tally.add_(torch.stack([k, k]))
    else:  # potentiation only: G⁺ for n > 0, G⁻ for n < 0
        neg = (n < 0).to(idx.dtype)
        a = idx + half * neg
        gb = x[idx + half - half * neg]
        wa = wn[a] if wn.dim() else wn
        cnt = n.abs()
        ga, wa = dev.pulse_values(x[a], wa, cnt, gather_state(st, a), keys[0:3], counter, f.c2c)
        dev_idx, x_new, wn_new = a, ga, wa
        diff = torch.sign(n) * (ga - gb)
        up = cnt.sum(dtype=torch.float64)
        tally.add_(torch.stack([up, torch.zeros_like(up)]))  # (tally[0] += … is lost by Inductor)
    # pairs in ``idx`` without pulses (every one in the dense formulation, a padding entry in the
    # sparse one) keep their weights exactly
    w = torch.where(pulsed, diff * scale, clean[idx])
    clean.index_put_((idx,), w)
    if f.read_update:
        ap = w + read_amp * kernels.normal(keys[6:9], counter, w.dtype)
        apparent.index_put_((idx,), torch.where(pulsed, ap, apparent[idx]))
    if not f.refresh:
        return torch.zeros_like(pulsed), dev_idx, x_new, wn_new
    margin = torch.minimum(torch.minimum(ga, gb) - f.g_lo, torch.maximum(ga, gb) - f.g_up)
    return (margin > 0) & pulsed, dev_idx, x_new, wn_new


def _coordinate(table: Tensor, g: Tensor) -> Tensor:
    """Fractional pulse count of the nominal trajectory ``table`` at conductance ``g``."""
    g = g.to(table.dtype).clamp(table[0], table[-1])
    i = torch.searchsorted(table, g).clamp(1, table.shape[0] - 1)
    lo, hi = table[i - 1], table[i]
    return (i - 1) + ((g - lo) / (hi - lo).clamp_min(1e-300)).clamp(0, 1)


def rewrite(dev: Any, f: TransferFlags, x: Tensor, wn: Tensor, st: dict[str, Tensor],
            idx: Tensor, target_w: Tensor, mask: Tensor, clean: Tensor,
            apparent: Tensor, tally: Tensor, keys: Tensor, scale: Tensor, read_amp: Tensor,
            table: Tensor) -> None:
    """Reset both devices of pairs ``idx`` to their lower bound and write ``target_w`` (weight
    units) open loop onto one of them, where ``mask`` is true (the others keep their values)."""
    half = clean.shape[0]
    p, m = idx, idx + half
    st_p, st_m = gather_state(st, p), gather_state(st, m)
    rp = torch.clamp(torch.full_like(target_w, f.g_min), st_p["lo"], st_p["hi"])
    rm = torch.clamp(torch.full_like(target_w, f.g_min), st_m["lo"], st_m["hi"])
    rest = target_w / scale - (rp - rm)
    neg = rest < 0
    g_from = torch.where(neg, rm, rp)
    cnt = (_coordinate(table, g_from + rest.abs()) - _coordinate(table, g_from)).round()
    cnt = cnt.clamp_min(0).to(x.dtype)
    cnt = torch.where(mask, cnt, 0.0)
    w_dev = p + half * neg.to(idx.dtype)
    st_w = gather_state(st, w_dev)
    zero = torch.zeros_like(g_from) if wn.dim() else wn
    counter = torch.arange(idx.shape[0], dtype=torch.int32, device=idx.device)
    gw, ww = dev.pulse_values(g_from, zero, cnt, st_w, keys[0:3], counter, f.c2c)
    new_p, new_m = torch.where(neg, rp, gw), torch.where(neg, gw, rm)
    if wn.dim():
        wn_p, wn_m = torch.where(neg, 0.0, ww), torch.where(neg, ww, 0.0)
    w = (new_p - new_m) * scale
    ap = w + read_amp * kernels.normal(keys[3:6], counter, w.dtype) if f.read_update else w
    new_p, new_m = torch.where(mask, new_p, x[p]), torch.where(mask, new_m, x[m])
    w, ap = torch.where(mask, w, clean[idx]), torch.where(mask, ap, apparent[idx])
    if wn.dim():
        wn_p, wn_m = torch.where(mask, wn_p, wn[p]), torch.where(mask, wn_m, wn[m])
    x.index_put_((p,), new_p)
    x.index_put_((m,), new_m)
    if wn.dim():
        wn.index_put_((p,), wn_p)
        wn.index_put_((m,), wn_m)
    clean.index_put_((idx,), w)
    if f.read_update:
        apparent.index_put_((idx,), ap)
    tally.add_(torch.stack([cnt.sum(dtype=torch.float64), 2.0 * mask.sum(dtype=torch.float64)]))


def read_step(clean: Tensor, apparent: Tensor, keys: Tensor, read_amp: Tensor) -> None:
    """``read_noise: step``: apparent = clean + √2·σ·s·ξ for every pair (one fused pass)."""
    apparent.copy_(clean + read_amp * kernels.normal(keys, kernels.counter_like(clean),
                                                     clean.dtype))


def _indices(mask_or_counts: Tensor) -> Tensor:
    """int64 indices of the non-zero elements of a 1-d tensor (CPU: NumPy's flatnonzero, ~3×
    faster than torch.nonzero on this build)."""
    t = mask_or_counts.detach()
    if t.device.type != "cpu":
        return torch.nonzero(t).squeeze(1)
    import numpy as np

    return torch.from_numpy(np.flatnonzero(t.numpy()))


class KernelTransfer:
    """The compiled transfer of one trainer: its flags, kernels and pulse tallies (tensors, read
    once per epoch by :meth:`flush`, so the step does not wait for the device)."""

    def __init__(self, dev: Any, flags: TransferFlags, table: Tensor, weight_decay: float,
                 lr: float, device: torch.device, generator: torch.Generator) -> None:
        from functools import partial

        self.dev, self.f, self.gen = dev, flags, generator
        self.table = table.to(device)
        self.lr = torch.tensor(lr, device=device)
        self.wd = float(weight_decay)
        self.tallies: dict[str, Tensor] = {}
        name = dev.family
        self._acc = kernels.compile_kernel(partial(accumulate, weight_decay=self.wd),
                                           "mixed_precision.accumulate")
        self._plain = {"transfer": partial(transfer, dev, flags),
                       "rewrite": partial(rewrite, dev, flags)}
        self._compiled = {k: kernels.compile_kernel(fn, f"mixed_precision.{k} ({name})")
                          for k, fn in self._plain.items()}
        self._read = kernels.compile_kernel(read_step, "mixed_precision.read_step")


    def _layer(self, p: Any) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
        st = {k: v for k, v in p.state.items() if k not in ("x", "wn")}
        if p.name not in self.tallies:
            self.tallies[p.name] = torch.zeros(2, dtype=torch.float64, device=p.chi.device)
        return p.state["x"], p.state["wn"], self.tallies[p.name], st

    def consts(self, p: Any, read_sigma: float) -> tuple[Tensor, Tensor, Tensor]:
        """(ε, scale, √2·σ_read·scale) of a layer as 0-d tensors (kernel inputs, not constants,
        so that one graph serves every layer)."""
        if not hasattr(p, "_kconst"):
            dev = p.chi.device
            p._kconst = (torch.tensor(p.eps, device=dev), torch.tensor(p.scale, device=dev),
                         torch.tensor(2.0 ** 0.5 * read_sigma * p.scale, device=dev))
        return p._kconst

    def write(self, p: Any, idx: Tensor, target_w: Tensor, read_sigma: float,
              mask: Tensor | None = None) -> None:
        """Reset + open-loop write of pairs ``idx`` to weights ``target_w`` (where ``mask``)."""
        x, wn, tally, st = self._layer(p)
        _, scale, amp = self.consts(p, read_sigma)
        if mask is None:
            mask = torch.ones(idx.shape, dtype=torch.bool, device=idx.device)
        if idx.numel() == 1:  # pad: sizes 0 and 1 would be specialised (a new compile)
            idx, target_w = torch.cat([idx, (idx + 1) % p.n]), torch.cat([target_w, target_w])
            mask = torch.cat([mask, torch.zeros_like(mask)])
        self._compiled["rewrite"](x, wn, st, idx, target_w, mask, p.clean, p.apparent, tally,
                                  kernels.draw_keys(self.gen, 6), scale, amp, self.table)

    def step(self, p: Any, grad: Tensor, read_sigma: float) -> None:
        """One transfer of layer ``p`` (its gradient ``grad``)."""
        x, wn, tally, st = self._layer(p)
        eps, scale, amp = self.consts(p, read_sigma)
        n = self._acc(p.chi, grad.reshape(-1), p.clean, self.lr, eps)  # flat: one graph
        if self.f.dense:
            idx = getattr(p, "_all_idx", None)
            if idx is None:
                idx = p._all_idx = torch.arange(p.n, device=p.chi.device)
        else:
            idx = _indices(n)
            if idx.numel() == 0:
                return
            if idx.numel() == 1:  # pad with an unpulsed pair (kept exactly): no size-1 graph
                idx = torch.cat([idx, (idx + 1) % p.n])
        due, dev_idx, x_new, wn_new = self._compiled["transfer"](
            x, wn, st, idx, n, p.clean, p.apparent, tally, kernels.draw_keys(self.gen, 9),
            scale, amp)
        x.index_copy_(0, dev_idx, x_new)
        if wn.dim():
            wn.index_copy_(0, dev_idx, wn_new)
        if not self.f.refresh:
            return
        if self.f.dense:
            self.write(p, idx, p.clean, read_sigma, mask=due)
            return
        sel = _indices(due)
        if sel.numel():
            sel = idx.index_select(0, sel)
            self.write(p, sel, p.clean.index_select(0, sel), read_sigma)

    def read_step(self, p: Any, read_sigma: float) -> None:
        """``read_noise: step`` for layer ``p``."""
        _, _, amp = self.consts(p, read_sigma)
        self._read(p.clean, p.apparent, kernels.draw_keys(self.gen, 3), amp)

    def flush(self) -> dict[str, tuple[int, int]]:
        """The pulses tallied since the last call, per layer (one device read per layer)."""
        out = {}
        for name, t in self.tallies.items():
            up, down = (int(v) for v in t.tolist())
            out[name] = (up, down)
            t.zero_()
        return out
