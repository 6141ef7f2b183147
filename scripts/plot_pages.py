"""Interactive pages of the vocabulary and sentence projections, and the per-layer PNG."""

from bertlens.io import read_table
from bertlens.plotting import sentence_pages, vocab_page
from bertlens.stage import run


def main(sm):
    model = sm.wildcards.model
    budget = sm.params.max_html_points
    vocab_page(read_table(sm.input.vocab), model, sm.output.vocab_html, budget)
    sentence_pages(
        read_table(sm.input.sentences),
        model,
        sm.output.sentences_png,
        sm.output.sentences_html,
        budget,
    )


run(snakemake, main)
