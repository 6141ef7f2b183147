from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/corpus.smk"
include: "rules/mecab.smk"
include: "rules/training.smk"
include: "rules/tokenize.smk"
include: "rules/embed.smk"
include: "rules/project.smk"
include: "rules/plots.smk"
include: "rules/neighbors.smk"
include: "rules/explore.smk"
include: "rules/attention.smk"
include: "rules/export.smk"
include: "rules/fill_mask.smk"
include: "rules/padding.smk"
include: "rules/internals.smk"
include: "rules/layers.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
