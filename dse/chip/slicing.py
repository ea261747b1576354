"""Bit slicing: N-bit fixed-point weights stored over several b-bit cells (issue 14).

A chip card with ``cell.weight_bits`` N and ``cell.bits_per_cell`` b stores each weight as an
integer code q = round(w / w_max · Q), Q = 2^(N−1) − 1 (symmetric, |q| ≤ Q; w_max = max |w| of
the layer), i.e. on the grid Δ = w_max / Q. The code is written in base 2^b, one digit per cell
(least significant slice first), a digit d ∈ {0 .. 2^b − 1} programmed as the cell level
l = d / (2^b − 1) ∈ [0, 1] (the device's ``levels_per_cell`` = 2^b conductance levels). The
column results of the slices are combined by shift-and-add: Σ_j 2^(b·j) (2^b − 1) · l_j.

Signing (``cell.signing``), as NeuroSim and CrossSim map signed weights:

* ``differential``: |q| (N−1 bits) in S = ⌈(N−1)/b⌉ slices on a positive and a negative column
  each (q⁺ = max(q, 0), q⁻ = max(−q, 0)): 2·S cells per weight, y = Δ·(Σ⁺ − Σ⁻) (CrossSim
  ``mapping.weights`` with ``BALANCED`` cores and ``Nslices``; sandialabs/cross-sim).
* ``offset``: q + 2^(N−1) ∈ [1, 2^N − 1] (N bits) in S = ⌈N/b⌉ slices, one column each, and
  one reference column per array carrying Σ x, subtracted after the shift-add: y = Δ·(Σ −
  2^(N−1)·Σx) (DNN+NeuroSim's dummy column; ``Param.cpp`` ``dumcolshared``).

Cells of one weight are the last dimension of a level tensor, ordered (sign, slice):
index s·S + j (s = 0 positive / offset, s = 1 negative). Vectorised; no loop over weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

SIGNINGS = {"differential": 2, "offset": 1}  # columns per slice


@dataclass(frozen=True)
class Slicing:
    """How N-bit weights sit in b-bit cells (see the module docstring)."""

    weight_bits: int
    bits_per_cell: int
    signing: str = "differential"

    @property
    def slices(self) -> int:
        """Cells per weight and sign, S."""
        stored = self.weight_bits - 1 if self.signing == "differential" else self.weight_bits
        return math.ceil(stored / self.bits_per_cell)

    @property
    def cells(self) -> int:
        """Cells (physical columns) per weight."""
        return self.slices * SIGNINGS[self.signing]

    @property
    def q_max(self) -> int:
        """Largest code magnitude Q = 2^(N−1) − 1."""
        return 2 ** (self.weight_bits - 1) - 1

    @property
    def offset(self) -> int:
        """Code offset of ``offset`` signing, 2^(N−1) (0 for differential)."""
        return 2 ** (self.weight_bits - 1) if self.signing == "offset" else 0

    def problems(self) -> list[tuple[str, str]]:
        """(card key, what is wrong) for impossible values."""
        out = []
        if self.signing not in SIGNINGS:
            out.append(("cell.signing", f"unknown signing '{self.signing}' (known: "
                        f"{', '.join(SIGNINGS)})"))
        if self.weight_bits < 2:
            out.append(("cell.weight_bits", f"{self.weight_bits} bit cannot hold a signed "
                        "weight; use >= 2"))
        return out

    def place_values(self, like: torch.Tensor) -> torch.Tensor:
        """(S,) weight of each slice's level in code units: 2^(b·j) · (2^b − 1)."""
        import torch

        b = self.bits_per_cell
        j = torch.arange(self.slices, dtype=like.dtype, device=like.device)
        return torch.exp2(b * j) * (2 ** b - 1)

    def codes(self, w: torch.Tensor, w_max: torch.Tensor | float) -> torch.Tensor:
        """Integer codes q (as floats), |q| ≤ Q."""
        q = self.q_max
        return (w / w_max * q).round().clamp(-q, q)

    def quantize(self, w: torch.Tensor, w_max: torch.Tensor | float) -> torch.Tensor:
        """The weights the chip stores: q·Δ."""
        return self.codes(w, w_max) * (w_max / self.q_max)

    def _digits(self, u: torch.Tensor) -> torch.Tensor:
        """Base-2^b digits of non-negative integer codes u, (..., S), least significant first."""
        import torch

        base = 2 ** self.bits_per_cell
        div = torch.exp2(self.bits_per_cell * torch.arange(self.slices, dtype=u.dtype,
                                                           device=u.device))
        return torch.remainder(torch.floor(u.unsqueeze(-1) / div), base)

    def to_levels(self, w: torch.Tensor, w_max: torch.Tensor | float) -> torch.Tensor:
        """Cell levels in [0, 1], (..., cells)."""
        import torch

        q = self.codes(w, w_max)
        top = 2 ** self.bits_per_cell - 1
        if self.signing == "offset":
            return self._digits(q + self.offset) / top
        return torch.cat([self._digits(q.clamp(min=0)), self._digits((-q).clamp(min=0))],
                         dim=-1) / top

    def combine(self, per_slice: torch.Tensor, dim: int = -1) -> torch.Tensor:
        """Shift-and-add of per-slice values (along ``dim``, ordered as the cells) in code units:
        Σ_j place_j · (v⁺_j − v⁻_j) (differential) or Σ_j place_j · v_j (offset, before the
        reference is subtracted)."""
        v = per_slice.movedim(dim, -1)
        place = self.place_values(v)
        if self.signing == "offset":
            return v @ place
        s = self.slices
        return v[..., :s] @ place - v[..., s:] @ place

    def from_levels(self, levels: torch.Tensor, w_max: torch.Tensor | float) -> torch.Tensor:
        """Weights read back from (possibly noisy) cell levels, (..., cells) -> (...)."""
        code = self.combine(levels) - self.offset
        return code * (w_max / self.q_max)


def mapping_slicing(mapping: object) -> Slicing | None:
    """The :class:`Slicing` a mapping records (``extra["slicing"]``), None without."""
    d = getattr(mapping, "extra", {}).get("slicing")
    if not d:
        return None
    return Slicing(int(d["weight_bits"]), int(d["bits_per_cell"]), str(d["signing"]))
