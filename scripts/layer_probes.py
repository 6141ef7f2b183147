"""Layer lens, part 3: linear probes per layer with control tasks and selectivity."""

from bertlens.io import read_json, read_table, write_html_table, write_sidecar, write_table
from bertlens.layerplots import probes_png
from bertlens.layers import load_vectors
from bertlens.probes import run_probes
from bertlens.stage import run


def main(sm):
    cfg = dict(sm.params.layers)
    facts = read_json(sm.input.facts)
    table = read_table(sm.input.table)
    probes = run_probes(load_vectors(sm.input.vectors), table, facts["language"], cfg)
    model = sm.wildcards.model
    write_table(sm.output.probes, probes)
    write_html_table(
        sm.output.probes_html,
        probes,
        f"{model}: what each layer makes linearly readable",
        note="Test accuracy of a logistic-regression probe (split by sentence), of the same probe "
        "on the control task (a random label per type), selectivity = accuracy - control, and the "
        "majority baseline.",
    )
    probes_png(probes, model, sm.output.probes_png)
    write_sidecar(sm.output.probes, model=model, column=facts["column"], seed=cfg["seed"])


run(snakemake, main)
