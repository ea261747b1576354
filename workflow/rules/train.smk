# train: one job per experiment of the config.


rule train:
    input:
        card=lambda wc: experiment_card(wc.exp),
    output:
        "results/train/{exp}/model.pt",
        "results/train/{exp}/model.json",
        report(
            "results/train/{exp}/history.csv",
            caption="../report/history.rst",
            category="2. Training",
            labels={"experiment": "{exp}", "table": "history (per epoch)"},
        ),
        "results/train/{exp}/pulses.csv",
        report(
            "results/train/{exp}/tasks.csv",
            caption="../report/tasks.rst",
            category="2. Training",
            labels={"experiment": "{exp}", "table": "task matrix"},
        ),
    log:
        "logs/train/{exp}.log",
    benchmark:
        "results/benchmarks/train/{exp}.tsv"
    params:
        config=CONFIGFILE,
        experiment=lambda wc: canonical(experiment_settings(wc.exp)),
        outdir=subpath(output[0], parent=True),
        card=lambda wc, input: f"--card {input.card}" if input.card else "",
    threads: rule_threads("train")
    resources:
        cpu_slots=lambda wc, threads: threads,
        **rule_resources("train"),
    conda:
        "../envs/dse.yaml"
    shell:
        "dse --threads {threads} train --config {params.config} --experiment {wildcards.exp}"
        " --out {params.outdir} {params.card} > {log} 2>&1"
