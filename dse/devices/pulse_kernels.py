"""Mean steps of the analog families as traced into the compiled pulse kernel.

``kernels: compiled`` runs :meth:`dse.devices.analog.PulseDevice.pulse_values`, which calls the
family's ``_kernel_mean_step``; ``exp_step`` and ``piecewise`` send it here. Each function is the
family's eager ``_mean_step`` (the reference, :mod:`dse.devices.pulse_families`) rearranged for
one fused loop of Inductor's CPU code, where the costs differ from eager PyTorch's:

* every call of a vector math function (``exp``, ``log``: Sleef) spills the live vector
  registers, so fewer calls beat fewer elementwise ops; ``expm1``/``log1p`` are scalar loops;
* ``torch.where`` is a blend (cheap; in eager it is a slow kernel), ``isnan`` a scalar loop
  (``v == v`` is a vector compare);
* a table gather is a scalar loop per element plus an int64 conversion and a bounds check, so
  one gather of a packed (value, slope) pair replaces two.

Accuracy: the same float32 formulas or tables as the eager path (``tests/test_kernels.py``
checks noise-free compiled moves against eager ones and the noisy moments within 3σ).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

Tensor = torch.Tensor


def exp_step_mean(dev: Any, x: Tensor, n: Tensor, st: Mapping[str, Tensor]) -> Tensor:
    """``ExpStep._mean_step`` (``dev``: an ``ExpStep``) for the fused kernel: the same closed
    form, rearranged.

    Δx = S·k·f with f = (τ − ln(1 + w(e^τ − 1)))/τ and τ = K·S·k is Δx = S·k − ln(1 +
    w(e^τ − 1))/K: no division by τ, and 1/K = (hi − lo)/(2a·γ) needs none either; below
    |τ| = 1e-3 the series of :func:`dse.devices.pulse_families._exp_move`. The clip f ≥ 0 is Δx
    of the pulse's sign; a stuck device (hi = lo, a NaN move) stays put.
    """
    v = dev.values
    gu, gd, a = float(v["gamma_up"]), float(v["gamma_down"]), float(v["a"])
    if not dev.imperfections["nonlinearity"] or gu == 0 or gd == 0 or a == 0:
        return dev._mean_step(x, n, st)
    co = dev._coeffs(st)
    up = n > 0
    u = up.to(x.dtype)
    rng = st["hi"] - st["lo"]
    sk = torch.where(up, co["s_up"], -co["s_dn"]) * n.abs()
    K = (u * (gu + gd) - gd) * co["c"]
    w = torch.exp(K * x) * (u * (co["B_up"] - co["B_dn"]) + co["B_dn"])
    tau = K * sk
    inv_k = (u * (1.0 / gu + 1.0 / gd) - 1.0 / gd) * (rng * (0.5 / a))
    exact = sk - torch.log((1.0 + w * (torch.exp(tau) - 1.0)).clamp(min=1e-30)) * inv_k
    series = sk * (1.0 - w) * (1.0 - 0.5 * tau * w)
    d = torch.where(tau.abs() < 1e-3, series, exact)
    new = x + torch.where(up, d.clamp(min=0.0), d.clamp(max=0.0))
    new = torch.where(new == new, new, x)
    return torch.minimum(torch.maximum(new, st["lo"]), st["hi"])


def pack_pairs(table: np.ndarray, slope: np.ndarray) -> Tensor:
    """int64 words holding the float32 bits of ``table`` (low half) and ``slope`` (high half)."""
    lo = np.asarray(table, dtype=np.float32).view(np.uint32).astype(np.int64)
    hi = np.asarray(slope, dtype=np.float32).view(np.uint32).astype(np.int64)
    return torch.from_numpy(lo | (hi << 32))


def _lookup(packed: Tensor, idx: Tensor, frac: Tensor) -> Tensor:
    """Linear interpolation from one gather of packed (value, slope) pairs."""
    w = packed[idx]
    val = (w & 0xFFFFFFFF).to(torch.int32).view(torch.float32)
    slope = (w >> 32).to(torch.int32).view(torch.float32)
    return val + slope * frac


def piecewise_mean(dev: Any, x: Tensor, n: Tensor, st: Mapping[str, Tensor]) -> Tensor:
    """``Piecewise._mean_step`` (``dev``: a ``Piecewise``) for the fused kernel: the same
    tables and interpolation, two packed gathers instead of four, the direction's constants by
    blends, ``gain·n`` for ``gain·k·sign(n)``. float32 only (the packed tables); other dtypes
    take the eager form."""
    t = dev._t(x.dtype, x.device)
    if not dev.imperfections["nonlinearity"] or x.dtype != torch.float32 or "fwd_p" not in t:
        return dev._mean_step(x, n, st)
    sc, m, mi = dev._scal, dev.GRID, dev.INV_GRID
    up, down = n > 0, n < 0
    d = down.to(torch.int64)
    pos = (x - sc["g0"]) * sc["inv_dg"]
    i = pos.clamp(0, m - 2).floor()
    c = _lookup(t["fwd_p"], d * m + i.to(torch.int64), pos - i)
    c = c + torch.where(up, st["up"], st["down"]) * n
    q = (c - torch.where(down, sc["c0_dn"], sc["c0_up"])) * torch.where(down, sc["idc_dn"],
                                                                       sc["idc_up"])
    j = q.clamp(0, mi - 2).floor()
    new = _lookup(t["inv_p"], d * mi + j.to(torch.int64), q - j)
    new = torch.where(n == 0, x, new)  # n = 0 stays exactly put
    return torch.minimum(torch.maximum(new, st["lo"]), st["hi"])
