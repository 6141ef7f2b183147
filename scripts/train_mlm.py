"""Train a BERT masked language model (one run of `training:` in the config); a run with
`devices: N` > 1 is launched with `torchrun --nproc_per_node N` (DDP through Trainer)."""

import logging
from dataclasses import asdict
from pathlib import Path

from bertlens.io import read_json, read_table
from bertlens.mlm import TrainArgs, plot_curves, write_summary_html
from bertlens.models import ModelSpec, location
from bertlens.stage import run
from bertlens.training import launch, train
from bertlens.vocab import corpus_texts


def main(sm):
    name = sm.wildcards.run
    args = TrainArgs.from_config(sm.params.run, name=name, device=sm.params.device)
    if not sm.params.base_model:  # scratch with the vocabulary trained by train_vocab
        source = str(Path(sm.input.vocab).parent)
    else:  # scratch from the base model's config and tokenizer, or continued pretraining
        spec = ModelSpec.from_config(sm.params.base_model)
        source = (spec, location(spec, trained_dir=getattr(sm.input, "base_model_dir", None)))
    outputs = {
        "out_model_dir": sm.output.model,
        "metrics_csv": sm.output.metrics,
        "checkpoint_dir": sm.params.checkpoint_dir,
        "summary_json": sm.output.summary,
        "tensorboard_dir": sm.output.tensorboard,
    }
    if args.devices > 1:
        if isinstance(source, tuple):
            source = {"spec": asdict(source[0]), "location": str(source[1])}
        job = {"args": asdict(args), "corpus": sm.input.corpus, "source": source}
        job_file = Path(sm.params.checkpoint_dir).parent / "train-job.json"
        launch({**job, "outputs": outputs}, args.devices, job_file, log_file=sm.log[0])
        summary = read_json(sm.output.summary)
    else:
        texts = corpus_texts(sm.input.corpus, args.column)
        summary = train(args, texts, source, **outputs, log=logging.getLogger("bertlens.train"))
    plot_curves(read_table(sm.output.metrics), sm.output.curves, title=f"MLM training run {name}")
    write_summary_html(summary, sm.output.html)


run(snakemake, main)
