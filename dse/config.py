"""Load and validate a study configuration against ``config/schema.yaml``.

The Snakefile and every ``dse`` subcommand go through :func:`check_config`, so a bad key fails
the same way everywhere: one line naming the file, the key path and what is allowed.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from dse.errors import DseError

log = logging.getLogger(__name__)

SCHEMA_PATH = Path(__file__).with_name("schema.yaml")  # package data; config/schema.yaml links here


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and reads YAML 1.2 floats (``5e-3``, ``1e5``):
    YAML 1.1 (PyYAML) needs a dot in the mantissa and a signed exponent, and would hand the
    schema the string '5e-3'."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base constructor reports it
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}' (first on line {first}; remove one)",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


_FLOAT_12 = re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$")
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def _decode(raw: bytes, source: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DseError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}, column "
                       f"{col}); save the file as UTF-8", source=source) from None


class _DuplicateJsonKey(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateJsonKey(k)
        out[k] = v
    return out


def _load_json(text: str, source: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise DseError(f"not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}",
                       source=source) from None
    except _DuplicateJsonKey as exc:
        try:  # JSON is YAML: the YAML loader finds the line of the second key
            yaml.load(text, Loader=_Loader)
        except yaml.YAMLError as yexc:
            mark = getattr(yexc, "problem_mark", None)
            if mark is not None:
                raise DseError(f"duplicate key '{exc}' on line {mark.line + 1}; remove one",
                               source=source) from None
        raise DseError(f"duplicate key '{exc}' in one JSON object; remove one",
                       source=source) from None


def load_yaml(path: str | Path, what: str = "file") -> Any:
    """Read a YAML (or, for ``.json``, JSON) file, turning I/O, encoding and syntax errors and
    duplicate keys into one-line DseErrors with the line number."""
    p = Path(path)
    if not p.is_file():
        raise DseError(f"{what} not found; check the path", source=str(p))
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise DseError(f"cannot read {what} ({exc.strerror or exc})", source=str(p)) from None
    text = _decode(raw, str(p))
    if p.suffix.lower() == ".json":
        return _load_json(text, str(p))
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or exc
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
    hint = ""
    expected = error.validator_value if error.validator == "type" else ()
    if (isinstance(error.instance, str) and _FLOAT_12.match(error.instance.strip())
            and ("number" in expected or "integer" in expected)):
        hint = (f"; YAML 1.1 (Snakemake's reader) reads {error.instance} as a string: write "
                "the mantissa with a dot and the exponent with a sign, e.g. 5.0e-3")
    return f"{where}: {what} ({_allowed(error)}{hint})"


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
    for name, entry in devices.items():
        if isinstance(entry, dict) and entry.get("reset_measurements") and \
                entry.get("direction", "auto") != "auto":
            raise DseError(f"devices.{name}.direction: '{entry['direction']}' with "
                           "reset_measurements (the SET file is up, the RESET file down); drop "
                           "direction", source=source)
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
    binarize: str = "whole"
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
