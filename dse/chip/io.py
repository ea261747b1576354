"""File helpers of the chip stages, for the CLI layer (the stage functions take plain values)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from dse.chip.card import ChipCard
from dse.chip.mapping import Mapping
from dse.errors import DseError

log = logging.getLogger(__name__)


def load_mapping(path: str | Path) -> Mapping:
    """Read a ``dse map`` output."""
    p = Path(path)
    if not p.is_file():
        raise DseError("mapping not found; run `dse map` first", source=str(p))
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise DseError(f"not valid JSON (line {exc.lineno}); re-run `dse map`",
                       source=str(p)) from None
    return Mapping.from_dict(data, source=str(p))


def load_device_models(paths: Iterable[str | Path]) -> dict[str, Any]:
    """Device models by card name (and by file stem), from ``--device`` card files."""
    from dse.devices import from_card, load_card

    models: dict[str, Any] = {}
    for path in paths:
        p = Path(path)
        card = load_card(p)
        model = from_card(card, source=str(p))
        models[str(card.get("name", p.stem))] = model
        models.setdefault(p.stem, model)
    return models


def load_pulses(history: str | Path) -> pd.DataFrame:
    """Training pulse counts: ``pulses.csv`` beside ``history.csv`` (per layer) or the history."""
    h = Path(history)
    if not h.is_file():
        raise DseError("history not found; point --history at a `dse train` history.csv",
                       source=str(h))
    pulses = h.with_name("pulses.csv")
    try:
        if pulses.is_file():
            table = pd.read_csv(pulses)
            if {"layer", "pulses"} <= set(table.columns):
                return table
        return pd.read_csv(h)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DseError(f"cannot read the pulse counts ({type(exc).__name__}); re-run "
                       "`dse train`", source=str(h)) from None


def chip_errors(chip: ChipCard, device_paths: Sequence[str | Path]) -> Any | None:
    """:class:`dse.chip.ber.ChipErrors` when every error source of ``chip`` has a card."""
    from dse.chip.ber import ChipErrors

    if not chip.error_sources or not device_paths:
        return None
    return ChipErrors(chip, load_device_models(device_paths))
