"""Projection stage: t-SNE and PCA of the vocabulary matrix or of per-layer sentence vectors."""

import numpy as np

from bertlens.config import resolve_layers
from bertlens.corpus import read_corpus
from bertlens.io import (
    StoredLayers,
    read_json,
    read_table,
    write_json,
    write_sidecar,
    write_table,
)
from bertlens.models import pooler_error
from bertlens.modelstage import check_rows_for_analysis
from bertlens.projection import long_table, project, select_vocab
from bertlens.spread import degenerate_matrices
from bertlens.stage import UserError, run


def vocab(sm):
    table = read_table(sm.input.vocab_table)
    chosen = select_vocab(table, sm.params.target["max_points"])
    x = np.load(sm.input.vocab, mmap_mode="r")[chosen["token_id"].to_numpy()]
    target = sm.params.target
    coords, facts = project(
        np.asarray(x),
        target["methods"],
        sm.params.tsne,
        sm.threads,
        sm.params.umap,
        target["tsne_fit_max"],
    )
    return long_table(chosen.reset_index(drop=True), coords), facts


def sentences(sm):
    target = sm.params.target
    embed_facts = read_json(sm.input.facts)
    layers = resolve_layers(target["layers"], embed_facts["sentences"]["layers"] - 1)
    skip = degenerate_matrices(embed_facts)
    tokens = read_table(sm.input.tokens)
    corpus = read_corpus(sm.input.corpus, sm.params.column)  # the rows the model read
    tsne = "tsne" in target["methods"]
    perplexity = sm.params.tsne["perplexity"] if tsne else None
    check_rows_for_analysis({f"model '{sm.wildcards.model}'": len(corpus)}, perplexity, None)
    meta = corpus[["id", "source"]].copy()
    meta["text"] = corpus[sm.params.column].astype(str)
    meta["length"] = tokens["length"].to_numpy()
    parts, facts = [], {}
    for pooling in target["poolings"]:
        stored = StoredLayers(sm.input[f"sent_{pooling}"])
        if len(stored) == 0:  # a hub model without a pooler (others are refused up front)
            raise pooler_error(
                sm.wildcards.model, ["projection.sentences.poolings"], "its checkpoint has none"
            )
        for layer in [0] if pooling == "pooler" else layers:
            if (pooling, layer) in skip:
                facts[f"{pooling}/layer{layer}"] = {"skipped": skip[(pooling, layer)]}
                continue
            coords, f = project(
                stored[layer],
                target["methods"],
                sm.params.tsne,
                sm.threads,
                sm.params.umap,
                target["tsne_fit_max"],
            )
            parts.append(long_table(meta, coords, layer=layer, pooling=pooling))
            facts[f"{pooling}/layer{layer}"] = f
    import pandas as pd

    if not parts:
        raise UserError(
            "every sentence matrix chosen for projection is degenerate (all its vectors point "
            "the same way): add other layers or poolings to projection.sentences"
        )
    return pd.concat(parts, ignore_index=True), facts


def main(sm):
    df, facts = vocab(sm) if sm.wildcards.target == "vocab" else sentences(sm)
    write_table(sm.output.table, df)
    write_json(sm.output.facts, facts)
    write_sidecar(
        sm.output.table,
        model=sm.wildcards.model,
        target=sm.wildcards.target,
        tsne=sm.params.tsne,
        seed=sm.params.tsne["seed"],
    )


run(snakemake, main)
