"""Train a training run's WordPiece vocabulary on MeCab-segmented corpus text."""

from pathlib import Path

from bertlens.stage import run
from bertlens.vocab import corpus_texts, train_wordpiece_vocab, write_vocab_html


def main(sm):
    settings = sm.params.vocab
    texts = corpus_texts(sm.input.corpus, sm.params.column)
    stats = train_wordpiece_vocab(
        texts,
        out_dir=Path(sm.output.vocab).parent,
        size=settings["size"],
        min_frequency=settings["min_frequency"],
        special_tokens=settings["special_tokens"],
        mecab_dic=settings["mecab_dic"],
        stats_json=sm.output.stats,
    )
    write_vocab_html(
        stats, sm.output.html, title=f"WordPiece vocabulary of training run {sm.wildcards.run}"
    )


run(snakemake, main)
