# deploy: map -> inject -> estimate of one (experiment, chip) pair whose encoding fits the
# experiment's precision, in one job (`dse deploy`: one process, so torch is imported once, not
# three times); its files are the map, inject and estimate stages' contract files (the estimate's
# energy/area table and its latency table per layer).


rule deploy:
    input:
        model=rules.train.output.model,
        meta=rules.train.output.meta,
        history=rules.train.output.history,
        pulses=rules.train.output.pulses,
        chip=chip_card_file,
        settings=inject_settings,
        data=dataset_inputs,
        devices=lambda wc: chip_device_cards(wc.chip, wc.exp),
    output:
        mapping=path(L.mapping_json("{exp}", "{chip}")),
        table=path(L.inject_csv("{exp}", "{chip}")),
        summary=report(
            path(L.inject_summary_csv("{exp}", "{chip}")),
            caption="../report/inject.rst",
            category="3. Robustness",
            labels={"experiment": "{exp}", "chip": "{chip}"},
        ),
        estimate=report(
            path(L.estimate_csv("{exp}", "{chip}")),
            caption="../report/estimate.rst",
            category="4. Energy and area",
            labels={"experiment": "{exp}", "chip": "{chip}"},
        ),
        latency=path(L.latency_csv("{exp}", "{chip}")),
    log:
        path(L.log("deploy", "{exp}/{chip}")),
    benchmark:
        path(L.benchmark("deploy", "{exp}/{chip}"))
    params:
        config=CONFIGFILE,
        model=subpath(input.model, parent=True),
        devices=lambda wc, input: device_flags(input),
    wildcard_constraints:
        exp=EXPERIMENT_WILDCARD,
        chip=CHIP_WILDCARD,
    threads: rule_threads("deploy")
    resources:
        cpu_slots=lambda wc, threads: threads,
        **rule_resources("deploy"),
    conda:
        "../envs/dse.yaml"
    shell:
        "dse --threads {threads} deploy --model {params.model} --chip {input.chip}"
        " {params.devices} --config {params.config} --mapping {output.mapping}"
        " --inject {output.table} --summary {output.summary} --estimate {output.estimate}"
        " --latency {output.latency}"
        " > {log} 2>&1"
