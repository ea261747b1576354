"""Bad inputs of the device side (issue 18), part 2: device cards, chip cards, operating points
(physical domains, calibrated ranges, non-finite results) and YAML/JSON files. Each case
asserts the one-line DseError (file, key or row, fix); the ones reachable from ``dse calibrate``
(a bad ``--base`` card) also exit 2 and write nothing.

Measurement files and fits: ``test_bad_inputs_devices.py``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

from dse.cli import main
from dse.config import check_config, load_config, load_yaml
from dse.devices import from_card
from dse.errors import DseError
from dse.pipeline.artifacts import load_card
from dse.search.space import parse_param

REPO = Path(__file__).resolve().parents[1]
CARDS = REPO / "config" / "devices"
CHIPS = REPO / "config" / "chips"


def _card(name: str) -> dict:
    return load_card(CARDS / f"{name}.yaml")


def _write(tmp: Path, name: str, data: object) -> Path:
    p = tmp / name
    if isinstance(data, bytes):
        p.write_bytes(data)
    elif isinstance(data, str):
        p.write_text(data)
    elif name.endswith(".json"):
        p.write_text(json.dumps(data))
    else:
        p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def _with(name: str, **changes: object) -> dict:
    card = copy.deepcopy(_card(name))
    card.update(changes)
    return card


def _range(low: float, high: float, **extra: object) -> dict:
    return {"i_prog": {"low": low, "high": high, "unit": "A",
                       "source": "a BER table", **extra}}


def _chip_with_current(tmp: Path) -> Path:
    chip = yaml.safe_load((CHIPS / "rram-2t2r-pcsa-130nm.yaml").read_text())
    chip["errors"]["operating_point"]["i_prog"]["value"] = -2.0e-4
    return _write(tmp, "chip.yaml", chip)


def _load_chip(p: Path) -> None:
    from dse.pipeline.artifacts import load_chip

    load_chip(p)


def _ber(card: dict, **op: object) -> Callable[[Path], None]:
    def run(tmp: Path) -> None:
        with np.errstate(all="ignore"):  # the NaN case: numpy's warning is not the point
            from_card(card).ber(**op)
    return run


def _config(tmp: Path, text: str) -> Path:
    return _write(tmp, "config.yaml", text)


# (id, action on a tmp folder that must raise, expected message; {tmp} = the folder)
CARD_CASES: list[tuple[str, Callable[[Path], object], str]] = [
    ("card-not-utf8",
     lambda tmp: load_card(_write(tmp, "c.yaml", b"name: x\nfamily: pcsa\nsource: caf\xe9\n")),
     "{tmp}/c.yaml: not UTF-8 text (byte 0xe9 on line 3, column 12); save the file as UTF-8"),
    ("card-duplicate-key",
     lambda tmp: load_card(_write(tmp, "c.yaml", "name: x\nfamily: pcsa\nsource: s\nparams:\n"
                                  "  v_fail: {value: 0.3, unit: V, source: a}\n"
                                  "  v_fail: {value: 0.4, unit: V, source: b}\n")),
     "{tmp}/c.yaml: not valid YAML (line 6, column 3): duplicate key 'v_fail' (first on line "
     "5; remove one)"),
    ("card-json-duplicate-key",
     lambda tmp: load_card(_write(tmp, "c.json", '{"name": "x",\n "family": "pcsa",\n'
                                  ' "name": "y"}')),
     "{tmp}/c.json: duplicate key 'name' on line 3; remove one"),
    ("card-json-not-utf8",
     lambda tmp: load_card(_write(tmp, "c.json", b'{"name": "\xff"}')),
     "{tmp}/c.json: not UTF-8 text (byte 0xff on line 1, column 11); save the file as UTF-8"),
    ("card-negative-operating-point",
     lambda tmp: load_card(_write(tmp, "c.yaml", _with(
         "hfo2-2t2r", operating_points={"i_prog": [-1.0e-4, 1.0e-4]}))),
     "{tmp}/c.yaml: hfo2-2t2r (rram_2t2r): operating point: i_prog = -0.0001 A is outside the "
     "physical domain (0, 0.01] A of the RRAM programming (compliance) current (must not be "
     "negative)"),
    ("card-pulse-in-nanoseconds",
     lambda tmp: load_card(_write(tmp, "c.yaml", _with(
         "stt-mram", operating_points=[{"i_write": 2e-4, "t_write": 5.0}]))),
     "{tmp}/c.yaml: stt-mram (stt_mram): operating point: t_write = 5 s is outside the physical "
     "domain (0, 0.001] s of the MRAM write pulse width (exceeds 0.001 s: give it in SI units "
     "(s))"),
    ("card-range-reversed",
     lambda tmp: load_card(_write(tmp, "c.yaml", _with(
         "hfo2-2t2r", operating_range=_range(2e-4, 4e-5)))),
     "{tmp}/c.yaml: operating_range.i_prog: low (0.0002) must not exceed high (4e-05)"),
    ("card-range-without-source",
     lambda tmp: load_card(_write(tmp, "c.yaml", _with(
         "hfo2-2t2r", operating_range={"i_prog": {"low": 4e-5, "high": 2e-4}}))),
     "{tmp}/c.yaml: operating_range.i_prog: give 'source:' (the measurement it was calibrated "
     "on) or 'assumption:'"),
    ("card-range-unknown-knob",
     lambda tmp: load_card(_write(tmp, "c.yaml", _with(
         "hfo2-2t2r", operating_range={"vdd": {"low": 0.5, "high": 1.0, "source": "s"}}))),
     "{tmp}/c.yaml: operating_range.vdd: not a knob of this family (knobs: i_prog, t_prog, "
     "time_s)"),
    ("card-range-excludes-its-points",
     lambda tmp: load_card(_write(tmp, "c.yaml", _with(
         "hfo2-2t2r", operating_range=_range(1e-4, 2e-4)))),
     "{tmp}/c.yaml: hfo2-2t2r (rram_2t2r): operating point i_prog = 4e-05 A is outside the "
     "card's calibrated range [0.0001, 0.0002] (operating_range.i_prog); choose a point inside "
     "it or widen the range with a source"),
    ("card-range-on-analog-family",
     lambda tmp: load_card(_write(tmp, "c.yaml", _with(
         "bulk-switching", operating_range=_range(1e-4, 2e-4)))),
     "{tmp}/c.yaml: operating_points/operating_range: only binary-cell families have operating "
     "points"),
    ("model-outside-calibrated-range",
     _ber(_with("hfo2-2t2r", operating_range=_range(4e-5, 2e-4)), i_prog=5e-4),
     "hfo2-2t2r (rram_2t2r): operating point i_prog = 0.0005 A is outside the card's calibrated "
     "range [4e-05, 0.0002] (operating_range.i_prog); choose a point inside it or widen the "
     "range with a source"),
    ("model-negative-current", _ber(_card("hfo2-1t1r"), i_prog=np.array([1e-4, -3e-5])),
     "hfo2-1t1r (rram_1t1r): operating point: i_prog = -3e-05 A is outside the physical domain "
     "(0, 0.01] A of the RRAM programming (compliance) current (must not be negative)"),
    ("model-nan-ber",
     _ber(from_card(_card("pcsa-130nm"), {"v_sigma": 0.0}).card, vdd=0.35),
     "pcsa-130nm (pcsa): BER is nan at vdd = 0.35 (the card's parameters give no finite value "
     "there; check them)"),
    ("model-infinite-energy",
     lambda tmp: from_card(_card("stt-mram"), {"r_p": 1e308, "r_ap": 1e308}).write_energy(
         i_write=2e-4, t_write=5e-9),
     "stt-mram (stt_mram): write energy is inf at i_write = 0.0002, t_write = 5e-09 (the card's "
     "parameters give no finite value there; check them)"),
    ("chip-negative-operating-current", lambda tmp: _load_chip(_chip_with_current(tmp)),
     "{tmp}/chip.yaml: errors.operating_point.i_prog: i_prog = -0.0002 A is outside the "
     "physical domain (0, 0.01] A of the RRAM programming (compliance) current (must not be "
     "negative)"),
    ("study-negative-current-range",
     lambda tmp: parse_param("codesign", "i_prog", {"low": -1.0e-4, "high": 2.0e-4}),
     "search.codesign.parameters.i_prog: i_prog = -0.0001 A is outside the physical domain "
     "(0, 0.01] A of the RRAM programming (compliance) current (must not be negative)"),
    ("config-duplicate-key",
     lambda tmp: load_config(_config(tmp, "seed: 0\nexperiments:\n  a: {epochs: 1}\n"
                                     "  a: {epochs: 2}\n")),
     "{tmp}/config.yaml: not valid YAML (line 4, column 3): duplicate key 'a' (first on line "
     "3; remove one)"),
    ("config-not-utf8",
     lambda tmp: load_config(_config(tmp, b"seed: 0\n# r\xe9sum\xe9\n")),
     "{tmp}/config.yaml: not UTF-8 text (byte 0xe9 on line 2, column 4); save the file as "
     "UTF-8"),
    ("config-float-as-string-explained",
     lambda tmp: check_config({"experiments": {"x": {"lr": "5e-3"}}}, source="cfg.yaml"),
     "cfg.yaml: experiments.x.lr: value \"5e-3\" is invalid (expected type: number; YAML 1.1 "
     "(Snakemake's reader) reads 5e-3 as a string: write the mantissa with a dot and the "
     "exponent with a sign, e.g. 5.0e-3)"),
    ("config-direction-with-pair",
     lambda tmp: check_config({"devices": {"d": {"measurements": "s.csv",
                                                 "reset_measurements": "r.csv",
                                                 "family": "piecewise", "direction": "up"}}},
                              source="cfg.yaml"),
     "cfg.yaml: devices.d.direction: 'up' with reset_measurements (the SET file is up, the "
     "RESET file down); drop direction"),
    ("config-unknown-fit-limit",
     lambda tmp: check_config({"devices": {"d": {"measurements": "s.csv", "family": "piecewise",
                                                 "fit": {"min_r3": 0.9}}}}, source="cfg.yaml"),
     "cfg.yaml: devices.d.fit: unknown key 'min_r3' (allowed keys: bound_margin, "
     "max_noise_ratio, max_rel_stderr, min_r2, strict, warn_r2)"),
    ("config-bad-direction",
     lambda tmp: check_config({"devices": {"d": {"measurements": "s.csv", "family": "piecewise",
                                                 "direction": "sideways"}}}, source="cfg.yaml"),
     "cfg.yaml: devices.d.direction: value \"sideways\" is invalid (allowed: \"auto\", \"up\", "
     "\"down\", \"alternating\")"),
]


@pytest.mark.parametrize("action, expected", [c[1:] for c in CARD_CASES],
                         ids=[c[0] for c in CARD_CASES])
def test_bad_card_or_yaml_is_one_line(tmp_path: Path, action: Callable[[Path], object],
                                      expected: str) -> None:
    with pytest.raises(DseError) as exc:
        action(tmp_path)
    msg = str(exc.value)
    assert msg == expected.replace("{tmp}", str(tmp_path)) and "\n" not in msg


@pytest.mark.parametrize("base_text, expected", [
    (b"name: x\nfamily: piecewise\nsource: caf\xe9\n",
     "base.yaml: not UTF-8 text (byte 0xe9 on line 3, column 12); save the file as UTF-8"),
    ("name: x\nname: y\n", "base.yaml: not valid YAML (line 2, column 1): duplicate key 'name' "
     "(first on line 1; remove one)"),
])
def test_bad_base_card_stops_calibrate(tmp_path: Path, capsys: pytest.CaptureFixture,
                                       base_text: str | bytes, expected: str) -> None:
    base = _write(tmp_path, "base.yaml", base_text)
    out = tmp_path / "card.json"
    rc = main(["-q", "calibrate", str(REPO / "config/measurements/gong2018-reram.updown.csv"),
               "--family", "piecewise", "--base", str(base), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == f"dse: {tmp_path}/{expected}" and not out.exists()


def test_yaml_12_floats_and_merge_keys_are_read(tmp_path: Path) -> None:
    p = _config(tmp_path, "lr: 5e-3\nwd: 1E-7\nn: 5\nlist: [1e5, -2e+3, .5e1]\ns: '5e-3'\n"
                "base: &b {x: 1}\nd:\n  <<: *b\n  x: 2\n")
    assert load_yaml(p) == {"lr": 0.005, "wd": 1e-7, "n": 5, "list": [1e5, -2e3, 5.0],
                            "s": "5e-3", "base": {"x": 1}, "d": {"x": 2}}
    cfg = _config(tmp_path, "experiments:\n  a: {lr: 5e-3, weight_decay: 1e-7}\n")
    exp = load_config(cfg)["experiments"]["a"]
    assert exp["lr"] == 0.005 and exp["weight_decay"] == 1e-7


def test_calibrated_ber_card_records_and_enforces_its_range(tmp_path: Path) -> None:
    """dse calibrate writes the BER table's span as operating_range; the card then refuses
    points outside it (the extrapolation nobody measured) and accepts those inside."""
    out = tmp_path / "cal.json"
    assert main(["-q", "calibrate", str(REPO / "config/measurements/hfo2-2t2r.ber.synthetic.csv"),
                 "--family", "rram_2t2r", "--base", str(CARDS / "hfo2-2t2r.yaml"),
                 "--out", str(out)]) == 0
    card = load_card(out)
    lo, hi = card["operating_range"]["i_prog"]["low"], card["operating_range"]["i_prog"]["high"]
    assert (lo, hi) == (4e-5, 2e-4)
    model = from_card(card)
    assert 0 < float(model.ber(i_prog=1e-4)) < 0.5
    with pytest.raises(DseError, match=r"i_prog = 1e-05 A is outside the card's calibrated"):
        model.ber(i_prog=1e-5)


def test_every_binary_knob_has_a_domain() -> None:
    from dse.devices import REGISTRY, BitErrorModel
    from dse.devices.domains import KNOB_DOMAINS

    for cls in REGISTRY.values():
        if issubclass(cls, BitErrorModel):
            for knob in (*cls.knobs, *cls.optional_knobs):
                dom = KNOB_DOMAINS[knob]
                assert dom.note.startswith(("source:", "assumption:")) and dom.high > dom.low


def test_fit_limit_defaults_agree_with_the_schema() -> None:
    from dse.devices.plausibility import FitLimits

    schema = load_yaml(REPO / "config" / "schema.yaml")
    props = schema["$defs"]["device_entry"]["else"]["properties"]["fit"]["properties"]
    assert {k: v["default"] for k, v in props.items()} == FitLimits().as_dict()


def test_negative_physical_bound_and_wrong_step_are_refused() -> None:
    """Checks behind the fit (reached when the search limits do not already prevent it)."""
    from dse.devices.plausibility import Assessment, FitLimits, assess_bounds

    a = Assessment(FitLimits(), "f.csv", "soft_bounds")
    with pytest.raises(DseError, match=r"^f.csv: implausible soft_bounds fit: params.g_min = -1 uS "
                       r"is a negative conductance; a physical bound is >= 0"):
        assess_bounds(a, {"g_min": -1.0, "g_max": 50.0}, 0.0, 45.0, True, "uS", {})
    with pytest.raises(DseError, match=r"params.g_min = 60 is not below params.g_max = 50"):
        assess_bounds(a, {"g_min": 60.0, "g_max": 50.0}, 0.0, 45.0, False, "1", {})
