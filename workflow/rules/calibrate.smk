# calibrate: one job per device of the config that names a measurement file
# (devices: NAME: {measurements, family, format, base, direction, reset_measurements, fit});
# the card and its fit figure go to
# Layout.calibrated_card / calibration_figure, which training picks up through
# Layout.device_card_file().


rule calibrate:
    input:
        data=lambda wc: device_entry(wc)["measurements"],
        reset=lambda wc: device_entry(wc).get("reset_measurements", []),
        base=lambda wc: device_entry(wc).get("base", []),
    output:
        card=path(L.calibrated_card("{device}")),
        figure=report(
            path(L.calibration_figure("{device}")),
            caption="../report/calibrate.rst",
            category="1. Devices",
            labels={"device": "{device}", "figure": "measured vs fitted"},
        ),
    log:
        path(L.log("calibrate", "{device}")),
    benchmark:
        path(L.benchmark("calibrate", "{device}"))
    params:
        family=lambda wc: device_entry(wc)["family"],
        format=lambda wc: device_entry(wc).get("format", "auto"),
        base=lambda wc, input: f"--base {input.base}" if input.base else "",
        reset=lambda wc, input: f"--reset {input.reset}" if input.reset else "",
        direction=lambda wc: device_entry(wc).get("direction", "auto"),
        fit=lambda wc: " ".join(
            f"--fit {k}={v}" for k, v in sorted(device_entry(wc).get("fit", {}).items())
        ),
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
        " --format {params.format} --direction {params.direction} {params.reset} {params.base}"
        " {params.fit} --out {output.card} --figure {output.figure}"
        " > {log} 2>&1"
