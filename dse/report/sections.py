"""The report's sections in pipeline order, each built from :class:`ReportData` (a section whose
stage produced nothing is left out, never shown empty)."""

from __future__ import annotations

import html
import logging

import pandas as pd

from dse.report import figures as F
from dse.report.data import ReportData
from dse.report.deployment import deployment_section
from dse.report.front import front_figure, hypervolume_figure, parallel_figure
from dse.report.items import Builder, Item, Section
from dse.report.memory import chip_retention, deployed, weight_memory
from dse.report.provenance import Provenance
from dse.report.robustness import robustness_figure

log = logging.getLogger(__name__)


def _problems(b: Builder, data: ReportData, key: str) -> None:
    for msg in data.problems.get(key, []):
        b.failed(f"Could not read {msg}")


# ------------------------------------------------------------------------------- sections
def _fit_quality(data: ReportData) -> pd.DataFrame:
    rows = []
    for cal in data.calibrations:
        fit = cal.card.get("fit", {})
        rows.append({"device": cal.name, "family": cal.card.get("family"),
                     "format": fit.get("format"), "points": fit.get("n_points"),
                     "R²": fit.get("r2"), "residual σ": fit.get("residual_sigma"),
                     "C2C σ": fit.get("c2c_sigma"), "read σ": fit.get("read_sigma"),
                     "deviance": fit.get("deviance"), "method": fit.get("method"),
                     "data": fit.get("source_file"),
                     "synthetic": "yes" if fit.get("synthetic") else "no",
                     "warnings": " | ".join(fit.get("warnings") or []) or "none"})
    return pd.DataFrame(rows)


def _calibration(data: ReportData, dpi: int) -> Section | None:
    from dse.devices import BitErrorModel, from_card

    binary: list[tuple[str, BitErrorModel]] = []
    bad: list[str] = []
    for name, card in data.device_cards.items():
        try:
            model = from_card(card)
        except Exception as exc:
            bad.append(f"device card {name}: {exc}")
            continue
        # a sense model that reads each pair's own resistances (pcsa_physical) has no BER of
        # its own: its rates need a cell card (they are in the robustness section, per chip)
        if isinstance(model, BitErrorModel) and not hasattr(model, "with_cell"):
            binary.append((name, model))
    if not data.calibrations and not binary and not data.problems.get("calibration"):
        return None
    s = Section("calibration", "Device calibration",
                "Device cards fitted to measurement files (the calibrate stage) and the bit error "
                "rates of the binary-cell cards at their operating points.")
    b = Builder(s, dpi)
    _problems(b, data, "calibration")
    for msg in bad:
        b.failed(msg)
    for cal in data.calibrations:
        if cal.figure is not None:
            b.figure(f"{cal.name}: measured vs fitted", lambda c=cal: c.figure,
                     caption=str(cal.card.get("description", "")))
    if data.calibrations:
        b.table("Fit quality", _fit_quality(data),
                "R²: fitted mean trajectory vs the smoothed measurement (pulse families) or the "
                "probit-scale BER fit (binary cells); σ in the card's conductance unit; "
                "warnings: the card's fit.warnings (parameters the data do not determine, "
                "unmeasured directions; docs/measurements.md).")
    if binary:
        def curves() -> pd.DataFrame:
            rows = []
            for name, model in binary:
                knobs = list(model.knobs)
                for op in model.operating_points():
                    ber = float(model.ber(**op))
                    others = ", ".join(F.knob_text(k, op[k]) for k in knobs[1:] if k in op)
                    rows.append({"card": name, "family": model.card.get("family"),
                                 "knob": knobs[0], "value": float(op[knobs[0]]), "ber": ber,
                                 "series": others})
            return pd.DataFrame(rows)

        b.figure("Bit error rate at the operating points",
                 lambda: F.ber_curves_figure(curves()),
                 "Each card's default operating-point sweep (operating_points: of the card); "
                 "hollow markers: BER below the axis floor.")
    return s


def _training(data: ReportData, dpi: int) -> Section | None:
    if not data.history and not data.problems.get("training"):
        return None
    s = Section("training", "Training",
                "One run per experiment: learning curves, final accuracies and the programming "
                "pulses counted during training.")
    b = Builder(s, dpi)
    _problems(b, data, "training")
    if not data.history:
        return s
    hist = pd.concat([h.assign(experiment=e) for e, h in data.history.items()],
                     ignore_index=True)
    b.figure("Learning curves", lambda: F.learning_curves_figure(hist),
             "Train and test accuracy (left axis) and loss (dashed, right axis) per epoch; "
             "dotted lines: task boundaries.")
    def experiments() -> pd.DataFrame:
        rows = []
        for exp, h in data.history.items():
            e = data.models.get(exp, {}).get("experiment", {})
            cfg = data.config.get("experiments", {}).get(exp, {})
            rows.append({"experiment": exp,
                         "algorithm": e.get("algorithm", cfg.get("algorithm")),
                         "precision": e.get("precision", cfg.get("precision")),
                         "dataset": e.get("dataset", cfg.get("dataset")),
                         "model": e.get("model", cfg.get("model")),
                         "device card": e.get("device_card") or "",
                         "epochs": int(h["epoch"].max()),
                         "test accuracy": data.models.get(exp, {}).get(
                             "test_accuracy", h["test_acc"].iloc[-1]),
                         "train seconds": float(h["seconds"].sum()),
                         "pulses": int(h["pulses_up"].sum() + h["pulses_down"].sum())})
        return pd.DataFrame(rows)

    b.table("Experiments", experiments, formats={"test accuracy": ".4f",
                                                 "train seconds": ".1f"})
    weight_memory(b, data)
    pulses = [p.assign(experiment=e) for e, p in data.pulses.items()
              if len(p) and p["pulses"].sum() > 0]
    if pulses:
        table = pd.concat(pulses, ignore_index=True)
        b.figure("Programming pulses during training", lambda: F.pulses_figure(table),
                 "Summed over epochs, per layer and direction: the device pulses of the "
                 "device-in-the-loop algorithms, and for binary/ternary weights each change of "
                 "a quantized weight (up = towards +1 / conductance up). The estimate stage "
                 "turns them into training energy.")
    else:
        b.text("<p>No programming pulses were counted during training.</p>")
    return s


def _continual(data: ReportData, dpi: int) -> Section | None:
    multi = {e: t for e, t in data.tasks.items() if "task" in t and t["task"].nunique() > 1}
    if not multi:
        return None
    s = Section("continual", "Continual learning",
                "Test accuracy on every task after training each task: the diagonal is the task "
                "just learnt, below it what is retained of earlier tasks.")
    b = Builder(s, dpi)
    for exp, t in multi.items():
        b.figure(f"{exp}: task matrix", lambda t=t, e=exp: F.task_matrix_figure(t, title=e))

    def retention() -> pd.DataFrame:
        rows = []
        for exp, t in multi.items():
            last = t[t["after_task"] == t["after_task"].max()]
            first = t[t["task"] == t["task"].min()].sort_values("after_task")
            rows.append({"experiment": exp, "tasks": t["task"].nunique(),
                         "mean accuracy after the last task": last["test_acc"].mean(),
                         "first task, just learnt": first["test_acc"].iloc[0],
                         "first task, at the end": first["test_acc"].iloc[-1]})
        return pd.DataFrame(rows)

    b.table("Retention", retention, formats={"mean accuracy after the last task": ".4f",
                                             "first task, just learnt": ".4f",
                                             "first task, at the end": ".4f"})
    chip_retention(b, data)
    return s


def _mapping(data: ReportData, dpi: int) -> Section | None:
    if not data.mappings and not data.problems.get("mapping"):
        return None
    s = Section("mapping", "Mapping onto the chips",
                "Each weight layer laid out on the chip's arrays (weight-stationary, one set of "
                "arrays per layer): arrays (tiles) used and the fraction of their cells holding "
                "weights.")
    b = Builder(s, dpi)
    _problems(b, data, "mapping")
    if not data.mappings:
        return s

    def layers() -> pd.DataFrame:
        return pd.DataFrame([{"experiment": exp, "chip": chip, "layer": lay["name"],
                              "tiles": lay["tiles"], "utilisation": lay["utilisation"]}
                             for (exp, chip), m in data.mappings.items()
                             for lay in m["layers"]])

    def totals() -> pd.DataFrame:
        rows = []
        for (exp, chip), m in data.mappings.items():
            t = m["totals"]
            rows.append({"experiment": exp, "chip": chip, "encoding": m.get("encoding"),
                         "sensing": m.get("sensing"),
                         "array": f"{m['array']['rows']}×{m['array']['cols']}",
                         "tiles": t.get("tiles"), "cells": t.get("cells"),
                         "utilisation": t.get("utilisation"), "ADCs": t.get("adcs"),
                         "sense amps": t.get("sense_amps")})
        return pd.DataFrame(rows)

    b.figure("Tiles and utilisation per layer", lambda: F.mapping_figure(layers()))
    b.table("Per experiment and chip", totals, formats={"utilisation": ".3f"})
    return s


def _per_chip(tables: dict[tuple[str, str], pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Tables of (experiment, chip) pairs concatenated per chip (column ``experiment``)."""
    chips = list(dict.fromkeys(chip for _, chip in tables))
    return {chip: pd.concat([t.assign(experiment=exp) for (exp, c), t in tables.items()
                             if c == chip], ignore_index=True) for chip in chips}


def _robustness(data: ReportData, dpi: int) -> Section | None:
    if not data.inject and not data.problems.get("robustness"):
        return None
    s = Section("robustness", "Robustness to bit errors",
                "Monte-Carlo fault injection: test accuracy of the trained networks under the "
                "chips' weight errors, mean over the fault maps with its 95 % confidence band "
                "(Student t), against the bit error rate and the operating-point knobs (supply "
                "voltage, programming current or pulse) with the other knobs at the chip's "
                "nominal point.")
    b = Builder(s, dpi)
    _problems(b, data, "robustness")
    per_chip = _per_chip({k: deployed(t) for k, t in data.inject.items()})
    for chip, summary in per_chip.items():
        card = data.chip_cards.get(chip)
        nominal = card.knob_values() if card is not None else {}
        if "time_s" in summary.columns:  # cells read after programming: nominal = right after
            nominal["time_s"] = 0.0
        b.figure(chip, lambda t=summary, n=nominal, c=chip: robustness_figure(t, n, title=c),
                 "Mean accuracy over the fault maps; bands (error bars): 95 % confidence "
                 "interval of the mean; dotted: the chip's nominal operating point.")

    def worst() -> pd.DataFrame:
        rows = []
        for chip, summary in per_chip.items():
            for exp, g in summary.groupby("experiment", sort=False):
                w = g.loc[g["mean"].idxmin()]
                rows.append({"chip": chip, "experiment": exp,
                             "clean accuracy": g["clean_accuracy"].iloc[0],
                             "points": len(g), "maps per point": int(g["n"].max()),
                             "worst mean accuracy": w["mean"], "at BER": w["ber"]})
        return pd.DataFrame(rows)

    if per_chip:
        b.table("Clean and worst-case accuracy", worst,
                formats={"clean accuracy": ".4f", "worst mean accuracy": ".4f",
                         "at BER": ".3g"})
    return s


def _energy(data: ReportData, dpi: int) -> Section | None:
    if not data.estimates and not data.problems.get("energy"):
        return None
    s = Section("energy", "Energy and area",
                "Energy per inference (one image) and area per layer, stacked by component "
                "(cell reads, sense amplifiers, ADCs, accumulation, buffers, periphery), at each "
                "chip's nominal operating point.")
    b = Builder(s, dpi)
    _problems(b, data, "energy")
    from dse.chip.estimate import totals as est_totals
    from dse.chip.latency import throughput

    for chip, table in _per_chip(data.estimates).items():
        b.figure(chip, lambda t=table, c=chip: F.energy_area_figure(t, title=c))

    def totals() -> pd.DataFrame:
        rows = []
        for (exp, chip), t in data.estimates.items():
            tot = est_totals(t)
            row = {"chip": chip, "experiment": exp,
                   "energy / inference (pJ)": tot["energy_per_inference_pJ"],
                   "programming (pJ)": tot["deployment_pJ"],
                   "training (pJ)": tot["training_pJ"], "area (mm²)": tot["area_mm2"]}
            lat = data.latencies.get((exp, chip))
            if lat is not None and len(lat):
                tp = throughput(lat, tot["energy_per_inference_pJ"], tot["area_mm2"])
                row.update({"latency (ns)": tp["latency_ns"],
                            "inferences/s": tp["inferences_per_s"],
                            "TOPS/W": tp.get("tops_per_w"), "TOPS/mm²": tp.get("tops_per_mm2")})
            rows.append(row)
        return pd.DataFrame(rows).sort_values(["chip", "experiment"], kind="stable")

    if data.estimates:
        b.table("Totals", totals, "Programming: writing every cell once when the model is "
                "deployed; training: the device pulses counted during training; latency: one "
                "inference through the mapped layers (sense or ADC time, rows read in parallel, "
                "multiplexing, accumulation), per layer in estimate/{exp}/{chip}.latency.csv.")
    return s


def _validation(data: ReportData, dpi: int) -> Section | None:
    if data.validation.empty and not data.problems.get("validation"):
        return None
    s = Section("validation", "Validation against published chip tables",
                "dse's estimates of a chip described once (dse/chip/validation.py) beside the "
                "published figures for it, term by term; ratio = dse / reference. Rows with a "
                "tolerance are where the models are meant to agree; every other difference "
                "beyond ±25 % is explained by component.")
    b = Builder(s, dpi)
    _problems(b, data, "validation")
    t = data.validation
    for case, g in t.groupby("case", sort=False):
        b.table(case, lambda g=g: g[["quantity", "unit", "reference", "dse", "ratio",
                                     "tolerance", "within", "explanation"]],
                "Sources: " + "; ".join(dict.fromkeys(g["source"])))
    return s


def _front_table(st) -> pd.DataFrame:
    p = st.pareto
    cols = ["number"] + [c for c in p.columns if c.startswith("param_")] + \
        [c for c in st.objectives if c in p.columns] + \
        [c for c in ("test_accuracy", "knee", "ber", "latency_ns", "area_mm2")
         if c in p.columns and c not in st.objectives]
    return p[cols].rename(columns=lambda c: c.removeprefix("param_"))


def _codesign(data: ReportData, dpi: int) -> Section | None:
    if not data.studies and not data.problems.get("codesign"):
        return None
    s = Section("codesign", "Co-design search",
                "Optuna multi-objective studies: every trial trains (cached), maps, injects and "
                "estimates one design; the Pareto-optimal feasible designs and the hypervolume "
                "of the front after each trial.")
    b = Builder(s, dpi)
    _problems(b, data, "codesign")
    for name, st in data.studies.items():
        info = st.summary
        b.text(f"<p><b>Study {html.escape(name)}</b>: {info.get('trials_complete')} complete "
               f"trials ({info.get('trials_failed', 0)} failed), {info.get('trainings')} "
               f"trainings, {info.get('pareto_size')} Pareto-optimal designs; objectives "
               + ", ".join(f"{html.escape(k)} ({v})" for k, v in st.objectives.items())
               + (f". Watch it live: <code>optuna-dashboard {html.escape(str(st.journal))}"
                  "</code>" if st.journal else "") + ".</p>")
        b.figure(f"{name}: Pareto front",
                 lambda st=st: front_figure(st.trials, st.pareto, st.objectives),
                 "Every complete trial; outlined: the Pareto-optimal feasible designs"
                 + ("; star: the knee. One panel per pair of objectives."
                    if len(st.objectives) >= 3 else "."))
        if len(st.objectives) >= 3:
            b.figure(f"{name}: parameters and objectives (parallel coordinates)",
                     lambda st=st: parallel_figure(st.trials, st.pareto, st.objectives),
                     "One line per complete trial (grey), the Pareto designs in colour, the "
                     "knee in red; every axis min-max scaled over the trials (log where the "
                     "values span more than 30x).")
        b.table(f"{name}: Pareto-optimal designs", lambda st=st: _front_table(st))
        if len(st.hypervolume):
            b.figure(f"{name}: hypervolume convergence",
                     lambda st=st: hypervolume_figure(st.hypervolume),
                     "Hypervolume of the feasible trials so far (objectives min-max normalised, "
                     "reference point 1.1).")
    return s


def provenance_section(prov: Provenance, dpi: int) -> Section:
    s = Section("provenance", "Provenance",
                "What produced this report: the effective configuration, the code, the packages, "
                "the seeds, the device and chip cards, and how long each stage took.")
    b = Builder(s, dpi)
    info = pd.DataFrame([
        {"item": "config hash (dse.config.config_hash)", "value": prov.config_hash},
        {"item": "config file", "value": prov.config_file},
        {"item": "dse version", "value": prov.dse_version},
        {"item": "git commit", "value": prov.git.get("commit", "")},
        {"item": "working tree", "value": prov.git.get("state", "")},
        {"item": "python", "value": prov.python},
        {"item": "platform", "value": prov.platform},
        {"item": "generated", "value": prov.generated},
    ])
    b.table("Run", info)
    b.table("Packages", pd.DataFrame(list(prov.packages.items()), columns=["package", "version"]))
    b.table("Seeds", prov.seeds)
    if len(prov.cards):
        b.table("Device and chip cards", prov.cards)
    if len(prov.runtimes):
        b.table("Run time per stage", prov.runtimes.rename(columns=RUNTIME_COLUMNS),
                "From Snakemake's benchmark: files (results/benchmarks/{stage}/...): wall "
                "time of the stage's jobs, summed; CPU time; peak resident memory of a job.",
                formats={"wall time (s)": ".1f", "longest (s)": ".1f", "CPU time (s)": ".1f",
                         "peak memory (MB)": ".0f"})
    s.items.append(Item("pre", "Effective configuration", prov.config_yaml))
    return s


RUNTIME_COLUMNS = {"total_s": "wall time (s)", "longest_job": "longest job",
                   "longest_s": "longest (s)", "cpu_time_s": "CPU time (s)",
                   "max_rss_mb": "peak memory (MB)"}
SECTIONS = (_calibration, _training, _continual, _mapping, _robustness, deployment_section,
            _energy, _validation, _codesign)
