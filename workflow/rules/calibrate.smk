# calibrate: one job per device of the config that names a measurement file
# (devices: NAME: {measurements, family, format, base}); the card and its fit figure go to
# results/calibrate/NAME.{json,png}, which training picks up through device_card_file().


rule calibrate:
    input:
        data=lambda wc: config["devices"][wc.device]["measurements"],
        base=lambda wc: config["devices"][wc.device].get("base", []),
    output:
        card="results/calibrate/{device}.json",
        figure=report(
            "results/calibrate/{device}.png",
            caption="../report/calibrate.rst",
            category="1. Devices",
            labels={"device": "{device}", "figure": "measured vs fitted"},
        ),
    log:
        "logs/calibrate/{device}.log",
    benchmark:
        "results/benchmarks/calibrate/{device}.tsv"
    params:
        family=lambda wc: config["devices"][wc.device]["family"],
        format=lambda wc: config["devices"][wc.device].get("format", "auto"),
        base=lambda wc, input: f"--base {input.base}" if input.base else "",
    wildcard_constraints:
        device=CALIBRATED_WILDCARD,
    threads: rule_threads("calibrate", 1)
    resources:
        cpu_slots=lambda wc, threads: threads,
        **rule_resources("calibrate"),
    conda:
        "../envs/dse.yaml"
    shell:
        "dse --threads {threads} calibrate {input.data} --family {params.family}"
        " --format {params.format} {params.base} --out {output.card} --figure {output.figure}"
        " > {log} 2>&1"
