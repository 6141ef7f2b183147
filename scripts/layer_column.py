"""Layer lens: the contextuality curves of every model on one corpus column, overlaid."""

import pandas as pd

from bertlens.contextuality import MEASURES
from bertlens.io import read_table, write_html_table
from bertlens.layerplots import measure_png
from bertlens.stage import run


def main(sm):
    frames = {m: read_table(p) for m, p in zip(sm.params.models, sm.input.measures, strict=True)}
    column = sm.wildcards.column
    for measure in MEASURES:
        measure_png(frames, measure, column, sm.output[measure])
    wide = []
    for model, df in frames.items():
        w = df.pivot(index="layer", columns="measure", values="adjusted").reset_index()
        wide.append(w.assign(model=model))
    table = pd.concat(wide, ignore_index=True)[["model", "layer", *MEASURES]]
    write_html_table(
        sm.output.table,
        table,
        f"How contextual, per layer ({column})",
        note="Anisotropy raw; the other measures minus their baselines (Ethayarajh 2019).",
    )


run(snakemake, main)
