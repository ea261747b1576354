# train: one job per experiment of the config.


rule train:
    input:
        card=lambda wc: experiment_card(wc.exp),
    output:
        multiext(
            "results/train/{exp}/",
            "model.pt",
            "model.json",
            "history.csv",
            "pulses.csv",
            "tasks.csv",
        ),
    log:
        "logs/train/{exp}.log",
    benchmark:
        "results/benchmarks/train/{exp}.tsv"
    params:
        config=CONFIGFILE,
        experiment=lambda wc: experiment_settings(wc.exp),
        outdir=subpath(output[0], parent=True),
        card=lambda wc, input: f"--card {input.card}" if input.card else "",
    threads: TORCH_THREADS
    resources:
        cpu_slots=TORCH_THREADS,
        mem_mb=4000,
    conda:
        "../envs/dse.yaml"
    shell:
        "dse --threads {threads} train --config {params.config} --experiment {wildcards.exp}"
        " --out {params.outdir} {params.card} > {log} 2>&1"
