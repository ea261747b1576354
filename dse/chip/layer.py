"""One weight layer as an array sees it (the unit the sensing schemes count operations of)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LayerSpec:
    """A weight layer's im2col matrix: ``rows`` = fan-in, ``cols`` = fan-out, applied at
    ``positions`` output positions per inference, with ``in_bits`` / ``out_bits`` per input /
    output element."""

    name: str
    kind: str
    precision: str
    rows: int
    cols: int
    positions: int = 1
    in_bits: int = 1
    out_bits: int = 1
