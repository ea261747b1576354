# Configuration loading and the small input/target functions the rules share.
import os
import sys

from dse.config import check_config
from dse.errors import DseError

CONFIGFILE = str(workflow.configfiles[-1]) if workflow.configfiles else "config/config.yaml"

try:
    check_config(config, source=CONFIGFILE)
except DseError as exc:
    print(f"dse: {exc}", file=sys.stderr)
    sys.exit(2)

# Torch jobs declare `cpu_slots` equal to their threads; capping the total at the machine's
# cores stops `--cores 8` on a 2-core machine from running 4 two-thread jobs at once
# (oversubscribed torch runs many times slower). A profile or `--resources cpu_slots=N`
# overrides this (e.g. on a cluster).
workflow.global_resources.setdefault("cpu_slots", os.cpu_count() or 1)
TORCH_THREADS = max(1, min(2, os.cpu_count() or 1))

EXPERIMENTS = sorted(config["experiments"])


def train_outputs(exp):
    return [
        f"results/train/{exp}/{f}"
        for f in ("model.pt", "model.json", "history.csv", "pulses.csv", "tasks.csv")
    ]


def all_targets():
    targets = []
    for exp in EXPERIMENTS:
        targets += train_outputs(exp)
    return targets
