"""`dse search` and `dse report`: parsers and handlers."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from dse.errors import DseError

log = logging.getLogger("dse")


# -------------------------------------------------------------------------------------- search
def add_search(sub: argparse._SubParsersAction) -> None:
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
def add_report(sub: argparse._SubParsersAction) -> None:
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
