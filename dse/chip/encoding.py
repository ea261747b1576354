"""Weight encodings: how a layer's weights are stored in the cells of an array.

An encoding is one class registered by name (a chip card's ``encoding:``). It says which weight
precisions it stores, with how many cells per weight, and converts weights to per-cell levels and
back, which is where cell-level faults (stuck-at cells, analog programming noise) act.

Cell levels are in [0, 1]: 0 = the cell's low-conductance state (HRS, g_min), 1 = its
high-conductance state (LRS, g_max). A weight's cells are the last dimension of a level tensor.

* ``binary``: ±1. Two cells (2T2R, read by a PCSA that compares them, Hirtzlin et al. 2020):
  +1 = (LRS, HRS), −1 = (HRS, LRS); two equal cells (only after a stuck-at fault) leave the sense
  amplifier undecided, which is read as ±1 with probability 1/2 (assumption: no tie-breaking
  offset is modelled). One cell (sensed against a reference): +1 = LRS, −1 = HRS.
* ``ternary``: {−1, 0, +1} in two cells read in one sense operation (Laborieux et al. 2020):
  ±1 as binary, 0 = (HRS, HRS); a pair of equal cells reads as 0 (assumption: the papers' zero
  state and its read-out are NOT FOUND in the available text, Laborieux et al., AICAS 2020, arXiv
  2005.01973, and arXiv 2007.14234).
* ``analog``: a real weight w in [−w_max, w_max], w_max = max |w| of the layer (assumption: one
  linear scale per layer). Two cells = differential pair, levels (relu(w), relu(−w))/w_max and
  w = w_max·(l+ − l−); one cell = offset encoding, level (1 + w/w_max)/2 against a mid-range
  reference, w = w_max·(2l − 1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from dse.registry import Registry

if TYPE_CHECKING:
    import torch

ENCODINGS = Registry("encoding", key="encoding")
register_encoding = ENCODINGS.register  # class decorator: ``encoding: <cls.name>``


class Encoding:
    """Weight <-> cell-level conversion for one encoding."""

    name: ClassVar[str] = ""
    native: ClassVar[str] = ""                      # the precision an experiment pairs on
    accepts: ClassVar[tuple[str, ...]] = ()         # precisions the chip can store
    cells: ClassVar[tuple[int, ...]] = ()           # allowed cells per weight
    bit_errors: ClassVar[bool] = True               # weights suffer bit errors (BER sweeps)

    @staticmethod
    def to_levels(w: torch.Tensor, k: int, w_max: torch.Tensor | float = 1.0) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def from_levels(levels: torch.Tensor, k: int, w_max: torch.Tensor | float = 1.0,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError


@register_encoding
class Binary(Encoding):
    name = "binary"
    native = "binary"
    accepts = ("binary",)
    cells = (1, 2)

    @staticmethod
    def to_levels(w: torch.Tensor, k: int, w_max: torch.Tensor | float = 1.0) -> torch.Tensor:
        import torch

        pos = (w > 0).to(w.dtype)
        if k == 1:
            return pos.unsqueeze(-1)
        return torch.stack([pos, 1.0 - pos], dim=-1)

    @staticmethod
    def from_levels(levels: torch.Tensor, k: int, w_max: torch.Tensor | float = 1.0,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        import torch

        if k == 1:
            return torch.where(levels[..., 0] > 0.5, 1.0, -1.0).to(levels.dtype)
        diff = levels[..., 0] - levels[..., 1]
        coin = torch.rand(diff.shape, generator=generator, dtype=levels.dtype,
                          device=levels.device) < 0.5
        tie = torch.where(coin, 1.0, -1.0).to(levels.dtype)
        return torch.where(diff > 0, 1.0, torch.where(diff < 0, -1.0, tie)).to(levels.dtype)


@register_encoding
class Ternary(Encoding):
    name = "ternary"
    native = "ternary"
    accepts = ("ternary", "binary")
    cells = (2,)

    @staticmethod
    def to_levels(w: torch.Tensor, k: int, w_max: torch.Tensor | float = 1.0) -> torch.Tensor:
        import torch

        return torch.stack([(w > 0).to(w.dtype), (w < 0).to(w.dtype)], dim=-1)

    @staticmethod
    def from_levels(levels: torch.Tensor, k: int, w_max: torch.Tensor | float = 1.0,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        import torch

        return torch.sign(levels[..., 0] - levels[..., 1])


@register_encoding
class Analog(Encoding):
    name = "analog"
    native = "float"
    accepts = ("float", "binary", "ternary")
    cells = (1, 2)
    bit_errors = False

    @staticmethod
    def to_levels(w: torch.Tensor, k: int, w_max: torch.Tensor | float = 1.0) -> torch.Tensor:
        import torch

        x = (w / w_max).clamp(-1.0, 1.0)
        if k == 1:
            return ((1.0 + x) / 2).unsqueeze(-1)
        return torch.stack([x.clamp(min=0), (-x).clamp(min=0)], dim=-1)

    @staticmethod
    def from_levels(levels: torch.Tensor, k: int, w_max: torch.Tensor | float = 1.0,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        if k == 1:
            return w_max * (2 * levels[..., 0] - 1.0)
        return w_max * (levels[..., 0] - levels[..., 1])
