"""A real kill of the training job during a snakemake run, then a rerun that resumes from the
last checkpoint (the step count continues) and finishes."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pandas as pd
import pytest
import yaml

from bertlens.checkpoints import list_checkpoints
from tests.helpers.runner import snakemake, start_snakemake
from tests.helpers.tiny import tiny_config, write_config, write_tiny_corpus

pytestmark = pytest.mark.workflow
RUN = "tiny-ja"
TARGET = f"results/training/{RUN}/summary.json"


def test_killed_training_resumes_from_checkpoint(tmp_path, tiny_model):
    corpus = write_tiny_corpus(tmp_path / "tiny.tsv")
    cfg = tiny_config(tmp_path, tiny_model, corpus)
    run = cfg["training"][RUN]
    run.update(max_steps=300, checkpoint_every=25, eval_every=50)
    run["bert"].update(hidden_size=64, intermediate_size=256, num_hidden_layers=3)
    cfgfile = write_config(tmp_path / "resume.yaml", cfg)
    ckpt_dir = tmp_path / "results" / "training" / RUN / "checkpoints"

    proc = start_snakemake(
        tmp_path,
        "--configfile",
        str(cfgfile),
        "--cores",
        "2",
        TARGET,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    killed_at = None
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            done = list_checkpoints(ckpt_dir)
            if done and done[-1][0] >= 50:
                killed_at = done[-1][0]
                os.killpg(proc.pid, signal.SIGKILL)  # snakemake and the training job, hard
                break
            time.sleep(0.1)
    finally:
        if proc.poll() is None and killed_at is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert killed_at is not None, "training finished or never checkpointed before the kill"
    assert not (tmp_path / TARGET).exists()
    assert list_checkpoints(ckpt_dir)  # checkpoints survive: they are not declared outputs

    snakemake(tmp_path, "--configfile", str(cfgfile), "--unlock")
    snakemake(tmp_path, "--configfile", str(cfgfile), "--cores", "2", "--rerun-incomplete", TARGET)
    log = (tmp_path / "results" / "logs" / "train_mlm" / f"{RUN}.log").read_text()
    resumed = [line for line in log.splitlines() if "resuming from step" in line]
    assert resumed, log[-3000:]
    step = int(resumed[0].split("resuming from step")[1].split()[0])
    assert step >= killed_at - 25 and step >= 50
    metrics = pd.read_csv(tmp_path / "results" / "training" / RUN / "metrics.csv")
    assert metrics["step"].is_monotonic_increasing and metrics["step"].is_unique
    assert metrics["step"].iloc[-1] == 300
    summary = yaml.safe_load((tmp_path / TARGET).read_text())
    assert summary["steps"] == 300
    assert summary["resumed_from_step"] == step
