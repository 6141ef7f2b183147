"""TensorBoard Projector files of one model: the input embedding matrix, the sentence vectors,
every 2-D projection, their metadata and projector_config.pbtxt."""

from pathlib import Path

import numpy as np

from bertlens.config import resolve_layers
from bertlens.explorer import sentence_frames
from bertlens.export import model_tensors, write_projector
from bertlens.io import read_json, read_table, write_sidecar
from bertlens.spread import degenerate_matrices
from bertlens.stage import run


def main(sm):
    facts = read_json(sm.input.facts)
    n_layers = facts["sentences"]["layers"] - 1
    spec = sm.params.sentence_layers
    layers = list(range(n_layers + 1)) if spec == "all" else resolve_layers(spec, n_layers)
    sentence_projection = read_table(sm.input.sentence_projection)
    base, _ = sentence_frames(sentence_projection)  # one row per sentence, corpus order
    tensors, meta = model_tensors(
        np.load(sm.input.vocab, mmap_mode="r"),
        read_table(sm.input.vocab_table),
        {p: np.load(sm.input[f"sent_{p}"], mmap_mode="r") for p in ("cls", "mean", "pooler")},
        base[["id", "source", "text", "length"]],
        layers,
        read_table(sm.input.vocab_projection),
        sentence_projection,
        degenerate_matrices(facts),
    )
    write_projector(sm.output.folder, tensors, meta)
    write_sidecar(
        Path(sm.output.folder) / "projector_config.pbtxt",
        model=sm.wildcards.model,
        tensors={t.name: list(t.values.shape) for t in tensors},
    )


run(snakemake, main)
