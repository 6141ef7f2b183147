"""Explorer pages of one model: the token map and the sentence map (holoviews) with zoom labels,
search, colour selector, view selectors and the pipeline's nearest neighbours."""

import numpy as np

from bertlens.explorer import (
    sentence_clusters,
    sentence_explorer,
    sentence_frames,
    sentence_tokens,
    vocab_explorer,
)
from bertlens.io import read_json, read_table, write_sidecar
from bertlens.neighbors import load_sentence_knn, search_notes
from bertlens.stage import run


def main(sm):
    model = sm.wildcards.model
    vocab = read_table(sm.input.vocab_table)
    budget = int(sm.params.max_points)
    knn_facts = read_json(sm.input.knn_facts)
    projection_facts = read_json(sm.input.projection_facts)
    if sm.rule == "explore_vocab":
        data = np.load(sm.input.knn)
        facts = vocab_explorer(
            read_table(sm.input.projection),
            vocab,
            (data["idx"], data["dist"]),
            model,
            sm.output.html,
            budget,
            raster_above=int(sm.params.raster_above),
            mecab_dic=sm.params.mecab_dic,
            notes=search_notes({"vocab": knn_facts["vocab"]}, projection_facts),
        )
    else:
        tokens = read_table(sm.input.tokens)
        projection = read_table(sm.input.projection)
        _, views = sentence_frames(projection)
        clusters = sentence_clusters(
            lambda pooling, layer: np.load(sm.input[f"sent_{pooling}"], mmap_mode="r")[layer],
            [(v[1], v[2]) for v in views.values()],
            n_clusters=int(sm.params.clusters),
        )
        facts = sentence_explorer(
            projection,
            sentence_tokens(tokens["input_ids"], vocab),
            load_sentence_knn(sm.input.knn),
            model,
            sm.output.html,
            budget,
            raster_above=int(sm.params.raster_above),
            clusters=clusters,
            notes=search_notes(
                {k: v for k, v in knn_facts.items() if k != "vocab"}, projection_facts
            ),
        )
    write_sidecar(sm.output.html, model=model, **facts)


run(snakemake, main)
