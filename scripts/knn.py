"""Nearest neighbours in the original spaces: k-NN of every vocabulary entry and every sentence
vector (rule knn), and the probe-token / probe-sentence neighbour tables (rule probe_neighbors)."""

import json

import numpy as np

from bertlens.config import resolve_layers
from bertlens.io import (
    atomic_path,
    read_json,
    read_table,
    write_html_table,
    write_json,
    write_sidecar,
    write_table,
)
from bertlens.modelstage import check_rows_for_analysis
from bertlens.neighbors import (
    encode_sentences,
    knn_search,
    knn_summary,
    match_sentences,
    probe_sentence_table,
    probe_token_table,
    sentence_knn_all,
)
from bertlens.spread import degenerate_matrices
from bertlens.stage import run

POOLINGS = ("cls", "mean", "pooler")


def save_npz(path, arrays):
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def knn(sm):
    k = int(sm.params.k)
    cfg = sm.params.knn

    def search(x, k):
        return knn_search(
            x, k, cfg["method"], cfg["exact_max"], cfg["recall"], cfg["seed"], sm.threads
        )

    vocab = np.load(sm.input.vocab, mmap_mode="r")
    idx, dist, vocab_facts = search(np.asarray(vocab, dtype=np.float32), k)
    save_npz(sm.output.vocab_knn, {"idx": idx, "dist": dist, "k": np.asarray(k)})
    arrays = {p: np.load(sm.input[f"sent_{p}"], mmap_mode="r") for p in POOLINGS}
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
        "found: exact search, or an approximate index whose recall@k against exact search was "
        "measured on a sample of queries; matrices whose vectors all point the same way are "
        "skipped.",
    )
    for out in (sm.output.vocab_knn, sm.output.sentences_knn):
        write_sidecar(out, model=sm.wildcards.model, k=k, metric="cosine", search=cfg)


def probe_neighbors(sm):
    from bertlens.models import load_model, load_tokenizer
    from bertlens.modelstage import column_rows, provenance_of, spec_and_location

    spec, loc = spec_and_location(sm)
    tokenizer = load_tokenizer(spec, loc)
    k = int(sm.params.k)
    probes = sm.params.probes
    vocab = read_table(sm.input.vocab_table)
    matrix = np.load(sm.input.vocab, mmap_mode="r")
    tokens = probe_token_table(
        probes["tokens"], tokenizer.tokenize, vocab, np.asarray(matrix), k, tokenizer.unk_token
    )
    write_table(sm.output.tokens_csv, tokens)
    write_html_table(
        sm.output.tokens_html,
        tokens,
        title=f"Probe tokens: {spec.name}",
        note=f"{spec.describe()}, column {spec.column}: the {k} nearest entries of the input "
        "embedding matrix (cosine distance, the probe itself excluded) of each probe word that is "
        "one vocabulary entry; probes the tokenizer splits or does not know are listed as such.",
    )

    corpus = column_rows(sm.input.corpus, spec.column)  # the rows the model read
    texts = corpus[spec.column].astype(str).tolist()
    ids = corpus["id"].astype(str).tolist()
    layers = resolve_layers(sm.params.layers, read_json(sm.input.facts)["sentences"]["layers"] - 1)
    sentences = list(probes["sentences"])
    matches = match_sentences(sentences, texts)
    encoded = {}
    if any(m is None for m in matches):
        model = load_model(spec, loc)
        encoded = encode_sentences(model, tokenizer, sentences, sm.params.poolings, spec.max_length)
    stored = {p: np.load(sm.input[f"sent_{p}"], mmap_mode="r") for p in sm.params.poolings}

    def load_layer(pooling, layer):
        arr = stored[pooling]
        if arr.shape[0] <= layer:
            return np.zeros((0, 0), dtype=np.float32)
        return np.asarray(arr[layer], dtype=np.float32)

    skip = degenerate_matrices(read_json(sm.input.facts))
    table = probe_sentence_table(
        sentences, matches, texts, ids, load_layer, encoded, layers, sm.params.poolings, k, skip
    )
    write_table(sm.output.sentences_csv, table)
    write_html_table(
        sm.output.sentences_html,
        table,
        title=f"Probe sentences: {spec.name}",
        note=f"{spec.describe()}, column {spec.column}: the {k} nearest corpus sentences of each "
        "probe sentence per pooling and layer (0 = embedding output), cosine distance. A probe "
        "found in the corpus uses its stored vector (and is not its own neighbour); any other is "
        "encoded alone by the model.",
    )
    prov = provenance_of(spec, loc, tokenizer)
    for out in (sm.output.tokens_csv, sm.output.sentences_csv):
        write_sidecar(out, **prov, k=k)


def main(sm):
    {"knn": knn, "probe_neighbors": probe_neighbors}[sm.rule](sm)


run(snakemake, main)
