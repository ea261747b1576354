"""Operating points and the bit error rate of a chip's weights.

A chip card names its error sources (device cards, e.g. a 2T2R RRAM cell and a PCSA); each is a
``BitErrorModel`` with ``knobs`` (``i_prog``, ``vdd``, ``i_write``, ``t_write``, ...) and
``ber(**op)``. The chip's operating point is one mapping of knob values; each source reads the
knobs it knows, the others come from the card's nominal ``errors.operating_point`` and ``vdd``
from the card's supply.

A sense source that reads each pair on its own resistance draw (``pcsa_physical``, with a
``cell`` source giving the LRS/HRS distributions) replaces the combination: its confusion
matrix per stored value (:mod:`dse.devices.pcsa_rates`) already holds the cell's ordering errors,
so the points carry that matrix (injected per stored value) and ``ber`` is its weight error rate
(ternary with 1/3 zeros), for the tables.

Combining independent sources: a stored bit read back wrong is a sign flip, and two flips cancel
(a cell written wrong and then mis-sensed reads right). With independent flip probabilities
p_1 … p_n the read bit is wrong when an odd number of them flip:

    BER = (1 − Π_i (1 − 2 p_i)) / 2          (= p_1 + p_2 − 2 p_1 p_2 for two sources)

which is ≈ Σ p_i for small rates and never exceeds 1/2. Ternary weights use the same combined
rate as their total 0↔±1 error rate (Hirtzlin et al., AICAS 2019, arXiv 1904.03652; code
Laborieux-Axel/Quantized_VGG); how a ternary sense error composes
with a cell error is not published (NOT FOUND), so this is an approximation there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dse.chip.card import ChipCard
from dse.errors import DseError


@dataclass(frozen=True)
class OperatingPoint:
    """One row of an injection sweep: knob values (empty for a direct BER) and the BER."""

    ber: float
    knobs: Mapping[str, float] = field(default_factory=dict)
    noise: bool = True  # analog chips: apply the device card's programming/read noise
    # per-stored-value read probabilities M[stored, read] (2x2 binary, 3x3 ternary) when the
    # chip's sense source models them (pcsa_physical): injected instead of ``ber``
    confusion: tuple[tuple[float, ...], ...] | None = None


def combine_ber(rates: Iterable[float | np.ndarray]) -> np.ndarray:
    """Flip probability of a bit through independent flip sources (odd number of flips)."""
    prod = np.asarray(1.0)
    for p in rates:
        prod = prod * (1.0 - 2.0 * np.asarray(p, dtype=float))
    return (1.0 - prod) / 2.0


def _model_knobs(model: Any) -> tuple[str, ...]:
    return tuple(getattr(model, "knobs", ())) + tuple(getattr(model, "optional_knobs", {}) or ())


class ChipErrors:
    """The error sources of a chip, bound to their device models.

    ``models`` maps each source's card name (``errors.sources[].card``) to a ``BitErrorModel``
    (``dse.devices.from_card(card)``).
    """

    def __init__(self, chip: ChipCard, models: Mapping[str, Any]) -> None:
        missing = [s.card for s in chip.error_sources if s.card not in models]
        if missing:
            raise DseError(f"chip '{chip.name}' needs device card(s) {', '.join(missing)} for "
                           "its error sources; pass them (dse inject --device CARD)")
        self.chip = chip
        self.sources = [(s, models[s.card]) for s in chip.error_sources]
        self._confusions: dict[tuple, np.ndarray] = {}

    @property
    def pair_reader(self) -> tuple[Any, Any] | None:
        """(sense model, cell model) when the sense source reads each pair's own resistances
        (a ``with_cell`` model such as ``pcsa_physical``) and a cell source has LRS/HRS."""
        sense = next((m for s, m in self.sources if s.role == "sense"
                      and hasattr(m, "with_cell")), None)
        cell = next((m for s, m in self.sources if s.role == "cell"
                     and hasattr(m, "lrs") and hasattr(m, "hrs")), None)
        return (sense, cell) if sense is not None and cell is not None else None

    @property
    def sense_model(self) -> Any | None:
        """The physical sense model (timing, energy per sense), or None."""
        reader = self.pair_reader
        return reader[0] if reader is not None else None

    def confusion(self, op: Mapping[str, float] | None = None) -> np.ndarray | None:
        """Confusion matrix M[stored, read] of a stored weight at ``op`` (the chip's encoding:
        2x2 binary, 3x3 ternary), or None without a pair reader. Cached per point."""
        reader = self.pair_reader
        if reader is None:
            return None
        from dse.devices.pcsa_rates import CellStats, confusion

        sense, cell = reader
        cell_op = self._knobs_for(cell, op or {})
        sense_op = self._knobs_for(sense, op or {})
        key = tuple(sorted({**cell_op, **sense_op}.items()))
        if key not in self._confusions:
            stats = CellStats.from_model(cell, cell_op.get("i_prog"),
                                         cell_op.get("time_s", 0.0))
            self._confusions[key] = np.asarray(confusion(sense, stats, self.chip.encoding,
                                                         **sense_op))
        return self._confusions[key]

    @property
    def knobs(self) -> tuple[str, ...]:
        out: list[str] = []
        for _, m in self.sources:
            out += [k for k in _model_knobs(m) if k not in out]
        return tuple(out)

    def _knobs_for(self, model: Any, op: Mapping[str, float]) -> dict[str, float]:
        nominal = self.chip.knob_values()
        vals = {}
        for k in getattr(model, "knobs", ()):
            if k in op:
                vals[k] = float(op[k])
            elif k in nominal:
                vals[k] = nominal[k]
            else:
                raise DseError(f"operating point {dict(op)} of chip '{self.chip.name}' lacks "
                               f"knob '{k}' of device card '{getattr(model, 'name', '?')}'; give "
                               f"it or add errors.operating_point.{k} to the chip card")
        for k in getattr(model, "optional_knobs", {}) or {}:
            if k in op:
                vals[k] = float(op[k])
            elif k in nominal:
                vals[k] = nominal[k]
        return vals

    def ber(self, op: Mapping[str, float] | None = None) -> float:
        """Combined bit error rate at ``op`` (missing knobs at their nominal values)."""
        op = op or {}
        unknown = sorted(set(op) - set(self.knobs) - {"vdd"})
        if unknown:
            raise DseError(f"operating point of chip '{self.chip.name}': unknown knob(s) "
                           f"{', '.join(unknown)} (knobs: {', '.join(self.knobs) or 'none'})")
        matrix = self.confusion(op)
        if matrix is not None:
            from dse.devices.pcsa_rates import error_rate

            return float(error_rate(matrix))
        rates = [float(np.asarray(m.ber(**self._knobs_for(m, op)))) for _, m in self.sources]
        return float(combine_ber(rates)) if rates else 0.0

    def point(self, op: Mapping[str, float]) -> OperatingPoint:
        """The injection point of ``op``: its BER and, with a pair reader, its matrix."""
        matrix = self.confusion(op)
        conf = None if matrix is None else tuple(tuple(float(v) for v in r) for r in matrix)
        return OperatingPoint(ber=self.ber(op), knobs=dict(op), confusion=conf)

    def write_energy_pj(self, op: Mapping[str, float] | None = None) -> float | None:
        """Energy of one cell write pulse (pJ) from the ``cell`` source, or None.

        ``write_energy`` of a binary-cell model is J per bit write; a model with
        ``DEVICES_PER_BIT`` devices per bit (2T2R: 2) writes that many cells.
        """
        for src, m in self.sources:
            if src.role != "cell":
                continue
            e = m.write_energy(**self._knobs_for(m, op or {}))
            if e is None:
                continue
            per_bit = int(getattr(m, "DEVICES_PER_BIT", 1))
            return float(np.asarray(e)) / per_bit * 1e12
        return None

    def default_sweep(self) -> list[dict[str, float]]:
        """The nominal point, then each source's default sweep with the other knobs nominal."""
        nominal = {k: v for k, v in self.chip.knob_values().items()
                   if k in self.knobs or k == "vdd"}
        ops = [dict(nominal)]
        for _, m in self.sources:
            for op in m.operating_points():
                point = {**nominal, **op}
                if point not in ops:
                    ops.append(point)
        return ops

    def points(self, ops: Sequence[Mapping[str, float]]) -> list[OperatingPoint]:
        return [self.point(op) for op in ops]

    @property
    def relaxing(self) -> tuple[str, ...]:
        """The knobs of the sources whose cells relax after programming (their card has a
        ``relaxation:`` block, dse/devices/cell_relaxation.py): they read at ``time_s``."""
        out: list[str] = []
        for _, m in self.sources:
            if getattr(m, "relaxation", None) is not None:
                out += [k for k in _model_knobs(m) if k not in out]
        return tuple(out)

    def over_time(self, ops: Sequence[Mapping[str, float]],
                  times: Sequence[float]) -> list[dict[str, float]]:
        """``ops`` plus the chip's nominal point read at each of ``times`` (s after programming)
        when its cells relax; every point of ``ops`` reads right after programming
        (``time_s`` 0) unless it names ``time_s`` itself. Other points over time: list them
        with ``time_s`` (e.g. a weakly programmed cell, benchmarks/binary_relaxation.md)."""
        if not self.relaxing or not times:
            return [dict(op) for op in ops]
        nominal = {k: v for k, v in self.chip.knob_values().items()
                   if k in self.knobs or k == "vdd"}
        out = [{"time_s": 0.0, **op} for op in ops]  # explicit: read right after programming
        out += [{**nominal, "time_s": float(t)} for t in times if float(t) > 0]
        return out


def points_from_ber(bers: Iterable[float]) -> list[OperatingPoint]:
    """Direct BER list -> operating points without knobs."""
    out = []
    for b in bers:
        b = float(b)
        if not 0.0 <= b <= 0.5:
            raise DseError(f"inject.ber: {b} is not a bit error rate in [0, 0.5]")
        out.append(OperatingPoint(ber=b))
    return out


def points_for_chip(encoding: str, ber: Sequence[float],
                    operating_points: str | Sequence[Mapping[str, float]] | None = None,
                    errors: ChipErrors | None = None, chip: str = "",
                    times: Sequence[float] = ()) -> list[OperatingPoint]:
    """The injection sweep of a chip with weight ``encoding``.

    Encodings with bit errors get the direct ``ber`` list plus the chip's operating points
    (``"card"`` = nominal + the device cards' default sweeps; a list = those knob values), whose
    BER comes from ``errors``; with cells that relax (:attr:`ChipErrors.relaxing`), the nominal
    point also at each of ``times`` (:meth:`ChipErrors.over_time`). Analog chips get two
    points: without and with device noise.
    """
    from dse.chip.encoding import ENCODINGS

    if not ENCODINGS[encoding].bit_errors:
        return [OperatingPoint(ber=0.0, noise=False), OperatingPoint(ber=0.0, noise=True)]
    pts = points_from_ber(ber)
    if operating_points is not None:
        if errors is None:
            raise DseError(f"inject.operating_points.{chip}: the BER of an operating point "
                           "comes from the chip's device cards; pass the chip card (--chip) "
                           "and its device cards (--device)")
        ops = errors.default_sweep() if operating_points == "card" else list(operating_points)
        pts += errors.points(errors.over_time(ops, times))
    return pts
