"""The search space of a co-design study: parameter vocabulary, objectives, constraints.

A study (``search: {name: ...}`` in the config) varies a subset of known **parameters**. Each has
a *stage*: ``train`` parameters change the trained model (and so key the training cache);
``chip`` parameters change the chip card; ``operating`` parameters set the operating point
(the bit error rate and the supply-dependent energies); ``ber`` sets the error rate directly.
Only ``train`` parameters force a new training.

Everything is checked before the first trial; a bad study fails with one line naming the key.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna

from dse.config import Experiment
from dse.errors import DseError


@dataclass(frozen=True)
class ParamKind:
    """A searchable parameter: where it applies and what values make sense."""

    stage: str  # train | chip | operating | ber
    target: str  # Experiment field, "algorithm-block.key", ChipCard field or knob name
    kind: str  # float | int | categorical
    help: str


PARAMETERS: dict[str, ParamKind] = {
    "precision": ParamKind("train", "precision", "categorical",
                           "weight precision: binary | ternary (| float on analog chips)"),
    "threshold": ParamKind("train", "mixed_precision.threshold", "float",
                           "mixed-precision update threshold epsilon (device-step units)"),
    "m": ParamKind("train", "metaplastic.m", "float", "metaplasticity strength m"),
    "train_ber": ParamKind("train", "train_ber", "float", "error-aware training bit-error rate"),
    "lr": ParamKind("train", "lr", "float", "learning rate"),
    "epochs": ParamKind("train", "epochs", "int", "training epochs"),
    "ternary_threshold": ParamKind("train", "ternary_threshold", "float",
                                   "ternarisation threshold Delta"),
    "vdd": ParamKind("operating", "vdd", "float",
                     "supply voltage (V): sense-amplifier BER and C·V² energies"),
    "t_sense": ParamKind("operating", "t_sense", "float",
                         "PCSA sense window (s) of a physical sense model (pcsa_physical)"),
    "temperature": ParamKind("operating", "temperature", "float",
                             "operating temperature (K) of a physical sense model"),
    "dvth": ParamKind("operating", "dvth", "float",
                      "global threshold-voltage shift (V, process corner) of a physical sense "
                      "model"),
    "i_prog": ParamKind("operating", "i_prog", "float", "RRAM programming current (A)"),
    "t_prog": ParamKind("operating", "t_prog", "float", "RRAM programming pulse width (s)"),
    "time_s": ParamKind("operating", "time_s", "float",
                        "time after programming (s) at which the RRAM cells are read (their "
                        "card's relaxation: block)"),
    "i_write": ParamKind("operating", "i_write", "float", "MRAM write current (A)"),
    "t_write": ParamKind("operating", "t_write", "float", "MRAM write pulse width (s)"),
    "ber": ParamKind("ber", "ber", "float", "weight bit-error rate, set directly"),
    "adc_bits": ParamKind("chip", "adc_bits", "int", "ADC resolution (analog chips)"),
    "array_rows": ParamKind("chip", "rows", "int", "array rows"),
    "array_cols": ParamKind("chip", "cols", "int", "array columns"),
}

DIRECTIONS = ("maximize", "minimize")


@dataclass(frozen=True)
class Param:
    """One configured parameter: a range or a list of choices."""

    name: str
    kind: ParamKind
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] | None = None

    def distribution(self) -> optuna.distributions.BaseDistribution:
        if self.choices is not None:
            return optuna.distributions.CategoricalDistribution(self.choices)
        assert self.low is not None and self.high is not None
        if self.kind.kind == "int":
            return optuna.distributions.IntDistribution(int(self.low), int(self.high),
                                                        log=self.log, step=int(self.step or 1))
        return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log,
                                                      step=self.step)


@dataclass(frozen=True)
class Constraint:
    """``metric >= min`` and/or ``metric <= max``; feasible iff every bound holds."""

    metric: str
    min: float | None = None
    max: float | None = None

    def violations(self, metrics: Mapping[str, float]) -> dict[str, float]:
        """Optuna constraint values by name (<= 0 is feasible), one per bound."""
        v = float(metrics[self.metric])
        out = {}
        if self.min is not None:
            out[f"{self.metric}_min"] = float(self.min) - v
        if self.max is not None:
            out[f"{self.metric}_max"] = v - float(self.max)
        return out


# study keys that say how a study runs, not what it searches: they extend or move a study
# instead of starting a new one
OPERATIONAL = ("trials", "workers", "storage", "storage_password_file", "heartbeat_interval",
               "grace_period", "max_retry")


@dataclass(frozen=True)
class StudySpec:
    """A validated ``search:`` entry."""

    name: str
    experiment: str
    chips: dict[str, str]  # precision -> chip name
    params: tuple[Param, ...]
    objectives: dict[str, str]  # metric -> maximize | minimize
    constraints: tuple[Constraint, ...] = ()
    sampler: str = "tpe"
    seed: int = 0
    trials: int = 10
    workers: int = 1
    storage: str | None = None
    repeats: int = 5
    storage_password_file: str | None = None
    heartbeat_interval: int = 60  # RDB storages (Optuna's heartbeat): see config/schema.yaml
    grace_period: int = 120
    max_retry: int = 3
    validation: float = 0.1  # fraction of the training images trials select on (0: test set)
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        return {p.name: p.distribution() for p in self.params}

    def space_hash(self) -> str:
        """Hash of everything that defines the study (not the trial count or worker count):
        a changed space starts a fresh study instead of appending to the old one."""
        keep = {k: v for k, v in self.raw.items() if k not in OPERATIONAL}
        blob = json.dumps(keep, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:10]

    @property
    def optuna_name(self) -> str:
        return f"{self.name}-{self.space_hash()}"


# metrics a trial reports: accuracy (on the validation images) from inject, energy and area from
# dse.chip.estimate.totals, latency and throughput from dse.chip.latency.throughput
METRICS = ("accuracy", "accuracy_std", "clean_accuracy", "ber", "energy_per_inference_pJ",
           "deployment_pJ", "training_pJ", "area_um2", "area_mm2", "latency_ns",
           "inferences_per_s", "tops", "tops_per_w", "tops_per_mm2")


def _err(study: str, key: str, what: str) -> DseError:
    return DseError(f"search.{study}.{key}: {what}")


def parse_param(study: str, name: str, entry: Any) -> Param:
    """One parameter entry: ``{low, high, [log], [step]}`` or ``{choices: [...]}``."""
    key = f"parameters.{name}"
    if name not in PARAMETERS:
        known = ", ".join(PARAMETERS)
        raise _err(study, key, f"unknown parameter '{name}' (known: {known})")
    kind = PARAMETERS[name]
    if not isinstance(entry, Mapping):
        raise _err(study, key, "give {low: .., high: ..} or {choices: [...]}")
    if "choices" in entry:
        choices = tuple(entry["choices"] or ())
        if not choices:
            raise _err(study, key, "empty choices; list at least one value")
        if name == "precision":
            bad = [c for c in choices if c not in ("float", "binary", "ternary")]
            if bad:
                raise _err(study, key, f"unknown precision {bad[0]!r} (float, binary, ternary)")
        if kind.stage == "operating" and all(isinstance(c, int | float) for c in choices):
            from dse.devices.domains import check_knob

            check_knob(name, list(choices), f"search.{study}.{key}")
        return Param(name, kind, choices=choices)
    if "low" not in entry or "high" not in entry:
        raise _err(study, key, "give both low and high (or choices)")
    low, high = entry["low"], entry["high"]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)):
        raise _err(study, key, f"low/high must be numbers (got {low!r}, {high!r})")
    if kind.kind == "categorical":
        raise _err(study, key, "this parameter takes choices, not a range")
    if not low < high:
        raise _err(study, key, f"empty or inverted range (low {low} >= high {high}); "
                               "use low < high")
    log = bool(entry.get("log", False))
    if log and low <= 0:
        raise _err(study, key, f"log range needs low > 0 (got {low})")
    step = entry.get("step")
    if step is not None and log:
        raise _err(study, key, "step and log cannot be combined")
    if kind.stage == "operating":  # currents, pulse widths, supplies: their physical domain
        from dse.devices.domains import check_knob

        check_knob(name, [low, high], f"search.{study}.{key}")
    return Param(name, kind, float(low), float(high), log, step)


def _study_chips(config: dict[str, Any], name: str, raw: dict[str, Any], exp: str,
                 params: tuple[Param, ...]) -> dict[str, str]:
    """precision -> chip of a study (``chip: NAME`` for every precision searched, or a
    mapping), each a configured chip."""
    chips_entry = raw.get("chip")
    chips = dict(chips_entry) if isinstance(chips_entry, Mapping) else {}
    base_precision = config["experiments"][exp].get("precision", "binary")
    precisions = next((p.choices for p in params if p.name == "precision"), (base_precision,))
    if isinstance(chips_entry, str):
        chips = {prec: chips_entry for prec in precisions}
    known_chips = config.get("chips", {})
    for prec in precisions:
        if prec not in chips:
            raise _err(name, "chip", f"no chip for precision '{prec}'; give chip: NAME or "
                                     f"chip: {{{prec}: NAME, ...}}")
    for prec, chip in chips.items():
        if chip not in known_chips:
            known = ", ".join(sorted(known_chips)) or "none defined"
            raise _err(name, f"chip.{prec}", f"unknown chip '{chip}' (chips: {known})")
    return chips


def parse_study(config: dict[str, Any], name: str) -> StudySpec:
    """Validate ``config['search'][name]`` against the experiments, chips and vocabulary."""
    studies = config.get("search", {})
    if name not in studies:
        known = ", ".join(sorted(studies)) or "none defined"
        raise DseError(f"unknown study '{name}' (search: {known})")
    raw = dict(studies[name])
    exp = raw.get("experiment")
    if exp not in config.get("experiments", {}):
        known = ", ".join(sorted(config.get("experiments", {})))
        raise _err(name, "experiment", f"unknown experiment {exp!r} (experiments: {known})")
    params = tuple(parse_param(name, k, v) for k, v in (raw.get("parameters") or {}).items())
    if not params:
        raise _err(name, "parameters", "no parameters to search; add at least one")

    chips = _study_chips(config, name, raw, exp, params)

    objectives = dict(raw.get("objectives") or {})
    if not objectives:
        raise _err(name, "objectives", "no objectives; e.g. {accuracy: maximize, "
                                       "energy_per_inference_pJ: minimize}")
    for metric, direction in objectives.items():
        if metric not in METRICS:
            raise _err(name, f"objectives.{metric}",
                       f"unknown objective (known: {', '.join(METRICS)})")
        if direction not in DIRECTIONS:
            raise _err(name, f"objectives.{metric}", f"direction {direction!r} is not "
                                                     "maximize or minimize")
    constraints = []
    for metric, bounds in (raw.get("constraints") or {}).items():
        if metric not in METRICS:
            raise _err(name, f"constraints.{metric}",
                       f"no such column to constrain (known: {', '.join(METRICS)})")
        if not isinstance(bounds, Mapping) or not ({"min", "max"} & set(bounds)):
            raise _err(name, f"constraints.{metric}", "give min: and/or max:")
        constraints.append(Constraint(metric, bounds.get("min"), bounds.get("max")))

    validation = raw.get("validation", 0.1)
    if isinstance(validation, bool) or not isinstance(validation, int | float) \
            or not 0.0 <= validation < 1.0:
        raise _err(name, "validation", f"{validation!r} is not a fraction in [0, 1) of the "
                                       "training images (0: select on the test images)")
    sampler = raw.get("sampler", "tpe")
    trials, workers = int(raw.get("trials", 10)), int(raw.get("workers", 1))
    return StudySpec(name=name, experiment=exp, chips=chips, params=params,
                     objectives=objectives, constraints=tuple(constraints), sampler=sampler,
                     seed=int(raw.get("seed", config.get("seed", 0))), trials=trials,
                     workers=workers, storage=raw.get("storage"),
                     repeats=int(raw.get("repeats", 5)),
                     storage_password_file=raw.get("storage_password_file"),
                     heartbeat_interval=int(raw.get("heartbeat_interval", 60)),
                     grace_period=int(raw.get("grace_period", 120)),
                     max_retry=int(raw.get("max_retry", 3)),
                     validation=float(validation), raw=raw)


@dataclass
class Design:
    """A trial's parameters, resolved: the experiment to train, the chip, the operating point."""

    experiment: Experiment
    chip_name: str
    chip_overrides: dict[str, Any]
    operating_point: dict[str, float]
    ber: float | None

    @property
    def trains_through_chip(self) -> bool:
        """True when the experiment trains through the read-out of this design's chip
        (``mixed_precision.chip``): the chip's overrides then change the training too."""
        mp = self.experiment.mixed_precision or {}
        return self.experiment.algorithm == "mixed_precision" and \
            mp.get("chip") == self.chip_name

    def training_key(self) -> str:
        """Hash of the training-relevant settings (the experiment minus its name, plus the
        chip overrides when it trains through the design's chip): trials that differ only in
        chip or operating-point parameters share one trained model."""
        from dse.train import training_settings

        settings = training_settings(self.experiment)
        if self.trains_through_chip and self.chip_overrides:
            settings = {**settings, "training_chip_overrides": dict(self.chip_overrides)}
        blob = json.dumps(settings, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def design_for(spec: StudySpec, config: dict[str, Any], params: Mapping[str, Any]) -> Design:
    """Apply a trial's parameter values to the study's base experiment and chip."""
    entry = copy.deepcopy(config["experiments"][spec.experiment])
    chip_overrides: dict[str, Any] = {}
    op: dict[str, float] = {}
    ber = None
    for p in spec.params:
        value = params[p.name]
        kind = p.kind
        if kind.stage == "train":
            if "." in kind.target:
                block, key = kind.target.split(".", 1)
                entry.setdefault(block, {})[key] = value
            else:
                entry[kind.target] = value
        elif kind.stage == "chip":
            chip_overrides[kind.target] = int(value) if kind.kind == "int" else value
        elif kind.stage == "operating":
            op[kind.target] = float(value)
        else:
            ber = float(value)
    if entry.get("seed") is None:
        entry["seed"] = int(config.get("seed", 0))
    exp = Experiment.from_dict(spec.experiment, entry, seed=int(entry["seed"]),
                               devices=config.get("devices"))
    chip = spec.chips[exp.precision]
    return Design(exp, chip, chip_overrides, op, ber)
