"""Bad inputs of the device side (issue 18): measurement files, units, formats, directions, fit
limits and fits that must be refused, through ``dse calibrate``: one ``dse:`` line naming the
file and the row or key and saying the fix, exit status 2, no traceback, nothing written.

Device cards, chip cards, operating points and YAML are in ``test_bad_inputs_cards.py``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dse.cli import main
from dse.devices import synthesize

REPO = Path(__file__).resolve().parents[1]
GONG = REPO / "config" / "measurements" / "gong2018-reram.updown.csv"
GONG_ROWS = [ln for ln in GONG.read_text().splitlines() if not ln.startswith("#")]
FORMATS_LIST = ("expected ber: a header with the operating-point columns (the family's knobs, SI "
                "units: i_prog, t_prog, vdd, i_write, t_write), trials, errors; long: a header "
                "with device, cycle, direction (up/down), pulse, conductance, one row per read; "
                "updown: 2 numeric columns, no gaps: the conductance after each up pulse, then "
                "after each down pulse; ramps: 2 or more numeric columns, one ramp per column "
                "(empty or NaN cells after a ramp's end), alternating or single-direction "
                "(docs/measurements.md)")


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def soft_bounds_card(**over: float) -> dict:
    vals = {"g_min": 10.0, "g_max": 100.0, "alpha_up": 0.02, "alpha_down": 0.03,
            "c2c_sigma": 0.5, "c2c_memory": 0.95, "read_sigma": 1.0, **over}
    return {"name": "t-sb", "family": "soft_bounds", "source": "test", "unit": "uS",
            "params": {k: {"value": v, "unit": "uS" if k in ("g_min", "g_max", "c2c_sigma",
                                                             "read_sigma") else "1",
                           "assumption": "test"} for k, v in vals.items()}}


def set_only(cycles: int = 39, direction: str = "up") -> str:
    """A SET-only ramp file: ``cycles`` rising conductance ramps (the lookup-table layout)."""
    return synthesize(soft_bounds_card(), "ramps", cycles=cycles, pulses=120,
                      direction=direction, seed=1)


def noisy_ramp(sigma: float, n: int = 200, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    g = 50 + 40 * np.linspace(0, 1, n)
    up, down = g + sigma * rng.standard_normal(n), g[::-1] + sigma * rng.standard_normal(n)
    return "# unit: uS\n" + "".join(f"{a:.4f},{b:.4f}\n" for a, b in zip(up, down, strict=True))


def gong(header: str = "", rows: list[str] | None = None, end: str = "\n") -> str:
    return header + "\n".join(rows if rows is not None else GONG_ROWS) + end


# ------------------------------------------------------------------------------ the cases
# (id, files {name: text or bytes}, extra argv, expected message after "dse: <tmp>/")
CASES: list[tuple[str, dict[str, str | bytes], list[str], str]] = [
    ("missing-file", {}, ["--family", "piecewise"],
     "m.csv: measurement file not found; check the path"),
    ("not-utf8", {"m.csv": b"0.1,0.2\n0.3,caf\xe9\n"}, ["--family", "piecewise"],
     "m.csv: not UTF-8 text (byte 0xe9 on line 2); export the measurements as UTF-8 CSV"),
    ("only-comments", {"m.csv": "# unit: uS\n# nothing else\n"}, ["--family", "piecewise"],
     "m.csv: no data rows (only comments or blank lines)"),
    ("header-only", {"m.csv": "set1,set2\n"}, ["--family", "piecewise"],
     "m.csv: a header line but no data rows"),
    ("truncated-last-line", {"m.csv": gong("# unit: 1\n", [*GONG_ROWS[:529], "0.27778"], "")},
     ["--family", "piecewise"],
     "m.csv: row 531 (the last line): 1 of 2 cells: the file looks truncated; restore the full "
     "file"),
    ("short-row-inside", {"m.csv": gong("# unit: 1\n", [*GONG_ROWS[:2], "0.1", *GONG_ROWS[3:]])},
     ["--family", "piecewise"],
     "m.csv: row 4: 1 of 2 cells (every row needs all columns; write an empty cell or NaN where "
     "a ramp has ended)"),
    ("rows-header-disagrees", {"m.csv": gong("# unit: 1\n# rows: 1000\n", GONG_ROWS[:600])},
     ["--family", "piecewise"],
     "m.csv: the header says '# rows: 1000' but the file has 600 data rows: it is truncated "
     "(restore the full file) or the header is stale"),
    ("rows-header-not-a-number", {"m.csv": gong("# rows: many\n")}, ["--family", "piecewise"],
     "m.csv: '# rows: many' is not a whole number of data rows"),
    ("no-format-matches-header", {"m.csv": "time,resistance\n" + "".join(
        f"{i},{1000 + i}\n" for i in range(30))}, ["--family", "piecewise"],
     "m.csv: no measurement format matches (found: header time, resistance); " + FORMATS_LIST),
    ("no-format-matches-one-column", {"m.csv": "".join(f"{i}\n" for i in range(30))},
     ["--family", "piecewise"],
     "m.csv: no measurement format matches (found: 1 numeric column); " + FORMATS_LIST),
    ("resistance-unit", {"m.csv": gong("# unit: kohm\n")}, ["--family", "piecewise"],
     "m.csv: '# unit: kohm' is a resistance; the pulse formats hold conductances: convert "
     "G = 1/R and declare '# unit: S' (or mS, uS, nS)"),
    ("unknown-unit", {"m.csv": gong("# unit: furlongs\n")}, ["--family", "piecewise"],
     "m.csv: '# unit: furlongs' is not a conductance unit (use S, mS, uS, nS or pS, or 1 for "
     "normalised data)"),
    ("negative-physical-conductance", {"m.csv": gong("# unit: uS\n")}, ["--family", "piecewise"],
     "m.csv: row 2, column 1: conductance -0.84444 uS is negative (beyond the read noise, "
     "σ ≈ 0.115 uS); a physical conductance is >= 0: remove the baseline offset, or declare "
     "'# unit: 1' for normalised data"),
    ("unit-header-vs-column", {"m.csv": "# unit: uS\ndevice,cycle,direction,pulse,conductance "
                               "(nS)\n" + "".join(f"d,0,up,{i},{10 + i}\n" for i in range(12))},
     ["--family", "piecewise"],
     "m.csv: '# unit: uS' but the column header says 'nS'; make them agree"),
    ("set-only-read-as-alternating", {"m.csv": set_only()},
     ["--family", "soft_bounds", "--direction", "alternating"],
     "m.csv: column 2 ('r1_up'): fitted as down but rises from 32.55 to 90.35; check the column, "
     "or set the direction of every ramp with --direction up|down|alternating (or split the "
     "file)"),
    ("updown-columns-swapped", {"m.csv": "# unit: 1\n" + "\n".join(
        f"{b},{a}" for a, b in (r.split(",") for r in GONG_ROWS)) + "\n"},
     ["--family", "piecewise", "--format", "updown"],
     "m.csv: column 1: fitted as up but falls from 0.3857 to -0.9275; the updown format is one up "
     "(SET) column then one down (RESET) column; swap the columns, or read single-direction "
     "ramps with --format ramps --direction up|down"),
    ("long-direction-mislabelled", {"m.csv": "# unit: uS\ndevice,cycle,direction,pulse,"
                                    "conductance\n" + "".join(f"d0,0,down,{i},{10 + 2 * i}\n"
                                                              for i in range(30))},
     ["--family", "piecewise"],
     "m.csv: device 'd0', cycle 0, down: fitted as down but rises from 15 to 63; check the "
     "direction column of these rows"),
    ("ramps-without-a-clear-direction", {"m.csv": "# unit: uS\n" + "".join(
        f"{50 + np.sin(i)},{50 + np.cos(i)},{50 + np.sin(2 * i)}\n" for i in range(40))},
     ["--family", "piecewise", "--format", "ramps"],
     "m.csv: the ramps' trends neither alternate nor agree clearly (pooled z: alternating 0.3, "
     "all alike 0.1): the direction of each ramp cannot be detected; pass --direction up, down "
     "or alternating (devices entry: direction:)"),
    ("direction-on-ber-table", {"m.csv": "vdd,trials,errors\n0.3,100,40\n0.4,100,10\n"},
     ["--family", "pcsa", "--direction", "up"],
     "m.csv: --direction up is for pulse files, not the ber format"),
    ("alternating-on-long", {"m.csv": "device,cycle,direction,pulse,conductance\n" + "".join(
        f"d,0,up,{i},{i + 1}\n" for i in range(12))},
     ["--family", "piecewise", "--direction", "alternating"],
     "m.csv: --direction alternating is for the ramps format; the long format has a direction "
     "column"),
    ("direction-filter-leaves-nothing", {"m.csv": "# unit: uS\ndevice,cycle,direction,pulse,"
                                         "conductance\n" + "".join(f"d,0,up,{i},{i + 1}\n"
                                                                   for i in range(12))},
     ["--family", "piecewise", "--direction", "down"],
     "m.csv: no down series in the file (--direction down)"),
    ("ber-knob-in-microamps", {"m.csv": "i_prog,trials,errors\n40,1000,30\n100,1000,3\n"
                               "200,1000,0\n300,1000,0\n"}, ["--family", "rram_2t2r"],
     "m.csv: row 2, column 1 ('i_prog'): i_prog = 40 A is outside the physical domain "
     "(0, 0.01] A of the RRAM programming (compliance) current (exceeds 0.01 A: give it in SI "
     "units (A))"),
    ("ber-negative-current", {"m.csv": "i_prog,trials,errors\n-1e-4,1000,30\n1e-4,1000,3\n"},
     ["--family", "rram_2t2r"],
     "m.csv: row 2, column 1 ('i_prog'): i_prog = -0.0001 A is outside the physical domain "
     "(0, 0.01] A of the RRAM programming (compliance) current (must not be negative)"),
    ("ber-errors-above-trials", {"m.csv": "vdd,trials,errors\n0.3,10,12\n0.4,10,1\n"},
     ["--family", "pcsa"], "m.csv: row 2, column 3 ('errors'): 12 errors > 10 trials"),
    ("pair-units-differ", {"m.csv": set_only(4), "r.csv": set_only(4, "down").replace(
        "# unit: uS", "# unit: nS")}, ["--family", "soft_bounds", "--reset", "{tmp}/r.csv"],
     "r.csv: unit 'uS' of the SET file {tmp}/m.csv differs from unit 'nS' of the RESET file; "
     "convert one"),
    ("pair-reset-file-rises", {"m.csv": set_only(4), "r.csv": set_only(4)},
     ["--family", "soft_bounds", "--reset", "{tmp}/r.csv"],
     "r.csv: column 1 ('r0_up'): fitted as down but rises from 32.97 to 89.77; check the column, "
     "or set the direction of every ramp with --direction up|down|alternating (or split the "
     "file)"),
    ("fit-limit-unknown", {"m.csv": gong("# unit: 1\n")},
     ["--family", "piecewise", "--fit", "min_r3=0.9"],
     "m.csv: fit.min_r3: unknown fit limit (allowed: min_r2, warn_r2, bound_margin, "
     "max_noise_ratio, max_rel_stderr, strict)"),
    ("fit-limit-not-a-number", {"m.csv": gong("# unit: 1\n")},
     ["--family", "piecewise", "--fit", "min_r2=high"],
     "m.csv: fit.min_r2: 'high' is not a number"),
    ("fit-limit-out-of-range", {"m.csv": gong("# unit: 1\n")},
     ["--family", "piecewise", "--fit", "min_r2=1.5"],
     "m.csv: fit.min_r2: 1.5 is out of range (>= 0, <= 1)"),
    ("r2-below-min", {"m.csv": gong("# unit: 1\n")},
     ["--family", "piecewise", "--fit", "min_r2=0.99"],
     "m.csv: implausible piecewise fit: fit.r2 = 0.982 is below fit.min_r2 = 0.99: the "
     "piecewise model does not describe the data; check the file's format and pulse directions "
     "(docs/measurements.md), try another family, or lower fit.min_r2"),
    ("truncated-at-a-row-boundary-r2", {"m.csv": gong("# unit: 1\n", GONG_ROWS[:60])},
     ["--family", "soft_bounds"],
     "m.csv: implausible soft_bounds fit: fit.r2 = 0.586 is below fit.min_r2 = 0.8: the "
     "soft_bounds model does not describe the data; check the file's format and pulse "
     "directions (docs/measurements.md), try another family, or lower fit.min_r2"),
    ("strict-refuses-a-flag", {"m.csv": gong("# unit: 1\n")},
     ["--family", "soft_bounds", "--fit", "strict=true"],
     "m.csv: implausible soft_bounds fit: params.g_max = 2.139: the fit pushed it to its search "
     "limit 2.139 (largest measurement + 0.5 × range): the ramps do not saturate, so the bound "
     "is not determined by the data; measure until the conductance saturates, or use exp_step "
     "or piecewise (refused: fit.strict is true)"),
    ("noise-above-signal", {"m.csv": noisy_ramp(sigma=30.0)},
     ["--family", "piecewise", "--fit", "min_r2=0", "--fit", "warn_r2=0", "--direction", "up"],
     # the fitted values depend on the machine's BLAS in the last digits (28.55 / 44.99 on one
     # machine, 28.54 / 45.36 on another): the numbers are matched as numbers, the text exactly
     re.compile(r"m\.csv: implausible piecewise fit: params\.read_sigma = 28\.5\d uS is "
                r"0\.6\dx the span 4[45]\.\d\d of the fitted trajectories \(noise above the "
                r"signal; fit\.max_noise_ratio = 0\.5\): check the unit and the columns, or "
                r"measure more pulses per ramp")),
    ("family-needs-other-format", {"m.csv": "vdd,trials,errors\n0.3,100,40\n0.4,100,10\n"},
     ["--family", "soft_bounds"],
     "m.csv: family soft_bounds needs pulse measurements (updown, long or ramps), not a ber "
     "table"),
]


def _run(capsys: pytest.CaptureFixture, args: list[str]) -> tuple[int, list[str]]:
    rc = main(["-q", "calibrate", *args])
    return rc, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("files, extra, expected", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_calibrate_refuses_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                         files: dict, extra: list[str], expected: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    out, fig = tmp_path / "out" / "card.json", tmp_path / "out" / "card.png"
    extra = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    rc, lines = _run(capsys, [str(tmp_path / "m.csv"), *extra, "--out", str(out),
                              "--figure", str(fig)])
    errors = [ln for ln in lines if ln.startswith("dse: ")]
    assert rc == 2 and len(errors) == 1, lines
    assert not any("Traceback" in ln for ln in lines)
    if isinstance(expected, re.Pattern):
        assert errors[0].startswith(f"dse: {tmp_path}/"), errors[0]
        assert expected.match(errors[0][len(f"dse: {tmp_path}/"):]), errors[0]
    else:
        assert errors[0].startswith(
            f"dse: {tmp_path}/" + expected.replace("{tmp}", str(tmp_path))), errors[0]
    assert not out.exists() and not fig.exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# ------------------------------------------------------------------------------ regressions
def _calibrate(tmp_path: Path, text: str, *args: str) -> tuple[int, dict]:
    import json

    (tmp_path / "m.csv").write_text(text)
    out = tmp_path / "card.json"
    rc = main(["-q", "calibrate", str(tmp_path / "m.csv"), "--out", str(out), *args])
    return rc, (json.loads(out.read_text()) if out.exists() else {})


def test_set_only_file_is_fitted_as_single_direction(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """39 rising ramps: detected as SET-only, all fitted as up ramps (never alternating
    SET/RESET), the SET parameters recovered, the RESET ones mirrored and said so."""
    rc, card = _calibrate(tmp_path, set_only(), "--family", "soft_bounds")
    assert rc == 0
    assert "all 39 ramps rise: fitted as single-direction (up only) ramps" in caplog.text
    fit, p = card["fit"], card["params"]
    assert fit["direction"] == "up only (detected: all 39 ramps rise)"
    assert fit["n_series"] == 39 and fit["r2"] > 0.99
    assert p["alpha_up"]["value"] == pytest.approx(0.02, rel=0.05)
    assert p["g_max"]["value"] == pytest.approx(100.0, abs=3.0)
    assert p["alpha_down"]["value"] == p["alpha_up"]["value"]
    assert "the down direction is not measured" in p["alpha_down"]["assumption"]
    assert any("the down direction is not measured" in w and "params.alpha_down" in w
               for w in fit["warnings"])


def test_set_and_reset_files_pair_into_one_device(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text(set_only(20, "down"))
    rc, card = _calibrate(tmp_path, set_only(20), "--family", "soft_bounds", "--reset",
                          str(tmp_path / "r.csv"))
    assert rc == 0
    fit, p = card["fit"], card["params"]
    assert fit["n_series"] == 40 and fit["direction"].startswith("up from ")
    assert p["alpha_up"]["value"] == pytest.approx(0.02, rel=0.05)
    assert p["alpha_down"]["value"] == pytest.approx(0.03, rel=0.05)
    assert p["g_min"]["value"] == pytest.approx(10.0, abs=3.0)
    assert not any("not measured" in w for w in fit["warnings"])


def test_set_only_file_takes_the_reset_direction_from_a_base_card(tmp_path: Path) -> None:
    import json

    base = soft_bounds_card(alpha_down=0.05, g_min=12.0)
    (tmp_path / "base.json").write_text(json.dumps(base))
    rc, card = _calibrate(tmp_path, set_only(), "--family", "soft_bounds", "--base",
                          str(tmp_path / "base.json"))
    assert rc == 0
    p = card["params"]
    assert p["alpha_down"]["value"] == 0.05 and p["g_min"]["value"] == 12.0
    assert p["alpha_down"]["source"].startswith("base card t-sb")


def test_soft_bounds_bounds_stay_near_the_data(tmp_path: Path) -> None:
    """The fit that gave a negative g_min and g_max 25-36x the largest measurement: bounds are
    searched within 0.5 ranges of the data (>= 0 in uS), the undetermined g_max is flagged."""
    shifted = "\n".join(f"{float(a) + 2:.5f},{float(b) + 2:.5f}"
                        for a, b in (r.split(",") for r in GONG_ROWS)) + "\n"
    rc, card = _calibrate(tmp_path, "# unit: uS\n" + shifted, "--family", "soft_bounds")
    assert rc == 0
    data = np.array([[float(x) for x in r.split(",")] for r in shifted.splitlines()])
    lo, hi = data.min(), data.max()
    p, warnings = card["params"], " ".join(card["fit"]["warnings"])
    assert p["g_min"]["value"] >= 0.0 and p["g_max"]["value"] <= hi + 0.5 * (hi - lo)
    assert "params.g_max" in warnings and "not determined by the data" in warnings


def test_truncated_file_without_final_newline_is_flagged(tmp_path: Path) -> None:
    rc, card = _calibrate(tmp_path, gong("# unit: 1\n", GONG_ROWS[:700], end=""),
                          "--family", "piecewise")
    assert rc == 0
    assert any("does not end with a newline" in w and "line 701" in w
               for w in card["fit"]["warnings"])


def test_negative_readings_within_the_noise_are_kept_and_flagged(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    held = np.clip(np.arange(200) - 40, 0, None)  # 40 reads in deep HRS, then the SET ramp
    up = 0.05 + 20 * (1 - np.exp(-held / 60)) + 0.5 * rng.standard_normal(200)
    down = up[::-1] + 0.5 * rng.standard_normal(200)
    text = "# unit: uS\n" + "".join(f"{a:.4f},{b:.4f}\n" for a, b in zip(up, down, strict=True))
    rc, card = _calibrate(tmp_path, text, "--family", "piecewise")
    assert rc == 0 and (up < 0).any()
    assert any("negative reading(s)" in w and "kept as measured" in w
               for w in card["fit"]["warnings"])
    assert min(card["params"]["nodes"]["value"]) >= 0.0


def test_console_script_refusal_has_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "m.csv"
    bad.write_text(gong("# unit: uS\n"))
    proc = subprocess.run([sys.executable, "-m", "dse.cli", "calibrate", str(bad), "--family",
                           "piecewise", "--out", str(tmp_path / "c.json")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"dse: {bad}: row 2, column 1: ")
    assert not (tmp_path / "c.json").exists()

