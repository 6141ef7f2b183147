"""Corpus stage: read every source, normalise, drop unused and duplicate rows."""

from bertlens.corpus import build_corpus, stats_table
from bertlens.io import write_html_table
from bertlens.stage import run


def main(sm):
    files = {key[len("src_") :]: path for key, path in sm.input.items() if key.startswith("src_")}
    stats = build_corpus(
        sources=sm.params.sources,
        files=files,
        required=sm.params.required,
        dedupe_on=sm.params.dedupe_on,
        normalize=sm.params.normalize,
        max_rows=sm.params.max_rows,
        out_table=sm.output.table,
        out_stats=sm.output.stats,
        uses=dict(sm.params.uses),
    )
    per_use = "; ".join(f"{use}: {n}" for use, n in stats["rows_per_use"].items())
    cols = ", ".join(
        f"{c}: mean {v['chars_mean']} / max {v['chars_max']} chars"
        for c, v in stats["columns"].items()
    )
    write_html_table(
        sm.output.html,
        stats_table(stats),
        title="Corpus: sources and cleaning",
        note=f"{stats['rows_out']} rows after {stats['normalize']} normalisation; each model, "
        f"MeCab column and training run reads the rows with text in its column (rows per use: "
        f"{per_use}). {cols}.",
    )


run(snakemake, main)
