# Configuration loading and the small input/target functions the rules share.
import json
import os
import sys

from dse.config import check_config, write_effective_config
from dse.config import device_card_file as _resolve_card
from dse.errors import DseError

# The config Snakemake assembled (config/config.yaml, or the --configfile files instead of it,
# plus --config overrides) is validated, default-filled and written to CONFIGFILE, which every
# `dse` call reads: the stages see exactly the configuration Snakemake sees. The file is
# rewritten only when its content changes.
_SOURCES = [str(f) for f in workflow.configfiles] or ["config/config.yaml"]
try:
    check_config(config, source=" + ".join(dict.fromkeys(_SOURCES)))
except DseError as exc:
    print(f"dse: {exc}", file=sys.stderr)
    sys.exit(2)
CONFIGFILE = write_effective_config(config, ".snakemake/dse/config.yaml")

# Torch jobs declare `cpu_slots` equal to their threads; capping the total at the machine's
# cores stops `--cores 8` on a 2-core machine from running 4 two-thread jobs at once
# (oversubscribed torch runs many times slower). A profile or `--resources cpu_slots=N`
# overrides this (e.g. on a cluster).
workflow.global_resources.setdefault("cpu_slots", os.cpu_count() or 1)
TORCH_THREADS = max(1, min(2, os.cpu_count() or 1))


def rule_threads(rule, local=TORCH_THREADS):
    """Threads of a rule's jobs: the config's resources.<rule>.threads, else ``local``."""
    return config["resources"][rule]["threads"] or local


def rule_resources(rule):
    """mem_mb, runtime (minutes) and gpu of a rule's jobs from the config's resources block (a
    cluster executor turns them into its requests); gpu is left out when 0."""
    res = config["resources"][rule]
    out = {"mem_mb": res["mem_mb"], "runtime": res["runtime"]}
    if res["gpu"]:
        out["gpu"] = res["gpu"]
    return out

EXPERIMENTS = sorted(config["experiments"])

# The config file is passed to `dse` as a parameter, not an input: editing one experiment must
# not retrain the others. Each job instead carries the settings it depends on as params, so
# Snakemake's params trigger reruns exactly the jobs whose settings changed.


def canonical(settings):
    """Settings as sorted JSON: params compared by Snakemake must not depend on key order (a
    config file written in another order would otherwise rerun every job)."""
    return json.dumps(settings, sort_keys=True, default=str)


def experiment_settings(exp):
    """The resolved settings of one experiment (its seed filled from the global seed)."""
    from dataclasses import asdict

    from dse.config import Experiment

    settings = asdict(Experiment.from_config(config, exp))
    for block, algorithm in _ALGORITHM_BLOCKS.items():  # options of other algorithms: irrelevant
        if settings["algorithm"] != algorithm:
            settings.pop(block, None)
    settings["data_root"] = config["data_root"]
    return settings


_ALGORITHM_BLOCKS = {"mixed_precision": "mixed_precision", "weak_reset": "weak_reset_bnn",
                     "metaplastic": "metaplastic"}


def train_outputs(exp):
    return [
        f"results/train/{exp}/{f}"
        for f in ("model.pt", "model.json", "history.csv", "pulses.csv", "tasks.csv")
    ]


# ------------------------------------------------------- chips: map / inject / estimate
CHIPS = sorted(config["chips"])


def _load_chip_cards():
    from dse.chip.card import load_chip

    cards = {}
    try:
        for name in CHIPS:
            cards[name] = load_chip(config["chips"][name])
            if cards[name].name != name:
                raise DseError(f"chips.{name}: the card is named '{cards[name].name}'; use the "
                               "same name in the config", source=CONFIGFILE)
        for name in config["inject"]["operating_points"]:
            if name not in cards:
                raise DseError(f"inject.operating_points.{name}: unknown chip (chips: "
                               f"{', '.join(CHIPS) or 'none defined'})", source=CONFIGFILE)
    except DseError as exc:
        print(f"dse: {exc}", file=sys.stderr)
        sys.exit(2)
    return cards


CHIP_CARDS = _load_chip_cards()


def _chip_wildcard():
    import re

    return "|".join(re.escape(c) for c in CHIPS) or "(?!)"


CHIP_WILDCARD = _chip_wildcard()


def chip_card_file(chip):
    return config["chips"][chip]


def chip_pairs():
    """(experiment, chip) pairs whose weight encoding fits the experiment's precision: float
    experiments go to analog chips, binary ones to binary chips, ternary to ternary chips."""
    from dse.chip.encoding import ENCODINGS

    return [(exp, chip) for exp in EXPERIMENTS for chip in CHIPS
            if ENCODINGS[CHIP_CARDS[chip].encoding].native
            == config["experiments"][exp].get("precision", "binary")]


def device_card_file(name):
    """The card file of a device card name (dse.config.device_card_file), as a string or None."""
    path = _resolve_card(config, name)
    return str(path) if path else None


def chip_device_cards(chip, exp=None):
    """Card files of a chip's error sources and, for inject (``exp`` given), its analog
    programming card when the experiment has no device card of its own. Missing files are
    left out: the stage then uses the chip card's own figures, or says which card it needs."""
    card = CHIP_CARDS[chip]
    names = [s.card for s in card.error_sources]
    if card.analog_card and exp is not None and not config["experiments"][exp].get("device_card"):
        names.append(card.analog_card)
    files = [device_card_file(n) for n in names]
    return [f for f in files if f]


def device_flags(input):
    return " ".join(f"--device {p}" for p in input.devices)


def inject_settings(chip):
    """What an inject job depends on (a change reruns only the affected jobs)."""
    settings = {k: v for k, v in config["inject"].items() if k != "operating_points"}
    settings["operating_points"] = config["inject"]["operating_points"].get(chip)
    settings["seed"] = settings["seed"] if settings["seed"] is not None else config["seed"]
    settings["data_root"] = config["data_root"]
    return settings


def chip_outputs(exp, chip):
    return [
        f"results/map/{exp}/{chip}.json",
        f"results/inject/{exp}/{chip}.csv",
        f"results/inject/{exp}/{chip}.summary.csv",
        f"results/estimate/{exp}/{chip}.csv",
    ]


# --------------------------------------------------------------- devices: calibrate (issue 3)
CALIBRATED = sorted(n for n, e in config["devices"].items() if "measurements" in e)


def _calibrated_wildcard():
    import re

    return "|".join(re.escape(n) for n in CALIBRATED) or "(?!)"


CALIBRATED_WILDCARD = _calibrated_wildcard()


def calibrate_outputs(name):
    return [f"results/calibrate/{name}.json", f"results/calibrate/{name}.png"]


def experiment_card(exp):
    """[card file] of an experiment's device_card (the train rule's input), or []."""
    name = config["experiments"][exp].get("device_card")
    path = device_card_file(name) if name else None
    return [path] if path else []


# ------------------------------------------------------------------------- search (issue 6)
STUDIES = sorted(config["search"])


def _check_studies():
    from dse.search import parse_study

    try:
        for name in STUDIES:
            parse_study(config, name)
    except DseError as exc:
        print(f"dse: {CONFIGFILE}: {exc}", file=sys.stderr)
        sys.exit(2)


_check_studies()


def study_space(study):
    """What defines a study and where it lives: a change here starts it afresh (trials,
    workers, the password file and the heartbeat settings only extend it)."""
    from dse.search.space import OPERATIONAL

    keep = {k: v for k, v in config["search"][study].items() if k not in OPERATIONAL}
    keep["storage"] = config["search"][study].get("storage")
    return keep


def study_settings(study):
    """What a worker depends on: the study and its base experiment's settings."""
    return {"study": config["search"][study],
            "experiment": experiment_settings(config["search"][study]["experiment"])}


def study_cards(study):
    """Device card files the trials read: the base experiment's and each chip's error sources."""
    from dse.search import parse_study

    spec = parse_study(config, study)
    files = experiment_card(spec.experiment)
    for chip in sorted(set(spec.chips.values())):
        files += [config["chips"][chip]] + chip_device_cards(chip, spec.experiment)
    return sorted(set(files))


def worker_threads(study):
    """Torch threads of one search worker: the local torch threads shared among the study's
    workers, so that 2 workers on 2 cores run side by side with one thread each instead of
    queueing for the cpu_slots pool (a cluster profile's set-threads overrides this)."""
    return rule_threads("search_worker",
                        max(1, TORCH_THREADS // config["search"][study]["workers"]))


def study_worker_outputs(study):
    n = config["search"][study]["workers"]
    return [f"results/search/{study}/workers/{w}.json" for w in range(n)]


def search_outputs(study):
    return [
        f"results/search/{study}/{f}"
        for f in ("trials.csv", "pareto.csv", "hypervolume.csv", "pareto.png",
                  "hypervolume.png", "summary.json")
    ]


def all_targets():
    targets = []
    for exp in EXPERIMENTS:
        targets += train_outputs(exp)
    for exp, chip in chip_pairs():
        targets += chip_outputs(exp, chip)
    for name in CALIBRATED:
        targets += calibrate_outputs(name)
    for study in STUDIES:
        targets += search_outputs(study)
    return targets


# ------------------------------------------------------------------------- report (issue 7)
from dse.config import config_hash as _config_hash

# The report shows the effective config: any config change (even one no stage reads) reruns it.
CONFIG_HASH = _config_hash(config)


def report_card_files():
    """Hand-written device and chip card files the report reads (calibrated cards are targets)."""
    files = [e["card"] for e in config["devices"].values() if e.get("card")]
    return sorted(set(files) | {config["chips"][c] for c in CHIPS})
