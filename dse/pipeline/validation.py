"""The validation recipe: dse's chip-level figures beside published references
(:mod:`dse.chip.validation`) and the seeds' claims (:mod:`dse.chip.claims`), from the card files."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from dse.errors import DseError
from dse.pipeline.artifacts import load_chip, load_device_models

log = logging.getLogger(__name__)


def validate(chips_dir: str | Path, devices_dir: str | Path | None = None) -> pd.DataFrame:
    """The validation suite (:mod:`dse.chip.validation`): every case's chip card from
    ``chips_dir``, dse beside the published references, one row per reference; then the seeds'
    claims (:mod:`dse.chip.claims`) when their chip and device cards are there (``devices_dir``,
    default ``chips_dir/../devices``)."""
    from dse.chip.claims import claims
    from dse.chip.validation import CASES, compare

    chips_dir = Path(chips_dir)
    frames = []
    for case in CASES:
        path = chips_dir / f"{case.chip}.yaml"
        if not path.exists():
            raise DseError(f"validation case '{case.name}' needs the chip card {path.name}; "
                           "point --chips at config/chips", source=str(chips_dir))
        frames.append(compare(case, load_chip(path)))
    devices = Path(devices_dir) if devices_dir is not None else chips_dir.parent / "devices"
    chip_files = [chips_dir / f"{n}.yaml" for n in ("stt-mram-binary", "rram-2t2r-pcsa-130nm")]
    dev_files = [devices / f"{n}.yaml"
                 for n in ("stt-mram", "hfo2-2t2r", "pcsa-130nm", "pcsa-130nm-physical")]
    if all(f.exists() for f in chip_files + dev_files):
        chips = {c.name: c for c in map(load_chip, chip_files)}
        frames.append(claims(chips, load_device_models(dev_files)))
    else:
        log.info("validation: seed claims left out (their chip/device cards are not in %s, %s)",
                 chips_dir, devices)
    return pd.concat(frames, ignore_index=True)
