"""Layer lens, parts 2 and 4: Ethayarajh's contextuality measures and linear CKA between the
layers of one model."""

from bertlens.contextuality import cka_frame, cka_matrix, measures_table
from bertlens.io import read_json, read_table, write_html_table, write_sidecar, write_table
from bertlens.layerplots import cka_png
from bertlens.layers import load_vectors, word_vectors
from bertlens.stage import run


def main(sm):
    cfg = sm.params.layers
    vectors = load_vectors(sm.input.vectors)
    table = read_table(sm.input.table)
    words, word_table = word_vectors(vectors, table)
    measures = measures_table(
        words, word_table, cfg["min_occurrences"], cfg["anisotropy_pairs"], cfg["seed"]
    )
    model = sm.wildcards.model
    write_table(sm.output.measures, measures)
    write_html_table(
        sm.output.measures_html,
        measures,
        f"{model}: how contextual each layer is",
        note=f"{len(word_table)} word occurrences of {table['sentence'].nunique()} sentences; "
        f"self-similarity and MEV over {measures['word_types'].iloc[0]} word types with at "
        f"least {cfg['min_occurrences']} occurrences. adjusted = raw - baseline.",
    )
    matrix = cka_matrix(vectors, vectors)
    write_table(sm.output.cka, cka_frame(matrix, "a", "b"))
    cka_png(matrix, model, model, f"{model}: linear CKA between layers ({len(table)} tokens)",
            sm.output.cka_png)  # fmt: skip
    facts = read_json(sm.input.facts)
    for key in ("measures", "cka"):
        write_sidecar(sm.output[key], model=model, column=facts["column"], seed=cfg["seed"])


run(snakemake, main)
