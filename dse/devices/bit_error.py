"""Binary-cell error models: the :class:`BitErrorModel` protocol (operating point -> bit error
rate, write energy, a physical sampler as the independent check) and operating-point grids."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from dse.devices.base import DeviceFamily
from dse.devices.domains import check_operating_point, parse_operating_range
from dse.devices.params import is_number
from dse.errors import DseError


class BitErrorModel(DeviceFamily):
    """A binary cell: operating point (SI units, the names in :attr:`knobs`) → bit error rate.

    ``ber(**op)`` is vectorised and broadcasts its arguments; ``write_energy(**op)`` gives J per
    bit write (``None`` where the family defines none); ``operating_points()`` is the card's
    default sweep; ``sample_errors(n, rng, **op)`` draws the underlying physical process
    (resistances, sense failures, switching events) ``n`` times, so its error rate is an
    independent check of ``ber``.
    """

    kind: ClassVar[str] = "binary"
    knobs: ClassVar[tuple[str, ...]] = ()
    optional_knobs: ClassVar[dict[str, str]] = {}  # knob -> parameter giving its default
    BER_FIT: ClassVar[tuple[str, ...]] = ()       # parameters a BER table determines

    def _op(self, op: Mapping[str, Any]) -> dict[str, np.ndarray]:
        allowed = set(self.knobs) | set(self.optional_knobs)
        unknown = sorted(set(op) - allowed)
        if unknown:
            raise DseError(f"{self.describe()}: unknown operating-point variable(s) "
                           f"{', '.join(unknown)} (knobs: {', '.join(sorted(allowed))})")
        missing = [k for k in self.knobs if k not in op]
        if missing:
            raise DseError(f"{self.describe()}: operating point needs {', '.join(missing)}")
        vals = {k: np.asarray(op[k], dtype=float) for k in self.knobs}
        for k, pname in self.optional_knobs.items():
            vals[k] = np.asarray(op.get(k, self.scalar(pname)), dtype=float)
        check_operating_point(self.describe(), vals, self.operating_range(), self.source)
        arrays = np.broadcast_arrays(*vals.values())
        return dict(zip(vals, arrays, strict=True))

    def ber(self, **op: Any) -> np.ndarray:
        raise NotImplementedError

    def write_energy(self, **op: Any) -> np.ndarray | None:
        return None

    def sample_errors(self, n: int, rng: np.random.Generator, **op: Any) -> np.ndarray:
        raise NotImplementedError

    def operating_range(self) -> dict[str, tuple[float, float]]:
        """The card's calibrated ``operating_range`` ({knob: (low, high)}; {} when absent)."""
        return parse_operating_range(self.card, self.knobs + tuple(self.optional_knobs),
                                     self.source)

    def operating_points(self) -> list[dict[str, float]]:
        ops = self.card.get("operating_points")
        if ops is None:
            return []
        return expand_operating_points(ops, self.knobs + tuple(self.optional_knobs),
                                       self.source)


def expand_operating_points(ops: Any, knobs: Sequence[str],
                            source: str | None = None) -> list[dict[str, float]]:
    """A list of ``{knob: value}`` from a list of mappings or a grid ``{knob: [values]}``."""
    if isinstance(ops, Mapping):
        names = list(ops)
        grids = [ops[k] if isinstance(ops[k], list) else [ops[k]] for k in names]
        mesh = np.meshgrid(*[np.asarray(g, dtype=float) for g in grids], indexing="ij")
        ops = [dict(zip(names, (float(m.flat[i]) for m in mesh), strict=True))
               for i in range(mesh[0].size)]
    if not isinstance(ops, list):
        raise DseError("operating_points: expected a list of mappings or a grid mapping",
                       source=source)
    out = []
    for i, op in enumerate(ops):
        if not isinstance(op, Mapping) or not op:
            raise DseError(f"operating_points[{i}]: expected a mapping knob -> value",
                           source=source)
        bad = [k for k in op if k not in knobs]
        if bad:
            raise DseError(f"operating_points[{i}]: unknown knob(s) {', '.join(bad)} "
                           f"(knobs: {', '.join(knobs)})", source=source)
        if not all(is_number(v) for v in op.values()):
            raise DseError(f"operating_points[{i}]: values must be numbers", source=source)
        out.append({k: float(v) for k, v in op.items()})
    return out
