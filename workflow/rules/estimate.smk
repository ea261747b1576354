# estimate: energy per inference and area per layer and component, plus programming/training
# energy from the training pulse counts, for each (experiment, chip) pair.


rule estimate:
    input:
        mapping="results/map/{exp}/{chip}.json",
        chip=lambda wc: chip_card_file(wc.chip),
        history="results/train/{exp}/history.csv",
        pulses="results/train/{exp}/pulses.csv",
        devices=lambda wc: chip_device_cards(wc.chip),
    output:
        report(
            "results/estimate/{exp}/{chip}.csv",
            caption="../report/estimate.rst",
            category="4. Energy and area",
            labels={"experiment": "{exp}", "chip": "{chip}"},
        ),
    log:
        "logs/estimate/{exp}/{chip}.log",
    benchmark:
        "results/benchmarks/estimate/{exp}/{chip}.tsv"
    params:
        devices=lambda wc, input: device_flags(input),
    wildcard_constraints:
        chip=CHIP_WILDCARD,
    threads: rule_threads("estimate", 1)
    resources:
        cpu_slots=lambda wc, threads: threads,
        **rule_resources("estimate"),
    conda:
        "../envs/dse.yaml"
    shell:
        "dse --threads {threads} estimate --mapping {input.mapping} --chip {input.chip}"
        " --history {input.history} {params.devices} --out {output} > {log} 2>&1"
