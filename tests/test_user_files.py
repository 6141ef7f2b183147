"""Everything a stage reads is an input: a `path:` model re-saved in place reruns exactly the stages
of that model (real `snakemake` runs on a cut of the tiny config)."""

from __future__ import annotations

import re

import pytest

from tests.helpers.runner import snakemake
from tests.helpers.tiny import save_tiny_bert, tiny_config, write_config, write_tiny_corpus

pytestmark = pytest.mark.workflow


def _planned(output: str) -> list[str]:
    """The `rule <name>:` / `wildcards: model=<m>` pairs of a dry run, as 'rule[model]'."""
    jobs, rule = [], None
    for line in output.splitlines():
        m = re.match(r"\s*(?:local)?rule (\w+):", line)
        if m:
            rule = m.group(1)
            jobs.append(rule)
            continue
        m = re.match(r"\s*wildcards: model=([\w-]+)", line)
        if m and rule and jobs and jobs[-1] == rule:
            jobs[-1] = f"{rule}[{m.group(1)}]"
    return sorted(jobs)


KINDS = (("tokens", "stats.json"), ("embeddings", "vocab.npy"))  # two stages that load the model


def test_resaving_a_path_model_reruns_exactly_its_stages(tmp_path):
    """Two `path:` models tokenize the corpus and take their input matrices; re-saving one of
    them (new weights, same folder) plans its two jobs again, and nothing of the other model or
    the corpus."""
    one = save_tiny_bert(tmp_path / "one", seed=0)
    two = save_tiny_bert(tmp_path / "two", seed=1)
    corpus = write_tiny_corpus(tmp_path / "tiny.tsv", rows=12)
    cfg = tiny_config(tmp_path, one, corpus, training={})
    cfg["models"] = [
        {"name": "one", "path": str(one), "column": "en", "max_length": 32},
        {"name": "two", "path": str(two), "column": "en", "max_length": 32},
    ]
    configfile = write_config(tmp_path / "config.yaml", cfg)
    targets = [f"results/{kind}/{m}/{name}" for m in ("one", "two") for kind, name in KINDS]
    common = ["--configfile", str(configfile), "--cores", "1", *targets]
    snakemake(tmp_path, *common)
    dry = snakemake(tmp_path, "-n", *common)
    assert "Nothing to be done" in dry.stdout + dry.stderr

    save_tiny_bert(one, seed=2)  # the user fine-tunes and saves into the same folder
    proc = snakemake(tmp_path, "-n", *common)
    out = proc.stdout + proc.stderr
    assert _planned(out) == ["tokenize[one]", "vocab_matrix[one]"], out[-3000:]
    assert "Updated input files" in out and str(one / "model.safetensors") in out


def test_rejected_download_is_fetched_again_by_the_next_run(tmp_path, monkeypatch):
    """The server first answers with a login page (a byte-order mark before `<!DOCTYPE html>`),
    then with the file. The first run fails without caching the page; the second downloads
    again and builds the corpus."""
    from tests.helpers.http import Bytes, FailThenSucceed, serve

    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    corpus = write_tiny_corpus(tmp_path / "tiny.tsv", rows=12).read_bytes()
    page = Bytes(b"\xef\xbb\xbf<!DOCTYPE html><html><body>Log in</body></html>", "text/html")
    route = FailThenSucceed(2, Bytes(corpus, "text/tab-separated-values"), first=page)
    with serve({"/easy.tsv": route}) as base:
        cfg = tiny_config(tmp_path, tmp_path / "no-model", tmp_path / "unused.tsv", training={})
        cfg["corpus"]["sources"] = [{"name": "web", "url": f"{base}/easy.tsv"}]
        cfg["corpus"]["download"] = {"retries": 0}
        cfg["models"] = [cfg["models"][0]]
        configfile = write_config(tmp_path / "config.yaml", cfg)
        args = ["--configfile", str(configfile), "--cores", "1", "results/corpus/corpus.parquet"]
        first = snakemake(tmp_path, *args, check=False)
        assert first.returncode != 0
        out = first.stdout + first.stderr
        assert (
            f"ERROR [download]: {base}/easy.tsv returned an HTML page instead of a tsv file; use "
            "the direct file URL" in out
        ), out[-3000:]
        assert not (tmp_path / "results" / "downloads").exists() or not any(
            (tmp_path / "results" / "downloads").iterdir()
        )
        snakemake(tmp_path, *args)
        assert base.counts["/easy.tsv"] == 3  # the first run and its (rule) retry, then the second
    assert (tmp_path / "results" / "downloads" / "web.tsv").read_bytes() == corpus


def test_pooler_pooling_on_a_trained_model_stops_before_any_job(tmp_path):
    """The tiny config's trained model has no pooler: asking for the pooler pooling is a config
    error of `snakemake -n` already."""
    corpus = write_tiny_corpus(tmp_path / "tiny.tsv", rows=12)
    cfg = tiny_config(tmp_path, tmp_path / "no-model", corpus)
    cfg["projection"]["sentences"]["poolings"] = ["mean", "pooler"]
    configfile = write_config(tmp_path / "config.yaml", cfg)
    proc = snakemake(tmp_path, "-n", "--configfile", str(configfile), "--cores", "1", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert (
        "model 'tiny-ja' has no pooler (trained here with an MLM head only), but "
        "projection.sentences.poolings ask for the 'pooler' pooling; remove 'pooler' there" in out
    ), out[-3000:]
    assert not (tmp_path / "results").exists()
