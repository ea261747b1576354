# inject: Monte-Carlo fault maps per operating point for each (experiment, chip) pair.


rule inject:
    input:
        model=multiext("results/train/{exp}/", "model.pt", "model.json"),
        mapping="results/map/{exp}/{chip}.json",
        chip=lambda wc: chip_card_file(wc.chip),
        devices=lambda wc: chip_device_cards(wc.chip, wc.exp),
    output:
        table="results/inject/{exp}/{chip}.csv",
        summary=report(
            "results/inject/{exp}/{chip}.summary.csv",
            caption="../report/inject.rst",
            category="3. Robustness",
            labels={"experiment": "{exp}", "chip": "{chip}"},
        ),
    log:
        "logs/inject/{exp}/{chip}.log",
    benchmark:
        "results/benchmarks/inject/{exp}/{chip}.tsv"
    params:
        config=CONFIGFILE,
        model=lambda wc: f"results/train/{wc.exp}",
        settings=lambda wc: canonical(inject_settings(wc.chip)),
        devices=lambda wc, input: device_flags(input),
    wildcard_constraints:
        chip=CHIP_WILDCARD,
    threads: rule_threads("inject")
    resources:
        cpu_slots=lambda wc, threads: threads,
        **rule_resources("inject"),
    conda:
        "../envs/dse.yaml"
    shell:
        "dse --threads {threads} inject --model {params.model} --mapping {input.mapping}"
        " --chip {input.chip} {params.devices} --config {params.config}"
        " --out {output.table} --summary {output.summary} > {log} 2>&1"
