"""The compiled weak-RESET update (``kernels: compiled``, :mod:`dse.devices.weak_reset`).

One fused loop over the devices, every device updated (n = 0 included, as the eager path with
RTN on), with the model of the eager path (:mod:`dse.devices.weak_reset`) and noise from the
in-kernel counter-based generator (:mod:`dse.devices.kernels`):

* RTN: the switch probability of n pulses in closed form, P(switch) = P_x/(P_h + P_l)·(1 − (1 −
  P_h − P_l)ⁿ) (the two-state chain's matrix power; P_x = P_h from the low state, P_l from the
  high one), then the level U(0, U(0, 1)·amp) of a high device. Three uniforms per device from
  one keyed hash chain (u₁ = H(H(c ^ k₀) ^ k₁), u₂ = H(u₁ ^ k₂), u₃ = H(u₂ ^ k₃)).
* 1/f noise without stored taps. The filter's tap k after a device's t-th pulse is the uniform
  that device drew at its pulse t − k (0 before its first pulse: the taps start at 0). The
  compiled state gives every device a 32-bit id (``pink_id``: a keyed bijective hash of its
  position, drawn once with the devices, so distinct within a layer and carried along by
  ``take``/``put``), and the uniform of pulse p of device d is a 16-bit half of
  H(((p >> 1)·φ) ^ id_d) with φ the 32-bit golden-ratio constant and H ``lowbias32``
  (:func:`counter_taps`): a counter-based stream per device, so the 15 taps are recomputed from
  the cumulative pulse count t (8 hashes) instead of stored and shifted. The
  state holds 4 bytes per device for the filter instead of the eager path's 2·taps floats
  (120 bytes), and the kernel reads and writes no tap array. Two (device, pulse) pairs share a
  uniform only where their hashed inputs coincide (isolated values, no shifted copies of a
  stream: the pulse index is multiplied by φ before the XOR), rarer than coincident values of
  the 24-bit uniforms themselves.

Same distributions as the eager path (per-call draws there, per-pulse draws here);
``tests/test_kernels.py`` checks conductance, RTN state and level, 1/f output and a tap within
3 standard errors over a seeded population.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from dse.devices import kernels

Tensor = torch.Tensor

PHI = 0x9E3779B9 - (1 << 32)  # int32 two's complement of the 32-bit golden-ratio constant


def pink_ids(shape: Sequence[int], generator: torch.Generator) -> Tensor:
    """int32 ids of fresh devices: H(position ^ k₀) ^ k₁ (a bijection: distinct in the call)."""
    keys = kernels.draw_keys(generator, 2)
    numel = math.prod(shape)
    pos = torch.arange(numel, dtype=torch.int32, device=generator.device)
    return (kernels.hash32(pos ^ keys[0]) ^ keys[1]).view(tuple(shape))


def counter_taps(pid: Tensor, t: Tensor, taps: int, dtype: torch.dtype) -> list[Tensor]:
    """The 1/f filter's taps u_{t−k}, k = 0..taps−1 (newest first), of devices after ``t``
    cumulative pulses: the uniform of pulse t − k, 0 for t − k < 1.

    The uniform of pulse p is a 16-bit half of the word H(((p >> 1)·φ) ^ id) (the low half for
    even p, the high half for odd p): one hash per two pulses, 24-bit resolution not needed
    here (2⁻¹⁶ of a tap, times the coupling α, is ~10⁻⁷ of ln R)."""
    p0 = t.to(torch.int32)
    q0 = p0 >> 1
    odd = (p0 & 1) == 1
    words = [kernels.hash32(((q0 - j) * PHI) ^ pid) for j in range(taps // 2 + 1)]
    zero = torch.zeros((), dtype=dtype, device=t.device)
    out = []
    for k in range(taps):  # unrolled by the compiler: one loop over devices
        if k % 2 == 0:  # pulse t − k has the parity of t: the word (t − k) >> 1 = q0 − k/2
            w, high = words[k // 2], odd
        else:
            w, high = torch.where(odd, words[(k - 1) // 2], words[(k + 1) // 2]), ~odd
        bits = torch.where(high, kernels.shift_right(w, 16), w & 0xFFFF)
        u = (bits.to(dtype) + 0.5) * (1.0 / 65536.0)
        out.append(torch.where(p0 - k >= 1, u, zero))
    return out


def counter_pink(pid: Tensor, t: Tensor, b: Sequence[float], dtype: torch.dtype) -> Tensor:
    """The filter's output Σ_k b_k·u_{t−k} (:func:`counter_taps`)."""
    us = counter_taps(pid, t, len(b), dtype)
    acc = us[0] * b[0]
    for bk, u in zip(b[1:], us[1:], strict=True):
        acc = acc + u * bk
    return acc


def pulse(t: Tensor, high: Tensor, amp: Tensor, pid: Tensor, n: Tensor, keys: Tensor,
          mean: tuple[Tensor, ...], *, rtn: tuple[float, float] | None,
          b: tuple[float, ...] | None, alpha: float) -> tuple[Tensor, ...]:
    """The dense update of flat device tensors: (t + n[, RTN state, RTN level][, 1/f output],
    R), R = R0·exp(w) the resistance after the pulses (the read, fused).

    ``mean``: the D2D parameters (m1, t*, c1, m2, R0), flat or 0-d; ``rtn``: (P_h, P_l) when RTN
    is on; ``b``: the filter's coefficients when 1/f is on; ``alpha``: its coupling (constants
    of the compiled kernel)."""
    t_new = t + n
    m1, t_star, c1, m2, r0 = mean
    w = torch.where(t_new < t_star, m1 * t_new + c1, m2 * t_new + t_star * (m1 - m2) + c1)
    out: list[Tensor] = [t_new]
    if rtn is not None:
        ph, pl = rtn
        counter = torch.arange(t.shape[0], dtype=torch.int32, device=t.device)
        frac = -torch.expm1(n * math.log1p(-(ph + pl)))
        p = frac * torch.where(high > 0, pl / (ph + pl), ph / (ph + pl))
        a = kernels.random_bits(keys[0:2], counter)
        flip = (kernels.to_uniform(a, t.dtype) < p).to(t.dtype)
        high = (high - flip).abs()
        c = kernels.hash32(a ^ keys[2])
        d = kernels.hash32(c ^ keys[3])
        level = high * kernels.to_uniform(c, t.dtype) * amp * kernels.to_uniform(d, t.dtype)
        out += [high, level]
        w = w + level
    if b is not None:
        pink = counter_pink(pid, t_new, b, t.dtype)
        out.append(pink)
        w = w + alpha * pink
    out.append(r0 * torch.exp(w))
    return tuple(out)
