"""Parse a chip card mapping (what a card file holds) into a validated :class:`ChipCard`.

Every number is ``{value, unit, source | assumption}``; units are converted to the card's fixed
units (fJ, pJ, F², V, s, Ω, K). The card layout is documented in :mod:`dse.chip.card`; the
sensing scheme's numbers are declared by the scheme (:mod:`dse.chip.sensing`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from dse.chip.adc import UNIT_TRANSISTOR_F2
from dse.chip.card import ChipCard, ErrorSource
from dse.chip.card_fields import INTEGER_FIELDS, NUMBER_FIELDS, SECTIONS, STRING_FIELDS, TOP_KEYS
from dse.chip.sensing import SENSING, Sensing
from dse.chip.technology import DEFAULTS, default_energy_fj
from dse.errors import DseError

_FIELD = {f: spec[0] for f, spec in NUMBER_FIELDS.items()}

# unit symbol -> (dimension, factor to SI)
_UNITS: dict[str, tuple[str, float]] = {
    "J": ("energy", 1.0), "nJ": ("energy", 1e-9), "pJ": ("energy", 1e-12),
    "fJ": ("energy", 1e-15), "aJ": ("energy", 1e-18),
    "V": ("voltage", 1.0), "mV": ("voltage", 1e-3),
    "s": ("time", 1.0), "ms": ("time", 1e-3), "us": ("time", 1e-6), "ns": ("time", 1e-9),
    "ps": ("time", 1e-12),
    "ohm": ("resistance", 1.0), "kohm": ("resistance", 1e3), "Mohm": ("resistance", 1e6),
    "A": ("current", 1.0), "mA": ("current", 1e-3), "uA": ("current", 1e-6),
    "nA": ("current", 1e-9),
    "m": ("length", 1.0), "um": ("length", 1e-6), "nm": ("length", 1e-9),
    "K": ("temperature", 1.0),
    "1": ("count", 1.0), "F": ("feature", 1.0),
    "F2": ("area", math.nan), "um2": ("area", math.nan), "mm2": ("area", math.nan),
    "transistors": ("area", math.nan),
    "W": ("power", 1.0), "Hz": ("frequency", 1.0), "MHz": ("frequency", 1e6),
    "GHz": ("frequency", 1e9),
}

def _number(entry: Any, path: str, dim: str, factor: float, node_nm: float | None,
            sources: dict[str, str], key: str, src: str) -> float:
    if not isinstance(entry, Mapping):
        raise DseError(f"{path}: write numbers as {{value: ..., unit: ..., source: ...}} "
                       f"(got {entry!r})", source=src)
    extra = set(entry) - {"value", "unit", "source", "assumption", "note"}
    if extra:
        raise DseError(f"{path}: unknown key {', '.join(sorted(map(repr, extra)))} (allowed "
                       "keys: value, unit, source, assumption, note)", source=src)
    if "value" not in entry:
        raise DseError(f"{path}: missing 'value'", source=src)
    value = entry["value"]
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise DseError(f"{path}.value: {value!r} is not a finite number", source=src)
    prov = [f"{k}: {entry[k]}" for k in ("source", "assumption") if entry.get(k)]
    if not prov:
        raise DseError(f"{path}: every number needs a 'source:' (paper + table/figure, or a "
                       "repository file) or an 'assumption:' saying why", source=src)
    sources[key] = "; ".join(prov)
    unit = str(entry.get("unit", "1"))
    if unit not in _UNITS:
        raise DseError(f"{path}.unit: unknown unit '{unit}' (known: "
                       f"{', '.join(u for u, (d, _) in _UNITS.items() if d == dim)})", source=src)
    udim, ufactor = _UNITS[unit]
    if udim != dim:
        allowed = ", ".join(u for u, (d, _) in _UNITS.items() if d == dim)
        raise DseError(f"{path}.unit: '{unit}' is not a unit of {dim} (use {allowed})",
                       source=src)
    if dim == "area":
        if unit == "F2":
            return float(value)
        if unit == "transistors":
            return float(value) * UNIT_TRANSISTOR_F2
        um2 = float(value) * (1e6 if unit == "mm2" else 1.0)
        assert node_nm is not None
        return um2 / (node_nm * 1e-3) ** 2
    return float(value) * ufactor / factor


def _get(d: Mapping[str, Any], path: str) -> Any:
    cur: Any = d
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _numbers(data: Mapping[str, Any], table: Mapping[str, tuple[str, str, float, bool]],
             integers: tuple[str, ...], prefix: str, node_nm: float | None,
             sources: dict[str, str], src: str) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    for fld, (path, dim, factor, required) in table.items():
        full = f"{prefix}{path}"
        entry = _get(data, full)
        if entry is None:
            if required:
                raise DseError(f"{full}: missing (add {{value: ..., unit: ..., source: ...}})",
                               source=src)
            continue
        v = _number(entry, full, dim, factor, node_nm, sources, fld, src)
        if fld in integers:
            if v != int(v):
                raise DseError(f"{full}.value: {v!r} must be a whole number", source=src)
            v = int(v)
        kw[fld] = v
    return kw


def _strings(data: Mapping[str, Any], table: Mapping[str, tuple[str, bool]], prefix: str,
             src: str) -> dict[str, str]:
    kw = {}
    for fld, (path, required) in table.items():
        v = _get(data, f"{prefix}{path}")
        if v is None:
            if required:
                raise DseError(f"{prefix}{path}: missing", source=src)
            continue
        if not isinstance(v, str):
            raise DseError(f"{prefix}{path}: must be a string (got {v!r})", source=src)
        kw[fld] = v
    return kw


def _sensing(data: Mapping[str, Any], node_nm: float | None, sources: dict[str, str],
             src: str) -> Sensing:
    body = data.get("sensing")
    if not isinstance(body, Mapping) or "kind" not in body:
        raise DseError(f"sensing.kind: missing (known: {', '.join(sorted(SENSING))})",
                       source=src)
    kind = body["kind"]
    if kind not in SENSING:
        raise DseError(f"sensing.kind: unknown sensing kind '{kind}' (known: "
                       f"{', '.join(sorted(SENSING))})", source=src)
    scheme = SENSING[kind]
    keys = {spec[0] for spec in scheme.FIELDS.values()} | {
        spec[0] for spec in scheme.STRINGS.values()} | {"kind"}
    bad = set(body) - keys
    if bad:
        raise DseError(f"sensing: unknown key {', '.join(sorted(map(repr, bad)))} for sensing "
                       f"'{kind}' (allowed keys: {', '.join(sorted(keys))})", source=src)
    kw = _numbers(data, scheme.FIELDS, scheme.INTEGERS, "sensing.", node_nm, sources, src)
    kw.update(_strings(data, scheme.STRINGS, "sensing.", src))
    return scheme(**kw)


def _errors(errs: Mapping[str, Any], node_nm: float | None, sources: dict[str, str],
            src: str) -> tuple[tuple[ErrorSource, ...], dict[str, float]]:
    sources_list = errs.get("sources") or []
    if not isinstance(sources_list, list):
        raise DseError("errors.sources: must be a list of {card: NAME, role: cell|sense}",
                       source=src)
    err_sources = []
    for i, s in enumerate(sources_list):
        if not isinstance(s, Mapping) or not isinstance(s.get("card"), str) \
                or set(s) - {"card", "role"}:
            raise DseError(f"errors.sources[{i}]: write {{card: NAME, role: cell|sense}} "
                           f"(got {s!r})", source=src)
        err_sources.append(ErrorSource(card=s["card"], role=str(s.get("role", "cell"))))
    op: dict[str, float] = {}
    for knob, entry in (errs.get("operating_point") or {}).items():
        if not isinstance(entry, Mapping):
            raise DseError(f"errors.operating_point.{knob}: write {{value, unit, source}}",
                           source=src)
        unit = str(entry.get("unit", "1"))
        dim = _UNITS.get(unit, ("count", 1.0))[0]
        op[str(knob)] = _number(entry, f"errors.operating_point.{knob}", dim, 1.0, node_nm,
                                sources, f"operating_point.{knob}", src)
    return tuple(err_sources), op


def chip_from_dict(data: Any, source: str = "chip card", name: str | None = None) -> ChipCard:
    """Build and validate a :class:`ChipCard` from a parsed card."""
    if not isinstance(data, Mapping):
        raise DseError("a chip card must be a mapping of keys to values", source=source)
    extra = set(data) - TOP_KEYS
    if extra:
        raise DseError(f"unknown key {', '.join(sorted(map(repr, extra)))} (allowed keys: "
                       f"{', '.join(sorted(TOP_KEYS))})", source=source)
    for sec, keys in SECTIONS.items():
        body = data.get(sec)
        if body is None:
            continue
        if not isinstance(body, Mapping):
            raise DseError(f"{sec}: must be a mapping (got {body!r})", source=source)
        bad = set(body) - keys
        if bad:
            raise DseError(f"{sec}: unknown key {', '.join(sorted(map(repr, bad)))} (allowed "
                           f"keys: {', '.join(sorted(keys))})", source=source)
    sources: dict[str, str] = {}
    node_entry = _get(data, "technology.node")
    node_nm = None
    if node_entry is not None:
        node_nm = _number(node_entry, "technology.node", "length", 1e-9, None, sources,
                          "node_nm", source)
    kw = _numbers(data, NUMBER_FIELDS, INTEGER_FIELDS, "", node_nm, sources, source)
    kw.update(_strings(data, STRING_FIELDS, "", source))
    for fld in DEFAULTS:  # the card names its node and inherits the technology defaults
        if fld not in kw and "node_nm" in kw and "supply_v" in kw:
            try:
                kw[fld], sources[fld] = default_energy_fj(
                    fld, kw["node_nm"], kw.get("supply_ref_v", kw["supply_v"]))
            except DseError as exc:
                raise DseError(f"{_FIELD[fld]}: missing, and no default: {exc}",
                               source=source) from None
    sensing = _sensing(data, node_nm, sources, source)
    err_sources, op = _errors(data.get("errors") or {}, node_nm, sources, source)
    card_name = data.get("name", name)
    if not isinstance(card_name, str) or not card_name:
        raise DseError("name: missing (give the chip a name)", source=source)
    return ChipCard(name=card_name, description=str(data.get("description", "")).strip(),
                    source=str(data.get("source", "")).strip(), sensing=sensing,
                    error_sources=err_sources, operating_point=op, sources=sources,
                    origin=source, **kw)
