"""The calibrate stage: measurement readers, fits that recover their own parameters, the real
Gong et al. 2018 file, and the ``dse calibrate`` / ``dse synthesize`` commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dse.cli import main
from dse.devices import calibrate, fit_figure, from_card, synthesize
from dse.errors import DseError
from dse.pipeline.artifacts import load_card, read_measurements
from dse.pipeline.files import write_figure

CARDS = Path(__file__).resolve().parents[1] / "config" / "devices"


@pytest.fixture(autouse=True)
def _one_thread():
    """Fits evaluate tiny tensors; one torch thread is faster (and calibrate uses one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def make_card(family: str, unit: str, **params: float) -> dict:
    return {"name": f"t-{family}", "family": family, "source": "test", "unit": unit,
            "params": {k: {"value": v, "unit": unit if k in ("g_min", "g_max", "c2c_sigma",
                                                             "read_sigma", "step") else "1",
                           "assumption": "test"} for k, v in params.items()}}


def synth(tmp_path: Path, card: dict, fmt: str, **kw) -> Path:
    return write(tmp_path, f"{card['name']}.{fmt}.csv", synthesize(card, fmt, **kw))


# ------------------------------------------------------------------------------ readers
GONG = Path(__file__).resolve().parents[1] / "config" / "measurements" / \
    "gong2018-reram.updown.csv"


def test_gong_file_is_detected_as_updown(shared_data: Path) -> None:
    for path in (shared_data / "gong2018-reram-pulses" / "gong_et_al.csv", GONG):
        m = read_measurements(path)
        assert m.format == "updown" and [s.direction for s in m.series] == [1, -1]
        assert [len(s.pulses) for s in m.series] == [1000, 1000] and not m.synthetic
        assert m.direction == "up and down"


def test_formats_are_detected(tmp_path: Path) -> None:
    sb = load_card(CARDS / "bulk-switching.yaml")
    for fmt, n_series in (("long", 2 * 2 * 2), ("updown", 2), ("ramps", 4)):
        p = synth(tmp_path, sb, fmt, devices=2, cycles=2, pulses=200)
        m = read_measurements(p)
        assert m.format == fmt and len(m.series) == n_series and m.synthetic
        assert m.header["reference-card"] == "bulk-switching (soft_bounds)"
    p = synth(tmp_path, load_card(CARDS / "pcsa-130nm.yaml"), "ber", trials=1000)
    m = read_measurements(p)
    assert m.format == "ber" and list(m.table.columns) == ["vdd", "trials", "errors"]
    ramps = write(tmp_path, "r.tsv", "0.1\t0.9\n0.2\t0.8\n0.3\t0.7\n0.4\t0.6\n0.5\t\n")
    m = read_measurements(ramps, min_pulses=3)
    assert m.format == "ramps" and [len(s.pulses) for s in m.series] == [5, 4]
    assert [s.direction for s in m.series] == [1, -1]


@pytest.mark.parametrize("text, fmt, match", [
    ("device,cycle,direction,pulse\nd,0,up,1\n", "auto", "missing column"),
    ("1.0,2.0\n1.1,abc\n" + "1.2,2.2\n" * 12, "auto", r"row 2, column 2: 'abc' is not a number"),
    ("1.0,2.0\n1.1,1.9\n1.2,1.8\n", "auto", r"column 1: only 3 pulses"),
    ("".join(f"{i},1.0\n" for i in range(20)), "auto", r"column 2: constant conductance"),
    ("vdd,trials,errors\n0.5,10,12\n0.6,10,1\n", "auto", r"row 2, column 3 \('errors'\)"),
    ("".join(f"{i},{'' if i == 5 else 1 + i}\n" for i in range(20)) + "20,\n", "ramps",
     r"row 6, column 2: empty cell inside a ramp"),
    ("device,cycle,direction,pulse,conductance\n" + "".join(
        f"d,0,sideways,{i},{i}\n" for i in range(12)), "auto", "'sideways' is not a direction"),
    ("".join(f"{i}\n" for i in range(20)), "auto",
     r"no measurement format matches \(found: 1 numeric column\); expected ber: .*; ramps: "),
    ("# only comments\n", "auto", "no data rows"),
    ("1,2\n", "csv", "unknown format 'csv'"),
])
def test_malformed_files_raise_one_line_errors(tmp_path: Path, text: str, fmt: str,
                                               match: str) -> None:
    p = write(tmp_path, "bad.csv", text)
    with pytest.raises(DseError, match=match) as exc:
        read_measurements(p, fmt)
    assert "\n" not in str(exc.value) and str(p) in str(exc.value)


def test_family_and_format_must_fit(tmp_path: Path) -> None:
    p = synth(tmp_path, load_card(CARDS / "pcsa-130nm.yaml"), "ber", trials=1000)
    with pytest.raises(DseError, match="needs pulse measurements"):
        calibrate(read_measurements(p), "soft_bounds")
    p2 = synth(tmp_path, load_card(CARDS / "bulk-switching.yaml"), "updown", pulses=30)
    with pytest.raises(DseError, match="needs a BER table"):
        calibrate(read_measurements(p2), "pcsa")
    with pytest.raises(DseError, match="unknown device family"):
        calibrate(read_measurements(p2), "memristor")


# ------------------------------------------------------------------------------ recovery
def test_soft_bounds_recovers_its_parameters(tmp_path: Path) -> None:
    # g_min 10 uS: a physical device (reads and per-device bounds stay above 0 uS)
    true = make_card("soft_bounds", "uS", g_min=10.0, g_max=100.0, alpha_up=0.01,
                     alpha_down=0.015, c2c_sigma=0.5, c2c_memory=0.95, read_sigma=1.0,
                     dw_dtod=0.1, up_down_dtod=0.05, g_max_dtod=0.05, g_min_dtod=0.03)
    p = synth(tmp_path, true, "long", devices=40, cycles=1, pulses=300, seed=2)
    r = calibrate(read_measurements(p), "soft_bounds")
    v = {k: e["value"] for k, e in r.card["params"].items()}
    assert v["alpha_up"] == pytest.approx(0.01, rel=0.06)
    assert v["alpha_down"] == pytest.approx(0.015, rel=0.06)
    assert v["g_max"] == pytest.approx(100.0, abs=2.0)
    assert v["g_min"] == pytest.approx(10.0, abs=2.0)
    assert v["c2c_sigma"] == pytest.approx(0.5, rel=0.15)
    assert v["read_sigma"] == pytest.approx(1.0, rel=0.05)
    assert v["c2c_memory"] == pytest.approx(0.95, abs=0.05)
    assert v["dw_dtod"] == pytest.approx(0.1, rel=0.35)
    assert v["g_max_dtod"] == pytest.approx(0.05, rel=0.4)
    assert r.fit["r2"] > 0.99 and r.fit["n_devices"] == 40
    assert "SYNTHETIC" in r.card["source"] and r.card["synthetic"] is True
    # a wrong family would not fit as well: the constant-step (nonlinearity off) trajectory
    lin = from_card(r.card, {"nonlinearity": False})
    m = from_card(r.card)
    x = m.trajectory(20.0, np.arange(0, 300.0), 1)
    assert float((x - lin.trajectory(20.0, np.arange(0, 300.0), 1)).abs().max()) > 5.0


def _steps(m, xs: torch.Tensor) -> np.ndarray:
    st = m.nominal_state(torch.float64)
    ones = torch.ones_like(xs)
    return np.concatenate([(m._mean_step(xs, d * ones, st) - xs).numpy() for d in (1, -1)])


ES_TRUE = make_card("exp_step", "1", g_min=-1.0, g_max=1.0, step=0.004, up_down=0.2, a=-0.5,
                    b=-0.5, A_up=-1.2, A_down=-0.1, gamma_up=3.0, gamma_down=3.0,
                    c2c_sigma=0.01, c2c_memory=0.9, read_sigma=0.03, dw_dtod=0.1,
                    up_down_dtod=0.03)


def test_exp_step_recovers_its_step_function(tmp_path: Path) -> None:
    p = synth(tmp_path, ES_TRUE, "long", devices=16, cycles=1, pulses=300, seed=3)
    r = calibrate(read_measurements(p), "exp_step")
    xs = torch.linspace(-0.8, 0.8, 5, dtype=torch.float64)
    got, want = _steps(from_card(r.card), xs), _steps(from_card(ES_TRUE), xs)
    assert np.allclose(got, want, rtol=0.12), (got, want)
    v = {k: e["value"] for k, e in r.card["params"].items()}
    assert v["read_sigma"] == pytest.approx(0.03, rel=0.05)
    assert v["c2c_sigma"] == pytest.approx(0.01, rel=0.2)
    assert v["c2c_memory"] == pytest.approx(0.9, abs=0.06)
    assert v["dw_dtod"] == pytest.approx(0.1, rel=0.4)
    assert r.fit["r2"] > 0.99


def test_piecewise_recovers_the_step_table(tmp_path: Path) -> None:
    true = from_card(ES_TRUE, {"d2d": False})
    p = synth(tmp_path, true.card, "ramps", cycles=3, pulses=300, seed=3)
    r = calibrate(read_measurements(p), "piecewise")
    fit = from_card(r.card)
    xs = torch.linspace(-0.4, 0.4, 3, dtype=torch.float64)  # inside the measured range
    assert np.allclose(_steps(fit, xs), _steps(true, xs), rtol=0.12)
    for d, x0 in ((1, -0.7), (-1, 0.7)):  # whole mean trajectories
        n = np.arange(0, 300.0)
        dev = (fit.trajectory(x0, n, d) - true.trajectory(x0, n, d)).abs().max()
        assert float(dev) < 0.05 * 2
    assert r.card["params"]["read_sigma"]["value"] == pytest.approx(0.03, rel=0.1)
    assert r.fit["r2"] > 0.99


def test_weak_reset_recovers_its_distributions(tmp_path: Path) -> None:
    true = from_card(load_card(CARDS / "hfo2-weak-reset.yaml"), {"rtn": False, "pink": False})
    p = synth(tmp_path, true.card, "long", devices=300, pulses=2000, every=20, seed=1)
    r = calibrate(read_measurements(p), "weak_reset")
    fit = from_card(r.card)
    for k, rel in (("m1", 0.12), ("t_star", 0.15), ("m2", 0.25)):
        assert fit.scalar(k) == pytest.approx(true.scalar(k), rel=rel), k
    assert fit.values["R0"].a["mean"] == pytest.approx(6988, rel=0.01)
    assert fit.values["c1"].a["std"] == pytest.approx(0.0532, rel=0.2)
    assert r.card["params"]["p_high"]["source"].startswith("Majumdar")  # not fitted: kept
    fit.imperfections.update(rtn=False, pink=False)
    for m in (true, fit):
        st = m.sample_devices((100_000,), torch.Generator().manual_seed(0), torch.float64)
        st.update(t=torch.full_like(st["t"], 1000.0), updated=torch.tensor(True))
        m.median_1000 = float(m.resistance(st).median())
    assert fit.median_1000 == pytest.approx(true.median_1000, rel=0.03)
    fig = tmp_path / "wr.png"
    write_figure(fig, fit_figure(r))
    assert fig.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("name, changes", [
    ("hfo2-2t2r", {"r_hrs": 90000.0, "sigma_lrs": 0.08, "sigma_exponent": 0.7}),
    ("pcsa-130nm", {"v_fail": 0.42, "v_sigma": 0.03, "ber_floor": 1e-4}),
    ("stt-mram", {"delta": 45.0, "i_c0": 8e-5, "tau_d": 1.5e-9}),
])
def test_ber_models_recover_their_parameters(tmp_path: Path, name: str, changes: dict) -> None:
    base = load_card(CARDS / f"{name}.yaml")
    true = from_card(base, changes)
    ops = true.operating_points()
    if name == "pcsa-130nm":
        ops = [{"vdd": v} for v in np.linspace(0.3, 0.65, 12)]
    if name == "hfo2-2t2r":
        ops = [{"i_prog": v} for v in np.geomspace(3e-5, 1.2e-4, 10)]
    p = write(tmp_path, "ber.csv", synthesize(true.card, "ber", trials=200_000,
                                              operating_points=ops, seed=4))
    r = calibrate(read_measurements(p), true.family, base=base)  # starts from the base values
    for k, v in changes.items():
        got = r.card["params"][k]["value"]
        se = r.card["params"][k]["stderr"]
        assert abs(got - v) < max(4 * se, 0.1 * abs(v)), (k, got, v, se)
        assert abs(got - v) < 0.3 * abs(v), (k, got, v)
    assert r.fit["r2"] > 0.98


# ------------------------------------------------------------------------------ Gong et al. 2018
@pytest.mark.parametrize("family", ["soft_bounds", "piecewise"])
def test_gong_file_fit_and_simulation(family: str) -> None:
    data = read_measurements(GONG)  # the shipped copy of the measured file
    r = calibrate(data, family, name=f"gong-{family}")
    c = r.curves
    # R² between the fitted mean trajectory and the measured one smoothed over 50 pulses
    num = den = 0.0
    for _, s in c.groupby("series"):
        sm = pd.Series(s["measured"].to_numpy()).rolling(50, center=True,
                                                         min_periods=1).mean().to_numpy()
        num += float(np.sum((sm - s["fitted"].to_numpy()) ** 2))
        den += float(np.sum((sm - sm.mean()) ** 2))
    assert 1 - num / den >= 0.95
    assert r.fit["r2"] >= 0.95 and r.fit["smoothing_window"] == 50
    assert 0.45 < r.fit["residual_lag1_autocorrelation"] < 0.65
    # a simulation from the fitted card reproduces the measured pulse-to-pulse step sigma
    model = from_card(r.card)
    gen = torch.Generator().manual_seed(11)
    for s in data.series:
        st = model.sample_devices((64,), gen, dtype=torch.float64)
        model.set_conductance(st, torch.full((64,), float(s.conductance[0]), dtype=torch.float64))
        reads = [model.read(st, gen)]
        for _ in range(len(s.pulses) - 1):
            model.apply_pulses(st, torch.full((64,), float(s.direction), dtype=torch.float64),
                               gen)
            reads.append(model.read(st, gen))
        sim = torch.stack(reads, dim=1).numpy()
        sim_sigma = float(np.diff(sim, axis=1).std())
        meas_sigma = float(np.diff(s.conductance).std())
        assert sim_sigma == pytest.approx(meas_sigma, rel=0.25)
    # soft bounds: the ramps do not saturate, so g_max sits at its search limit (flagged),
    # no longer 25x the largest measurement; piecewise: only end-node standard errors flagged
    warnings = " ".join(r.fit["warnings"])
    g_max = r.card["params"].get("g_max", {}).get("value")
    if family == "soft_bounds":
        top = float(np.max([s.conductance.max() for s in data.series]))
        assert g_max is not None and top < g_max < top + 1.0 and "params.g_max" in warnings
    assert "no '# unit:' header" not in warnings and r.fit["limits"]["min_r2"] == 0.8


# ------------------------------------------------------------------------------ commands
def test_synthesize_and_calibrate_commands(tmp_path: Path, capsys) -> None:
    data = tmp_path / "m.csv"
    assert main(["-q", "synthesize", "--card", str(CARDS / "bulk-switching.yaml"), "--format",
                 "updown", "--pulses", "120", "--seed", "1", "--out", str(data)]) == 0
    assert data.read_text().startswith("# SYNTHETIC")
    out, fig = tmp_path / "card.json", tmp_path / "card.png"
    assert main(["-q", "calibrate", str(data), "--family", "soft_bounds", "--out", str(out),
                 "--figure", str(fig)]) == 0
    card = load_card(out)
    assert card["name"] == "card" and card["fit"]["n_points"] == 240
    assert json.loads(out.read_text())["fit"]["source_file"] == str(data)
    assert fig.read_bytes()[:4] == b"\x89PNG"
    ber = tmp_path / "b.csv"
    assert main(["-q", "synthesize", "--card", str(CARDS / "stt-mram.yaml"), "--format", "ber",
                 "--trials", "50000", "--out", str(ber)]) == 0
    out2 = tmp_path / "stt.yaml"
    assert main(["-q", "calibrate", str(ber), "--family", "stt_mram", "--out", str(out2),
                 "--figure", str(tmp_path / "stt.png")]) == 0
    assert load_card(out2)["operating_points"][0] == {"i_write": 1.5e-4, "t_write": 2e-9}
    bad = write(tmp_path, "bad.csv", "1.0,x\n")
    capsys.readouterr()
    assert main(["calibrate", str(bad), "--family", "soft_bounds", "--out",
                 str(tmp_path / "never.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dse: ") and "\n" not in err and "bad.csv" in err
    assert not (tmp_path / "never.json").exists()


def test_default_study_calibrates_measured_data(repo: Path) -> None:
    """The default study fits the shipped MEASURED file (not data made from our own cards); the
    synthetic files that test the fitters are labelled as such."""
    import hashlib

    from dse.config import load_config

    config = load_config(repo / "config" / "config.yaml")
    calibrated = {n: e for n, e in config["devices"].items() if "measurements" in e}
    assert len(calibrated) == 3
    for name, entry in calibrated.items():
        m = read_measurements(repo / entry["measurements"], entry.get("format", "auto"))
        assert not m.synthetic and m.header["measured"] == "true" and not m.warnings, name
    gong = repo / "config" / "measurements" / "gong2018-reram.updown.csv"
    rows = b"".join(ln for ln in gong.read_bytes().splitlines(keepends=True)
                    if not ln.startswith(b"#"))
    assert hashlib.sha256(rows).hexdigest() == (
        "8f009fcbe88d818ae4defff5fb98483c203fcded7958678d42890f27e3e91881")  # aihwkit's file
    assert (repo / "config" / "measurements" / "LICENSE-aihwkit.txt").is_file()
    for f in sorted((repo / "config" / "measurements").glob("*.synthetic.csv")):
        m = read_measurements(f, direction="alternating" if ".ramps." in f.name else "auto")
        assert m.synthetic and "dse synthesize" in m.header["generated-by"], f.name
    for name, entry in config["devices"].items():
        if "card" in entry:
            assert load_card(repo / entry["card"])["name"] == name
