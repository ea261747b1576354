"""`dse train`, `map`, `inject`, `estimate` and `deploy`: parsers and handlers."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from dse.errors import DseError

log = logging.getLogger("dse")


# --------------------------------------------------------------------------------------- train
def add_train(sub: argparse._SubParsersAction) -> None:
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
def add_map(sub: argparse._SubParsersAction) -> None:
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


def add_inject(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--activity-out", type=Path, default=None,
                   help="also write the input activity measured per layer (CSV: layer, "
                        "input_activity; for `dse estimate --activity`)")
    p.set_defaults(func=_cmd_inject)


def _cmd_inject(args: argparse.Namespace) -> int:
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
    for out in (args.out, summary_path, args.activity_out):
        if out is not None:
            files.check_writable(out)
    models = artifacts.load_device_models(args.device)
    trained = artifacts.load_model(args.model, resolve_device(config["device"]))
    table = recipes.inject_chip(config, trained, mapping, chip, models, settings,
                                progress=not args.quiet)
    tables = artifacts.inject_tables(args.out, summary_path, table)
    if args.activity_out:
        tables[args.activity_out] = _activity_table(table.attrs.get("input_activity"),
                                                    table.attrs.get("cell_conductance"))
    artifacts.write_tables(tables)
    log.info("injected %d fault maps on %s (clean accuracy %.4f) -> %s", len(table),
             mapping.chip, table.attrs["clean_accuracy"], args.out)
    return 0


def add_deploy(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--latency", type=Path, default=None,
                   help="latency table per layer (default: ESTIMATE with suffix .latency.csv)")
    p.set_defaults(func=_cmd_deploy)


def _cmd_deploy(args: argparse.Namespace) -> int:
    """``dse map`` + ``dse inject`` + ``dse estimate`` on one model and chip, in one process
    (one import of torch instead of three); the same recipes, the same files."""
    from dse.chip.mapping import map_model
    from dse.config import check_config, load_config
    from dse.pipeline import InjectSettings, artifacts, files, recipes
    from dse.train import resolve_device

    config = load_config(args.config) if args.config else check_config({})
    chip = artifacts.load_chip(args.chip)
    summary = args.summary or args.inject.with_suffix(".summary.csv")
    latency = args.latency or args.estimate.with_suffix(".latency.csv")
    for out in (args.mapping, args.inject, summary, args.estimate, latency):
        files.check_writable(out)
    models = artifacts.load_device_models(args.device)
    trained = artifacts.load_model(args.model, resolve_device(config["device"]))
    mapping = map_model(trained.model, chip, experiment=trained.experiment.get("name"))
    settings = InjectSettings.from_config(config, chip.name)
    table = recipes.inject_chip(config, trained, mapping, chip, models, settings,
                                progress=not args.quiet)
    pulses = artifacts.load_pulses(trained.directory / "history.csv")
    energy = recipes.estimate_chip(mapping, chip, models, pulses,
                                   input_activity=table.attrs.get("input_activity"),
                                   cell_conductance=table.attrs.get("cell_conductance"))
    lat = recipes.latency_chip(mapping, chip, models)
    artifacts.write_mapping(args.mapping, mapping, chip)
    artifacts.write_tables({**artifacts.inject_tables(args.inject, summary, table),
                            args.estimate: energy, latency: lat})
    log.info("deployed %s on %s: clean accuracy %.4f, %d fault maps -> %s, %s", mapping.experiment,
             chip.name, table.attrs["clean_accuracy"], len(table), args.inject, args.estimate)
    return 0


def add_estimate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("estimate", help="energy per inference and area per layer and component")
    p.add_argument("--mapping", required=True, type=Path, help="a `dse map` output")
    p.add_argument("--chip", required=True, type=Path, help="chip card (config/chips/*.yaml)")
    p.add_argument("--history", type=Path, default=None,
                   help="history.csv of `dse train` (training pulses; pulses.csv beside it is "
                        "used per layer)")
    p.add_argument("--device", type=Path, action="append", default=[], metavar="CARD",
                   help="device cards of the chip's error sources (write energy per pulse)")
    p.add_argument("--out", required=True, type=Path, help="tidy energy/area table (CSV)")
    p.add_argument("--latency", type=Path, default=None,
                   help="also write the latency table per layer (CSV)")
    p.add_argument("--activity", type=Path, default=None,
                   help="input activity and deployed cells' conductance per layer measured by "
                        "`dse inject --activity-out` (default: the chip card's "
                        "cell.input_activity and cells)")
    p.set_defaults(func=_cmd_estimate)


def _activity_table(activity: dict | None, conductance: dict | None = None) -> Any:
    """Per layer: the measured input activity and the deployed cells' mean conductance (S;
    empty where the chip deployed no device-card cells)."""
    import pandas as pd

    t = pd.DataFrame(list((activity or {}).items()), columns=["layer", "input_activity"])
    return t.assign(cell_conductance_s=t["layer"].map(conductance or {}))


def _read_activity(path: Path | None) -> tuple[dict[str, float] | None, dict[str, float] | None]:
    """(input activity, cell conductance) per layer of a `dse inject --activity-out` file."""
    if path is None:
        return None, None
    from dse.pipeline import artifacts

    t = artifacts.read_table(path, "input activity", "write it with `dse inject --activity-out`")
    if not {"layer", "input_activity"} <= set(t.columns):
        raise DseError("needs columns layer, input_activity (`dse inject --activity-out`)",
                       source=str(path))
    activity = {str(k): float(v) for k, v in zip(t["layer"], t["input_activity"], strict=True)}
    g = t.dropna(subset=["cell_conductance_s"]) if "cell_conductance_s" in t else t.iloc[0:0]
    conductance = {str(k): float(v) for k, v in zip(g["layer"], g["cell_conductance_s"],
                                                    strict=True)}
    return activity, conductance or None


def _cmd_estimate(args: argparse.Namespace) -> int:
    from dse.chip.estimate import totals
    from dse.pipeline import artifacts, files, recipes

    mapping = artifacts.load_mapping(args.mapping)
    chip = artifacts.load_chip(args.chip)
    if chip.name != mapping.chip:
        raise DseError(f"chip card '{chip.name}' but the mapping is for '{mapping.chip}'; pass "
                       "the chip card the mapping was made with", source=str(args.chip))
    files.check_writable(args.out)
    if args.latency:
        files.check_writable(args.latency)
    pulses = artifacts.load_pulses(args.history) if args.history else None
    models = artifacts.load_device_models(args.device)
    activity, conductance = _read_activity(args.activity)
    table = recipes.estimate_chip(mapping, chip, models, pulses, input_activity=activity,
                                  cell_conductance=conductance)
    tables = {args.out: table}
    if args.latency:
        tables[args.latency] = recipes.latency_chip(mapping, chip, models)
    artifacts.write_tables(tables)
    t = totals(table)
    log.info("%s on %s: %.4g pJ per inference, %.4g mm2 -> %s", mapping.experiment, chip.name,
             t["energy_per_inference_pJ"], t["area_mm2"], args.out)
    return 0


def add_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="dse's chip estimates beside published tables "
                       "(NeuroSim V1.4 VGG-8), term by term")
    p.add_argument("--chips", type=Path, default=Path("config/chips"),
                   help="folder of the cases' chip cards (default: config/chips)")
    p.add_argument("--out", required=True, type=Path,
                   help="table: case, quantity, reference, dse, ratio, tolerance, source, ...")
    p.set_defaults(func=_cmd_validate)


def _cmd_validate(args: argparse.Namespace) -> int:
    from dse.pipeline import files
    from dse.pipeline.validation import validate

    files.check_writable(args.out)
    table = validate(args.chips)
    files.write_csv(args.out, table)
    agree = table[table["tolerance"].notna()]
    failed = agree[~agree["within"].astype(bool)]
    for case, g in table.groupby("case", sort=False):
        log.info("%s: %d references, %d within tolerance or +-25 %%", case, len(g),
                 int(g["within"].sum()))
    for r in failed.itertuples():
        log.error("%s %s: dse %.4g vs %.4g (ratio %.4g) outside +-%g", r.case, r.quantity,
                  r.dse, r.reference, r.ratio, r.tolerance)
    return 1 if len(failed) else 0

