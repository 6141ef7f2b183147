"""Embedding stage: the CLS, mean and pooler vector of every sentence at every layer (the
input matrix is the vocab_matrix stage's)."""

from bertlens.embeddings import sentence_embeddings
from bertlens.io import read_table, write_json, write_sidecar
from bertlens.modelstage import load, provenance_of
from bertlens.stage import pick_device, run


def main(sm):
    spec, loc, tokenizer, model = load(sm)
    device = pick_device(sm.params.device)
    tokens = read_table(sm.input.tokens)
    cfg = sm.params.embeddings
    paths = {p: sm.output[f"sent_{p}"] for p in ("cls", "mean", "pooler")}
    sentence_facts = sentence_embeddings(
        model,
        list(tokens["input_ids"]),
        pad_id=tokenizer.pad_token_id,
        batch_size=cfg["batch_size"],
        poolings=["cls", "mean", "pooler"],
        out_paths=paths,
        device=device,
        dtype=cfg["dtype"],
        min_spread=cfg["min_spread"],
        bf16=cfg["bf16"],
        cpu_matmul=cfg["cpu_matmul"],
    )
    # A model without a pooler still gets a (0-row) pooler file, so the outputs are fixed.
    if "pooler" not in sentence_facts["poolings"]:
        import numpy as np

        from bertlens.io import atomic_path

        with atomic_path(paths["pooler"], suffix=".npy") as tmp:
            np.save(tmp, np.zeros((0, len(tokens), model.config.hidden_size), dtype="float32"))
    prov = provenance_of(spec, loc, tokenizer)
    write_json(sm.output.facts, {**prov, "sentences": sentence_facts})
    for key in ("sent_cls", "sent_mean", "sent_pooler"):
        write_sidecar(
            sm.output[key],
            **prov,
            device=device,
            bf16=sentence_facts["bf16"],
            matmul=sentence_facts["matmul"]["kernel"],
        )


run(snakemake, main)
