"""The DAG through Slurm: every rule of a tiny study submitted with snakemake-executor-plugin-slurm
(`--executor slurm --workflow-profile profiles/slurm`) to a real cluster, outputs compared with a
local run; and config/paper.yaml planned with the same profile (a dry run listing every job's
resources).

The cluster test needs a running Slurm with accounting (`sacct`, which the plugin polls): a
single-node one comes from `scripts/slurm-single-node start` (root + Debian's packages; .ci/run
starts it). It is skipped, with the reason, where there is none.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PLUGIN_MISSING = ("snakemake-executor-plugin-slurm is not installed "
                  "(pip install -e '.[slurm]')")


def tiny_config() -> dict:
    """Every rule once: calibrate, train, map, inject, estimate, a 2-trial study, report."""
    dev, chips = REPO / "config" / "devices", REPO / "config" / "chips"
    return {
        "seed": 0, "device": "cpu",
        "devices": {
            "hfo2-2t2r": {"card": str(dev / "hfo2-2t2r.yaml")},
            "pcsa-130nm": {"card": str(dev / "pcsa-130nm.yaml")},
            "pcsa-130nm-physical": {"card": str(dev / "pcsa-130nm-physical.yaml")},
            "hfo2-2t2r-cal": {
                "measurements": str(REPO / "config/measurements/hfo2-2t2r.ber.synthetic.csv"),
                "family": "rram_2t2r", "format": "ber", "base": str(dev / "hfo2-2t2r.yaml")},
        },
        "experiments": {"b": {"dataset": "digits", "hidden": [16], "epochs": 1,
                              "batch_size": 50}},
        "chips": {"rram-2t2r-pcsa-130nm": str(chips / "rram-2t2r-pcsa-130nm.yaml")},
        "inject": {"repeats": 2, "ber": [0.0, 0.01]},
        "search": {"s": {"experiment": "b", "chip": "rram-2t2r-pcsa-130nm",
                         "parameters": {"vdd": {"low": 0.35, "high": 1.2}},
                         "objectives": {"accuracy": "maximize",
                                        "energy_per_inference_pJ": "minimize"},
                         "trials": 2, "repeats": 2}},
        # the train job's request comes from here (checked in sacct below)
        "resources": {"train": {"mem_mb": 1500, "runtime": 10}},
        "report": {"dpi": 50},
    }


def slurm_unavailable() -> str | None:
    """Why the cluster test cannot run here, or None."""
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return PLUGIN_MISSING
    for tool in ("sbatch", "sinfo", "sacct"):
        if shutil.which(tool) is None:
            return (f"no Slurm here ({tool} not found); as root, scripts/slurm-single-node "
                    "start sets up a single-node cluster")
    try:
        nodes = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True,
                               timeout=20)
        acct = subprocess.run(["sacct", "-n", "-X", "-o", "JobID"], capture_output=True,
                              text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "Slurm does not answer (sinfo/sacct timed out after 20 s)"
    if nodes.returncode != 0 or not re.search(r"^(idle|mix)", nodes.stdout, re.M):
        return f"no idle Slurm node (sinfo: {(nodes.stdout + nodes.stderr).strip()[:200]})"
    if acct.returncode != 0:
        return f"sacct does not work (no slurmdbd?): {acct.stderr.strip()[:200]}"
    return None


def snakemake_cmd(workdir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"), *args]


def snakemake(workdir: Path, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    return subprocess.run(snakemake_cmd(workdir, *args), capture_output=True, text=True,
                          timeout=timeout)


def job_stats(dry_run_output: str) -> dict[str, int]:
    """Rule -> job count from Snakemake's "Job stats" table."""
    table = dry_run_output.split("Job stats:", 1)[1]
    counts = {}
    for line in table.splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def sacct_jobs(workdir: Path, since: str) -> pd.DataFrame:
    """The Slurm jobs submitted from ``workdir`` since ``since`` (sacct, main steps only)."""
    fields = ["JobIDRaw", "State", "Comment", "WorkDir", "ReqMem", "Timelimit", "AllocCPUS"]
    out = subprocess.run(["sacct", "-X", "-P", "-n", "-a", "-S", since, "-o", ",".join(fields)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    rows = [dict(zip(fields, line.split("|"), strict=True)) for line in out.splitlines()
            if line.strip()]
    frame = pd.DataFrame(rows, columns=fields)
    frame = frame[frame["WorkDir"] == str(workdir)].copy()
    frame["rule"] = frame["Comment"].str.extract(r"^rule_(.+?)(?:_wildcards_.*)?$")[0]
    return frame.reset_index(drop=True)


TIMING = re.compile(r"seconds")  # wall-clock columns and keys (history, trials, summaries)


def _strip_timing(value: object) -> object:
    if isinstance(value, dict):
        return {k: _strip_timing(v) for k, v in value.items() if not TIMING.search(k)}
    if isinstance(value, list):
        return [_strip_timing(v) for v in value]
    return value


def output_differences(a: Path, b: Path) -> list[str]:
    """Files of results/ that differ between two runs, wall-clock figures aside (Snakemake's
    benchmark files and the Optuna journal hold only timings and timestamps)."""
    def files(root: Path) -> set[Path]:
        return {p.relative_to(root) for p in (root / "results").rglob("*") if p.is_file()
                and p.parts[len(root.parts) + 1] != "benchmarks" and p.name != "journal.log"}

    fa, fb = files(a), files(b)
    diffs = [f"only in one run: {p}" for p in sorted(fa ^ fb)]
    for rel in sorted(fa & fb):
        pa, pb = a / rel, b / rel
        if rel.suffix == ".csv":
            da, db = (pd.read_csv(p) for p in (pa, pb))
            keep = [c for c in da.columns if not TIMING.search(c)]
            if list(da.columns) != list(db.columns) or not da[keep].equals(db[keep]):
                diffs.append(str(rel))
        elif rel.suffix == ".json":
            ja, jb = (_strip_timing(json.loads(p.read_text())) for p in (pa, pb))
            if ja != jb:
                diffs.append(str(rel))
        elif pa.read_bytes() != pb.read_bytes():
            diffs.append(str(rel))
    return diffs


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The tiny study run locally and through Slurm; what sacct recorded for the latter."""
    reason = slurm_unavailable()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("slurm")
    local, cluster = root / "local", root / "cluster"
    for work in (local, cluster):
        work.mkdir()
        (work / "config.yaml").write_text(yaml.safe_dump(tiny_config()))
    plan = snakemake(cluster, "-n", "--workflow-profile", str(REPO / "profiles/slurm"))
    assert plan.returncode == 0, plan.stderr[-3000:]
    # the local run alongside: the cluster run mostly waits for the plugin's status polls
    with (local / "snakemake.log").open("w") as log:
        local_run = subprocess.Popen(snakemake_cmd(local, "--cores", "2"), stdout=log,
                                     stderr=subprocess.STDOUT)
        since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 60))
        t0 = time.monotonic()
        proc = snakemake(cluster, "--workflow-profile", str(REPO / "profiles/slurm"),
                         "--slurm-init-seconds-before-status-checks", "1",
                         "--seconds-between-status-checks", "2", "--slurm-keep-successful-logs")
        seconds = time.monotonic() - t0
        local_run.wait(timeout=1200)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert local_run.returncode == 0, (local / "snakemake.log").read_text()[-3000:]
    return {"local": local, "cluster": cluster, "planned": job_stats(plan.stdout),
            "jobs": sacct_jobs(cluster, since), "log": proc.stderr, "seconds": seconds}


@pytest.mark.slurm
@pytest.mark.slow
def test_every_job_went_through_sbatch(runs: dict) -> None:
    jobs, planned = runs["jobs"], dict(runs["planned"])
    planned.pop("all")  # the target rule runs on the submitting machine (localrule)
    assert set(planned) == {"calibrate", "train", "deploy", "search_init", "search_worker",
                            "search_aggregate", "report"}
    assert jobs["rule"].value_counts().to_dict() == planned
    assert (jobs["State"] == "COMPLETED").all(), jobs[["rule", "State"]]
    submitted = {int(m) for m in re.findall(r"submitted with SLURM jobid (\d+)", runs["log"])}
    assert submitted == {int(j) for j in jobs["JobIDRaw"]}
    logs = {int(p.stem) for p in (runs["cluster"] / ".snakemake/slurm_logs").rglob("*.log")}
    assert logs == submitted  # each job's own Slurm log (--slurm-keep-successful-logs)
    print(f"\nslurm: {len(submitted)} jobs submitted, {int((jobs['State'] == 'COMPLETED').sum())}"
          f" COMPLETED in sacct, {runs['seconds']:.0f} s")


@pytest.mark.slurm
@pytest.mark.slow
def test_job_requests_come_from_the_config(runs: dict) -> None:
    jobs = runs["jobs"].set_index("rule")
    assert jobs.loc["train", "ReqMem"] == "1500M"  # resources.train.mem_mb of tiny_config
    assert jobs.loc["train", "Timelimit"] == "00:10:00"  # resources.train.runtime (minutes)
    assert jobs.loc["report", "ReqMem"] == "2000M"  # config/schema.yaml's default for report
    assert jobs.loc["report", "Timelimit"] == "00:30:00"


@pytest.mark.slurm
@pytest.mark.slow
def test_outputs_equal_a_local_run(runs: dict) -> None:
    assert output_differences(runs["local"], runs["cluster"]) == []
    assert (runs["cluster"] / "reports" / "report.html").stat().st_size > 10_000


# ------------------------------------------------------------------- config/paper.yaml, planned
def dry_run_jobs(output: str) -> pd.DataFrame:
    """One row per job of a dry run: rule, wildcards, threads and resources."""
    rows = []
    for block in re.split(r"\n(?=\[.*\]\n(?:local)?rule )", output):
        head = re.search(r"^(local)?rule (\w+):", block, re.M)
        if not head or head.group(1) or head.group(2) == "all":  # the target runs locally
            continue
        row: dict[str, object] = {"rule": head.group(2)}
        wild = re.search(r"^\s+wildcards: (.*)$", block, re.M)
        row["wildcards"] = wild.group(1) if wild else ""
        threads = re.search(r"^\s+threads: (\d+)$", block, re.M)
        row["threads"] = int(threads.group(1)) if threads else 1
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        for item in (res.group(1).split(", ") if res else []):
            key, _, value = item.partition("=")
            if key in ("mem_mb", "runtime", "gpu"):
                row[key] = int(value)
        rows.append(row)
    return pd.DataFrame(rows).fillna({"gpu": 0}).astype({"gpu": int})


def test_paper_config_plans_with_the_slurm_profile(tmp_path: Path) -> None:
    """config/paper.yaml with profiles/slurm, both unchanged: every job and what it asks for."""
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip(PLUGIN_MISSING)
    from dse.config import load_config

    for part in ("Snakefile", "workflow", "config", "profiles"):
        src = REPO / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / part)
    # --cores only lifts the dry run's default of one core, which would cap every job's threads
    # at 1 in the listing; a real --executor slurm run has no such cap (each job is its own
    # allocation)
    # the dry run checks that the data sets are on disk: stand-in files where torchvision looks
    from dse.data import dataset_files

    data = tmp_path / "data"
    for exp in load_config(REPO / "config" / "paper.yaml")["experiments"].values():
        for name in {exp["dataset"], *(exp.get("tasks") or {}).get("datasets", [])}:
            for f in dataset_files(name, data):
                f.parent.mkdir(parents=True, exist_ok=True)
                f.touch()
    cmd = [sys.executable, "-m", "snakemake", "-n", "--workflow-profile", "profiles/slurm",
           "--cores", "1024", "--config", f"data_root={data}", "--configfile",
           "config/paper.yaml"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = dry_run_jobs(proc.stdout)
    config = load_config(REPO / "config" / "paper.yaml")
    counts = jobs["rule"].value_counts().to_dict()
    assert counts == {k: v for k, v in job_stats(proc.stdout).items() if k != "all"}
    assert counts["train"] == len(config["experiments"])
    assert counts["search_worker"] == sum(s["workers"] for s in config["search"].values())
    for rule, group in jobs.groupby("rule"):
        want = config["resources"][rule]
        assert (group["threads"] == (want["threads"] or 1)).all(), rule
        assert (group["mem_mb"] == want["mem_mb"]).all(), rule
        assert (group["runtime"] == want["runtime"]).all(), rule
        assert (group["gpu"] == want["gpu"]).all(), rule
    assert set(jobs.loc[jobs["gpu"] > 0, "rule"]) == {"train", "deploy", "search_worker"}
    summary = jobs.groupby("rule").agg(jobs=("rule", "size"), threads=("threads", "max"),
                                       mem_mb=("mem_mb", "max"), runtime_min=("runtime", "max"),
                                       gpu=("gpu", "max"))
    print(f"\nconfig/paper.yaml with profiles/slurm: {len(jobs)} jobs\n{summary.to_string()}")
