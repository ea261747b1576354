# estimate: energy per inference and area per layer and component, plus programming/training
# energy from the training pulse counts, for each (experiment, chip) pair.


rule estimate:
    input:
        mapping=rules.map.output[0],
        chip=chip_card_file,
        history=rules.train.output.history,
        pulses=rules.train.output.pulses,
        devices=lambda wc: chip_device_cards(wc.chip),
    output:
        report(
            path(L.estimate_csv("{exp}", "{chip}")),
            caption="../report/estimate.rst",
            category="4. Energy and area",
            labels={"experiment": "{exp}", "chip": "{chip}"},
        ),
    log:
        path(L.log("estimate", "{exp}/{chip}")),
    benchmark:
        path(L.benchmark("estimate", "{exp}/{chip}"))
    params:
        devices=lambda wc, input: device_flags(input),
    wildcard_constraints:
        exp=EXPERIMENT_WILDCARD,
        chip=CHIP_WILDCARD,
    threads: 1
    resources:
        cpu_slots=1,
    conda:
        "../envs/dse.yaml"
    shell:
        "dse --threads {threads} estimate --mapping {input.mapping} --chip {input.chip}"
        " --history {input.history} {params.devices} --out {output} > {log} 2>&1"
