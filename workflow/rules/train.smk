# train: one job per experiment of the config.


rule train:
    input:
        settings=train_settings,
        card=lambda wc: experiment_card(wc.exp),
        chip=lambda wc: experiment_chip(wc.exp),
        data=dataset_inputs,
    output:
        model=path(L.train_file("{exp}", "model.pt")),
        meta=path(L.train_file("{exp}", "model.json")),
        history=report(
            path(L.train_file("{exp}", "history.csv")),
            caption="../report/history.rst",
            category="2. Training",
            labels={"experiment": "{exp}", "table": "history (per epoch)"},
        ),
        pulses=path(L.train_file("{exp}", "pulses.csv")),
        writes=path(L.train_file("{exp}", "writes.csv")),
        tasks=report(
            path(L.train_file("{exp}", "tasks.csv")),
            caption="../report/tasks.rst",
            category="2. Training",
            labels={"experiment": "{exp}", "table": "task matrix"},
        ),
    log:
        path(L.log("train", "{exp}")),
    benchmark:
        path(L.benchmark("train", "{exp}"))
    params:
        config=CONFIGFILE,
        outdir=subpath(output.model, parent=True),
        card=lambda wc, input: f"--card {input.card}" if input.card else "",
    wildcard_constraints:
        exp=EXPERIMENT_WILDCARD,
    threads: rule_threads("train")
    resources:
        cpu_slots=lambda wc, threads: threads,
        **rule_resources("train"),
    conda:
        "../envs/dse.yaml"
    shell:
        "dse --threads {threads} train --config {params.config} --experiment {wildcards.exp}"
        " --out {params.outdir} {params.card} > {log} 2>&1"
