"""Relaxation: the measurement format, the model, its fit, the shipped Stanford subsets and global
drift compensation."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dse.chip.drift import compensate, global_drift_factor
from dse.devices import calibrate
from dse.devices.fit_relaxation import fit_relaxation
from dse.devices.relaxation import RelaxationModel, relaxation_from_entry
from dse.errors import DseError
from dse.pipeline.artifacts import read_measurements

REPO = Path(__file__).resolve().parents[1]
MEAS = REPO / "config" / "measurements"
TIMES = [0.0, 0.01, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4]


def known_model() -> RelaxationModel:
    """Three levels, smooth in G, time constants well apart."""
    return RelaxationModel(
        unit="uS", g_ref=40.0, taus=(0.05, 5.0, 1.0), levels=np.array([5.0, 20.0, 35.0]),
        drift=np.array([[0.2, 0.3, 0.05], [-0.3, -0.5, -0.3], [-0.4, -0.6, -0.5]]),
        sigma=np.array([[0.3, 0.6, 0.5, 0.4], [0.5, 1.2, 1.0, 0.8], [0.4, 1.0, 0.9, 0.7]]))


def synth_table(model: RelaxationModel, cells: int, seed: int) -> pd.DataFrame:
    """Cells at each level (G0 = the level exactly), read at TIMES with the model's process."""
    gen = torch.Generator().manual_seed(seed)
    g0 = torch.tensor(np.repeat(model.levels, cells), dtype=torch.float64)
    g = model.sample(g0, TIMES, gen)  # (T, N), g[0] = g0
    n = g0.numel()
    return pd.DataFrame({"cell": np.tile(np.arange(n), len(TIMES)).astype(str),
                         "level": np.tile(np.repeat(np.arange(3), cells), len(TIMES)),
                         "time": np.repeat(TIMES, n), "conductance": g.reshape(-1).numpy(),
                         "g0": np.tile(g0.numpy(), len(TIMES)), "line": 0})


def test_sample_marginals_and_cumulative_correlation() -> None:
    m = known_model()
    gen = torch.Generator().manual_seed(1)
    g0 = torch.full((40_000,), 20.0, dtype=torch.float64)
    g = m.sample(g0, [1e4, 1.0, 0.0], gen)  # unsorted on purpose
    for k, t in enumerate([1e4, 1.0, 0.0]):
        mu, var = float(m.mean_shift(g0[:1], t)[0]), float(m.variance(g0[:1], t)[0])
        d = g[k] - g0
        se = max(var, 1e-12) ** 0.5 / 200
        assert float(d.mean()) == pytest.approx(mu, abs=4 * se + 1e-12)
        assert float(d.var()) == pytest.approx(var, rel=0.04, abs=1e-12)
    # the same cells followed in time: Cov(ΔG(1 s), ΔG(1e4 s)) = Var ΔG(1 s)
    d1, d2 = g[1] - g0, g[0] - g0
    cov = float(((d1 - d1.mean()) * (d2 - d2.mean())).mean())
    assert cov == pytest.approx(float(d1.var()), rel=0.05)
    assert torch.equal(g[2], g0)


def test_fit_recovers_synthesised_parameters() -> None:
    truth = known_model()
    table = synth_table(truth, cells=600, seed=0)
    model, _curves, q = fit_relaxation(table, "uS", 40.0)
    assert q["levels"] == 3 and q["n_points"] == 3 * (len(TIMES) - 1) and q["r2"] > 0.99
    np.testing.assert_allclose(model.levels, truth.levels)
    g = torch.tensor(truth.levels, dtype=torch.float64)
    for t in [*TIMES[1:], 3.2e8]:  # measured times and the 10-year extrapolation
        v_fit, v_true = model.variance(g, t).numpy(), truth.variance(g, t).numpy()
        np.testing.assert_allclose(np.sqrt(v_fit), np.sqrt(v_true), rtol=0.08)
        sd = np.sqrt(v_true / 600)
        np.testing.assert_array_less(np.abs(model.mean_shift(g, t).numpy()
                                            - truth.mean_shift(g, t).numpy()), 5 * sd + 0.02)
    # the log-time slope (what carries the extrapolation) and the time constants
    np.testing.assert_allclose(model.sigma[:, 3], truth.sigma[:, 3], rtol=0.15)
    np.testing.assert_allclose(model.drift[:, 2], truth.drift[:, 2], atol=0.06)
    assert model.taus[0] == pytest.approx(0.05, rel=0.5) and model.taus[1] == pytest.approx(
        5.0, rel=0.5)


def test_card_entry_round_trip() -> None:
    m = known_model()
    back = relaxation_from_entry(m.to_entry("test"), "uS", "inference.relaxation")
    assert back.taus == m.taus
    np.testing.assert_array_equal(back.sigma, m.sigma)
    with pytest.raises(DseError, match=r"relaxation.tau_1.unit: 'uS' but 's'"):
        e = m.to_entry("test")
        e["tau_1"]["unit"] = "uS"
        relaxation_from_entry(e, "uS", "inference.relaxation")
    with pytest.raises(DseError, match="sigma_2: 2 values for 3 levels"):
        e = m.to_entry("test")
        e["sigma_2"]["value"] = [1.0, 2.0]
        relaxation_from_entry(e, "uS", "inference.relaxation")
    scaled = m.for_window(20.0)
    np.testing.assert_allclose(scaled.levels, m.levels / 2)


def write(tmp: Path, name: str, text: str, gz: bool = False) -> Path:
    p = tmp / name
    if gz:
        p.write_bytes(gzip.compress(text.encode()))
    else:
        p.write_text(text)
    return p


GOOD = ("# unit: uS\ncell\tlevel\ttime\tconductance\n"
        + "".join(f"c{i}\t0\t0\t{10 + i}\nc{i}\t0\t1\t{10.5 + i}\nc{i}\t0\t10\t{10.2 + i}\n"
                  for i in range(3)))


def test_reader_accepts_gzip_and_auto_detects(tmp_path: Path) -> None:
    p = write(tmp_path, "r.tsv.gz", GOOD, gz=True)
    m = read_measurements(p)
    assert m.format == "relaxation" and m.kind == "relaxation" and len(m.table) == 9
    assert list(m.table["g0"][:3]) == [10.0, 10.0, 10.0]


@pytest.mark.parametrize("text, match", [
    ("cell\ttime\tconductance\nc\t0\t1\n", "missing '# unit: ...' header"),
    ("# unit: uS\ncell\ttime\ng\t0\n", r"row 2: header lacks column\(s\) conductance"),
    ("# unit: uS\ncell\ttime\tconductance\nc\t0\t10\nc\tx\t10\n",
     r"row 4, column 'time': 'x' is not a number"),
    ("# unit: uS\ncell\ttime\tconductance\nc\t0\t10\nc\t-1\t10\n",
     r"row 4, column 'time': -1 s is negative"),
    ("# unit: uS\ncell\ttime\tconductance\nc\t0\t10\nc\t1\t0\n",
     r"row 4, column 'conductance': 0 must be > 0"),
    ("# unit: uS\ncell\ttime\tconductance\nc\t0\t10\nc\t1\t9\nc\t1\t9.5\nd\t1\t3\n",
     r"row 5: cell 'c' has a second read at time 1 s"),
    ("# unit: uS\ncell\ttime\tconductance\nc\t0\t10\nc\t1\t9\nc\t2\t9\nd\t1\t3\n",
     r"row 6: cell 'd' has no time-0 row"),
    ("# unit: uS\ncell\ttime\tconductance\nc\t0\t10\nc\t1\t9\nc\t2\t9\nd\t0\t3\n",
     r"row 6: cell 'd' has no read after time 0"),
    ("# unit: uS\ncell\tlevel\ttime\tconductance\nc\t1.5\t0\t10\n",
     r"row 3, column 'level': 1.5 is not a non-negative integer"),
    ("# unit: uS\ncell\ttime\tconductance\nc\t0\t10\t4\n", r"row 3: 4 columns, expected 3"),
    ("# unit: uS\ncell\ttime\tconductance\nc\t0\t10\nc\t1\t9\n", "fewer than 2 distinct times"),
])
def test_bad_relaxation_files_raise_one_line(tmp_path: Path, text: str, match: str) -> None:
    p = write(tmp_path, "bad.tsv", text)
    with pytest.raises(DseError, match=match) as exc:
        read_measurements(p, "relaxation")
    assert "\n" not in str(exc.value) and str(p) in str(exc.value)


def test_family_and_format_must_match(tmp_path: Path) -> None:
    m = read_measurements(write(tmp_path, "r.tsv", GOOD))
    with pytest.raises(DseError, match="fitted with --family relaxation"):
        calibrate(m, "soft_bounds")


def test_shipped_subsets_have_provenance_and_stay_small(repo: Path) -> None:
    files = sorted(MEAS.glob("stanford-rram-tech?.relaxation.tsv.gz"))
    assert len(files) == 3 and sum(f.stat().st_size for f in files) < 1_000_000
    assert "Akash Levy" in (MEAS / "LICENSE.stanford-rram-relaxation").read_text()
    for f in files:
        head = gzip.decompress(f.read_bytes()).decode()[:1000]
        assert "RRAM-Relaxation-Master-Model" in head and "MIT" in head and "# unit: uS" in head
    m = read_measurements(files[2], "relaxation")
    assert m.table["cell"].nunique() == 6400 and set(m.table["level"]) == set(range(32))


def test_calibrate_writes_a_relaxation_card_with_fit_quality(tmp_path: Path) -> None:
    table = synth_table(known_model(), cells=150, seed=3)
    body = table[["cell", "level", "time", "conductance"]].to_csv(sep="\t", index=False)
    p = write(tmp_path, "synth.tsv.gz", "# unit: uS\n# g_ref: 40\n" + body, gz=True)
    r = calibrate(read_measurements(p), "relaxation", name="synth")
    fit = r.fit
    assert r.kind == "relaxation" and r.card["name"] == "synth"
    assert fit["r2"] > 0.95 and fit["n_points"] == 3 * (len(TIMES) - 1)
    assert fit["source_file"] == str(p) and len(fit["sha256"]) == 64
    model = relaxation_from_entry(r.card["relaxation"], "uS", "relaxation")
    assert len(model.levels) == 3 and model.g_ref == 40.0


def test_shipped_subset_fit(repo: Path) -> None:
    """Technology B (5 reads per cell), every 4th level: the model form fits the real data."""
    m = read_measurements(MEAS / "stanford-rram-techB.relaxation.tsv.gz", "relaxation")
    t = m.table[m.table["level"] % 4 == 0]
    _model, _curves, q = fit_relaxation(t, m.unit, float(m.header["g_ref"]))
    assert q["levels"] == 8 and q["r2"] > 0.98 and q["r2_mean"] > 0.95
    assert q["max_rel_err_mean_g"] < 0.1 and q["within_10pct_sigma_g"] > 0.85


# ------------------------------------------------------------------------------ compensation
def test_global_drift_compensation_is_exact_for_a_pure_global_drift() -> None:
    gen = torch.Generator().manual_seed(0)
    g_pos = 10 + 20 * torch.rand((4, 16, 3, 5, 5), generator=gen, dtype=torch.float64)
    g_neg = 10 + 20 * torch.rand((4, 16, 3, 5, 5), generator=gen, dtype=torch.float64)
    w0 = g_pos - g_neg
    kappa = torch.tensor([1.0, 0.9, 0.5, 1.3], dtype=torch.float64)  # per map (time)
    k = kappa.view(4, 1, 1, 1, 1)
    wt = k * g_pos - k * g_neg
    assert torch.allclose(global_drift_factor(w0, wt), 1 / kappa, rtol=1e-12)
    assert torch.allclose(compensate(w0, wt), w0, rtol=1e-12, atol=1e-12)
    # a cell-to-cell drift is only undone on average: still better than none
    noisy = wt * (1 + 0.05 * torch.randn(wt.shape, generator=gen, dtype=torch.float64))
    err_c = (compensate(w0, noisy) - w0).square().mean()
    assert err_c < (noisy - w0).square().mean()
    with pytest.raises(DseError, match="need 1 map dimension"):
        global_drift_factor(w0[0, 0, 0], wt[0, 0, 0])
