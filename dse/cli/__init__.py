"""``dse`` command line: argument parsing only; each subcommand calls the wiring
(:mod:`dse.pipeline`: its recipes and contract-file I/O) and nothing else.

A user mistake (``DseError``) prints one line, ``dse: <file>: <what> (<fix>)``, and exits 2.
One module per group of subcommands (:mod:`dse.cli.devices`, :mod:`dse.cli.stages`,
:mod:`dse.cli.study`); each keeps a subcommand's parser and handler together.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Callable, Sequence

from dse import __version__
from dse.cli import devices, stages, study
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


def _log_usage(command: str) -> None:
    """The job's CPU seconds, for benchmarks/study_jobs.py (per-job cost of a workflow run): the
    whole process's, imports included (``resource.getrusage``; children: a stage's own
    subprocesses)."""
    import resource

    me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    log.info("dse %s: cpu %.2f s (user %.2f + sys %.2f), peak rss %.0f MB", command,
             me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
             me.ru_utime + kids.ru_utime, me.ru_stime + kids.ru_stime, me.ru_maxrss / 1024)


# ---------------------------------------------------------------------------------------- main
SECTIONS: list[Callable[[argparse._SubParsersAction], None]] = [
    devices.add_synthesize, devices.add_calibrate, stages.add_train, stages.add_map,
    stages.add_inject, stages.add_estimate, stages.add_deploy, stages.add_validate,
    study.add_search,
    study.add_report]


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


def main(argv: Sequence[str] | None = None, *, freeze_imports: bool = False) -> int:
    """Run one ``dse`` command; ``freeze_imports`` (the console script, :func:`run`) moves the
    imported libraries' objects out of the garbage collector's reach before the command runs."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup(args)
    if freeze_imports:
        import dse.pipeline  # noqa: F401  (every command's wiring: torch, pandas, scipy)

        gc.freeze()
    try:
        status = int(args.func(args) or 0)
        _log_usage(args.command)
        return status
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


def run() -> None:
    """The ``dse`` console script: :func:`main` with the libraries' objects frozen once imported
    (``gc.freeze``: the collector's full passes no longer traverse torch's, pandas' and scipy's
    ~250 000 objects), and frozen again before exit, so the interpreter's shutdown skips its last
    collection over everything. ~1-2 CPU s per job, ~30-40 CPU s over the default study's 27
    jobs (benchmarks/README.md, "Snakemake's own CPU and each job's exit"). Files are closed and
    atexit handlers still run. In-process callers (the tests) use :func:`main`, which does not
    freeze: a long-lived process would keep garbage it can no longer collect."""
    status = main(freeze_imports=True)
    gc.freeze()
    sys.exit(status)
