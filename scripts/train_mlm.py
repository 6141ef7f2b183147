"""Train a BERT masked language model (one run of `training:` in the config)."""

import logging
from pathlib import Path

from bertlens.io import read_table
from bertlens.mlm import TrainArgs, plot_curves, train, write_summary_html
from bertlens.models import ModelSpec, location
from bertlens.stage import run
from bertlens.vocab import corpus_texts


def main(sm):
    name = sm.wildcards.run
    args = TrainArgs.from_config(sm.params.run, name=name, device=sm.params.device)
    texts = corpus_texts(sm.input.corpus, args.column)
    if not sm.params.base_model:  # scratch with the vocabulary trained by train_vocab
        source = str(Path(sm.input.vocab).parent)
    else:  # scratch from the base model's config and tokenizer, or continued pretraining
        spec = ModelSpec.from_config(sm.params.base_model)
        source = (spec, location(spec, trained_dir=getattr(sm.input, "base_model_dir", None)))
    summary = train(
        args,
        texts,
        source,
        out_model_dir=sm.output.model,
        metrics_csv=sm.output.metrics,
        checkpoint_dir=sm.params.checkpoint_dir,
        summary_json=sm.output.summary,
        log=logging.getLogger("bertlens.train"),
    )
    plot_curves(read_table(sm.output.metrics), sm.output.curves, title=f"MLM training run {name}")
    write_summary_html(summary, sm.output.html)


run(snakemake, main)
