# train: one job per experiment of the config.


rule train:
    input:
        config=CONFIGFILE,
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
    params:
        experiment=lambda wc: config["experiments"][wc.exp],
        outdir=subpath(output[0], parent=True),
    threads: TORCH_THREADS
    resources:
        cpu_slots=TORCH_THREADS,
        mem_mb=4000,
    conda:
        "../envs/dse.yaml"
    shell:
        "dse --threads {threads} train --config {input.config} --experiment {wildcards.exp}"
        " --out {params.outdir} > {log} 2>&1"
