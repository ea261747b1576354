"""Per-job and per-rule cost of a finished workflow run, and its critical path.

Reads, in a study folder (a copy of the tree where ``snakemake --cores 8`` ran):

* every job's CPU seconds from the last line of its log (``logs/<stage>/<job>.log``,
  ``dse <command>: cpu N s (user U + sys S)``: the whole process, imports included, written by
  ``dse.cli`` at the end of every successful command);
* every job's wall seconds from its Snakemake benchmark file (``results/benchmarks/...tsv``;
  the report has none: its CPU stands in). Snakemake's own ``cpu_time`` column is sampled
  (every second, then every 30 s) and misses the end of short jobs, so it is not used.

The critical path is the longest chain of the default DAG (calibrate -> train of an
experiment using the calibrated card -> deploy of that experiment; search init -> workers ->
aggregate; everything -> report), weighted by CPU seconds: on an otherwise idle machine a
1-thread job's wall time is about its CPU time and a 2-thread job's is below it, so this is an
upper bound of the chain's quiet wall time.

    python benchmarks/study_jobs.py /tmp/study-X [--markdown]
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path

import yaml

USAGE = re.compile(r"dse \S+: cpu ([0-9.]+) s")


def job_cpu(logs: Path) -> dict[str, float]:
    """{job: CPU s} from the logs (job = the log's path under logs/, without .log)."""
    out = {}
    for f in sorted(logs.rglob("*.log")):
        hits = USAGE.findall(f.read_text(errors="replace"))
        if hits:
            out[str(f.relative_to(logs).with_suffix(""))] = float(hits[-1])
    return out


def job_wall(benchmarks: Path) -> dict[str, float]:
    """{job: wall s} from Snakemake's benchmark files (same job names as the logs)."""
    out = {}
    for f in sorted(benchmarks.rglob("*.tsv")):
        lines = f.read_text().splitlines()
        if len(lines) >= 2:
            out[str(f.relative_to(benchmarks).with_suffix(""))] = float(lines[-1].split("\t")[0])
    return out


def rule_of(job: str) -> str:
    """The rule of a job name: train/x -> train, search/s/worker0 -> search_worker, ..."""
    parts = job.split("/")
    if parts[0] == "search":
        last = parts[-1]
        return "search_worker" if last.startswith("worker") else f"search_{last}"
    return parts[0]


def critical_path(cpu: dict[str, float], config: dict) -> tuple[float, list[str]]:
    """(CPU s, jobs) of the longest chain of the default DAG."""
    calibrated = {n for n, e in (config.get("devices") or {}).items() if "measurements" in e}
    exps = config.get("experiments") or {}

    def card_of(exp: str) -> list[str]:
        c = (exps.get(exp) or {}).get("device_card")
        return [f"calibrate/{c}"] if c in calibrated else []

    best: dict[str, tuple[float, list[str]]] = {}

    def chain(job: str, before: list[str]) -> tuple[float, list[str]]:
        prev = max((best_of(b) for b in before), default=(0.0, []), key=lambda t: t[0])
        return prev[0] + cpu.get(job, 0.0), [*prev[1], job]

    def best_of(job: str) -> tuple[float, list[str]]:
        if job not in best:
            parts = job.split("/")
            before: list[str] = []
            if parts[0] == "train":
                before = card_of(parts[1])
            elif parts[0] == "deploy":
                before = [f"train/{parts[1]}"]
            elif parts[0] == "search" and parts[-1] != "init":
                study = parts[1]
                base = (config.get("search") or {}).get(study, {}).get("experiment", "")
                stage = [j for j in cpu if j.startswith(f"search/{study}/worker")] \
                    if parts[-1] == "aggregate" else [f"search/{study}/init", *card_of(base)]
                before = stage
            best[job] = chain(job, before)
        return best[job]

    leaves = [j for j in cpu if not j.startswith("report")]
    top = max((best_of(j) for j in leaves), default=(0.0, []), key=lambda t: t[0])
    report = [j for j in cpu if j.startswith("report")]
    return top[0] + sum(cpu[j] for j in report), [*top[1], *report]


def summary(folder: Path) -> str:
    """The per-rule table, the costliest jobs and the critical path, as Markdown."""
    cpu = job_cpu(folder / "logs")
    wall = job_wall(folder / "results" / "benchmarks")
    config_file = folder / ".snakemake" / "dse" / "config.yaml"
    config = yaml.safe_load(config_file.read_text()) if config_file.is_file() else {}
    rules: dict[str, list[str]] = defaultdict(list)
    for job in cpu:
        rules[rule_of(job)].append(job)
    lines = ["| rule | jobs | CPU s (sum) | CPU s (max job) | wall s (sum) |",
             "|---|--:|--:|--:|--:|"]
    for rule, jobs in sorted(rules.items(), key=lambda kv: -sum(cpu[j] for j in kv[1])):
        lines.append(f"| {rule} | {len(jobs)} | {sum(cpu[j] for j in jobs):.1f} | "
                     f"{max(cpu[j] for j in jobs):.1f} | "
                     f"{sum(wall.get(j, 0.0) for j in jobs):.1f} |")
    lines.append(f"| **all jobs** | {len(cpu)} | **{sum(cpu.values()):.1f}** | | "
                 f"{sum(wall.values()):.1f} |")
    length, path = critical_path(cpu, config)
    lines += ["", f"Critical path (CPU s): **{length:.1f}** = "
              + " + ".join(f"{j} {cpu.get(j, 0.0):.1f}" for j in path), "",
              "Costliest jobs (CPU s): " + ", ".join(
                  f"{j} {c:.1f}" for j, c in sorted(cpu.items(), key=lambda kv: -kv[1])[:8])]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, help="the folder where snakemake ran")
    args = p.parse_args()
    print(summary(args.folder))


if __name__ == "__main__":
    main()
