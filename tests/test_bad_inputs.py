"""Bad input through the ``dse`` command line: one ``dse:`` line naming the file and the key or
row, exit status 2, no traceback, nothing half-written (issue 18's acceptance; the measurement
files and device cards have their own suite, tests/test_bad_inputs_devices.py).

Each case builds its inputs in a fresh folder from a shared trained model, runs ``dse`` in this
process and checks the message, the status and that the output was not created.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml

from dse.cli import main

REPO = Path(__file__).resolve().parents[1]
CHIPS, DEV = REPO / "config" / "chips", REPO / "config" / "devices"
BINARY_CHIP = CHIPS / "rram-2t2r-pcsa-130nm.yaml"
TINY = {"seed": 0, "device": "cpu",
        "experiments": {"t": {"dataset": "digits", "hidden": [8], "epochs": 1}}}


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained tiny model, its mapping on the binary chip and a config (made once)."""
    root = tmp_path_factory.mktemp("made")
    (root / "config.yaml").write_text(yaml.safe_dump(TINY))
    assert main(["-q", "train", "--config", str(root / "config.yaml"), "--experiment", "t",
                 "--out", str(root / "model")]) == 0
    assert main(["-q", "map", "--model", str(root / "model"), "--chip", str(BINARY_CHIP),
                 "--out", str(root / "map.json")]) == 0
    return root


@dataclass
class Case:
    """``args`` (``{d}`` = the case folder, ``{m}`` = the made folder) after ``prepare(d, m)``;
    the line must contain every ``expect`` string; ``absent``: outputs that must not exist."""

    args: list[str]
    expect: list[str]
    prepare: Callable[[Path, Path], None] = lambda d, m: None
    absent: list[str] = field(default_factory=list)


def _write(rel: str, text: str | bytes) -> Callable[[Path, Path], None]:
    def prepare(d: Path, m: Path) -> None:
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        (p.write_bytes if isinstance(text, bytes) else p.write_text)(text)
    return prepare


def _config(cfg: dict, rel: str = "c.yaml") -> Callable[[Path, Path], None]:
    return _write(rel, yaml.safe_dump(cfg))


def _copy_model(edit: Callable[[Path], None]) -> Callable[[Path, Path], None]:
    def prepare(d: Path, m: Path) -> None:
        shutil.copytree(m / "model", d / "model")
        edit(d / "model")
    return prepare


def _chip(edit: Callable[[dict], None]) -> Callable[[Path, Path], None]:
    def prepare(d: Path, m: Path) -> None:
        card = yaml.safe_load(BINARY_CHIP.read_text())
        edit(card)
        (d / "chip.yaml").write_text(yaml.safe_dump(card))
    return prepare


def _device(edit: Callable[[dict], None]) -> Callable[[Path, Path], None]:
    def prepare(d: Path, m: Path) -> None:
        card = yaml.safe_load((DEV / "hfo2-2t2r.yaml").read_text())
        edit(card)
        (d / "dev.yaml").write_text(yaml.safe_dump(card))
    return prepare


def _meta(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def change(model: Path) -> None:
        meta = json.loads((model / "model.json").read_text())
        edit(meta)
        (model / "model.json").write_text(json.dumps(meta))
    return change


class _Evil:
    def __reduce__(self):  # what a malicious checkpoint would run on a plain torch.load
        return (os.system, ("echo pwned",))


def _pickle_model(model: Path) -> None:
    state = torch.load(model / "model.pt", weights_only=True)
    state["evil"] = _Evil()
    torch.save(state, model / "model.pt")
    meta = json.loads((model / "model.json").read_text())
    meta.pop("model_sha256")  # get past the hash to the loader itself
    (model / "model.json").write_text(json.dumps(meta))


TRAIN = ["train", "--config", "{d}/c.yaml", "--experiment", "t", "--out", "{d}/out"]
MAP = ["map", "--model", "{m}/model", "--chip", str(BINARY_CHIP), "--out", "{d}/map.json"]
INJECT = ["inject", "--model", "{m}/model", "--mapping", "{m}/map.json", "--chip",
          str(BINARY_CHIP), "--device", str(DEV / "hfo2-2t2r.yaml"), "--device",
          str(DEV / "pcsa-130nm-physical.yaml"), "--out", "{d}/inject.csv"]
ESTIMATE = ["estimate", "--mapping", "{m}/map.json", "--chip", str(BINARY_CHIP),
            "--out", "{d}/est.csv"]


def _exp(**kw: object) -> dict:
    return {**TINY, "experiments": {"t": {**TINY["experiments"]["t"], **kw}}}


def _study(**kw: object) -> dict:
    study = {"experiment": "t", "chip": "c", "parameters": {"vdd": {"low": 0.4, "high": 1.2}},
             "objectives": {"accuracy": "maximize"}, **kw}
    return {**TINY, "chips": {"c": str(BINARY_CHIP)}, "search": {"s": study}}


CASES: dict[str, Case] = {
    # --- configs ---------------------------------------------------------------------------
    "config: missing file": Case(TRAIN, ["c.yaml", "not found"], absent=["out"]),
    "config: YAML syntax": Case(TRAIN, ["c.yaml", "not valid YAML (line"],
                                _write("c.yaml", "seed: [1,\n"), ["out"]),
    "config: unknown top-level key": Case(TRAIN, ["unknown key 'seeds'"],
                                          _config({"seeds": 1}), ["out"]),
    "config: unknown experiment key": Case(TRAIN, ["experiments.t: unknown key 'epoch'"],
                                           _config(_exp(epoch=2)), ["out"]),
    "config: bad enum": Case(TRAIN, ['experiments.t.precision: value "int4" is invalid'],
                             _config(_exp(precision="int4")), ["out"]),
    "config: negative lr": Case(TRAIN, ["experiments.t.lr: value -0.1 is invalid"],
                                _config(_exp(lr=-0.1)), ["out"]),
    "config: wrong type": Case(TRAIN, ['experiments.t.epochs: value "two" is invalid'],
                               _config(_exp(epochs="two")), ["out"]),
    "config: unknown device card": Case(TRAIN, ["experiments.t.device_card: unknown device"],
                                        _config(_exp(device_card="nope")), ["out"]),
    "config: unknown experiment": Case(
        ["train", "--config", "{d}/c.yaml", "--experiment", "x", "--out", "{d}/out"],
        ["unknown experiment 'x' (experiments: t)"], _config(TINY), ["out"]),
    "config: BER above 0.5": Case([*INJECT, "--config", "{d}/c.yaml"],
                                  ["inject.ber.0: value 0.7 is invalid"],
                                  _config({**TINY, "inject": {"ber": [0.7]}}), ["inject.csv"]),
    "config: zero repeats": Case([*INJECT, "--config", "{d}/c.yaml"],
                                 ["inject.repeats: value 0 is invalid"],
                                 _config({**TINY, "inject": {"repeats": 0}}), ["inject.csv"]),
    "config: empty results_dir": Case(TRAIN, ["results_dir"],
                                      _config({**TINY, "results_dir": ""}), ["out"]),
    "config: non-mapping": Case(TRAIN, ["must be a mapping"], _write("c.yaml", "- 1\n- 2\n"),
                                ["out"]),
    "study: unknown parameter": Case(
        ["search", "--config", "{d}/c.yaml", "--study", "s", "--results", "{d}/r", "--init"],
        ["search.s.parameters.volts: unknown parameter"],
        _config(_study(parameters={"volts": {"low": 0, "high": 1}})), ["r/search/s/study.json"]),
    "study: inverted range": Case(
        ["search", "--config", "{d}/c.yaml", "--study", "s", "--results", "{d}/r", "--init"],
        ["search.s.parameters.vdd: empty or inverted range"],
        _config(_study(parameters={"vdd": {"low": 1.2, "high": 0.4}})),
        ["r/search/s/study.json"]),
    "study: unknown chip": Case(
        ["search", "--config", "{d}/c.yaml", "--study", "s", "--results", "{d}/r", "--init"],
        ["search.s.chip.binary: unknown chip 'nope'"], _config(_study(chip="nope")),
        ["r/search/s/study.json"]),
    "study: unknown study": Case(
        ["search", "--config", "{d}/c.yaml", "--study", "zz", "--results", "{d}/r", "--init"],
        ["unknown study 'zz'"], _config(_study()), ["r/search/zz/study.json"]),
    "study: not initialised": Case(
        ["search", "--config", "{d}/c.yaml", "--study", "s", "--results", "{d}/r",
         "--worker", "0"], ["is not initialised", "--init"], _config(_study()),
        ["r/search/s/workers/0.json"]),
    "study: negative worker": Case(
        ["search", "--config", "{d}/c.yaml", "--study", "s", "--worker", "-1"],
        ["--worker -1: worker numbers start at 0"], _config(_study())),
    # --- checkpoints -------------------------------------------------------------------------
    "model: folder missing": Case(
        ["map", "--model", "{d}/none", "--chip", str(BINARY_CHIP), "--out", "{d}/map.json"],
        ["none/model.json: missing; point --model at a directory written by `dse train`"],
        absent=["map.json"]),
    "model: model.json not JSON": Case(
        ["map", "--model", "{d}/model", "--chip", str(BINARY_CHIP), "--out", "{d}/map.json"],
        ["model.json: not valid JSON"],
        _copy_model(lambda m: (m / "model.json").write_text("{")), ["map.json"]),
    "model: wrong format": Case(
        ["map", "--model", "{d}/model", "--chip", str(BINARY_CHIP), "--out", "{d}/map.json"],
        ["not a dse model description"],
        _copy_model(lambda m: (m / "model.json").write_text('{"format": "x"}')), ["map.json"]),
    "model: corrupt weights": Case(
        ["map", "--model", "{d}/model", "--chip", str(BINARY_CHIP), "--out", "{d}/map.json"],
        ["model.pt: does not match model.json"],
        _copy_model(lambda m: (m / "model.pt").write_bytes(b"garbage")), ["map.json"]),
    "model: malicious pickle": Case(
        ["map", "--model", "{d}/model", "--chip", str(BINARY_CHIP), "--out", "{d}/map.json"],
        ["model.pt: cannot load the weights (it holds objects other than tensors"],
        _copy_model(_pickle_model), ["map.json"]),
    "model: bad spec": Case(
        ["map", "--model", "{d}/model", "--chip", str(BINARY_CHIP), "--out", "{d}/map.json"],
        ["model.json: bad 'spec' entry"],
        _copy_model(_meta(lambda meta: meta.update(spec={"model": "transformer"}))),
        ["map.json"]),
    # --- mappings and tables -----------------------------------------------------------------
    "mapping: missing": Case(
        [*ESTIMATE[:2], "{d}/none.json", *ESTIMATE[3:]], ["none.json: mapping not found"],
        absent=["est.csv"]),
    "mapping: not JSON": Case(
        [*ESTIMATE[:2], "{d}/bad.json", *ESTIMATE[3:]], ["bad.json: not valid JSON"],
        _write("bad.json", "{"), ["est.csv"]),
    "mapping: not a mapping": Case(
        [*ESTIMATE[:2], "{d}/bad.json", *ESTIMATE[3:]], ["not a dse mapping"],
        _write("bad.json", '{"format": "x"}'), ["est.csv"]),
    "mapping: other chip": Case(
        [*ESTIMATE[:4], str(CHIPS / "stt-mram-binary.yaml"), *ESTIMATE[5:]],
        ["stt-mram-binary.yaml: chip card 'stt-mram-binary' but the mapping is for"],
        absent=["est.csv"]),
    "inject: other chip": Case(
        [*INJECT[:6], str(CHIPS / "stt-mram-binary.yaml"), *INJECT[7:]],
        ["the chip card is 'stt-mram-binary' but the mapping is for"], absent=["inject.csv"]),
    "inject: operating points need their device cards": Case(
        [*INJECT[:7], "--config", "{d}/c.yaml", "--out", "{d}/inject.csv"],
        ["needs device card(s) hfo2-2t2r, pcsa-130nm"],
        _config({**TINY, "inject": {"operating_points": {"rram-2t2r-pcsa-130nm": "card"}}}),
        ["inject.csv", "inject.summary.csv"]),
    "inject: unknown knob": Case(
        [*INJECT, "--config", "{d}/c.yaml"], ["unknown knob(s) volts"],
        _config({**TINY, "inject": {"operating_points": {
            "rram-2t2r-pcsa-130nm": [{"volts": 1.0}]}}}), ["inject.csv", "inject.summary.csv"]),
    "estimate: history missing": Case(
        [*ESTIMATE, "--history", "{d}/none.csv"], ["none.csv: history not found"],
        absent=["est.csv"]),
    "estimate: history garbage": Case(
        [*ESTIMATE, "--history", "{d}/h.csv"], ["h.csv: cannot read the history"],
        _write("h.csv", b"\x00\xff\xfe"), ["est.csv"]),
    # --- chip and device cards ---------------------------------------------------------------
    "chip card: missing": Case(
        ["map", "--model", "{m}/model", "--chip", "{d}/none.yaml", "--out", "{d}/map.json"],
        ["none.yaml: chip card not found"], absent=["map.json"]),
    "chip card: unknown key": Case(
        [*MAP[:4], "{d}/chip.yaml", *MAP[5:]], ["chip.yaml: unknown key 'colour'"],
        _chip(lambda c: c.update(colour="red")), ["map.json"]),
    "chip card: number without a source": Case(
        [*MAP[:4], "{d}/chip.yaml", *MAP[5:]], ["array.rows: every number needs a 'source:'"],
        _chip(lambda c: c["array"].update(rows={"value": 64, "unit": "1"})), ["map.json"]),
    "chip card: wrong unit": Case(
        [*MAP[:4], "{d}/chip.yaml", *MAP[5:]], ["technology.supply.unit: 'nm' is not a unit"],
        _chip(lambda c: c["technology"]["supply"].update(unit="nm")), ["map.json"]),
    "chip card: negative energy": Case(
        [*MAP[:4], "{d}/chip.yaml", *MAP[5:]], ["digital.add_energy: value -20.0 must be >= 0"],
        _chip(lambda c: c["digital"]["add_energy"].update(value=-20)), ["map.json"]),
    "chip card: unknown sensing": Case(
        [*MAP[:4], "{d}/chip.yaml", *MAP[5:]], ["sensing.kind: unknown sensing kind 'laser'"],
        _chip(lambda c: c["sensing"].update(kind="laser")), ["map.json"]),
    "chip card: cells that do not fit": Case(
        [*MAP[:4], "{d}/chip.yaml", *MAP[5:]], ["array.cols: 127 columns do not hold"],
        _chip(lambda c: c["array"]["cols"].update(value=127)), ["map.json"]),
    "device card: missing family": Case(
        [*INJECT[:8], "{d}/dev.yaml", *INJECT[9:]], ["dev.yaml: 'family' is required"],
        _device(lambda c: c.pop("family")), ["inject.csv"]),
    "device card: unknown family": Case(
        [*INJECT[:8], "{d}/dev.yaml", *INJECT[9:]], ["unknown device family 'memristor9000'"],
        _device(lambda c: c.update(family="memristor9000")), ["inject.csv"]),
    "device card: parameter without a source": Case(
        [*INJECT[:8], "{d}/dev.yaml", *INJECT[9:]], ["give 'source:'"],
        _device(lambda c: next(iter(c["params"].values())).pop("source", None)
                or next(iter(c["params"].values())).pop("assumption", None)), ["inject.csv"]),
    # --- the command line and the file system ------------------------------------------------
    "cli: --out is a directory": Case(
        [*MAP[:6], "{d}/dir"], ["dir: is a directory; give a file name"],
        lambda d, m: (d / "dir").mkdir()),
    "cli: output under a file": Case(
        [*MAP[:6], "{d}/file/map.json"], ["cannot write", "choose another output location"],
        _write("file", "x"), ["file/map.json"]),
    "cli: unwritable location": Case(
        [*MAP[:6], "/proc/dse-map.json"], ["/proc/dse-map.json: cannot write"]),
    "cli: train output checked before training": Case(
        ["train", "--config", "{d}/c.yaml", "--experiment", "t", "--out", "/proc/dse-model"],
        ["/proc/dse-model/model.json: cannot write"], _config(TINY)),
    "cli: synthesize count": Case(
        ["synthesize", "--card", str(DEV / "hfo2-2t2r.yaml"), "--format", "ber", "--trials",
         "0", "--out", "{d}/s.csv"], ["--trials must be at least 1"], absent=["s.csv"]),
    "cli: report without results": Case(
        ["report", "--config", "{d}/c.yaml", "--results", "{d}/none", "--out", "{d}/r.html"],
        ["none: results folder not found"], _config(TINY), ["r.html"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_and_exit_2(name: str, made: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    case = CASES[name]
    case.prepare(tmp_path, made)
    args = [a.replace("{d}", str(tmp_path)).replace("{m}", str(made)) for a in case.args]
    capsys.readouterr()
    assert main(["-q", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dse: ") and "\n" not in err, err
    assert "Traceback" not in err and "weights_only" not in err
    for part in case.expect:
        assert part in err, f"{part!r} not in {err!r}"
    for rel in case.absent:
        assert not (tmp_path / rel).exists(), f"{rel} was written"
    leftovers = [p for p in tmp_path.rglob(".*") if p.is_file()]
    assert not leftovers, f"temporary files left: {leftovers}"


def test_a_file_size_limit_is_one_line(made: Path, tmp_path: Path) -> None:
    """A write that hits the file-size limit (EFBIG, as a quota or a full disk would stop it)
    is one line and leaves no file: a separate process with RLIMIT_FSIZE of 1 kB."""
    code = ("import resource, signal, sys\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))\n"
            "from dse.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    out = tmp_path / "map.json"
    proc = subprocess.run([sys.executable, "-c", code, "-q", "map", "--model",
                           str(made / "model"), "--chip", str(BINARY_CHIP), "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = proc.stderr.strip().splitlines()
    assert len(line) == 1 and line[0].startswith(f"dse: {out}: cannot write (File too large)")
    assert not out.exists() and not list(tmp_path.glob(".*"))
    assert signal.SIGXFSZ  # the signal the limit would otherwise kill the process with
