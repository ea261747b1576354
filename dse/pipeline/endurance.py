"""Endurance data of the devices of a study: the device cards' ``endurance:`` blocks
(:mod:`dse.devices.endurance`), overridden by the config's ``endurance:`` file when it names one."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from dse.config import load_yaml
from dse.pipeline.artifacts import load_card
from dse.pipeline.layout import Layout


def card_endurance(config: Mapping[str, Any], layout: Layout,
                   names: Iterable[str]) -> dict[str, Any]:
    """Endurance of the device cards ``names`` (their ``endurance:`` blocks; device -> regime ->
    Regime), updated by the config's ``endurance:`` file when it names one."""
    from dse.devices.endurance import parse_endurance

    out: dict[str, Any] = {}
    for name in sorted(set(names)):
        path = layout.device_card_file(dict(config), name)
        if path is None or not Path(path).is_file() or Path(path).suffix == ".json":
            continue  # calibrated (JSON) cards carry no endurance
        card = load_card(path)
        if card.get("endurance"):
            out[name] = parse_endurance({name: card["endurance"]}, str(path))[name]
    override = layout.endurance_file(dict(config))
    if override is not None:
        out.update(load_endurance(override))
    return out


def load_endurance(path: str | Path) -> dict[str, Any]:
    """Read the endurance data (device -> regime -> cycles; :mod:`dse.devices.endurance`)."""
    from dse.devices.endurance import parse_endurance

    p = Path(path)
    return parse_endurance(load_yaml(p, "endurance file"), source=str(p))
