# report: one self-contained HTML page over every other target, plus the global description of
# Snakemake's own report (`snakemake --report report.html`).


report: "../report/workflow.rst"


rule report:
    input:
        targets=all_targets(),
        cards=report_card_files(),
        config=CONFIGFILE,  # the report shows the effective config: any change reruns it
    output:
        report(
            path(L.report_html),
            caption="../report/report_html.rst",
            category="0. dse report",
            labels={"file": path(L.report_html)},
        ),
    log:
        path(L.log("report", "report")),
    threads: rule_threads("report", 1)
    resources:
        cpu_slots=lambda wc, threads: threads,
        **rule_resources("report"),
    conda:
        "../envs/dse.yaml"
    shell:
        "dse report --config {input.config} --out {output} > {log} 2>&1"
