"""Static PNG of the sentence projections, one panel per layer (the interactive pages are the
explorer's)."""

from bertlens.io import read_table
from bertlens.plotting import sentences_png
from bertlens.stage import run


def main(sm):
    df = read_table(sm.input.sentences)
    methods = list(dict.fromkeys(df["method"]))
    sentences_png(
        df,
        "tsne" if "tsne" in methods else methods[0],
        df["pooling"].iloc[0],
        f"{sm.wildcards.model}: sentence embeddings",
        sm.output[0],
    )


run(snakemake, main)
