"""Inference physics of an analog device card (the card's ``inference:`` block).

A card's ``params:`` describe the device as training sees it: pulse response, cycle-to-cycle
(write) noise, device-to-device spread, and the per-update noise of the apparent weight
(``read_sigma``, aihwkit's ``write_noise_std`` semantics, used by the mixed-precision trainer).
Deploying a trained network on a chip needs other numbers, kept apart here::

    inference:
      programming_noise: {value: [c0, c1, c2], unit: uS, source: ...}
      read_noise: {value: [c0, c1, c2], unit: uS, redraw: per_inference, source: ...}
      relaxation: {...}                          # optional: dse.devices.relaxation block
      write_verify:
        tolerance: {value: 0.2, unit: uS, source: ...}
        max_iterations: {value: 20, unit: "1", source: ...}
        max_pulses: {value: 200, unit: pulse, source: ...}
      cost:
        pulse_energy: {value: 8.0, unit: pJ, source: ...}
        pulse_time: {value: 100, unit: ns, source: ...}
        read_energy: {value: 0.1, unit: pJ, source: ...}
        read_time: {value: 100, unit: ns, source: ...}

* ``programming_noise``: σ_prog(G) = Σᵢ cᵢ·(G/g_max)ⁱ (clipped at 0), the spread of one
  one-shot (open-loop) programming operation to G, after aihwkit's ``PCMLikeNoiseModel`` /
  ``ReRamWan2022NoiseModel`` polynomials. g_max is the card's ``params.g_max``.
* ``read_noise``: σ_read(G), the same polynomial form, an independent Gaussian per read;
  ``redraw``: ``per_inference`` (a fresh draw for every input, the default), ``per_mvm`` (a fresh
  draw for every vector-matrix product, i.e. per layer and input) or ``frozen`` (one draw kept
  for the whole evaluation; an explicit choice only: it is not a read noise).
* ``write_verify``: the program-and-verify loop of :mod:`dse.chip.programming` (tolerance on
  the pair difference, iteration limit, pulses per device and iteration).
* ``cost``: energy and duration of one programming pulse and of one verify read of a cell.

Conductances are in the card's conductance unit (that of ``params.g_min``/``g_max``); energies
in J/mJ/uJ/nJ/pJ/fJ, times in s/ms/us/ns. Every number carries ``source:`` or ``assumption:``.
:func:`inference_physics` turns a card into an :class:`InferencePhysics`;
:func:`validate_inference` is what :func:`dse.devices.base.validate_card` calls.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from dse.devices.relaxation import RelaxationModel, relaxation_from_entry
from dse.errors import DseError

Tensor = torch.Tensor

REDRAW = ("per_inference", "per_mvm", "frozen")
KEYS = ("programming_noise", "read_noise", "relaxation", "write_verify", "cost")
ENERGY = {"J": 1.0, "mJ": 1e-3, "uJ": 1e-6, "nJ": 1e-9, "pJ": 1e-12, "fJ": 1e-15}
TIME = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
WRITE_VERIFY = {"tolerance": "G", "max_iterations": "1", "max_pulses": "pulse"}
COST = {"pulse_energy": ENERGY, "pulse_time": TIME, "read_energy": ENERGY, "read_time": TIME}


@dataclass(frozen=True)
class Polynomial:
    """σ(G) = Σᵢ cᵢ·(G/g_ref)ⁱ, clipped at 0 (conductance units)."""

    coefficients: tuple[float, ...]
    g_ref: float

    def __call__(self, g: Tensor) -> Tensor:
        x = g / self.g_ref
        out = torch.full_like(g, self.coefficients[-1])
        for c in reversed(self.coefficients[:-1]):
            out = out * x + c
        return out.clamp_(min=0.0)


@dataclass(frozen=True)
class WriteVerify:
    """Program-and-verify settings (conductance tolerance on the pair difference)."""

    tolerance: float
    max_iterations: int
    max_pulses: int


@dataclass(frozen=True)
class PulseCost:
    """Energy (J) and duration (s) of one programming pulse and of one verify read of a cell."""

    pulse_energy: float
    pulse_time: float
    read_energy: float
    read_time: float


@dataclass(frozen=True)
class InferencePhysics:
    """The deployment physics of one analog device card (module docstring)."""

    unit: str
    g_min: float
    g_max: float
    programming_noise: Polynomial
    read_noise: Polynomial
    redraw: str
    write_verify: WriteVerify
    cost: PulseCost
    relaxation: RelaxationModel | None
    sources: Mapping[str, str]

    def program_sigma(self, g: Tensor) -> Tensor:
        return self.programming_noise(g)

    def read_sigma(self, g: Tensor) -> Tensor:
        return self.read_noise(g)

    def read(self, g: Tensor, generator: torch.Generator | None) -> Tensor:
        """``g`` read once (a fresh Gaussian per element; ``None``: noise-free)."""
        if generator is None:
            return g
        xi = torch.randn(g.shape, generator=generator, dtype=g.dtype, device=g.device)
        return g + self.read_noise(g) * xi


def _prov(entry: Mapping[str, Any]) -> str | None:
    for k in ("source", "assumption"):
        v = entry.get(k)
        if isinstance(v, str) and v.strip():
            return f"{k}: {v.strip()}"
    return None


def _entry(block: Mapping[str, Any], name: str, where: str, src: str | None) -> Mapping[str, Any]:
    e = block.get(name)
    if not isinstance(e, Mapping) or "value" not in e:
        raise DseError(f"{where}.{name}: missing (a mapping {{value, unit, source}})", source=src)
    if _prov(e) is None:
        raise DseError(f"{where}.{name}: give 'source:' or 'assumption:'", source=src)
    return e


def _number(e: Mapping[str, Any], where: str, src: str | None, positive: bool = True) -> float:
    v = e["value"]
    if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v) or \
            (positive and v <= 0):
        raise DseError(f"{where}.value: '{v}' must be a {'positive ' if positive else ''}number",
                       source=src)
    return float(v)


def _poly(block: Mapping[str, Any], name: str, unit: str, g_max: float, src: str | None
          ) -> Polynomial:
    where = f"inference.{name}"
    e = _entry(block, name, "inference", src)
    if e.get("unit") != unit:
        raise DseError(f"{where}.unit: '{e.get('unit')}' but the card's conductance unit is "
                       f"'{unit}'", source=src)
    v = e["value"]
    if not isinstance(v, list) or not v or not all(
            isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
            for x in v):
        raise DseError(f"{where}.value: expected a list of polynomial coefficients "
                       "(ascending powers of G/g_max)", source=src)
    return Polynomial(tuple(float(x) for x in v), g_max)


def _scaled(block: Mapping[str, Any], name: str, units: Mapping[str, float], where: str,
            src: str | None) -> float:
    e = _entry(block, name, where, src)
    u = e.get("unit")
    if u not in units:
        raise DseError(f"{where}.{name}.unit: '{u}' (allowed: {', '.join(units)})", source=src)
    return _number(e, f"{where}.{name}", src) * units[u]


def parse_inference(block: Any, unit: str, g_min: float, g_max: float,
                    src: str | None = None) -> InferencePhysics:
    """An :class:`InferencePhysics` from an ``inference:`` block (DseError naming the key)."""
    if not isinstance(block, Mapping):
        raise DseError("inference: expected a mapping (programming_noise, read_noise, "
                       "write_verify, cost[, relaxation])", source=src)
    unknown = sorted(set(block) - set(KEYS))
    if unknown:
        raise DseError(f"inference: unknown key(s) {', '.join(unknown)} (allowed: "
                       f"{', '.join(KEYS)})", source=src)
    if not 0 <= g_min < g_max:
        raise DseError(f"inference needs physical conductances: 0 <= g_min ({g_min}) < g_max "
                       f"({g_max}) in params (convert normalised cards, G = G_ref + κ·w)",
                       source=src)
    prog = _poly(block, "programming_noise", unit, g_max, src)
    read = _poly(block, "read_noise", unit, g_max, src)
    redraw = block["read_noise"].get("redraw", "per_inference")
    if redraw not in REDRAW:
        raise DseError(f"inference.read_noise.redraw: '{redraw}' (allowed: {', '.join(REDRAW)})",
                       source=src)
    wv = block.get("write_verify")
    if not isinstance(wv, Mapping):
        raise DseError("inference.write_verify: missing (tolerance, max_iterations, "
                       "max_pulses)", source=src)
    vals = {}
    for k, u in WRITE_VERIFY.items():
        e = _entry(wv, k, "inference.write_verify", src)
        want = unit if u == "G" else u
        if e.get("unit") != want:
            raise DseError(f"inference.write_verify.{k}.unit: '{e.get('unit')}' but '{want}' "
                           "is required", source=src)
        vals[k] = _number(e, f"inference.write_verify.{k}", src)
        if u != "G" and vals[k] != int(vals[k]):
            raise DseError(f"inference.write_verify.{k}.value: must be an integer", source=src)
    cost = block.get("cost")
    if not isinstance(cost, Mapping):
        raise DseError("inference.cost: missing (pulse_energy, pulse_time, read_energy, "
                       "read_time)", source=src)
    c = {k: _scaled(cost, k, units, "inference.cost", src) for k, units in COST.items()}
    relax = None
    if block.get("relaxation") is not None:
        relax = relaxation_from_entry(block["relaxation"], unit, "inference.relaxation", src)
    sources = {n: _prov(block[n]) or "" for n in ("programming_noise", "read_noise")}
    sources.update({f"write_verify.{k}": _prov(wv[k]) or "" for k in WRITE_VERIFY})
    sources.update({f"cost.{k}": _prov(cost[k]) or "" for k in COST})
    if relax is not None:
        sources["relaxation"] = relax.source
    return InferencePhysics(
        unit=unit, g_min=g_min, g_max=g_max, programming_noise=prog, read_noise=read,
        redraw=str(redraw),
        write_verify=WriteVerify(vals["tolerance"], int(vals["max_iterations"]),
                                 int(vals["max_pulses"])),
        cost=PulseCost(**c), relaxation=relax, sources=sources)


def inference_physics(model: Any) -> InferencePhysics:
    """The inference physics of an analog device model built from a card with ``inference:``
    (DseError when the card has none: it cannot be deployed on a chip)."""
    card = getattr(model, "card", {}) or {}
    src = getattr(model, "source", None)
    if "inference" not in card:
        raise DseError(f"device card '{card.get('name', '?')}' has no inference: block "
                       "(programming and read noise, write-verify, cost; "
                       "dse/devices/inference.py) and cannot be deployed on a chip", source=src)
    return parse_inference(card["inference"], model.unit, float(model.g_min),
                           float(model.g_max), src)


def validate_inference(card: Mapping[str, Any], model: Any, src: str | None) -> None:
    """Called by ``validate_card`` for cards with an ``inference:`` block."""
    if not hasattr(model, "g_min") or getattr(model, "kind", "") != "analog":
        raise DseError("inference: only analog (pulse) device cards have an inference block",
                       source=src)
    parse_inference(card["inference"], model.unit, float(model.g_min), float(model.g_max), src)


def polynomial_fit(g: Sequence[float], sigma: Sequence[float], g_ref: float,
                   degree: int = 2) -> list[float]:
    """Least-squares coefficients (ascending) of σ(G) = Σ cᵢ (G/g_ref)ⁱ, for card entries."""
    import numpy as np

    x = np.asarray(g, dtype=float) / g_ref
    return [float(c) for c in np.polynomial.polynomial.polyfit(x, np.asarray(sigma), degree)]
