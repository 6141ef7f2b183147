"""Tokenization stage: token ids, lengths and tokenizer statistics for one model."""

from bertlens.corpus import read_corpus
from bertlens.io import write_sidecar
from bertlens.models import check_tokenizer_fits, load_tokenizer
from bertlens.modelstage import provenance_of, spec_and_location
from bertlens.stage import run
from bertlens.tokenstats import run_tokenization


def main(sm):
    spec, loc = spec_and_location(sm)
    tokenizer = load_tokenizer(spec, loc)
    check_tokenizer_fits(spec, tokenizer, loc)
    texts = read_corpus(sm.input.corpus, spec.column)[spec.column].tolist()
    run_tokenization(
        tokenizer,
        texts,
        spec.column,
        spec.max_length,
        dict(sm.output),
        spec.name,
        max_unk_rate=sm.params.max_unk_rate,
    )
    write_sidecar(sm.output.tokens, **provenance_of(spec, loc, tokenizer))


run(snakemake, main)
