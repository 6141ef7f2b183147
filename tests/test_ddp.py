"""Two training processes under torchrun (DDP through Trainer, gloo on CPU) on the tiny setup:
the loss falls, the model is saved once, and a rerun with more steps resumes."""

from __future__ import annotations

import json
import re
from dataclasses import asdict

import pandas as pd

from bertlens.checkpoints import list_checkpoints
from bertlens.mlm import TrainArgs
from bertlens.training import launch
from tests.helpers.runner import snakemake
from tests.helpers.tiny import SAMPLE, tiny_config, write_config
from tests.helpers.training import sample_texts, tiny_run_config, train_outputs, train_vocab


def _job(root, vocab, corpus, max_steps):
    entry = tiny_run_config(max_steps=max_steps, eval_every=10, checkpoint_every=10, devices=2)
    args = TrainArgs.from_config(entry, name="ddp", device="cpu")
    outputs = {k: str(v) for k, v in train_outputs(root).items()}
    return {"args": asdict(args), "corpus": str(corpus), "source": str(vocab), "outputs": outputs}


def test_two_processes_train_save_once_and_resume(tmp_path):
    vocab = train_vocab(tmp_path / "vocab")
    corpus = tmp_path / "corpus.parquet"
    pd.DataFrame({"easy_ja": sample_texts()}).to_parquet(corpus)
    root, log = tmp_path / "run", tmp_path / "ddp.log"

    launch(_job(root, vocab, corpus, 20), 2, tmp_path / "job.json", log_file=str(log))
    text = log.read_text()
    summary = json.loads((root / "summary.json").read_text())
    assert summary["devices"] == 2 and summary["steps"] == 20
    assert summary["last_eval_loss"] < summary["first_eval_loss"]
    assert text.count("done: 20 steps") == 1  # the main process alone saves the model
    assert [p.name for p in root.glob("model*")] == ["model"]
    assert not list(root.glob(".model.tmp-*"))
    assert [s for s, _ in list_checkpoints(root / "checkpoints")] == [10, 20]

    launch(_job(root, vocab, corpus, 30), 2, tmp_path / "job.json", log_file=str(log))
    summary = json.loads((root / "summary.json").read_text())
    assert summary["resumed_from_step"] == 20 and summary["steps"] == 30
    steps = pd.read_csv(root / "metrics.csv")["step"].tolist()
    assert steps == [0, 10, 20, 30]


def test_a_run_with_two_devices_asks_for_two_gpus(tmp_path):
    """`devices: 2` makes the training job ask for gpu=2 (what the SLURM plugin turns into
    --gpus=2); the other training settings keep the `train` stage's gpu."""
    cfg = tiny_config(tmp_path, None, SAMPLE)
    (run,) = cfg["training"].values()
    run["devices"] = 2
    cfgfile = write_config(tmp_path / "two.yaml", cfg)
    out = snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(cfgfile))
    jobs = out.stdout.split("\nrule ")
    (train,) = [j for j in jobs if j.startswith("train_mlm:")]
    assert re.search(r"resources: .*\bgpu=2\b", train), train
