#!/usr/bin/env bash
# Run `snakemake --cores 8` in DIR and sample the Snakemake process's own CPU (utime + stime)
# and its waited-for children's (cutime + cstime) from /proc every 2 s, one line per sample:
# "epoch_s own_cpu_s children_cpu_s" in DIR/snakemake-cpu.txt (the last line is the total).
#   benchmarks/snakemake_cpu.sh /tmp/study && tail -1 /tmp/study/snakemake-cpu.txt
set -euo pipefail
cd "$1"
PYTHONPATH=$PWD python -m snakemake --cores 8 > snakemake-run.log 2>&1 &
pid=$!
tck=$(getconf CLK_TCK)
while kill -0 "$pid" 2>/dev/null; do
    if [ -r "/proc/$pid/stat" ]; then
        awk -v t="$tck" '{print systime(), ($14 + $15) / t, ($16 + $17) / t}' \
            "/proc/$pid/stat" >> snakemake-cpu.txt || true
    fi
    sleep 2
done
wait "$pid"
