"""Nearest neighbours in the original spaces: k-NN (cosine) of every vocabulary entry and every
sentence vector of one model, exact or approximate with its recall measured."""

import json

import numpy as np

from bertlens.io import (
    StoredLayers,
    atomic_path,
    read_json,
    write_html_table,
    write_json,
    write_sidecar,
)
from bertlens.modelstage import check_rows_for_analysis
from bertlens.neighbors import (
    knn_search,
    knn_summary,
    sentence_knn_all,
)
from bertlens.spread import degenerate_matrices
from bertlens.stage import run

POOLINGS = ("cls", "mean", "pooler")


def save_npz(path, arrays):
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def main(sm):
    k = int(sm.params.k)
    cfg = sm.params.knn

    def search(x, k):
        return knn_search(
            x, k, cfg["method"], cfg["exact_max"], cfg["recall"], cfg["seed"], sm.threads
        )

    vocab = np.load(sm.input.vocab, mmap_mode="r")
    idx, dist, vocab_facts = search(np.asarray(vocab, dtype=np.float32), k)
    save_npz(sm.output.vocab_knn, {"idx": idx, "dist": dist, "k": np.asarray(k)})
    arrays = {p: StoredLayers(sm.input[f"sent_{p}"]) for p in POOLINGS}
    rows = {f"model '{sm.wildcards.model}'": arrays["mean"].shape[1]}
    check_rows_for_analysis(rows, None, k)  # says how many corpus rows k needs
    skip = degenerate_matrices(read_json(sm.input.facts))
    tables = sentence_knn_all(lambda p: arrays[p], POOLINGS, k, search, skip)
    save_npz(sm.output.sentences_knn, tables)
    facts = {"vocab": vocab_facts, **json.loads(str(tables["facts"]))}
    write_json(sm.output.facts, facts)
    write_html_table(
        sm.output.summary_html,
        knn_summary(facts),
        title=f"k-NN search: {sm.wildcards.model}",
        note=f"How the {k} nearest neighbours (cosine) of every token and sentence vector were "
        "found: exact search, or an approximate search whose recall@k against exact search was "
        "measured on a sample of queries; matrices whose vectors all point the same way are "
        "skipped.",
    )
    for out in (sm.output.vocab_knn, sm.output.sentences_knn):
        write_sidecar(out, model=sm.wildcards.model, k=k, metric="cosine", search=cfg)


run(snakemake, main)
