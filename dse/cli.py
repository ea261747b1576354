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


# ---------------------------------------------------------------------------------------- main
SECTIONS: list[Callable[[argparse._SubParsersAction], None]] = [_add_train]


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
