"""MeCab word statistics of one Japanese corpus column."""

import pandas as pd

from bertlens.corpus import read_corpus
from bertlens.io import write_html_table, write_json, write_sidecar
from bertlens.stage import run
from bertlens.tokenstats import mecab_stats


def main(sm):
    texts = read_corpus(sm.input.corpus, sm.wildcards.column)[sm.wildcards.column].tolist()
    stats, top, pos = mecab_stats(texts, sm.params.dictionary, sm.params.top_n)
    write_json(sm.output.stats, {"column": sm.wildcards.column, **stats})
    summary = pd.DataFrame(
        [{"statistic": k.replace("_", " "), "value": v} for k, v in stats.items()]
    )
    col = sm.wildcards.column
    write_html_table(sm.output.stats_html, summary, f"MeCab ({stats['dictionary']}): {col}")
    write_html_table(sm.output.top_html, top, f"MeCab: most frequent words in {col}")
    write_html_table(sm.output.pos_html, pos, f"MeCab: parts of speech in {col}")
    write_sidecar(sm.output.stats, tokenizer=f"MeCab (fugashi) + {stats['dictionary']}", column=col)


run(snakemake, main)
