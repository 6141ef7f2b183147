"""Projection stage: t-SNE and PCA of the vocabulary matrix or of per-layer sentence vectors."""

import numpy as np

from bertlens.config import resolve_layers
from bertlens.embeddings import load_sentence_layer
from bertlens.io import read_json, read_table, write_json, write_sidecar, write_table
from bertlens.projection import long_table, project, select_vocab
from bertlens.stage import run


def vocab(sm):
    table = read_table(sm.input.vocab_table)
    chosen = select_vocab(table, sm.params.target["max_points"])
    x = np.load(sm.input.vocab, mmap_mode="r")[chosen["token_id"].to_numpy()]
    coords, facts = project(
        np.asarray(x), sm.params.target["methods"], sm.params.tsne, sm.threads, sm.params.umap
    )
    return long_table(chosen.reset_index(drop=True), coords), facts


def sentences(sm):
    target = sm.params.target
    n_layers = read_json(sm.input.facts)["sentences"]["layers"] - 1
    layers = resolve_layers(target["layers"], n_layers)
    tokens = read_table(sm.input.tokens)
    corpus = read_table(sm.input.corpus)
    meta = corpus[["id", "source"]].copy()
    meta["text"] = corpus[sm.params.column].astype(str)
    meta["length"] = tokens["length"].to_numpy()
    parts, facts = [], {}
    for pooling in target["poolings"]:
        path = sm.input[f"sent_{pooling}"]
        for layer in [0] if pooling == "pooler" else layers:
            x = load_sentence_layer(path, layer)
            if x.size == 0:
                continue  # model without a pooler
            coords, f = project(x, target["methods"], sm.params.tsne, sm.threads, sm.params.umap)
            parts.append(long_table(meta, coords, layer=layer, pooling=pooling))
            facts[f"{pooling}/layer{layer}"] = f
    import pandas as pd

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
