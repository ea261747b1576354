# dse: raw device measurements -> device cards -> hardware-aware training -> mapping onto chips
# -> bit-error injection -> energy/area -> co-design search -> HTML report.
# Rules only wire files to `dse` subcommands; the work is in the dse package (see DESIGN.md).
from snakemake.utils import min_version

min_version("9.0")


# The default study, unless --configfile names another one: a study file replaces it rather
# than being merged into it (Snakemake's default would add config/config.yaml's experiments,
# chips and studies to e.g. config/paper.yaml's). `--config key=value` still edits either.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/calibrate.smk"
include: "workflow/rules/deploy.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),
        path(L.report_html),
