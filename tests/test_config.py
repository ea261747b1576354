"""Config validation: defaults, and one clear line for every kind of mistake."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dse.cli import main
from dse.config import Experiment, check_config, load_config
from dse.errors import DseError


def test_default_config_is_valid_and_filled(repo: Path) -> None:
    cfg = load_config(repo / "config" / "config.yaml")
    assert cfg["device"] in ("auto", "cpu", "cuda")
    for name in cfg["experiments"]:
        exp = Experiment.from_config(cfg, name)
        assert exp.epochs >= 1 and exp.precision in ("float", "binary", "ternary")


def test_defaults_are_filled() -> None:
    cfg = check_config({"experiments": {"a": {}}})
    exp = Experiment.from_config(cfg, "a")
    assert (exp.dataset, exp.model, exp.precision, exp.algorithm) == (
        "mnist5k", "mlp", "binary", "standard")
    assert exp.hidden == [512, 512] and exp.ternary_threshold == 0.05 and exp.seed == 0


@pytest.mark.parametrize(("config", "expected"), [
    ({"experiments": {"a": {"epoch": 3}}},
     "experiments.a: unknown key 'epoch' (allowed keys: "),
    ({"experiments": {"a": {"epochs": "ten"}}},
     "experiments.a.epochs: value \"ten\" is invalid (expected type: integer)"),
    ({"experiments": {"a": {"epochs": 0}}},
     "experiments.a.epochs: value 0 is invalid (allowed: >= 1)"),
    ({"experiments": {"a": {"precision": "int4"}}},
     'experiments.a.precision: value "int4" is invalid (allowed: "float", "binary", "ternary")'),
    ({"seeds": 1}, "(top level): unknown key 'seeds'"),
    ({"experiments": {"a": {"device_card": "nope"}}},
     "experiments.a.device_card: unknown device 'nope'"),
])
def test_errors_name_the_key_and_what_is_allowed(config: dict, expected: str) -> None:
    with pytest.raises(DseError) as err:
        check_config(config, source="my.yaml")
    msg = str(err.value)
    assert msg.startswith("my.yaml: ")
    assert expected in msg
    assert "\n" not in msg


def test_unknown_experiment() -> None:
    cfg = check_config({"experiments": {"a": {}}})
    with pytest.raises(DseError, match="unknown experiment 'b' \\(experiments: a\\)"):
        Experiment.from_config(cfg, "b")


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("experiments:\n  a: {epochs: 3\n")
    with pytest.raises(DseError, match="c.yaml: not valid YAML \\(line 3"):
        load_config(p)


def test_cli_prints_one_line_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"experiments": {"a": {"lr": -1}}}))
    out = tmp_path / "out"
    code = main(["-q", "train", "--config", str(cfg), "--experiment", "a", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == f"dse: {cfg}: experiments.a.lr: value -1 is invalid (allowed: > 0)"
    assert not out.exists()


def test_console_script_missing_config_exit_status(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "dse.cli", "-q", "train", "--config",
                           str(tmp_path / "none.yaml"), "--experiment", "a", "--out",
                           str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("none.yaml: configuration file not found; check the path")


def test_the_schema_names_what_the_registries_hold() -> None:
    """The names a config may give are the registered ones, in both directions: a new
    algorithm or device family registered in code must appear in the schema (and vice versa),
    and an algorithm's settings block in the schema has exactly its settings class's fields."""
    import dataclasses

    from dse.config import load_schema
    from dse.devices import REGISTRY
    from dse.train import ALGORITHMS

    schema = load_schema()
    exp = schema["$defs"]["experiment"]["properties"]
    assert set(exp["algorithm"]["enum"]) == set(ALGORITHMS)
    assert set(schema["$defs"]["device_entry"]["else"]["properties"]["family"]["enum"]) == \
        set(REGISTRY)
    for cls in ALGORITHMS.values():
        settings = getattr(cls, "settings_class", None)
        if cls.settings_block is None or settings is None:
            continue
        fields = {f.name for f in dataclasses.fields(settings)}
        assert set(exp[cls.settings_block]["properties"]) == fields, cls.name
