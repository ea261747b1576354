# map: one job per (experiment, chip) pair whose encoding fits the experiment's precision.


rule map:
    input:
        model=rules.train.output.model,
        meta=rules.train.output.meta,
        chip=chip_card_file,
    output:
        path(L.mapping_json("{exp}", "{chip}")),
    log:
        path(L.log("map", "{exp}/{chip}")),
    benchmark:
        path(L.benchmark("map", "{exp}/{chip}"))
    params:
        model=subpath(input.model, parent=True),
    wildcard_constraints:
        exp=EXPERIMENT_WILDCARD,
        chip=CHIP_WILDCARD,
    threads: 1
    resources:
        cpu_slots=1,
    conda:
        "../envs/dse.yaml"
    shell:
        "dse --threads {threads} map --model {params.model} --chip {input.chip}"
        " --out {output} > {log} 2>&1"
