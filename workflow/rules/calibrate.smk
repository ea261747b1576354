# calibrate: one job per device of the config that names a measurement file
# (devices: NAME: {measurements, family, format, base, direction, reset_measurements, fit});
# the card and its fit figure go to results/calibrate/NAME.{json,png}, which training picks up
# through device_card_file().


rule calibrate:
    input:
        data=lambda wc: config["devices"][wc.device]["measurements"],
        reset=lambda wc: config["devices"][wc.device].get("reset_measurements", []),
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
        reset=lambda wc, input: f"--reset {input.reset}" if input.reset else "",
        direction=lambda wc: config["devices"][wc.device].get("direction", "auto"),
        fit=lambda wc: " ".join(
            f"--fit {k}={v}"
            for k, v in sorted(config["devices"][wc.device].get("fit", {}).items())
        ),
    wildcard_constraints:
        device=CALIBRATED_WILDCARD,
    threads: 1
    resources:
        cpu_slots=1,
        mem_mb=1000,
    conda:
        "../envs/dse.yaml"
    shell:
        "dse --threads {threads} calibrate {input.data} --family {params.family}"
        " --format {params.format} --direction {params.direction} {params.reset} {params.base}"
        " {params.fit} --out {output.card} --figure {output.figure}"
        " > {log} 2>&1"
