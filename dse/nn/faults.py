"""Weight bit errors, shared by error-aware training and Monte-Carlo injection (Hirtzlin et al.,
AICAS 2019, arXiv 1904.03652; code Laborieux-Axel/Quantized_VGG).

Both functions take quantized weights with any number of leading batch dimensions (one per fault
map) and draw all maps in one vectorised call.

* Binary: each ±1 weight flips sign with probability ``ber`` (Hirtzlin et al. 2019;
  ``Quantized_VGG`` ``BinarizeConv2d``).
* Ternary (Laborieux et al. 2020, ``Quantized_VGG`` ``TernarizeConv2d``): with probability
  q = 2·BER/(1+p0), where p0 is the fraction of zero weights in the layer, a ±1 (equiprobable) is
  added and the result clipped back to {-1, 0, 1}. Zeros become ±1 with probability q; non-zero
  weights become 0 with probability q/2 and never change sign, so the total error rate is
  p0·q + (1−p0)·q/2 = BER. (q is capped at 1, which bounds BER at (1+p0)/2.)

Per stored value (:func:`apply_confusion`, issue 13): a confusion matrix M[stored, read] gives,
for every stored value, the probability of each read value — binary 2×2 over (−1, +1), ternary
3×3 over (−1, 0, +1) — as a physical sense-amplifier model produces it
(:mod:`dse.devices.pcsa_rates`): e.g. a ternary ±1 read as 0 when the pair is too slow for the
sense window, a 0 read as ±1 when its two devices are too unequal. A matrix may carry leading
dimensions (one matrix per fault map, e.g. per operating point) that broadcast against the
weight's leading dimensions. The group's ternary model above is the special case
M = [[1−q/2, q/2, 0], [q/2, 1−q, q/2], [0, q/2, 1−q/2]].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dse.errors import DseError

CONFUSION_VALUES = {2: (-1.0, 1.0), 3: (-1.0, 0.0, 1.0)}


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


def _check_confusion(m: torch.Tensor, w: torch.Tensor) -> int:
    if m.dim() < 2 or m.shape[-1] != m.shape[-2] or m.shape[-1] not in CONFUSION_VALUES:
        raise DseError(f"confusion matrix of shape {tuple(m.shape)}: expected (..., 2, 2) for "
                       "binary (-1, +1) or (..., 3, 3) for ternary (-1, 0, +1) weights")
    nb = m.dim() - 2
    if nb > w.dim() or any(a not in (1, b) for a, b in zip(m.shape[:nb], w.shape[:nb],
                                                            strict=True)):
        raise DseError(f"confusion matrices {tuple(m.shape)} do not broadcast against the "
                       f"leading (fault-map) dimensions of the weight {tuple(w.shape)}")
    rows = m.sum(-1)
    if bool((m < 0).any()) or not bool(torch.allclose(rows, torch.ones_like(rows),
                                                       atol=1e-6)):
        raise DseError("confusion matrix rows must be probabilities of the read values: "
                       "non-negative and summing to 1 for every stored value")
    return m.shape[-1]


def apply_confusion(w: torch.Tensor, matrix: torch.Tensor | Sequence,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Read every weight through a per-stored-value confusion matrix ``M[stored, read]``.

    ``w`` holds binary (±1) or ternary ({−1, 0, 1}) weights with any leading fault-map
    dimensions; ``matrix`` is (k, k) or (*lead, k, k) with ``lead`` broadcasting against the
    first ``len(lead)`` dimensions of ``w``. One uniform draw per weight, vectorised over the
    maps; a k = 2 matrix needs every weight to be ±1.
    """
    m = torch.as_tensor(matrix, dtype=w.dtype, device=w.device)
    k = _check_confusion(m, w)
    if k == 2:
        if bool((w == 0).any()):
            raise DseError("a 2x2 (binary) confusion matrix was given for weights that "
                           "contain zeros; use a 3x3 (ternary) matrix")
        stored = w > 0
    else:
        stored = w.round().clamp(-1, 1)
    nb = m.dim() - 2
    lead = w.shape[:nb]
    cum = m.cumsum(-1).expand(*lead, k, k).reshape(-1, k, k)      # (B, stored, read)
    flat = stored.reshape(cum.shape[0], -1)
    u = _uniform(w.shape, generator, w).reshape(flat.shape)
    values = torch.tensor(CONFUSION_VALUES[k], dtype=w.dtype, device=w.device)

    if k == 2:  # read +1 where u is at or above the stored value's first threshold
        c = cum[:, :, 0].unsqueeze(-1)                             # (B, stored, 1)
        read = torch.where(u >= torch.where(flat, c[:, 1], c[:, 0]), values[1], values[0])
    else:  # read index = number of the stored value's cumulative thresholds at or below u
        neg, pos = flat < 0, flat > 0

        def at_or_above(j: int) -> torch.Tensor:  # u >= the stored value's threshold j
            c = cum[:, :, j].unsqueeze(-1)
            return torch.where(neg, u >= c[:, 0], torch.where(pos, u >= c[:, 2], u >= c[:, 1]))

        # +1 at or above threshold 1, else 0 at or above threshold 0, else -1
        read = torch.where(at_or_above(1), values[2],
                           torch.where(at_or_above(0), values[1], values[0]))
    return read.reshape(w.shape)


def apply_weight_confusion(wq: torch.Tensor, precision: str, matrix: torch.Tensor | Sequence,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """:func:`apply_confusion` for a quantized weight of ``precision`` (float passes through).

    Binary weights on a ternary chip take its 3×3 matrix (a stored ±1 may read as 0).
    """
    if precision in ("binary", "ternary"):
        return apply_confusion(wq, matrix, generator)
    return wq
