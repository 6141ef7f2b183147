"""The probe-token and probe-sentence neighbour tables of one model: the nearest vocabulary
entries of each probe word, the nearest corpus sentences of each probe sentence."""

import numpy as np

from bertlens.config import resolve_layers
from bertlens.corpus import read_corpus
from bertlens.io import read_json, read_table, write_html_table, write_sidecar, write_table
from bertlens.models import load_model, load_tokenizer
from bertlens.modelstage import provenance_of, spec_and_location
from bertlens.neighbors import (
    encode_sentences,
    match_sentences,
    probe_sentence_table,
    probe_token_table,
)
from bertlens.spread import degenerate_matrices
from bertlens.stage import run


def main(sm):
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

    corpus = read_corpus(sm.input.corpus, spec.column)  # the rows the model read
    texts = corpus[spec.column].astype(str).tolist()
    ids = corpus["id"].astype(str).tolist()
    facts = read_json(sm.input.facts)
    layers = resolve_layers(sm.params.layers, facts["sentences"]["layers"] - 1)
    sentences = list(probes["sentences"])
    matches = match_sentences(sentences, texts)
    encoded = {}
    made = facts["sentences"]  # encode as the corpus vectors were made
    if any(m is None for m in matches):
        model = load_model(spec, loc)
        encoded = encode_sentences(
            model,
            tokenizer,
            sentences,
            sm.params.poolings,
            spec.max_length,
            made["bf16"],
            made["matmul"]["kernel"],
        )
    stored = {p: np.load(sm.input[f"sent_{p}"], mmap_mode="r") for p in sm.params.poolings}

    def load_layer(pooling, layer):
        arr = stored[pooling]
        if arr.shape[0] <= layer:
            return np.zeros((0, 0), dtype=np.float32)
        return np.asarray(arr[layer], dtype=np.float32)

    skip = degenerate_matrices(facts)
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
        "encoded alone by the model"
        + (", under bf16 autocast as the corpus vectors were." if made["bf16"] else "."),
    )
    prov = provenance_of(spec, loc, tokenizer)
    for out in (sm.output.tokens_csv, sm.output.sentences_csv):
        write_sidecar(out, **prov, k=k)


run(snakemake, main)
