"""Card parameters: what a family expects of each one (:class:`ParamSpec`), the truncated
distributions of device-to-device parameters (:class:`TruncDist`) and the card entry
writer (:func:`param_entry`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from dse.errors import DseError


# ------------------------------------------------------------------------------ distributions
@dataclass(frozen=True)
class TruncDist:
    """A (truncated) distribution for device-to-device parameters, sampled by inverse CDF in torch.

    ``kind``: ``norm`` (mean, std), ``expon`` (loc, scale), ``lognorm`` (s, loc, scale; scipy's
    parametrisation) or ``uniform`` (low, high). ``low``/``high`` truncate; the sample is
    ``F⁻¹(U(F(low), F(high)))``, the same construction as the reference code's
    ``scipy.stats.<dist>.ppf(uniform.rvs(F(a), F(b)-F(a)))`` but drawn from a ``torch.Generator``.
    """

    kind: str
    args: tuple[tuple[str, float], ...]
    low: float = -math.inf
    high: float = math.inf

    ARGS: ClassVar[dict[str, tuple[str, ...]]] = {
        "norm": ("mean", "std"), "expon": ("loc", "scale"),
        "lognorm": ("s", "loc", "scale"), "uniform": ("low", "high")}

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any], where: str, source: str | None) -> TruncDist:
        kind = entry.get("distribution")
        if kind not in cls.ARGS:
            raise DseError(f"{where}.distribution: '{kind}' is not supported "
                           f"(allowed: {', '.join(cls.ARGS)})", source=source)
        vals = {}
        for a in cls.ARGS[kind]:
            v = entry.get(a)
            if not is_number(v):
                raise DseError(f"{where}.{a}: a number is required for a {kind} distribution",
                               source=source)
            vals[a] = float(v)
        low = float(entry.get("low", vals.get("low", -math.inf)))
        high = float(entry.get("high", vals.get("high", math.inf)))
        if kind in ("norm", "lognorm", "expon") and (vals.get("std", 1) <= 0 or
                                                      vals.get("scale", 1) <= 0 or
                                                      vals.get("s", 1) <= 0):
            raise DseError(f"{where}: scale parameters must be > 0", source=source)
        if not low < high:
            raise DseError(f"{where}: low ({low}) must be below high ({high})", source=source)
        dist = cls(kind, tuple(vals.items()), low, high)
        lo_c, hi_c = dist._cdf_bounds()
        if not hi_c > lo_c:
            raise DseError(f"{where}: the truncation [{low}, {high}] holds no probability mass",
                           source=source)
        return dist

    @property
    def a(self) -> dict[str, float]:
        return dict(self.args)

    # CDF / inverse CDF on float64 tensors
    def cdf(self, x: torch.Tensor) -> torch.Tensor:
        a = self.a
        if self.kind == "norm":
            return torch.special.ndtr((x - a["mean"]) / a["std"])
        if self.kind == "expon":
            z = ((x - a["loc"]) / a["scale"]).clamp(min=0.0)
            return -torch.expm1(-z)
        if self.kind == "lognorm":
            y = (x - a["loc"]).clamp(min=1e-300) / a["scale"]
            return torch.special.ndtr(torch.log(y) / a["s"])
        return ((x - a["low"]) / (a["high"] - a["low"])).clamp(0.0, 1.0)

    def ppf(self, u: torch.Tensor) -> torch.Tensor:
        a = self.a
        if self.kind == "norm":
            return a["mean"] + a["std"] * torch.special.ndtri(u)
        if self.kind == "expon":
            return a["loc"] - a["scale"] * torch.log1p(-u)
        if self.kind == "lognorm":
            return a["loc"] + a["scale"] * torch.exp(a["s"] * torch.special.ndtri(u))
        return a["low"] + u * (a["high"] - a["low"])

    def _cdf_bounds(self) -> tuple[float, float]:
        b = torch.tensor([self.low, self.high], dtype=torch.float64)
        b = torch.nan_to_num(b, neginf=-1e300, posinf=1e300)
        c = self.cdf(b)
        return float(c[0]), float(c[1])

    def sample(self, shape: Sequence[int], generator: torch.Generator,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Draw ``shape`` values (inverse CDF of a uniform on [F(low), F(high)])."""
        lo, hi = self._cdf_bounds()
        u = torch.rand(tuple(shape), generator=generator, dtype=torch.float64,
                       device=generator.device)
        x = self.ppf(lo + (hi - lo) * u)
        return x.clamp(self.low, self.high).to(dtype)

    def median(self) -> float:
        lo, hi = self._cdf_bounds()
        x = self.ppf(torch.tensor([(lo + hi) / 2], dtype=torch.float64))
        return float(x.clamp(self.low, self.high)[0])

    def to_entry(self) -> dict[str, Any]:
        out: dict[str, Any] = {"distribution": self.kind, **self.a}
        if math.isfinite(self.low) and self.kind != "uniform":
            out["low"] = self.low
        if math.isfinite(self.high) and self.kind != "uniform":
            out["high"] = self.high
        return out


# ------------------------------------------------------------------------------ parameters
@dataclass(frozen=True)
class ParamSpec:
    """What a family expects of one card parameter.

    ``unit``: the required unit string, ``"G"`` for "the card's conductance unit" (all G
    parameters of one card must share it), or ``None`` to accept any unit. ``kind``: ``scalar``,
    ``table`` (list of numbers) or ``dist`` (a :class:`TruncDist` or a scalar used for every
    device). ``default``: used when the card omits the parameter (``None`` = required);
    ``note`` is the default's provenance (``source: ...`` / ``assumption: ...``).
    """

    unit: str | None
    doc: str
    kind: str = "scalar"
    default: Any = None
    note: str = ""
    low: float | None = None
    high: float | None = None


def is_number(v: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))


def param_entry(value: Any, unit: str, *, source: str | None = None,
                assumption: str | None = None, **extra: Any) -> dict[str, Any]:
    """A card parameter entry ``{value, unit, source|assumption, ...}``."""
    entry: dict[str, Any] = {}
    if isinstance(value, TruncDist):
        entry.update(value.to_entry())
    else:
        entry["value"] = value
    entry["unit"] = unit
    if source is not None:
        entry["source"] = source
    if assumption is not None:
        entry["assumption"] = assumption
    entry.update(extra)
    return entry
