"""Layer lens, part 1: token-level contextual vectors of a corpus sample, every layer."""

from bertlens.corpus import read_corpus
from bertlens.io import read_table, write_json, write_sidecar
from bertlens.layers import contextual_vectors
from bertlens.models import mecab_tagger
from bertlens.modelstage import load, provenance_of
from bertlens.stage import pick_device, run
from bertlens.tokenstats import language_of, token_counts


def main(sm):
    spec, loc, tokenizer, model = load(sm)
    device = pick_device(sm.params.device)
    tokens = read_table(sm.input.tokens)
    language = language_of(spec.column)
    tagger = None if language == "en" else mecab_tagger(spec.mecab_dic, wakati=False)
    facts = contextual_vectors(
        model,
        tokenizer,
        read_corpus(sm.input.corpus, spec.column)[spec.column].tolist(),
        tokens,
        token_counts(tokens, len(tokenizer)),
        language,
        dict(sm.params.layers),
        sm.output.vectors,
        sm.output.table,
        device=device,
        tagger=tagger,
    )
    prov = provenance_of(spec, loc, tokenizer)
    write_json(sm.output.facts, {**prov, **facts})
    for key in ("vectors", "table"):
        write_sidecar(sm.output[key], **prov, seed=sm.params.layers["seed"], device=device)


run(snakemake, main)
