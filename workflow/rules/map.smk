# map: one job per (experiment, chip) pair whose encoding fits the experiment's precision.


rule map:
    input:
        model=multiext("results/train/{exp}/", "model.pt", "model.json"),
        chip=lambda wc: chip_card_file(wc.chip),
    output:
        "results/map/{exp}/{chip}.json",
    log:
        "logs/map/{exp}/{chip}.log",
    benchmark:
        "results/benchmarks/map/{exp}/{chip}.tsv"
    params:
        model=lambda wc: f"results/train/{wc.exp}",
    wildcard_constraints:
        chip=CHIP_WILDCARD,
    threads: rule_threads("map", 1)
    resources:
        cpu_slots=lambda wc, threads: threads,
        **rule_resources("map"),
    conda:
        "../envs/dse.yaml"
    shell:
        "dse --threads {threads} map --model {params.model} --chip {input.chip}"
        " --out {output} > {log} 2>&1"
