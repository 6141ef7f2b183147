"""Vocabulary-matrix stage: the whole input token-embedding matrix of one model, with each
token's string and corpus frequency (no forward pass)."""

from bertlens.io import read_table, write_sidecar
from bertlens.modelstage import load, provenance_of
from bertlens.stage import run
from bertlens.tokenstats import token_counts
from bertlens.vocab_matrix import vocab_matrix


def main(sm):
    spec, loc, tokenizer, model = load(sm)
    counts = token_counts(read_table(sm.input.tokens), len(tokenizer))
    facts = vocab_matrix(model, tokenizer, counts, sm.output.vocab, sm.output.vocab_table)
    write_sidecar(sm.output.vocab, **provenance_of(spec, loc, tokenizer), **facts)


run(snakemake, main)
