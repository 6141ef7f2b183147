"""Comparison of two models reading the same corpus column: neighbourhood overlap per layer
(layers matched by relative depth) as a table and a line plot, and linked side-by-side
projections."""

from bertlens.explorer import compare_page, overlap_plot, sentence_tokens
from bertlens.io import read_json, read_table, write_html_table, write_sidecar, write_table
from bertlens.neighbors import load_sentence_knn, overlap_table
from bertlens.spread import degenerate_matrices
from bertlens.stage import UserError, run

POOLINGS = ("mean", "cls")  # the pooler is one vector after the last layer: no per-layer curve


def main(sm):
    names = (sm.wildcards.a, sm.wildcards.b)
    facts_ab = [read_json(f) for f in (sm.input.facts_a, sm.input.facts_b)]
    layers = [f["sentences"]["layers"] - 1 for f in facts_ab]
    knn_a, knn_b = load_sentence_knn(sm.input.knn_a), load_sentence_knn(sm.input.knn_b)
    n_a = next(iter(knn_a.values()))[0].shape[0]
    n_b = next(iter(knn_b.values()))[0].shape[0]
    if n_a != n_b:
        raise UserError(
            f"{names[0]} has {n_a} sentences and {names[1]} {n_b}: a comparison needs both "
            "models on the same corpus column"
        )
    stored = {p for p, _ in knn_a} & {p for p, _ in knn_b}
    poolings = [p for p in POOLINGS if p in stored]
    skipped = tuple(degenerate_matrices(f) for f in facts_ab)
    table = overlap_table(knn_a, knn_b, layers[0], layers[1], poolings, skipped)
    write_table(sm.output.csv, table)
    write_html_table(
        sm.output.html,
        table,
        title=f"Neighbourhood overlap: {names[0]} vs {names[1]}",
        note=f"Per pooling and pair of layers (matched by relative depth: {names[0]} has "
        f"{layers[0]} layers, {names[1]} {layers[1]}; layer i of the shallower model is paired "
        "with round(i × deeper / shallower) of the deeper), the Jaccard index of each sentence's "
        "k-NN sets (cosine) in the two models, averaged over sentences; 'chance' is the expected "
        "value for random neighbour sets. A layer whose vectors all point the same way in either "
        "model (CLS pooling at layer 0) has no neighbours to compare: its row says so.",
    )
    overlap_plot(table, names, sm.output.png)
    vocab = [read_table(f) for f in (sm.input.vocab_a, sm.input.vocab_b)]
    toks = [read_table(f)["input_ids"] for f in (sm.input.tokens_a, sm.input.tokens_b)]
    facts = compare_page(
        read_table(sm.input.projection_a),
        read_table(sm.input.projection_b),
        knn_a,
        knn_b,
        layers[0],
        layers[1],
        sentence_tokens(toks[0], vocab[0]),
        sentence_tokens(toks[1], vocab[1]),
        names,
        sm.output.page,
        int(sm.params.max_points),
        int(sm.params.raster_above),
    )
    for out in (sm.output.csv, sm.output.page):
        write_sidecar(out, models=list(names), layers=layers, **facts)


run(snakemake, main)
