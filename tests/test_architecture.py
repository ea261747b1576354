"""The house rules as code: DESIGN.md's import contracts, file and function sizes, and a wheel
that works without the source tree (package data included)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60
LONG_REASON = "# long:"  # a function may be longer with this comment saying why, in its body


def test_import_contracts_are_kept() -> None:
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    proc = subprocess.run([exe, "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "BROKEN" not in proc.stdout


def _sources() -> list[Path]:
    return sorted((REPO / "dse").rglob("*.py"))


def test_no_file_one_cannot_read_in_one_sitting() -> None:
    long = {str(p.relative_to(REPO)): n for p in _sources()
            if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES}
    assert not long, f"files over {MAX_FILE_LINES} lines: {long}"


def test_long_functions_say_why() -> None:
    long = []
    for p in _sources():
        src = p.read_text()
        lines = src.splitlines()
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                body = lines[node.lineno - 1:node.end_lineno]
                if n > MAX_FUNCTION_LINES and not any(LONG_REASON in b for b in body):
                    long.append(f"{p.relative_to(REPO)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines without '{LONG_REASON}': {long}"


@pytest.mark.slow
def test_the_wheel_works_without_the_source_tree(tmp_path: Path) -> None:
    """Build a wheel, install it (not editable) into a fresh virtual environment whose other
    packages come from this one, and run `dse` on a config there: a package-data file missing
    from the wheel (the schema, the report template) fails here."""
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(dist)], check=True,
                   capture_output=True, text=True)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=True)
    bin_dir = env_dir / "bin"
    wheel = next(dist.glob("dse-*.whl"))
    # --ignore-installed: the editable install this environment sees would satisfy pip otherwise
    subprocess.run([bin_dir / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--ignore-installed", str(wheel)], check=True, capture_output=True, text=True)
    work = tmp_path / "work"  # no checkout around: nothing can come from the source tree
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([bin_dir / "python", "-c", "import dse; print(dse.__file__)"],
                           cwd=work, env=env, check=True, capture_output=True, text=True)
    assert str(env_dir) in where.stdout
    help_ = subprocess.run([bin_dir / "dse", "--help"], cwd=work, env=env, capture_output=True,
                           text=True)
    assert help_.returncode == 0 and "calibrate" in help_.stdout
    cfg = {"seed": 0, "device": "cpu", "experiments": {
        "t": {"dataset": "digits", "hidden": [8], "epochs": 1, "batch_size": 100}}}
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    for args in (["train", "--config", "config.yaml", "--experiment", "t",
                  "--out", "results/train/t"],
                 ["report", "--config", "config.yaml", "--out", "report.html"]):
        proc = subprocess.run([bin_dir / "dse", "-q", "--threads", "1", *args], cwd=work,
                              env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert "<html" in (work / "report.html").read_text()[:500].lower()
