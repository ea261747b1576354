# report: one self-contained HTML page (reports/report.html) over every other target, plus the
# global description of Snakemake's own report (`snakemake --report report.html`).


report: "../report/workflow.rst"


rule report:
    input:
        targets=all_targets(),
        cards=report_card_files(),
    output:
        report(
            "reports/report.html",
            caption="../report/report_html.rst",
            category="0. dse report",
            labels={"file": "reports/report.html"},
        ),
    log:
        "logs/report.log",
    params:
        config=CONFIGFILE,
        config_hash=CONFIG_HASH,
    threads: rule_threads("report", 1)
    resources:
        cpu_slots=lambda wc, threads: threads,
        **rule_resources("report"),
    conda:
        "../envs/dse.yaml"
    shell:
        "dse report --config {params.config} --results results --out {output} > {log} 2>&1"
