"""Shared fixtures: the repository, the snakemake executable, and one tiny workflow run that
several tests inspect."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.tiny import REPO, save_tiny_bert, tiny_config, write_config, write_tiny_corpus

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def snakemake(
    workdir: Path, *args: str, check: bool = True, timeout: int = 900
) -> subprocess.CompletedProcess:
    """Run the real snakemake CLI on this repository's Snakefile in ``workdir``."""
    cmd = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
            f"{proc.stderr[-6000:]}"
        )
    return proc


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-en")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_model):
    """One complete run of the whole DAG on the tiny config; returns (workdir, configfile)."""
    work = tmp_path_factory.mktemp("tiny-run")
    corpus = write_tiny_corpus(work / "tiny.tsv")
    cfg = write_config(work / "tiny.yaml", tiny_config(work, tiny_model, corpus))
    proc = snakemake(work, "--configfile", str(cfg), "--cores", "2", "--resources", "gpu=1")
    return work, cfg, proc
