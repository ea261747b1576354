"""Load and validate a study configuration against ``config/schema.yaml``.

The Snakefile and every ``dse`` subcommand go through :func:`check_config`, so a bad key fails
the same way everywhere: one line naming the file, the key path and what is allowed.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from dse.errors import DseError

log = logging.getLogger(__name__)

SCHEMA_PATH = Path(__file__).with_name("schema.yaml")  # symlink to config/schema.yaml


def load_yaml(path: str | Path, what: str = "file") -> Any:
    """Read a YAML (or JSON) file, turning I/O and syntax errors into one-line DseErrors."""
    p = Path(path)
    if not p.is_file():
        raise DseError(f"{what} not found; check the path", source=str(p))
    try:
        with p.open() as fh:
            return yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", exc)
        raise DseError(f"not valid YAML{where}: {problem}", source=str(p)) from None


def load_schema() -> dict[str, Any]:
    """The study schema (JSON Schema draft 2020-12)."""
    schema = load_yaml(SCHEMA_PATH, "schema")
    assert isinstance(schema, dict)
    return schema


def _key_path(path: Any) -> str:
    parts = [str(p) for p in path]
    return ".".join(parts) if parts else "(top level)"


def _allowed(error: jsonschema.ValidationError) -> str:
    """Human description of what the failing keyword allows."""
    kw, val, sch = error.validator, error.validator_value, error.schema
    if kw == "enum":
        return "allowed: " + ", ".join(json.dumps(v) for v in val)
    if kw == "additionalProperties" and val is False:
        props = sorted(sch.get("properties", {}))
        return "allowed keys: " + ", ".join(props)
    if kw == "type":
        return f"expected type: {val if isinstance(val, str) else ' or '.join(val)}"
    if kw in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bounds = []
        for k, sym in (("minimum", ">="), ("exclusiveMinimum", ">"),
                       ("maximum", "<="), ("exclusiveMaximum", "<")):
            if k in sch:
                bounds.append(f"{sym} {sch[k]}")
        return "allowed: " + " and ".join(bounds)
    if kw == "required":
        return "add the missing key"
    if kw in ("minItems", "maxItems"):
        return f"{kw}: {val}"
    if kw == "pattern" or kw == "propertyNames":
        return "names may hold letters, digits, '_', '.', '-'"
    return f"schema rule {kw}: {val}"


def format_schema_error(error: jsonschema.ValidationError) -> str:
    """One line: key path, what is wrong, what is allowed."""
    where = _key_path(error.absolute_path)
    if error.validator == "additionalProperties" and error.validator_value is False:
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        what = f"unknown key {', '.join(repr(e) for e in extra)}"
        where = _key_path([*error.absolute_path])
        return f"{where}: {what} ({_allowed(error)})"
    what = f"value {json.dumps(error.instance, default=str)[:80]} is invalid"
    if error.validator == "required":
        what = error.message
    return f"{where}: {what} ({_allowed(error)})"


def check_config(config: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """Validate ``config`` in place, fill the schema defaults, and return it.

    Uses ``snakemake.utils.validate`` (the Snakefile's validator, Draft 2020-12 with defaults)
    after a first pass with plain jsonschema whose best error becomes the one-line DseError.
    """
    if not isinstance(config, dict):
        raise DseError("the configuration must be a mapping of keys to values", source=source)
    schema = load_schema()
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        raise DseError(format_schema_error(error), source=source)
    from snakemake.utils import validate

    validate(config, str(SCHEMA_PATH), set_default=True)
    _check_references(config, source)
    return config


def _check_references(config: dict[str, Any], source: str) -> None:
    """Cross-key checks JSON Schema cannot express."""
    devices = config.get("devices", {})
    for name, exp in config.get("experiments", {}).items():
        card = exp.get("device_card")
        if card is not None and card not in devices:
            known = ", ".join(sorted(devices)) or "none defined"
            raise DseError(
                f"experiments.{name}.device_card: unknown device '{card}' (devices: {known})",
                source=source,
            )


def load_config(path: str | Path) -> dict[str, Any]:
    """Read, validate and default-fill a study configuration file."""
    data = load_yaml(path, "configuration file")
    if data is None:
        data = {}
    return check_config(data, source=str(path))


def device_card_file(config: dict[str, Any], name: str,
                     results: str | Path = "results") -> Path | None:
    """The card file of device ``name``: its ``devices:`` entry's ``card:``, the calibrate
    stage's ``{results}/calibrate/{name}.json`` for a measured device, else the shipped
    ``config/devices/{name}.yaml`` when it exists (None otherwise). One resolver for the
    Snakefile, the search and the report."""
    entry = config.get("devices", {}).get(name)
    if isinstance(entry, dict):
        if entry.get("card"):
            return Path(entry["card"])
        if entry.get("measurements"):
            return Path(results) / "calibrate" / f"{name}.json"
    shipped = Path("config") / "devices" / f"{name}.yaml"
    return shipped if shipped.is_file() else None


def write_effective_config(config: dict[str, Any], path: str | Path) -> str:
    """Write a validated config to ``path`` unless the file already holds exactly it."""
    p = Path(path)
    text = "# effective configuration written by the Snakefile (validated, defaults filled)\n"
    text += yaml.safe_dump(json.loads(json.dumps(config, default=str)), sort_keys=False)
    if not p.is_file() or p.read_text() != text:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(p)
    return str(p)


def config_hash(config: dict[str, Any]) -> str:
    """Stable short hash of a (validated) configuration, for provenance."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


@dataclass
class Experiment:
    """One named training run (a validated entry of ``experiments:``)."""

    name: str
    dataset: str = "mnist5k"
    model: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [512, 512])
    width: int = 32
    precision: str = "binary"
    ternary_threshold: float = 0.05
    activation: str = "auto"
    input: str = "real"
    bitstream_length: int = 8
    algorithm: str = "standard"
    device_card: str | None = None
    epochs: int = 5
    batch_size: int = 100
    lr: float = 0.005
    weight_decay: float = 0.0
    lr_decay: float = 1.0
    seed: int = 0
    train_ber: float = 0.0
    train_operating_point: dict[str, float] | None = None
    tasks: dict[str, Any] | None = None
    batchnorm: bool = True
    kernels: str = "eager"
    mixed_precision: dict[str, Any] = field(default_factory=dict)
    weak_reset: dict[str, Any] = field(default_factory=dict)
    metaplastic: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: dict[str, Any], name: str) -> Experiment:
        """Build from a validated config; the experiment's seed defaults to the global one."""
        exps = config.get("experiments", {})
        if name not in exps:
            known = ", ".join(sorted(exps)) or "none defined"
            raise DseError(f"unknown experiment '{name}' (experiments: {known})")
        entry = copy.deepcopy(exps[name])
        if entry.get("seed") is None:
            entry["seed"] = int(config.get("seed", 0))
        return cls(name=name, **entry)

    @classmethod
    def from_dict(cls, name: str, entry: dict[str, Any], seed: int = 0,
                  devices: dict[str, Any] | None = None) -> Experiment:
        """Build from a single (unvalidated) experiment mapping, validating it first
        (``devices`` are the configured device entries its ``device_card`` may name)."""
        config = check_config({"seed": seed, "devices": copy.deepcopy(devices or {}),
                               "experiments": {name: copy.deepcopy(entry)}})
        return cls.from_config(config, name)

    def to_dict(self) -> dict[str, Any]:
        """Plain mapping (what ``model.json`` records)."""
        from dataclasses import asdict

        return asdict(self)
