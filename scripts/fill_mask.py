"""Fill-mask probes of one model: the top-k tokens for each [MASK] of the configured sentences."""

from bertlens.fillmask import run_fill_mask
from bertlens.io import write_html_table, write_table
from bertlens.models import ModelSpec, location
from bertlens.stage import run


def main(sm):
    spec = ModelSpec.from_config(sm.params.model)
    loc = location(spec, trained_dir=getattr(sm.input, "model_dir", None))
    probes, top_k = sm.params.probes, sm.params.top_k
    table = run_fill_mask(spec, loc, probes, top_k)
    write_table(sm.output.csv, table)
    write_html_table(
        sm.output.html,
        table,
        title=f"Fill-mask: {spec.name}",
        note=f"{spec.describe()}, column {spec.column}: the {top_k} most likely tokens per [MASK].",
    )


run(snakemake, main)
