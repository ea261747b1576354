# Configuration loading and the small input/target functions the rules share. Every path comes
# from dse.pipeline.Layout (L): no rule spells a results path itself.
import os
import sys

from dse.config import check_config
from dse.errors import DseError
from dse.pipeline import Layout
from dse.pipeline.artifacts import load_chip, write_effective_config, write_settings

# The config Snakemake assembled (config/config.yaml, or the --configfile files instead of it,
# plus --config overrides) is validated, default-filled and written to CONFIGFILE, which every
# `dse` call reads: the stages see exactly the configuration Snakemake sees. The file is
# rewritten only when its content changes.
_SOURCES = [str(f) for f in workflow.configfiles] or ["config/config.yaml"]


def _fail(exc, where=""):
    print(f"dse: {where}{exc}", file=sys.stderr)
    sys.exit(2)


try:
    check_config(config, source=" + ".join(dict.fromkeys(_SOURCES)))
except DseError as exc:
    _fail(exc)
L = Layout.from_config(config)
CONFIGFILE = str(write_effective_config(config, L.effective_config))

# Torch jobs declare `cpu_slots` equal to their threads; capping the total at the machine's
# cores stops `--cores 8` on a 2-core machine from running 4 two-thread jobs at once
# (oversubscribed torch runs many times slower). A profile or `--resources cpu_slots=N`
# overrides this (e.g. on a cluster).
workflow.global_resources.setdefault("cpu_slots", os.cpu_count() or 1)
# One torch thread per job (config resources.<rule>.threads overrides it): the results are the
# same bit for bit on any machine (a float reduction's order depends on the thread count), and
# on a 2-core machine two jobs overlap their imports and data loads instead of queueing for
# both cores (benchmarks/README.md, "Default study and report").
TORCH_THREADS = 1


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


def path(p):
    return str(p)


def paths(ps):
    return [str(p) for p in ps]


def wildcard_of(names):
    """A wildcard constraint matching exactly ``names`` (nothing when there are none)."""
    import re

    return "|".join(re.escape(n) for n in names) or "(?!)"


# ---------------------------------------------------------------------------- settings files
# The config file is passed to `dse` as a parameter, not an input: editing one experiment must
# not retrain the others. Each job instead takes as an input a small file holding exactly the
# settings it depends on (dse.pipeline.artifacts.write_settings rewrites it only when they
# change), so Snakemake reruns exactly the jobs whose settings changed.
def settings_input(stage, name, settings):
    return str(write_settings(L.settings_file(stage, name), settings))


# ----------------------------------------------------------------------------------- train
EXPERIMENTS = sorted(config["experiments"])
EXPERIMENT_WILDCARD = wildcard_of(EXPERIMENTS)


def experiment_datasets(exp):
    entry = config["experiments"][exp]
    tasks = entry.get("tasks") or {}
    return list(dict.fromkeys([entry.get("dataset", "mnist5k"), *tasks.get("datasets", [])]))


def dataset_inputs(wc):
    """The data files an experiment's jobs read (none for the embedded data sets)."""
    from dse.data import dataset_files

    return [str(f) for n in experiment_datasets(wc.exp) for f in dataset_files(n, config["data_root"])]


def _check_datasets():
    """Stop before any job (a dry run included) when an experiment's data set is not on disk
    and may not be downloaded: one line naming the experiment, the files and the fix."""
    from dse.data import missing_files

    if config["download"]:
        return
    for exp in EXPERIMENTS:
        for name in experiment_datasets(exp):
            missing = missing_files(name, config["data_root"])
            if missing:
                _fail(f"experiments.{exp}.dataset: '{name}' is not under data_root "
                      f"'{config['data_root']}' ({len(missing)} files missing, e.g. "
                      f"{missing[0]}); put the data set there or set download: true",
                      f"{CONFIGFILE}: ")


def _check_files():
    """Every file the config names exists (a measurement file, a card): one line naming the
    key otherwise, before any job — never an old output standing in for a missing input."""
    from pathlib import Path

    keys = [(f"devices.{n}.{k}", e[k]) for n, e in config["devices"].items()
            for k in ("card", "measurements", "reset_measurements", "base") if e.get(k)]
    keys += [(f"chips.{n}", f) for n, f in config["chips"].items()]
    for key, f in keys:
        if not Path(f).is_file():
            _fail(f"{key}: file '{f}' not found; check the path (relative to the working "
                  "directory) or remove the entry", f"{CONFIGFILE}: ")


_check_files()
_check_datasets()


def experiment_settings(exp):
    """The resolved settings of one experiment: what its trained model depends on."""
    from dse.config import Experiment
    from dse.train import training_settings

    settings = training_settings(Experiment.from_config(config, exp))
    settings["data_root"] = config["data_root"]
    return settings


def train_settings(wc):
    return settings_input("train", wc.exp, experiment_settings(wc.exp))


def device_card_file(name):
    """The card file of a device card name (Layout.device_card_file), as a string or None."""
    p = L.device_card_file(config, name)
    return str(p) if p else None


def experiment_card(exp):
    """[card file] of an experiment's device_card (the train rule's input), or []."""
    name = config["experiments"][exp].get("device_card")
    p = device_card_file(name) if name else None
    return [p] if p else []


def experiment_chip(exp):
    """[chip card file] an experiment trains through (mixed_precision.chip), or []."""
    entry = config["experiments"][exp]
    name = (entry.get("mixed_precision") or {}).get("chip")
    if not name or entry.get("algorithm") != "mixed_precision":
        return []
    if name not in config["chips"]:
        _fail(DseError(f"experiments.{exp}.mixed_precision.chip: '{name}' is not a chip of the "
                       f"config (chips: {', '.join(sorted(config['chips']))})", source=CONFIGFILE))
    return [config["chips"][name]]


# ------------------------------------------------------- chips: map / inject / estimate
CHIPS = sorted(config["chips"])
CHIP_WILDCARD = wildcard_of(CHIPS)


def _load_chip_cards():
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
        _fail(exc)
    return cards


CHIP_CARDS = _load_chip_cards()


def chip_card_file(wc):
    return config["chips"][wc.chip]


def pairing_precision(exp):
    """The precision an experiment pairs on: its precision, float for binarize: none."""
    entry = config["experiments"][exp]
    return "float" if entry.get("binarize") == "none" else entry.get("precision", "binary")


def chip_pairs():
    """(experiment, chip) pairs whose weight encoding fits the experiment's precision: float
    experiments go to analog chips, binary ones to binary chips, ternary to ternary chips (an
    ecg-cnn with binarize: classifier goes to the chips of its classifier's precision; its
    float feature extractor stays digital)."""
    from dse.chip.encoding import ENCODINGS

    return [(exp, chip) for exp in EXPERIMENTS for chip in CHIPS
            if ENCODINGS[CHIP_CARDS[chip].encoding].native == pairing_precision(exp)]


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


def inject_settings(wc):
    """The settings file of an inject job: the chip's inject settings and the data it reads."""
    from dse.pipeline import InjectSettings

    settings = InjectSettings.from_config(config, wc.chip).to_dict()
    settings["data_root"] = config["data_root"]
    return settings_input("inject", wc.chip, settings)


# --------------------------------------------------------------- devices: calibrate (issue 3)
CALIBRATED = sorted(n for n, e in config["devices"].items() if "measurements" in e)
CALIBRATED_WILDCARD = wildcard_of(CALIBRATED)


def device_entry(wc):
    return config["devices"][wc.device]


# ------------------------------------------------------------------------- search (issue 6)
STUDIES = sorted(config["search"])


def _check_studies():
    from dse.search import parse_study

    try:
        for name in STUDIES:
            parse_study(config, name)
    except DseError as exc:
        _fail(exc, f"{CONFIGFILE}: ")


_check_studies()


def study_space(wc):
    """What defines a study and where it lives: a change here starts it afresh (trials,
    workers, the password file and the heartbeat settings only extend it)."""
    from dse.search.space import OPERATIONAL

    space = {k: v for k, v in config["search"][wc.study].items() if k not in OPERATIONAL}
    space["storage"] = config["search"][wc.study].get("storage")
    return settings_input("study", wc.study, space)


def study_settings(wc):
    """What a worker depends on: the study, its base experiment and the inject settings its
    trials use."""
    from dse.pipeline import InjectSettings

    study = config["search"][wc.study]
    settings = {"study": study, "experiment": experiment_settings(study["experiment"]),
                "inject": InjectSettings.from_config(config).to_dict()}
    return settings_input("worker", wc.study, settings)


def study_cards(wc):
    """Device card files the trials read: the base experiment's and each chip's error sources."""
    from dse.search import parse_study

    spec = parse_study(config, wc.study)
    files = experiment_card(spec.experiment)
    for chip in sorted(set(spec.chips.values())):
        files += [config["chips"][chip]] + chip_device_cards(chip)
        if CHIP_CARDS[chip].analog_card:
            files += [f for f in [device_card_file(CHIP_CARDS[chip].analog_card)] if f]
    return sorted(set(files))


def worker_threads(study):
    """Torch threads of one search worker: the local torch threads shared among the study's
    workers, so that 2 workers on 2 cores run side by side with one thread each instead of
    queueing for the cpu_slots pool (a cluster profile's set-threads overrides this)."""
    return rule_threads("search_worker",
                        max(1, TORCH_THREADS // config["search"][study]["workers"]))


def study_worker_outputs(wc):
    n = config["search"][wc.study]["workers"]
    return paths(L.worker_json(wc.study, w) for w in range(n))


# -------------------------------------------------------------------------------- targets
def all_targets():
    targets = []
    for exp in EXPERIMENTS:
        targets += L.train_files(exp)
    for exp, chip in chip_pairs():
        targets += L.chip_files(exp, chip)
    for name in CALIBRATED:
        targets += [L.calibrated_card(name), L.calibration_figure(name)]
    for study in STUDIES:
        targets += L.study_outputs(study)
    return paths(targets)


def report_card_files():
    """Hand-written device and chip card files the report reads (calibrated cards are targets)."""
    files = [e["card"] for e in config["devices"].values() if e.get("card")]
    return sorted(set(files) | {config["chips"][c] for c in CHIPS})
