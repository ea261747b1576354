"""Weight bit errors, shared by error-aware training and Monte-Carlo injection (ALGORITHMS.md §2.3).

Both functions take quantized weights with any number of leading batch dimensions (one per fault
map) and draw all maps in one vectorised call.

* Binary: each ±1 weight flips sign with probability ``ber`` (Hirtzlin et al. 2019;
  ``Quantized_VGG`` ``BinarizeConv2d``).
* Ternary (Laborieux et al. 2020, ``Quantized_VGG`` ``TernarizeConv2d``): with probability
  q = 2·BER/(1+p0), where p0 is the fraction of zero weights in the layer, a ±1 (equiprobable) is
  added and the result clipped back to {-1, 0, 1}. Zeros become ±1 with probability q; non-zero
  weights become 0 with probability q/2 and never change sign, so the total error rate is
  p0·q + (1−p0)·q/2 = BER. (q is capped at 1, which bounds BER at (1+p0)/2.)
"""

from __future__ import annotations

import torch


def _uniform(shape: torch.Size, generator: torch.Generator | None,
             like: torch.Tensor) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=like.device, dtype=like.dtype)


def flip_binary(w: torch.Tensor, ber: float | torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Sign flips of ±1 weights with probability ``ber`` (broadcast over leading dims)."""
    ber = torch.as_tensor(ber, dtype=w.dtype, device=w.device)
    flips = _uniform(w.shape, generator, w) < ber
    return torch.where(flips, -w, w)


def ternary_errors(w: torch.Tensor, ber: float | torch.Tensor, layer_dims: int,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """0↔±1 errors of {-1, 0, 1} weights at total rate ``ber``.

    ``layer_dims`` is the number of trailing dimensions that make up one layer's weight (2 for a
    linear layer, 4 for a convolution); p0 is computed over them, separately for every leading
    (fault-map) index. ``ber`` may be a tensor broadcastable to the leading dimensions.
    """
    dims = tuple(range(w.dim() - layer_dims, w.dim()))
    p0 = (w == 0).to(w.dtype).mean(dim=dims, keepdim=True)
    ber = torch.as_tensor(ber, dtype=w.dtype, device=w.device)
    if ber.dim() > 0:
        ber = ber.reshape(*ber.shape, *([1] * layer_dims))
    q = (2.0 * ber / (1.0 + p0)).clamp(max=1.0)
    u = _uniform(w.shape, generator, w)
    hit = u < q
    # reuse the same uniform for the sign: given a hit, u/q is uniform on [0, 1)
    sign = torch.where(u < q / 2, 1.0, -1.0).to(w.dtype)
    return torch.where(hit, (w + sign).clamp(-1.0, 1.0), w)


def apply_weight_errors(wq: torch.Tensor, precision: str, ber: float | torch.Tensor,
                        layer_dims: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Bit errors for a quantized weight of the given precision (float weights pass through)."""
    if precision == "binary":
        return flip_binary(wq, ber, generator)
    if precision == "ternary":
        return ternary_errors(wq, ber, layer_dims, generator)
    return wq
