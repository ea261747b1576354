# search: each study is initialised once (fresh storage), run by `workers` jobs sharing the
# storage, then aggregated into trials.csv, pareto.csv and figures.


rule search_init:
    output:
        "results/search/{study}/study.json",
    log:
        "logs/search/{study}/init.log",
    benchmark:
        "results/benchmarks/search/{study}/init.tsv"
    params:
        config=CONFIGFILE,
        space=lambda wc: canonical(study_space(wc.study)),
    threads: rule_threads("search_init", 1)
    resources:
        cpu_slots=lambda wc, threads: threads,
        **rule_resources("search_init"),
    conda:
        "../envs/dse.yaml"
    shell:
        "dse search --config {params.config} --study {wildcards.study} --init > {log} 2>&1"


rule search_worker:
    input:
        study="results/search/{study}/study.json",
        cards=lambda wc: study_cards(wc.study),
    output:
        "results/search/{study}/workers/{worker}.json",
    log:
        "logs/search/{study}/worker{worker}.log",
    benchmark:
        "results/benchmarks/search/{study}/worker{worker}.tsv"
    params:
        config=CONFIGFILE,
        settings=lambda wc: canonical(study_settings(wc.study)),
    threads: lambda wc: worker_threads(wc.study)
    resources:
        cpu_slots=lambda wc, threads: threads,
        **rule_resources("search_worker"),
    conda:
        "../envs/dse.yaml"
    shell:
        "dse --threads {threads} search --config {params.config} --study {wildcards.study}"
        " --worker {wildcards.worker} > {log} 2>&1"


rule search_aggregate:
    input:
        lambda wc: study_worker_outputs(wc.study),
    output:
        "results/search/{study}/trials.csv",
        report(
            "results/search/{study}/pareto.csv",
            caption="../report/pareto_table.rst",
            category="5. Co-design",
            labels={"study": "{study}", "item": "Pareto-optimal designs"},
        ),
        "results/search/{study}/hypervolume.csv",
        report(
            "results/search/{study}/pareto.png",
            caption="../report/pareto.rst",
            category="5. Co-design",
            labels={"study": "{study}", "item": "Pareto front"},
        ),
        report(
            "results/search/{study}/hypervolume.png",
            caption="../report/hypervolume.rst",
            category="5. Co-design",
            labels={"study": "{study}", "item": "hypervolume convergence"},
        ),
        "results/search/{study}/summary.json",
    log:
        "logs/search/{study}/aggregate.log",
    benchmark:
        "results/benchmarks/search/{study}/aggregate.tsv"
    params:
        config=CONFIGFILE,
    threads: rule_threads("search_aggregate", 1)
    resources:
        cpu_slots=lambda wc, threads: threads,
        **rule_resources("search_aggregate"),
    conda:
        "../envs/dse.yaml"
    shell:
        "dse search --config {params.config} --study {wildcards.study} --aggregate > {log} 2>&1"
