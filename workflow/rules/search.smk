# search: each study is initialised once (fresh storage), run by `workers` jobs sharing the
# storage, then aggregated into trials.csv, pareto.csv and figures.


rule search_init:
    input:
        space=study_space,
    output:
        path(L.study_json("{study}")),
    log:
        path(L.log("search", "{study}/init")),
    benchmark:
        path(L.benchmark("search", "{study}/init"))
    params:
        config=CONFIGFILE,
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
        study=rules.search_init.output[0],
        settings=study_settings,
        cards=study_cards,
    output:
        path(L.worker_json("{study}", "{worker}")),
    log:
        path(L.log("search", "{study}/worker{worker}")),
    benchmark:
        path(L.benchmark("search", "{study}/worker{worker}"))
    params:
        config=CONFIGFILE,
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
        study_worker_outputs,
    output:
        path(L.study_file("{study}", "trials.csv")),
        report(
            path(L.study_file("{study}", "pareto.csv")),
            caption="../report/pareto_table.rst",
            category="5. Co-design",
            labels={"study": "{study}", "item": "Pareto-optimal designs"},
        ),
        path(L.study_file("{study}", "hypervolume.csv")),
        report(
            path(L.study_file("{study}", "pareto.png")),
            caption="../report/pareto.rst",
            category="5. Co-design",
            labels={"study": "{study}", "item": "Pareto front"},
        ),
        report(
            path(L.study_file("{study}", "hypervolume.png")),
            caption="../report/hypervolume.rst",
            category="5. Co-design",
            labels={"study": "{study}", "item": "hypervolume convergence"},
        ),
        path(L.study_file("{study}", "summary.json")),
    log:
        path(L.log("search", "{study}/aggregate")),
    benchmark:
        path(L.benchmark("search", "{study}/aggregate"))
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
