"""Static PNG of the vocabulary projection (one method)."""

from bertlens.io import read_table
from bertlens.plotting import vocab_png
from bertlens.stage import run


def main(sm):
    vocab_png(
        read_table(sm.input.vocab),
        sm.wildcards.method,
        f"{sm.wildcards.model}: input token embeddings",
        sm.params.label_count,
        sm.output[0],
    )


run(snakemake, main)
