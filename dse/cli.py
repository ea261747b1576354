"""``dse`` command line: argument parsing only; each subcommand calls its stage's functions.

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
                   help="device card file (YAML/JSON) for the experiment's device_card")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    from dse.config import Experiment, load_config
    from dse.data import task_stream
    from dse.train import resolve_device, save, train

    config = load_config(args.config)
    exp = Experiment.from_config(config, args.experiment)
    cards = {}
    card_dict = None
    if exp.device_card is not None:
        if args.card is None:
            raise DseError(f"experiment '{exp.name}' uses device card '{exp.device_card}'; "
                           "pass its card file with --card")
        from dse.devices import load_card

        card_dict = load_card(args.card)
        cards[exp.device_card] = card_dict
    tasks = task_stream(exp.dataset, exp.tasks, exp.seed, config["data_root"], config["download"])
    result = train(exp, tasks, resolve_device(config["device"]), cards=cards,
                   progress=not args.quiet)
    save(result, args.out, card=card_dict)
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
    from dse.chip.card import load_chip
    from dse.chip.mapping import map_model
    from dse.ioutil import write_json
    from dse.train import load

    chip = load_chip(args.chip)
    trained = load(args.model)
    mapping = map_model(trained.model, chip, experiment=trained.experiment.get("name"))
    write_json(args.out, {**mapping.to_dict(), "chip_card": chip.to_dict()})
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
    import torch

    from dse.chip.ber import ChipErrors, points_for_chip
    from dse.chip.card import load_chip
    from dse.chip.inject import AnalogNoise, StuckAt, inject, summarize
    from dse.chip.io import load_device_models, load_mapping
    from dse.config import check_config, load_config
    from dse.data import task_stream
    from dse.devices import from_card
    from dse.ioutil import write_csv
    from dse.train import load, resolve_device

    config = load_config(args.config) if args.config else check_config({})
    settings = dict(config["inject"])
    for key in ("ber", "repeats", "seed", "batch"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    mapping = load_mapping(args.mapping)
    chip = load_chip(args.chip) if args.chip else None
    if chip is not None and chip.name != mapping.chip:
        raise DseError(f"--chip is '{chip.name}' but the mapping is for '{mapping.chip}'; pass "
                       "the chip card the mapping was made with", source=str(args.chip))
    models = load_device_models(args.device)
    ops = settings["operating_points"].get(mapping.chip)
    errors = None
    if ops is not None:
        if chip is None:
            raise DseError(f"inject.operating_points.{mapping.chip}: pass the chip card with "
                           "--chip (its nominal knobs and error sources)")
        errors = ChipErrors(chip, models)
    device = resolve_device(config["device"])
    trained = load(args.model, device)
    points = points_for_chip(mapping.encoding, settings["ber"], ops, errors, mapping.chip)
    analog = None
    if mapping.encoding == "analog":
        card = trained.meta.get("device_card")
        model = from_card(card) if card else None
        if model is None and chip is not None and chip.analog_card:
            model = models.get(chip.analog_card)
            if model is None:
                raise DseError(f"chip '{chip.name}' programs analog weights with device card "
                               f"'{chip.analog_card}'; pass it with --device")
        if model is not None and hasattr(model, "program"):
            analog = AnalogNoise(model, read=bool(settings["analog_read_noise"]))
    exp = trained.experiment
    tasks = task_stream(exp["dataset"], exp.get("tasks"), int(exp.get("seed") or 0),
                        config["data_root"], config["download"])
    data = tasks[-1]
    n = settings["max_images"] or len(data.x_test)
    x, y = data.x_test[:n].to(device), data.y_test[:n].to(device)
    seed = settings["seed"] if settings["seed"] is not None else config["seed"]
    generator = torch.Generator(device=device).manual_seed(int(seed))
    sa = settings["stuck_at"]
    table = inject(trained.model, mapping, x, y, points, int(settings["repeats"]), generator,
                   batch=int(settings["batch"]), stuck_at=StuckAt(sa["sa0"], sa["sa1"]),
                   analog=analog, progress=not args.quiet,
                   adc_calibration=data.x_train[:1000].to(device))
    summary = summarize(table)
    write_csv(args.summary or args.out.with_suffix(".summary.csv"), summary)
    write_csv(args.out, table)
    log.info("injected %d fault maps on %s (clean accuracy %.4f) -> %s", len(table),
             mapping.chip, table.attrs["clean_accuracy"], args.out)
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
    from dse.chip.card import load_chip
    from dse.chip.estimate import estimate, totals
    from dse.chip.io import chip_errors, load_mapping, load_pulses
    from dse.ioutil import write_csv

    mapping = load_mapping(args.mapping)
    chip = load_chip(args.chip)
    if chip.name != mapping.chip:
        raise DseError(f"chip card '{chip.name}' but the mapping is for '{mapping.chip}'; pass "
                       "the chip card the mapping was made with", source=str(args.chip))
    pulses = load_pulses(args.history) if args.history else None
    errors = chip_errors(chip, args.device)
    write_pj = errors.write_energy_pj() if errors is not None else None
    table = estimate(mapping, chip, pulses, write_pj)
    write_csv(args.out, table)
    t = totals(table)
    log.info("%s on %s: %.4g pJ per inference, %.4g mm2 -> %s", mapping.experiment, chip.name,
             t["energy_per_inference_pJ"], t["area_mm2"], args.out)
    return 0


# ----------------------------------------------------------------------- calibrate / synthesize
def _add_calibrate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="fit a device family to a measurement file -> card")
    p.add_argument("data", type=Path, help="measurement file (CSV/TSV)")
    p.add_argument("--family", required=True, help="device family (e.g. soft_bounds, rram_2t2r)")
    p.add_argument("--format", default="auto",
                   choices=["auto", "updown", "long", "ramps", "ber", "relaxation"],
                   help="file format (default: detected)")
    p.add_argument("--out", required=True, type=Path, help="card to write (.json or .yaml)")
    p.add_argument("--figure", type=Path, default=None, help="fit figure to write (.png)")
    p.add_argument("--name", default=None, help="card name (default: the output file's stem)")
    p.add_argument("--base", type=Path, default=None,
                   help="card whose values are kept for parameters the file cannot determine")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated response")
    p.set_defaults(func=_cmd_calibrate)


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from dse.devices import calibrate, load_card, plot_fit, read_measurements
    from dse.ioutil import write_json, write_yaml

    data = read_measurements(args.data, args.format)
    base = load_card(args.base) if args.base is not None else None
    result = calibrate(data, args.family, name=args.name or args.out.stem, base=base,
                       seed=args.seed)
    if args.figure is not None:
        plot_fit(result, args.figure)
    (write_yaml if args.out.suffix in (".yaml", ".yml") else write_json)(args.out, result.card)
    fit = result.fit
    log.info("calibrated %s (%s) from %s: R2 %.4f, residual sigma %.4g -> %s",
             result.card["name"], args.family, args.data, fit["r2"], fit["residual_sigma"],
             args.out)
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
    from dse.devices import load_card, synthesize
    from dse.ioutil import atomic_output

    for k in ("devices", "cycles", "pulses", "every", "trials"):
        if getattr(args, k) < 1:
            raise DseError(f"--{k} must be at least 1")
    command = (f"dse synthesize --card {args.card} --format {args.format} --devices "
               f"{args.devices} --cycles {args.cycles} --pulses {args.pulses} --every "
               f"{args.every} --trials {args.trials} --seed {args.seed} --out {args.out}")
    text = synthesize(load_card(args.card), args.format, devices=args.devices,
                      cycles=args.cycles, pulses=args.pulses, every=args.every,
                      trials=args.trials, seed=args.seed, command=command)
    with atomic_output(args.out) as tmp:
        tmp.write_text(text)
    log.info("synthetic %s measurements from %s -> %s", args.format, args.card, args.out)
    return 0


# -------------------------------------------------------------------------------------- search
def _add_search(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="run a co-design study (Optuna)")
    p.add_argument("--config", required=True, type=Path, help="study config")
    p.add_argument("--study", required=True, help="study name under search:")
    p.add_argument("--results", type=Path, default=Path("results"),
                   help="results folder (trials, model cache, journal) [results]")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--init", action="store_true",
                      help="create the study afresh (drops an existing one of the same name)")
    mode.add_argument("--worker", type=int, default=None, metavar="K",
                      help="run worker K (seed + K) until the study has its trials")
    mode.add_argument("--aggregate", action="store_true",
                      help="write trials.csv, pareto.csv, figures and summary.json")
    p.set_defaults(func=_cmd_search)


def _cmd_search(args: argparse.Namespace) -> int:
    from dse.config import load_config
    from dse.ioutil import write_json
    from dse.search import aggregate, init_study, run_worker, study_dir

    config = load_config(args.config)
    root = study_dir(args.results, args.study)
    if args.init:
        write_json(root / "study.json", init_study(config, args.study, args.results))
        return 0
    if args.worker is not None:
        if args.worker < 0:
            raise DseError(f"--worker {args.worker}: worker numbers start at 0")
        report = run_worker(config, args.study, args.worker, args.results,
                            progress=not args.quiet)
        write_json(root / "workers" / f"{args.worker}.json", report)
        return 0
    if not args.aggregate:  # the whole study in this process: init if needed, one worker
        if not (root / "study.json").is_file():
            write_json(root / "study.json", init_study(config, args.study, args.results))
        run_worker(config, args.study, 0, args.results, progress=not args.quiet)
    aggregate(config, args.study, args.results)
    return 0


# -------------------------------------------------------------------------------------- report
def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write the self-contained HTML report of a study")
    p.add_argument("--config", required=True, type=Path,
                   help="study config (the Snakefile passes the effective one, "
                        ".snakemake/dse/config.yaml)")
    p.add_argument("--results", type=Path, default=Path("results"),
                   help="folder of the stage outputs [results]")
    p.add_argument("--benchmarks", type=Path, default=None,
                   help="Snakemake benchmark files, for run times [RESULTS/benchmarks]")
    p.add_argument("--out", required=True, type=Path, help="HTML file to write")
    p.set_defaults(func=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    from dse.config import load_config
    from dse.ioutil import atomic_output
    from dse.report import make_report

    config = load_config(args.config)
    html, sections = make_report(config, args.config, args.results, args.benchmarks)
    with atomic_output(args.out) as tmp:
        tmp.write_text(html, encoding="utf-8")
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
    _add_search, _add_report]


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
    except KeyboardInterrupt:
        print("dse: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
