# inject: Monte-Carlo fault maps per operating point for each (experiment, chip) pair.


rule inject:
    input:
        model=rules.train.output.model,
        meta=rules.train.output.meta,
        mapping=rules.map.output[0],
        chip=chip_card_file,
        settings=inject_settings,
        devices=lambda wc: chip_device_cards(wc.chip, wc.exp),
    output:
        table=path(L.inject_csv("{exp}", "{chip}")),
        summary=report(
            path(L.inject_summary_csv("{exp}", "{chip}")),
            caption="../report/inject.rst",
            category="3. Robustness",
            labels={"experiment": "{exp}", "chip": "{chip}"},
        ),
    log:
        path(L.log("inject", "{exp}/{chip}")),
    benchmark:
        path(L.benchmark("inject", "{exp}/{chip}"))
    params:
        config=CONFIGFILE,
        model=subpath(input.model, parent=True),
        devices=lambda wc, input: device_flags(input),
    wildcard_constraints:
        exp=EXPERIMENT_WILDCARD,
        chip=CHIP_WILDCARD,
    threads: TORCH_THREADS
    resources:
        cpu_slots=TORCH_THREADS,
        mem_mb=4000,
    conda:
        "../envs/dse.yaml"
    shell:
        "dse --threads {threads} inject --model {params.model} --mapping {input.mapping}"
        " --chip {input.chip} {params.devices} --config {params.config}"
        " --out {output.table} --summary {output.summary} > {log} 2>&1"
