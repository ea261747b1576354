"""Device cards: :func:`validate_card` checks a parsed card's shape and provenance,
:func:`from_card` builds the model of its registered family."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dse.devices.base import CARD_KEYS, DeviceModel, family_class
from dse.devices.bit_error import BitErrorModel
from dse.errors import DseError


def validate_card(card: Any, source: str | None = None) -> dict[str, Any]:
    """Check a card's shape and provenance and build its model once; returns the card."""
    if not isinstance(card, Mapping):
        raise DseError("a device card must be a mapping (name, family, params, ...)",
                       source=source)
    unknown = sorted(set(card) - set(CARD_KEYS))
    if unknown:
        raise DseError(f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(CARD_KEYS)})",
                       source=source)
    for key in ("name", "family"):
        if not isinstance(card.get(key), str) or not card.get(key):
            raise DseError(f"'{key}' is required (a non-empty string)", source=source)
    if not isinstance(card.get("source"), str):
        raise DseError("'source' is required: where the card's numbers come from", source=source)
    cls = family_class(card["family"], source)
    params = card.get("params")
    if not isinstance(params, Mapping):
        raise DseError("'params' is required: a mapping name -> {value, unit, source}",
                       source=source)
    for name, entry in params.items():
        if isinstance(entry, Mapping):
            prov = [entry.get(k) for k in ("source", "assumption")]
            if not any(isinstance(p, str) and p.strip() for p in prov):
                raise DseError(f"params.{name}: give 'source:' (paper + table/figure/equation, "
                               "or repository + file) or 'assumption:' (why this number)",
                               source=source)
    flags = card.get("imperfections") or {}
    if not isinstance(flags, Mapping):
        raise DseError("imperfections: expected a mapping name -> true/false", source=source)
    for k, v in flags.items():
        if k not in cls.IMPERFECTIONS:
            raise DseError(f"imperfections.{k}: not an imperfection of family {cls.family} "
                           f"(allowed: {', '.join(cls.IMPERFECTIONS) or 'none'})", source=source)
        if not isinstance(v, bool):
            raise DseError(f"imperfections.{k}: expected true or false", source=source)
    model = cls(card, source=source)
    if "endurance" in card:  # cycles to failure per programming regime (dse/devices/endurance.py)
        from dse.devices.endurance import parse_endurance

        parse_endurance({"endurance": card["endurance"]}, source=source or card["name"])
    if "inference" in card:  # deployment physics of analog cards (dse/devices/inference.py)
        from dse.devices.inference import validate_inference

        validate_inference(card, model, source)
    if "relaxation" in card:  # binary RRAM cells over time (dse/devices/cell_relaxation.py)
        if not hasattr(model, "laws"):
            raise DseError(f"relaxation: only binary RRAM cells (rram_1t1r, rram_2t2r) have a "
                           f"top-level relaxation block; analog cards put it under inference:, "
                           f"family {card['family']} has neither", source=source)
        _ = model.relaxation
    if isinstance(model, BitErrorModel):
        for op in model.operating_points():  # every listed point in its domain and range
            model._op(op)
    elif card.get("operating_points") is not None or card.get("operating_range") is not None:
        raise DseError("operating_points/operating_range: only binary-cell families have "
                       "operating points", source=source)
    return dict(card)


def from_card(card: Mapping[str, Any], overrides: Mapping[str, Any] | None = None,
              *, source: str | None = None) -> DeviceModel | BitErrorModel:
    """A model instance of the card's registered family (``overrides``: switches / params)."""
    if not isinstance(card, Mapping) or "family" not in card:
        raise DseError("a device card needs a 'family'", source=source)
    cls = family_class(str(card["family"]), source)
    return cls(card, overrides, source=source)  # type: ignore[return-value]
