"""The report stage without Snakemake: figures, sections, omission, failures, provenance.

``synthetic_report_data`` builds a :class:`ReportData` holding every section's inputs in the
contract formats, produced with the stage functions themselves where they are cheap
(calibration of the shipped BER measurements, mapping, estimate, inject summaries, Pareto
front); ``tests/test_browser.py`` renders the same data in Chromium.
"""

from __future__ import annotations

import base64
import copy
import re
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from dse.chip.estimate import estimate
from dse.chip.inject import summarize
from dse.chip.mapping import LayerSpec, map_model
from dse.config import check_config, config_hash
from dse.devices import calibrate, fit_figure
from dse.errors import DseError
from dse.pipeline.artifacts import load_card, load_chip, read_measurements
from dse.pipeline.collect import collect_provenance, load_benchmarks, load_results
from dse.pipeline.files import write_figure
from dse.pipeline.layout import Layout
from dse.report import build_sections, render_html
from dse.report import figures as F
from dse.report import robustness as R
from dse.report.data import Calibration, ReportData, Study
from dse.report.provenance import runtimes_table, seeds_table
from dse.search.pareto import hypervolume_history, knee, pareto_front

REPO = Path(__file__).resolve().parents[1]
ALL_SECTIONS = ["summary", "calibration", "training", "continual", "mapping", "robustness",
                "energy", "codesign", "provenance"]


def _config() -> dict:
    cfg = {
        "seed": 3,
        "devices": {
            "hfo2-2t2r": {"card": str(REPO / "config/devices/hfo2-2t2r.yaml")},
            "stt-mram": {"card": str(REPO / "config/devices/stt-mram.yaml")},
            "hfo2-2t2r-cal": {"measurements": str(REPO / "config/measurements/"
                                                  "hfo2-2t2r.ber.synthetic.csv"),
                              "family": "rram_2t2r", "format": "ber"},
        },
        "chips": {"rram-2t2r-pcsa-130nm": str(REPO / "config/chips/rram-2t2r-pcsa-130nm.yaml"),
                  "rram-1t1r-adc": str(REPO / "config/chips/rram-1t1r-adc.yaml")},
        "experiments": {"b": {"dataset": "digits", "hidden": [16]},
                        "meta": {"dataset": "digits", "hidden": [16], "algorithm": "metaplastic",
                                 "tasks": {"kind": "permuted", "count": 3}},
                        "f": {"dataset": "digits", "hidden": [16], "precision": "float",
                              "seed": 11}},
        "inject": {"seed": 5},
        "search": {"s": {"experiment": "b", "chip": "rram-2t2r-pcsa-130nm",
                         "parameters": {"vdd": {"low": 0.35, "high": 1.2}},
                         "objectives": {"accuracy": "maximize",
                                        "energy_per_inference_pJ": "minimize",
                                        "latency_ns": "minimize"}}},
    }
    return check_config(cfg)


def _history(epochs: int, tasks: int = 1, pulses: bool = False) -> pd.DataFrame:
    e = np.arange(1, epochs * tasks + 1)
    return pd.DataFrame({"epoch": e, "task": (e - 1) // epochs,
                         "task_epoch": (e - 1) % epochs + 1, "loss": 2.0 / e,
                         "train_acc": 1 - 0.5 / e, "test_acc": 1 - 0.6 / e,
                         "seconds": 0.5, "pulses_up": 100 * e if pulses else 0,
                         "pulses_down": 50 * e if pulses else 0})


def _summary(knobs: dict[str, list[float]] | None, bers: list[float],
             noise: str = "none") -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for i, ber in enumerate(bers):
        for r in range(4):
            row = {k: v[i] for k, v in (knobs or {}).items()}
            row.update(ber=ber, stuck_sa0=0.0, stuck_sa1=0.0, noise=noise, repeat=r,
                       accuracy=0.9 - 2 * ber + 0.01 * rng.standard_normal())
            rows.append(row)
    return pd.DataFrame(rows)


def synthetic_report_data(tmp: Path) -> ReportData:
    """Inputs of every report section (see the module docstring); files go under ``tmp``."""
    config = _config()
    data = ReportData(config=config)
    meas = read_measurements(REPO / "config/measurements/hfo2-2t2r.ber.synthetic.csv", "ber")
    result = calibrate(meas, "rram_2t2r", name="hfo2-2t2r-cal",
                       base=load_card(REPO / "config/devices/hfo2-2t2r.yaml"))
    card_file = tmp / "hfo2-2t2r-cal.json"
    card_file.write_text("{}")
    write_figure(tmp / "hfo2-2t2r-cal.png", fit_figure(result))
    data.calibrations.append(Calibration("hfo2-2t2r-cal", result.card, card_file,
                                         (tmp / "hfo2-2t2r-cal.png").read_bytes()))
    for name in ("hfo2-2t2r", "stt-mram"):
        path = REPO / "config/devices" / f"{name}.yaml"
        data.device_cards[name] = load_card(path)
        data.device_files[name] = path
    data.device_cards["hfo2-2t2r-cal"] = result.card
    data.device_files["hfo2-2t2r-cal"] = card_file

    for exp, hist in (("b", _history(3)), ("meta", _history(2, tasks=3)),
                      ("f", _history(3, pulses=True))):
        data.history[exp] = hist
        data.models[exp] = {"experiment": {"name": exp, "algorithm": "standard",
                                           "precision": "binary", "dataset": "digits"},
                            "test_accuracy": float(hist["test_acc"].iloc[-1])}
        data.pulses[exp] = pd.DataFrame(columns=["epoch", "layer", "direction", "pulses"])
    data.pulses["f"] = pd.DataFrame({"epoch": [1, 1, 1, 1], "layer": ["fc1", "fc1", "fc2", "fc2"],
                                     "direction": ["up", "down", "up", "down"],
                                     "pulses": [400, 300, 40, 30]})
    data.tasks["b"] = pd.DataFrame({"after_task": [0], "task": [0], "name": ["digits"],
                                    "test_acc": [0.9]})
    data.tasks["meta"] = pd.DataFrame(
        [{"after_task": a, "task": t, "name": f"permuted-{t}", "test_acc": 0.9 - 0.1 * (a - t)}
         for a in range(3) for t in range(3)])

    layers = [LayerSpec("fc1", "linear", "binary", 64, 16, in_bits=8),
              LayerSpec("fc2", "linear", "binary", 16, 10, out_bits=8)]
    for chip, exps in (("rram-2t2r-pcsa-130nm", ("b", "meta")), ("rram-1t1r-adc", ("f",))):
        card = load_chip(config["chips"][chip])
        data.chip_cards[chip] = card
        data.chip_files[chip] = Path(config["chips"][chip])
        for exp in exps:
            specs = layers if card.encoding != "analog" else \
                [LayerSpec(s.name, s.kind, "float", s.rows, s.cols, in_bits=8, out_bits=8)
                 for s in layers]
            mapping = map_model(specs, card, experiment=exp)
            data.mappings[(exp, chip)] = {**mapping.to_dict(), "chip_card": card.to_dict()}
            data.estimates[(exp, chip)] = estimate(mapping, card)
    for exp in ("b", "meta"):
        direct = _summary(None, [0.0, 1e-4, 1e-3, 1e-2, 5e-2])
        i_prog = _summary({"i_prog": [4e-5, 6e-5, 2e-4], "vdd": [1.2, 1.2, 1.2]},
                          [0.06, 2.7e-3, 4e-11])
        vdd = _summary({"i_prog": [2e-4] * 3, "vdd": [0.35, 0.45, 1.2]}, [0.25, 3e-3, 4e-11])
        data.inject[(exp, "rram-2t2r-pcsa-130nm")] = summarize(
            pd.concat([direct, i_prog, vdd], ignore_index=True), clean_accuracy=0.9)
    analog = pd.concat([_summary({"vdd": [0.8]}, [0.0], "none"),
                        _summary({"vdd": [0.8]}, [0.0], "program+read")], ignore_index=True)
    data.inject[("f", "rram-1t1r-adc")] = summarize(analog, clean_accuracy=0.9)

    objectives = dict(config["search"]["s"]["objectives"])
    rng = np.random.default_rng(1)
    vdds = np.linspace(0.35, 1.2, 8)
    low = vdds < 0.5  # below 0.5 V: read errors, accuracy collapses
    trials = pd.DataFrame({"number": range(8), "state": "COMPLETE", "param_vdd": vdds,
                           "accuracy": np.where(low, 0.6, 0.93) + rng.uniform(0, 0.01, 8),
                           "energy_per_inference_pJ": 1e4 * vdds ** 2,
                           "latency_ns": 200 / vdds ** 3,
                           "ber": np.where(low, 0.2, 1e-6), "area_mm2": 1.0, "feasible": True})
    front = pareto_front(trials, objectives)
    front["knee"] = front.index == knee(front, objectives)
    front["test_accuracy"] = front["accuracy"] - 0.01
    data.studies["s"] = Study("s", trials, front,
                              hypervolume_history(trials, objectives),
                              {"trials_complete": 8, "trials_failed": 0, "trainings": 1,
                               "pareto_size": 3}, objectives, tmp / "journal.log")
    bench = tmp / "benchmarks"
    for stage, job, s in (("train", "b", 3.5), ("train", "f", 1.5), ("inject", "b/x", 2.0)):
        path = bench / stage / f"{job}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\t"
                        f"mean_load\tcpu_time\n{s}\t0:00:0{int(s)}\t512.5\t1\t1\t1\t0\t0\t50\t"
                        f"{s / 2}\n")
    data.benchmarks = load_benchmarks(bench)
    return data


def png_size(uri: str) -> tuple[int, int]:
    """Width and height from the IHDR chunk of a PNG data URI."""
    raw = base64.b64decode(uri.split(",", 1)[1])
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", raw[16:24])


def section_ids(html: str) -> list[str]:
    return re.findall(r'data-section="([a-z]+)"', html)


@pytest.fixture(scope="module")
def base_data(tmp_path_factory: pytest.TempPathFactory) -> ReportData:
    return synthetic_report_data(tmp_path_factory.mktemp("report"))


@pytest.fixture
def data(base_data: ReportData) -> ReportData:
    """A copy of the synthetic data a test may change."""
    return copy.deepcopy(base_data)


@pytest.fixture(scope="module")
def synthetic(base_data: ReportData) -> tuple[ReportData, str, list]:
    prov = collect_provenance(base_data, "config.yaml")
    sections = build_sections(base_data, prov, dpi=50)
    return base_data, render_html(sections, prov), sections


def test_every_section_in_pipeline_order_with_its_figures(synthetic) -> None:
    _, html, sections = synthetic
    assert section_ids(html) == ALL_SECTIONS
    assert not any(s.failed for s in sections), [i.content for s in sections for i in s.items
                                                 if i.kind == "failed"]
    figures = {s.id: s.figures for s in sections}
    # calibration: the fit figure + BER curves; training: curves + pulses; continual: one
    # matrix (only 'meta' has several tasks); one robustness and energy figure per chip;
    # co-design (3 objectives): pairwise projections + parallel coordinates + hypervolume.
    assert figures == {"summary": 0, "calibration": 2, "training": 2, "continual": 1,
                       "mapping": 1, "robustness": 2, "energy": 2, "codesign": 3,
                       "provenance": 0}
    for s in sections:
        for item in s.items:
            if item.kind == "figure":
                w, h = png_size(item.content)
                assert w > 50 and h > 50
    assert 'class="failed"' not in html and "could not be" not in html
    assert "<script" not in html.lower() and "http://" not in html  # self-contained


def test_summary_lists_the_front_and_what_limits_each_chip(data: ReportData) -> None:
    from dse.report.summary import summary_section, summary_table

    table = summary_table(data)
    front = data.studies["s"].pareto
    assert sorted(table["trial"]) == sorted(front["number"])  # every Pareto design, once
    assert (table["knee"] == "knee").sum() == 1
    assert table["test accuracy"].notna().all() and table["latency (µs)"].notna().all()
    text = " ".join(i.content for i in summary_section(data, 40).items if i.kind == "text")
    # derived from the trials: below the lowest supply that holds, the read errors dominate
    assert "rram-2t2r-pcsa-130nm" in text and "below vdd" in text and "read errors" in text


def test_provenance_block(synthetic, repo: Path) -> None:
    data, html, _ = synthetic
    assert f'id="config-hash">{config_hash(data.config)}<' in html
    assert "dse.config.config_hash" in html
    seeds = seeds_table(data.config).set_index("what")["seed"]
    assert seeds["global (seed)"] == 3 and seeds["experiment f"] == 11
    assert seeds["experiment b"] == 3 and seeds["inject (fault maps)"] == 5
    assert seeds["study s sampler"] == 3
    for pkg in ("torch", "optuna", "snakemake", "pandas"):
        assert f"<td>{pkg}</td>" in html
    assert "config/chips/rram-1t1r-adc.yaml" in html and "hfo2-2t2r.yaml" in html
    # run time per stage from the benchmark files: train = 3.5 + 1.5 s over 2 jobs
    rt = runtimes_table(data.benchmarks).set_index("stage")
    assert list(rt.index) == ["train", "inject"]
    assert rt.loc["train", "jobs"] == 2 and rt.loc["train", "total_s"] == pytest.approx(5.0)
    assert rt.loc["train", "longest_job"] == "train/b"
    assert "<td>5.0</td>" in html
    assert "experiments:" in html and "effective-config" in html


def test_sections_of_stages_without_outputs_are_left_out(data: ReportData) -> None:
    data.studies.clear()
    data.inject.clear()
    data.tasks = {k: v for k, v in data.tasks.items() if k != "meta"}
    data.calibrations.clear()
    data.device_cards.clear()
    sections = build_sections(data, collect_provenance(data, "c.yaml"), dpi=40)
    assert [s.id for s in sections] == ["training", "mapping", "energy", "provenance"]
    assert all(s.items for s in sections)


def test_a_failing_figure_is_shown_and_logged_not_fatal(data: ReportData,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    for exp in data.history:  # learning curves (and the experiments table) break
        data.history[exp] = data.history[exp].drop(columns=["test_acc"])
    data.calibrations[0].figure = b"not a png"
    data.device_cards.clear()  # (fewer figures to draw: calibration keeps only the broken one)
    data.inject.clear()
    data.estimates.clear()
    data.studies.clear()
    with caplog.at_level("ERROR"):
        sections = build_sections(data, collect_provenance(data, "c.yaml"), dpi=40)
    html = render_html(sections, collect_provenance(data, "c.yaml"))
    by_id = {s.id: s for s in sections}
    assert by_id["training"].failed and by_id["calibration"].failed
    assert not by_id["mapping"].failed and by_id["mapping"].figures == 1
    assert "Figure \u201cLearning curves\u201d could not be rendered" in html
    assert "missing column(s) test_acc" in html
    assert "Table \u201cExperiments\u201d could not be rendered: KeyError" in html
    assert "not a PNG file" in html
    assert 'role="alert"' in html and "Some parts of this report could not be produced" in html
    assert any("Learning curves" in r.getMessage() for r in caplog.records)


def test_unreadable_file_becomes_a_message_in_its_section(tmp_path: Path) -> None:

    cfg = check_config({"experiments": {"x": {"dataset": "digits"}}})
    out = tmp_path / "results" / "train" / "x"
    out.mkdir(parents=True)
    (out / "history.csv").write_text('epoch,task\n1,"unterminated\n')
    data = load_results(cfg, Layout.at(tmp_path / "results"))
    assert data.problems["training"] and "history.csv" in data.problems["training"][0]
    sections = build_sections(data, collect_provenance(data, "c.yaml"), dpi=40)
    assert sections[0].id == "training" and sections[0].failed


def test_figures_reject_tables_without_their_columns() -> None:
    with pytest.raises(DseError, match="missing column"):
        F.learning_curves_figure(pd.DataFrame({"epoch": [1]}))
    with pytest.raises(DseError, match="no rows"):
        R.robustness_figure(pd.DataFrame(columns=["experiment", "ber", "noise", "mean",
                                                  "ci95_low", "ci95_high"]))


def test_robustness_panels_follow_the_knobs(data: ReportData) -> None:
    binary = data.inject[("b", "rram-2t2r-pcsa-130nm")].assign(experiment="b")
    nominal = data.chip_cards["rram-2t2r-pcsa-130nm"].knob_values()
    fig = R.robustness_figure(binary, nominal)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    # BER, i_prog and vdd sweeps
    assert [ax.get_xlabel().split("\n")[0] for ax in visible] == \
        ["bit error rate", "i_prog [µA]", "vdd [V]"]
    # the vdd panel draws the sweep at the nominal i_prog: 3 points, in volts
    vdd_line = visible[2].get_lines()[0]
    assert list(vdd_line.get_xdata()) == pytest.approx([0.35, 0.45, 1.2])
    analog = data.inject[("f", "rram-1t1r-adc")].assign(experiment="f")
    fig = R.robustness_figure(analog, {"vdd": 0.8})
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["none", "program+read"]


def test_ber_axis_floor_is_a_decade_below_the_smallest_direct_ber() -> None:
    df = pd.DataFrame({"i_prog": [np.nan, np.nan, 1e-4], "ber": [0.0, 1e-4, 1e-11]})
    assert R._ber_floor(df, ["i_prog"]) == pytest.approx(1e-5)
    assert R._ber_floor(df.iloc[[0, 2]], ["i_prog"]) == pytest.approx(1e-12)


def test_ber_curves_of_binary_cards(tmp_path: Path) -> None:
    curves = pd.DataFrame({"card": ["a", "a", "b", "b"], "family": ["x", "x", "y", "y"],
                           "knob": ["vdd", "vdd", "i_write", "i_write"],
                           "value": [0.4, 0.8, 1e-4, 2e-4], "ber": [1e-2, 0.0, 1e-3, 1e-5],
                           "series": ["", "", "t_write 2 ns", "t_write 2 ns"]})
    fig = F.ber_curves_figure(curves)
    assert isinstance(fig, Figure) and len([a for a in fig.axes if a.get_visible()]) == 2
    assert fig.axes[1].get_xlabel() == "i_write [µA]"
    # the zero BER is drawn (hollow) on the panel's floor, a decade below its smallest BER
    hollow = fig.axes[0].get_lines()[2]
    assert list(hollow.get_ydata()) == [pytest.approx(1e-3)]
    assert F.png_to_data_uri(_png(fig, tmp_path / "x.png")).startswith("data:image/png")


def _png(fig: Figure, path: Path) -> bytes:
    fig.savefig(path, dpi=30)
    return path.read_bytes()


def test_table_html_escapes_and_formats() -> None:
    from dse.report.items import table_html

    html = table_html(pd.DataFrame({"a": ["<b>"], "x": [0.123456], "n": [None]}), {"x": ".2f"})
    assert "&lt;b&gt;" in html and "<td>0.12</td>" in html and "<td></td>" in html
