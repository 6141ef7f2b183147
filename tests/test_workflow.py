"""The real workflow, end to end, on the tiny config: a full run, what reruns after an edit, lint,
and the report build."""

from __future__ import annotations

import json
import re
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from tests.helpers.runner import snakemake

pytestmark = pytest.mark.workflow


def job_counts(output: str) -> dict[str, int]:
    """Parse the 'Job stats' table of a dry run."""
    match = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)\ntotal", output, re.S)
    if not match:
        return {}
    counts = {}
    for line in match.group(1).splitlines():
        name, n = line.split()
        counts[name] = int(n)
    return counts


def test_whole_dag_runs_and_writes_every_stage(tiny_run, tiny_model):
    work, _, _ = tiny_run
    res = work / "results"
    corpus = pd.read_parquet(res / "corpus" / "corpus.parquet")
    assert {"id", "source", "ja", "easy_ja", "en"} <= set(corpus.columns)
    assert len(corpus) == 48
    tokens = pd.read_parquet(res / "tokens" / "tiny-en" / "tokens.parquet")
    assert len(tokens) == len(corpus)
    assert (tokens["length"] >= 3).all()
    # per-layer sentence vectors: (layers + 1, sentences, hidden)
    mean = np.load(res / "embeddings" / "tiny-en" / "sentences_mean.npy")
    assert mean.shape == (3, 48, 32)
    assert np.isfinite(mean).all()
    vocab = pd.read_parquet(res / "projection" / "tiny-en" / "vocab.parquet")
    assert set(vocab["method"]) == {"tsne", "pca"}
    assert vocab.groupby("method").size().eq(400).all()
    sentences = pd.read_parquet(res / "projection" / "tiny-en" / "sentences.parquet")
    assert set(sentences["layer"]) == {0, 2}
    # PNGs in plots/, the one interactive page system (holoviews) in explore/
    for name in ("vocab_tsne.png", "vocab_pca.png", "sentences.png"):
        assert (res / "plots" / "tiny-en" / name).stat().st_size > 1000, name
    assert not list((res / "plots").rglob("*.html"))
    for model in ("tiny-en", "tiny-ja"):
        for name in ("vocab.html", "sentences.html"):
            page = (res / "explore" / model / name).read_text(encoding="utf-8")
            assert "labels0" in page and "cand0_0" in page, (model, name)
    ja_vocab = (res / "explore" / "tiny-ja" / "vocab.html").read_text(encoding="utf-8")
    assert "part of speech (word start)" in ja_vocab and "名詞" in ja_vocab
    assert "cluster (k-means, original space)" in (
        res / "explore" / "tiny-en" / "sentences.html"
    ).read_text(encoding="utf-8")
    # the TensorBoard Projector files: the input matrix, sentence vectors, projections
    config = (res / "export" / "tiny-en" / "projector_config.pbtxt").read_text()
    assert 'tensor_name: "vocab"' in config and 'tensor_name: "sentences_mean_L2"' in config
    assert 'tensor_name: "vocab_tsne"' in config
    exported = np.loadtxt(res / "export" / "tiny-en" / "vocab.tensors.tsv", delimiter="\t")
    np.testing.assert_allclose(
        exported, np.load(res / "embeddings" / "tiny-en" / "vocab.npy"), rtol=1e-5, atol=1e-6
    )
    # provenance sidecars name model, tokenizer and versions
    meta = json.loads((res / "embeddings" / "tiny-en" / "sentences_mean.npy.meta.json").read_text())
    assert meta["model"] == "tiny-en"
    assert meta["tokenizer"]
    facts = json.loads((res / "embeddings" / "tiny-en" / "facts.json").read_text())
    assert meta["device"] == facts["sentences"]["device"] and meta["bf16"] is False
    assert "vocab" not in facts  # the input matrix's facts are in its own sidecar
    assert facts["sentences"]["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert "torch" in meta["versions"] and "transformers" in meta["versions"]
    # the input matrix's sidecar: the model's whole vocabulary, the tokens the corpus uses
    vocab_meta = json.loads((res / "embeddings" / "tiny-en" / "vocab.npy.meta.json").read_text())
    vocab_table = pd.read_parquet(res / "embeddings" / "tiny-en" / "vocab.parquet")
    model_config = json.loads((tiny_model / "config.json").read_text())
    assert (
        vocab_meta["model"] == "tiny-en" and vocab_meta["vocab_size"] == model_config["vocab_size"]
    )
    assert 0 < vocab_meta["tokens_seen_in_corpus"] == (vocab_table["frequency"] > 0).sum()
    proj_meta = json.loads((res / "projection" / "tiny-en" / "vocab.parquet.meta.json").read_text())
    assert proj_meta["seed"] == 42
    assert (res / "mecab" / "easy_ja" / "stats.json").exists()
    # the model trained in the pipeline is analysed like any other
    trained = res / "training" / "tiny-ja" / "model"
    assert (trained / "model.safetensors").is_file() and (trained / "vocab.txt").is_file()
    metrics = pd.read_csv(res / "training" / "tiny-ja" / "metrics.csv")
    assert metrics["step"].iloc[-1] == 30 and metrics["step"].is_monotonic_increasing
    ja_mean = np.load(res / "embeddings" / "tiny-ja" / "sentences_mean.npy")
    assert ja_mean.shape == (3, 48, 32)
    fill = pd.read_csv(res / "fill_mask" / "tiny-ja.csv")
    assert len(fill[fill["rank"] == 1]) == 1
    assert (res / "plots" / "tiny-ja" / "vocab_tsne.png").stat().st_size > 1000
    # every rule logged somewhere
    logs = list((res / "logs").rglob("*.log"))
    assert len(logs) >= 8


def test_nothing_to_do_when_nothing_changed(tiny_run):
    work, cfg, _ = tiny_run
    proc = snakemake(work, "--configfile", str(cfg), "-n", "--cores", "1")
    assert "Nothing to be done" in proc.stdout + proc.stderr


# what reads the projections
PROJECTION_DOWNSTREAM = {
    "plot_vocab_png",
    "plot_sentences_png",
    "explore_vocab",
    "explore_sentences",
    "export_projector",
    "all",
}


def planned_after(tiny_run, name: str, edit) -> tuple[dict[str, int], str]:
    """Job counts and output of a dry run with the tiny config changed by ``edit`` (in place)."""
    work, cfg, _ = tiny_run
    data = yaml.safe_load(cfg.read_text())
    edit(data)
    changed = work / f"tiny-{name}.yaml"
    changed.write_text(yaml.safe_dump(data, allow_unicode=True))
    proc = snakemake(work, "--configfile", str(changed), "-n", "--cores", "1")
    return job_counts(proc.stdout + proc.stderr), proc.stdout + proc.stderr


def test_perplexity_change_reruns_only_projection_and_downstream(tiny_run):
    counts, out = planned_after(
        tiny_run, "perplexity", lambda c: c["projection"]["tsne"].update(perplexity=7)
    )
    assert counts, out[-3000:]
    reasons = [ln.strip() for ln in out.splitlines() if "reason:" in ln]
    assert set(counts) == {"project", *PROJECTION_DOWNSTREAM}, (counts, reasons)
    assert counts["project"] == 4  # vocab and sentences of both models


def test_bf16_embeddings_rerun_embed_and_downstream_only(tiny_run):
    counts, out = planned_after(
        tiny_run, "bf16", lambda c: c.setdefault("embeddings", {}).update(bf16=True)
    )
    assert counts.get("embed") == 2, out[-3000:]  # both models
    # embed and what reads the sentence vectors; not the input matrix or its maps and plots
    # (explore_vocab reads knn.json, which the knn job writes for both)
    expected = {"embed", "knn", "probe_neighbors", "project", *PROJECTION_DOWNSTREAM}
    assert set(counts) == expected - {"plot_vocab_png"}, sorted(counts)
    assert counts["project"] == 2  # the sentence maps of both models


def test_vocabulary_map_needs_no_forward_pass(tiny_run):
    """Whatever the rerun triggers, the vocabulary map and its PNG never wait for embed."""
    work, cfg, _ = tiny_run
    target = "results/plots/tiny-en/vocab_tsne.png"
    proc = snakemake(work, target, "--configfile", str(cfg), "-n", "--forceall", "--cores", "1")
    counts = job_counts(proc.stdout + proc.stderr)
    assert {"vocab_matrix", "project", "plot_vocab_png"} <= set(counts), counts
    assert "embed" not in counts and counts["project"] == 1, counts


def test_lint_is_clean(repo):
    proc = snakemake(repo, "--lint", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "Lints for" not in out, out[-4000:]


def test_report_builds(tiny_run):
    work, cfg, _ = tiny_run
    snakemake(work, "--configfile", str(cfg), "--report", str(work / "report.zip"))
    with zipfile.ZipFile(work / "report.zip") as zf:
        names = zf.namelist()
    assert any(n.endswith("report.html") for n in names)
    assert any(n.endswith("vocab.html") for n in names)
    assert any(n.endswith("vocab_tsne.png") for n in names)
    assert sum(n.endswith("/anisotropy.png") for n in names) == 2  # Layers chapter, 2 columns


def test_snow_config_plans_the_notebook_runs(repo, tmp_path):
    """The internet config validates and plans its DAG (downloads, both training runs, the three
    models); nothing is run, so no network is needed."""
    proc = snakemake(
        tmp_path, "-n", "--cores", "1", "--configfile", str(repo / "config/snow-cl-tohoku.yaml")
    )
    out = proc.stdout + proc.stderr
    counts = job_counts(out)
    assert counts["download"] == 2 and counts["train_mlm"] == 2, counts
    assert "results/training/snow-scratch/model" in out
    assert "results/training/cl-tohoku-snow/model" in out
    assert "easy-ja-scratch" not in out  # the default run is switched off by `null`
    assert counts["embed"] >= 4, counts  # cl-tohoku, bert-base-uncased and the two trained models
    # the layer lens compares every pair of the three easy_ja models
    assert counts["layer_cka_pair"] == 3 and counts["logit_lens"] == 4, counts


def test_layers_chapter(tiny_run):
    """The layer lens of both tiny models: token vectors, measures, probes, CKA, logit lens."""
    work, _, _ = tiny_run
    res = work / "results" / "layers"
    for model, n_layers, tasks in (("tiny-en", 3, {"word_initial", "position", "frequency"}),
                                   ("tiny-ja", 3, {"pos"})):  # fmt: skip
        table = pd.read_parquet(res / model / "tokens.parquet")
        vectors = np.load(res / model / "vectors.npy", mmap_mode="r")
        assert vectors.shape == (n_layers, len(table), 32)
        facts = json.loads((res / model / "vectors.json").read_text())
        # the first 40 usable rows of a seeded order; truncated ones are skipped and counted
        # (tiny-ja truncates 9 of the 48 rows at 48 tokens, which leaves 39)
        usable = 48 - facts["skipped"]["truncated"] if model == "tiny-ja" else 40
        assert table["sentence"].nunique() == facts["sentences"] == min(40, usable)
        assert facts["skipped"]["mismatch"] == 0
        measures = pd.read_csv(res / model / "measures.tsv", sep="\t")
        assert len(measures) == 4 * n_layers and measures["raw"].notna().all()
        probes = pd.read_csv(res / model / "probes.tsv", sep="\t")
        assert set(probes["task"]) == tasks and len(probes) == len(tasks) * n_layers
        assert probes[["accuracy", "control_accuracy", "majority"]].le(1).all().all()
        cka = pd.read_csv(res / model / "cka.tsv", sep="\t")
        assert np.allclose(cka.loc[cka["layer_a"] == cka["layer_b"], "cka"], 1.0)
        for name in ("cka.png", "probes.png", "logit_lens.png"):
            assert (res / model / name).stat().st_size > 1000, name
    ja = pd.read_parquet(res / "tiny-ja" / "tokens.parquet")
    assert {"名詞", "助詞"} <= set(ja["pos"])  # ipadic parts of speech of MeCab words
    lens = pd.read_csv(res / "tiny-ja" / "logit_lens.tsv", sep="\t")
    assert lens["layer"].tolist() == [0, 1, 2]
    assert lens["agrees_with_final"].iloc[-1] == 1.0
    assert "held-out" in lens["note"].iloc[0]
    en_lens = pd.read_csv(res / "tiny-en" / "logit_lens.tsv", sep="\t")
    assert "no masked-LM head" in en_lens["note"].iloc[0]
    for column in ("en", "easy_ja"):
        for measure in ("anisotropy", "self_similarity", "intra_sentence_similarity", "mev"):
            assert (res / f"column_{column}" / f"{measure}.png").stat().st_size > 1000
