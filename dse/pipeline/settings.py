"""Typed settings the recipes take, built once from the validated config."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dse.chip.deploy import DeploySettings
from dse.chip.inject import StuckAt


@dataclass(frozen=True)
class InjectSettings:
    """How the inject stage measures one (experiment, chip) pair (``config["inject"]``).

    ``operating_points``: the chip's entry of ``inject.operating_points`` ("card", a list of
    knob mappings, or None); ``seed``: the fault maps' seed (``inject.seed``, default the
    global seed; a co-design trial uses its own, :func:`dse.seeds.trial_seed`).
    """

    repeats: int = 10
    batch: int = 25
    seed: int = 0
    ber: tuple[float, ...] = (0.0, 1.0e-4, 1.0e-3, 1.0e-2, 5.0e-2)
    operating_points: str | tuple[dict[str, float], ...] | None = None
    stuck_at: StuckAt = field(default_factory=StuckAt)
    analog_read_noise: bool = True
    max_images: int | None = None
    deploy: DeploySettings = field(default_factory=DeploySettings)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], chip: str | None = None,
                    **overrides: Any) -> InjectSettings:
        """The settings of ``config["inject"]`` for ``chip`` (its operating points); keyword
        overrides (None = keep) replace single fields, e.g. a CLI ``--repeats``."""
        inj = config["inject"]
        ops = inj["operating_points"].get(chip) if chip is not None else None
        if isinstance(ops, list):
            ops = tuple(dict(op) for op in ops)
        sa = inj.get("stuck_at") or {}
        settings = cls(
            repeats=int(inj["repeats"]), batch=int(inj["batch"]),
            seed=int(inj["seed"] if inj["seed"] is not None else config["seed"]),
            ber=tuple(float(b) for b in inj["ber"]), operating_points=ops,
            stuck_at=StuckAt(float(sa.get("sa0", 0.0)), float(sa.get("sa1", 0.0))),
            analog_read_noise=bool(inj["analog_read_noise"]),
            max_images=inj["max_images"],
            deploy=DeploySettings(
                devices=tuple(inj.get("devices", ("trained", "fresh"))),
                programming=str(inj.get("programming", "write_verify")),
                times=tuple(float(t) for t in inj.get("times", ())),
                compensation=bool(inj.get("compensation", True))))
        return settings.replace(**{k: v for k, v in overrides.items() if v is not None})

    def replace(self, **changes: Any) -> InjectSettings:
        if "ber" in changes:
            changes["ber"] = tuple(float(b) for b in changes["ber"])
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["ber"] = list(self.ber)
        d["deploy"] = {k: list(v) if isinstance(v, tuple) else v
                       for k, v in d["deploy"].items()}
        return d
