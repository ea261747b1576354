"""``dse`` command line: argument parsing only; each subcommand calls the wiring
(:mod:`dse.pipeline`: its recipes and contract-file I/O) and nothing else.

A user mistake (``DseError``) prints one line, ``dse: <file>: <what> (<fix>)``, and exits 2.
One section per stage below; keep each subcommand's parser and handler together.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from dse import __version__
from dse.errors import DseError

log = logging.getLogger("dse")

Handler = Callable[[argparse.Namespace], int | None]


def _setup(args: argparse.Namespace) -> None:
    level = logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s: %(message)s",
                        stream=sys.stderr)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


# --------------------------------------------------------------------------------------- train
def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one experiment of a config")
    p.add_argument("--config", required=True, type=Path, help="study config (config/config.yaml)")
    p.add_argument("--experiment", required=True, help="experiment name under experiments:")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--card", type=Path, default=None,
                   help="device card file (YAML/JSON) for the experiment's device_card "
                        "(default: the one the config names)")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    from dse.config import Experiment, load_config
    from dse.pipeline import Layout, artifacts, files, recipes

    config = load_config(args.config)
    exp = Experiment.from_config(config, args.experiment)
    files.check_writable(args.out / "model.json")
    cards = recipes.experiment_cards(config, exp, Layout.from_config(config), args.card)
    result = recipes.train_experiment(config, exp, cards, progress=not args.quiet)
    artifacts.save_model(result, args.out, card=next(iter(cards.values()), None))
    log.info("trained %s: test accuracy %.4f -> %s", exp.name, result.test_accuracy, args.out)
    return 0


# ------------------------------------------------------------------------ map / inject / estimate
def _add_map(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("map", help="lay a trained model out on a chip's arrays")
    p.add_argument("--model", required=True, type=Path, help="a `dse train` output directory")
    p.add_argument("--chip", required=True, type=Path, help="chip card (config/chips/*.yaml)")
    p.add_argument("--out", required=True, type=Path, help="mapping JSON to write")
    p.set_defaults(func=_cmd_map)


def _cmd_map(args: argparse.Namespace) -> int:
    from dse.chip.mapping import map_model
    from dse.pipeline import artifacts, files

    chip = artifacts.load_chip(args.chip)
    trained = artifacts.load_model(args.model)
    files.check_writable(args.out)
    mapping = map_model(trained.model, chip, experiment=trained.experiment.get("name"))
    artifacts.write_mapping(args.out, mapping, chip)
    t = mapping.totals()
    log.info("mapped %s on %s: %d tiles, utilisation %.3f -> %s", mapping.experiment, chip.name,
             t["tiles"], t["utilisation"], args.out)
    return 0


def _add_inject(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inject", help="Monte-Carlo fault injection: accuracy per operating point")
    p.add_argument("--model", required=True, type=Path, help="a `dse train` output directory")
    p.add_argument("--mapping", required=True, type=Path, help="a `dse map` output")
    p.add_argument("--chip", type=Path, default=None,
                   help="chip card (needed for operating points: nominal knobs, error sources)")
    p.add_argument("--device", type=Path, action="append", default=[], metavar="CARD",
                   help="device card of an error source / analog card (repeatable)")
    p.add_argument("--config", type=Path, default=None,
                   help="study config: its inject: section and data_root (default: schema "
                        "defaults)")
    p.add_argument("--ber", type=float, nargs="+", default=None, help="override inject.ber")
    p.add_argument("--repeats", type=int, default=None, help="override inject.repeats")
    p.add_argument("--seed", type=int, default=None, help="override inject.seed")
    p.add_argument("--batch", type=int, default=None, help="override inject.batch")
    p.add_argument("--out", required=True, type=Path, help="per-map accuracy table (CSV)")
    p.add_argument("--summary", type=Path, default=None,
                   help="mean / 95%% CI table (default: OUT with suffix .summary.csv)")
    p.set_defaults(func=_cmd_inject)


def _cmd_inject(args: argparse.Namespace) -> int:
    from dse.chip.inject import summarize
    from dse.config import check_config, load_config
    from dse.pipeline import InjectSettings, artifacts, files, recipes
    from dse.train import resolve_device

    config = load_config(args.config) if args.config else check_config({})
    mapping = artifacts.load_mapping(args.mapping)
    chip = artifacts.load_chip(args.chip) if args.chip else None
    settings = InjectSettings.from_config(config, mapping.chip, ber=args.ber,
                                          repeats=args.repeats, seed=args.seed,
                                          batch=args.batch)
    summary_path = args.summary or args.out.with_suffix(".summary.csv")
    for out in (args.out, summary_path):
        files.check_writable(out)
    models = artifacts.load_device_models(args.device)
    trained = artifacts.load_model(args.model, resolve_device(config["device"]))
    table = recipes.inject_chip(config, trained, mapping, chip, models, settings,
                                progress=not args.quiet)
    artifacts.write_tables({args.out: table, summary_path: summarize(table)})
    log.info("injected %d fault maps on %s (clean accuracy %.4f) -> %s", len(table),
             mapping.chip, table.attrs["clean_accuracy"], args.out)
    return 0


def _add_deploy(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deploy", help="map, inject and estimate in one process (what the "
                                      "workflow runs per experiment and chip)")
    p.add_argument("--model", required=True, type=Path, help="a `dse train` output directory")
    p.add_argument("--chip", required=True, type=Path, help="chip card (config/chips/*.yaml)")
    p.add_argument("--device", type=Path, action="append", default=[], metavar="CARD",
                   help="device cards of the chip's error sources / analog card (repeatable)")
    p.add_argument("--config", type=Path, default=None,
                   help="study config: its inject: section and data_root")
    p.add_argument("--mapping", required=True, type=Path, help="mapping JSON to write")
    p.add_argument("--inject", required=True, type=Path, help="per-map accuracy table to write")
    p.add_argument("--summary", type=Path, default=None,
                   help="mean / 95%% CI table (default: INJECT with suffix .summary.csv)")
    p.add_argument("--estimate", required=True, type=Path, help="energy/area table to write")
    p.set_defaults(func=_cmd_deploy)


def _cmd_deploy(args: argparse.Namespace) -> int:
    """``dse map`` + ``dse inject`` + ``dse estimate`` on one model and chip, in one process
    (one import of torch instead of three); the same recipes, the same files."""
    from dse.chip.inject import summarize
    from dse.chip.mapping import map_model
    from dse.config import check_config, load_config
    from dse.pipeline import InjectSettings, artifacts, files, recipes
    from dse.train import resolve_device

    config = load_config(args.config) if args.config else check_config({})
    chip = artifacts.load_chip(args.chip)
    summary = args.summary or args.inject.with_suffix(".summary.csv")
    for out in (args.mapping, args.inject, summary, args.estimate):
        files.check_writable(out)
    models = artifacts.load_device_models(args.device)
    trained = artifacts.load_model(args.model, resolve_device(config["device"]))
    mapping = map_model(trained.model, chip, experiment=trained.experiment.get("name"))
    settings = InjectSettings.from_config(config, chip.name)
    table = recipes.inject_chip(config, trained, mapping, chip, models, settings,
                                progress=not args.quiet)
    pulses = artifacts.load_pulses(trained.directory / "history.csv")
    energy = recipes.estimate_chip(mapping, chip, models, pulses)
    artifacts.write_mapping(args.mapping, mapping, chip)
    artifacts.write_tables({args.inject: table, summary: summarize(table),
                            args.estimate: energy})
    log.info("deployed %s on %s: clean accuracy %.4f, %d fault maps -> %s, %s", mapping.experiment,
             chip.name, table.attrs["clean_accuracy"], len(table), args.inject, args.estimate)
    return 0


def _add_estimate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("estimate", help="energy per inference and area per layer and component")
    p.add_argument("--mapping", required=True, type=Path, help="a `dse map` output")
    p.add_argument("--chip", required=True, type=Path, help="chip card (config/chips/*.yaml)")
    p.add_argument("--history", type=Path, default=None,
                   help="history.csv of `dse train` (training pulses; pulses.csv beside it is "
                        "used per layer)")
    p.add_argument("--device", type=Path, action="append", default=[], metavar="CARD",
                   help="device cards of the chip's error sources (write energy per pulse)")
    p.add_argument("--out", required=True, type=Path, help="tidy energy/area table (CSV)")
    p.set_defaults(func=_cmd_estimate)


def _cmd_estimate(args: argparse.Namespace) -> int:
    from dse.chip.estimate import totals
    from dse.pipeline import artifacts, files, recipes

    mapping = artifacts.load_mapping(args.mapping)
    chip = artifacts.load_chip(args.chip)
    if chip.name != mapping.chip:
        raise DseError(f"chip card '{chip.name}' but the mapping is for '{mapping.chip}'; pass "
                       "the chip card the mapping was made with", source=str(args.chip))
    files.check_writable(args.out)
    pulses = artifacts.load_pulses(args.history) if args.history else None
    models = artifacts.load_device_models(args.device)
    table = recipes.estimate_chip(mapping, chip, models, pulses)
    files.write_csv(args.out, table)
    t = totals(table)
    log.info("%s on %s: %.4g pJ per inference, %.4g mm2 -> %s", mapping.experiment, chip.name,
             t["energy_per_inference_pJ"], t["area_mm2"], args.out)
    return 0


# ----------------------------------------------------------------------- calibrate / synthesize
def _add_calibrate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="fit a device family to a measurement file -> card")
    p.add_argument("data", type=Path, help="measurement file (CSV/TSV)")
    p.add_argument("--family", required=True, help="device family (e.g. soft_bounds, rram_2t2r)")
    p.add_argument("--format", default="auto", choices=["auto", "updown", "long", "ramps", "ber"],
                   help="file format (default: detected)")
    p.add_argument("--out", required=True, type=Path, help="card to write (.json or .yaml)")
    p.add_argument("--figure", type=Path, default=None, help="fit figure to write (.png)")
    p.add_argument("--name", default=None, help="card name (default: the output file's stem)")
    p.add_argument("--base", type=Path, default=None,
                   help="card whose values are kept for parameters the file cannot determine")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated response")
    p.add_argument("--direction", default="auto", choices=["auto", "up", "down", "alternating"],
                   help="pulse direction of the ramps: up/down = single-direction ramps (for "
                        "updown/long files: keep only that direction), alternating = set, "
                        "reset, ...; default: read from the data (docs/measurements.md)")
    p.add_argument("--reset", type=Path, default=None, metavar="FILE",
                   help="a file of RESET (down) ramps fitted with DATA's SET (up) ramps")
    p.add_argument("--fit", action="append", default=[], metavar="KEY=VALUE",
                   help="fit limit (min_r2, warn_r2, bound_margin, max_noise_ratio, "
                        "max_rel_stderr, strict); repeatable")
    p.set_defaults(func=_cmd_calibrate)


def _fit_limits(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise DseError(f"--fit {item}: write KEY=VALUE (e.g. --fit min_r2=0.9)")
        out[key.strip()] = value.strip()
    return out


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from dse.devices import calibrate, fit_figure, pair_measurements, read_measurements
    from dse.pipeline import artifacts, files

    outs = [args.out] + ([args.figure] if args.figure is not None else [])
    for out in outs:
        files.check_writable(out)
    if args.reset is not None:
        if args.direction != "auto":
            raise DseError("--reset pairs DATA (SET ramps) with FILE (RESET ramps); drop "
                           f"--direction {args.direction}")
        data = pair_measurements(args.data, args.reset, args.format)
    else:
        data = read_measurements(args.data, args.format, direction=args.direction)
    base = artifacts.load_card(args.base) if args.base is not None else None
    result = calibrate(data, args.family, name=args.name or args.out.stem, base=base,
                       seed=args.seed, limits=_fit_limits(args.fit))
    text = files.yaml_text(result.card) if args.out.suffix in (".yaml", ".yml") \
        else files.json_text(result.card)
    if args.figure is not None:
        artifacts.write_card_and_figure(args.out, text, args.figure, fit_figure(result))
    else:
        files.write_text(args.out, text)
    fit = result.fit
    log.info("calibrated %s (%s) from %s: R2 %.4f, residual sigma %.4g -> %s",
             result.card["name"], args.family, data.path, fit["r2"], fit["residual_sigma"],
             args.out)
    for w in fit.get("warnings", []):
        log.warning("%s: %s", args.out, w)
    return 0


def _add_synthesize(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synthesize",
                       help="simulate a synthetic measurement file from a device card")
    p.add_argument("--card", required=True, type=Path, help="reference device card")
    p.add_argument("--format", required=True, choices=["long", "updown", "ramps", "ber"])
    p.add_argument("--out", required=True, type=Path, help="measurement file to write")
    p.add_argument("--devices", type=int, default=4, help="devices (long format)")
    p.add_argument("--cycles", type=int, default=1, help="up/down cycles per device")
    p.add_argument("--pulses", type=int, default=200, help="pulses per ramp")
    p.add_argument("--every", type=int, default=1, help="weak_reset: pulses between reads")
    p.add_argument("--trials", type=int, default=100_000, help="ber: trials per point")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_synthesize)


def _cmd_synthesize(args: argparse.Namespace) -> int:
    from dse.devices import synthesize
    from dse.pipeline import artifacts, files

    for k in ("devices", "cycles", "pulses", "every", "trials"):
        if getattr(args, k) < 1:
            raise DseError(f"--{k} must be at least 1")
    command = (f"dse synthesize --card {args.card} --format {args.format} --devices "
               f"{args.devices} --cycles {args.cycles} --pulses {args.pulses} --every "
               f"{args.every} --trials {args.trials} --seed {args.seed} --out {args.out}")
    files.check_writable(args.out)
    text = synthesize(artifacts.load_card(args.card), args.format, devices=args.devices,
                      cycles=args.cycles, pulses=args.pulses, every=args.every,
                      trials=args.trials, seed=args.seed, command=command)
    files.write_text(args.out, text)
    log.info("synthetic %s measurements from %s -> %s", args.format, args.card, args.out)
    return 0


# -------------------------------------------------------------------------------------- search
def _add_search(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="run a co-design study (Optuna)")
    p.add_argument("--config", required=True, type=Path, help="study config")
    p.add_argument("--study", required=True, help="study name under search:")
    p.add_argument("--results", type=Path, default=None,
                   help="results folder (trials, model cache, journal) [the config's "
                        "results_dir]")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--init", action="store_true",
                      help="create the study afresh (drops an existing one of the same name)")
    mode.add_argument("--worker", type=int, default=None, metavar="K",
                      help="run worker K (seed + K) until the study has its trials")
    mode.add_argument("--aggregate", action="store_true",
                      help="write trials.csv, pareto.csv, figures and summary.json")
    mode.add_argument("--repair", action="store_true",
                      help="rebuild an unreadable journal from the trials' trial.json files")
    p.set_defaults(func=_cmd_search)


def _cmd_search(args: argparse.Namespace) -> int:
    from dse.config import load_config
    from dse.pipeline import Layout
    from dse.pipeline.study import (
        aggregate_study,
        init_study_files,
        repair_study,
        run_study_worker,
    )

    config = load_config(args.config)
    layout = Layout.from_config(config) if args.results is None else Layout.at(args.results)
    if args.init:
        init_study_files(config, args.study, layout)
        return 0
    if args.repair:
        n = repair_study(config, args.study, layout)
        log.info("study %s rebuilt with %d trials; run `dse search --aggregate` (or snakemake) "
                 "again", args.study, n)
        return 0
    if args.worker is not None:
        if args.worker < 0:
            raise DseError(f"--worker {args.worker}: worker numbers start at 0")
        run_study_worker(config, args.study, args.worker, layout, progress=not args.quiet)
        return 0
    if not args.aggregate:  # the whole study in this process: init if needed, one worker
        if not layout.study_json(args.study).is_file():
            init_study_files(config, args.study, layout)
        run_study_worker(config, args.study, 0, layout, progress=not args.quiet)
    aggregate_study(config, args.study, layout)
    return 0


# -------------------------------------------------------------------------------------- report
def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write the self-contained HTML report of a study")
    p.add_argument("--config", required=True, type=Path,
                   help="study config (the Snakefile passes the effective one, "
                        ".snakemake/dse/config.yaml)")
    p.add_argument("--results", type=Path, default=None,
                   help="folder of the stage outputs [the config's results_dir]")
    p.add_argument("--benchmarks", type=Path, default=None,
                   help="Snakemake benchmark files, for run times [RESULTS/benchmarks]")
    p.add_argument("--out", required=True, type=Path, help="HTML file to write")
    p.set_defaults(func=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    from dse.config import load_config
    from dse.pipeline import Layout
    from dse.pipeline.collect import write_report

    config = load_config(args.config)
    layout = Layout.from_config(config) if args.results is None else Layout.at(args.results)
    if not layout.results.is_dir():
        raise DseError("results folder not found; run the stages first (snakemake) or pass "
                       "--results", source=str(layout.results))
    sections = write_report(config, args.config, layout, args.out, args.benchmarks)
    failed = [s.title for s in sections if s.failed]
    if failed:
        log.error("report %s: some figures or tables failed in: %s (see the messages above)",
                  args.out, ", ".join(failed))
    log.info("report: %d sections, %d figures, %.1f MB -> %s", len(sections),
             sum(s.figures for s in sections), args.out.stat().st_size / 1e6, args.out)
    return 0


# ---------------------------------------------------------------------------------------- main
SECTIONS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_synthesize, _add_calibrate, _add_train, _add_map, _add_inject, _add_estimate,
    _add_deploy, _add_search, _add_report]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dse", description="Design-space exploration for in-memory-computing neural networks.")
    parser.add_argument("--version", action="version", version=f"dse {__version__}")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads (default: torch's choice / OMP_NUM_THREADS)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bars, warnings only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SECTIONS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dse`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup(args)
    try:
        return int(args.func(args) or 0)
    except DseError as exc:
        print(f"dse: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file fault outside the wiring's checks: still one line
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"dse: {where}{exc.strerror or exc}; check the path and its permissions",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dse: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
