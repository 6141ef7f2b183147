"""The workflow on a corpus large enough for openTSNE's FFT method (10,000 sentences): layer 0 of
CLS pooling, where every sentence has the same vector, is found once by the embedding stage and
skipped by every later stage with its reason, instead of crashing t-SNE or drawing one blob."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.synthetic import write_synthetic
from bertlens.io import read_table
from tests.helpers.runner import snakemake
from tests.helpers.tiny import tiny_config, write_config

ROWS = 10_000  # openTSNE switches from Barnes-Hut to FFT gradients at 10,000 points

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def large_run(tmp_path_factory, tiny_model):
    work = tmp_path_factory.mktemp("scale-run")
    corpus = work / "synthetic.tsv"
    write_synthetic(str(corpus), ROWS, seed=0)
    cfg = tiny_config(work, tiny_model, corpus)
    cfg["corpus"]["dedupe_on"] = []  # every row, so t-SNE sees 10,000 points
    cfg["models"] = [m for m in cfg["models"] if m["name"] == "tiny-en"]
    cfg["training"] = {}
    cfg["mecab"] = {"columns": []}
    # a random tiny BERT's CLS barely varies at its last layer either (spread 8.6e-6): lower the
    # threshold so that only layer 0, where every sentence has the very same vector, is skipped
    cfg["embeddings"] = {"min_spread": 1e-6}
    cfg["explore"] = {"knn": {"exact_max": 5000}}  # NN-descent in the real stage
    cfg["projection"] = {
        "vocab": {"max_points": 300, "methods": ["pca"]},
        "sentences": {"layers": [0, "last"], "poolings": ["cls"], "methods": ["tsne", "pca"]},
        "tsne": {"perplexity": 30, "n_iter": 100},
    }
    path = write_config(work / "large.yaml", cfg)
    targets = [
        "results/projection/tiny-en/sentences.parquet",
        "results/neighbors/tiny-en/knn.html",
        "results/explore/tiny-en/sentences.html",
    ]
    proc = snakemake(work, *targets, "--configfile", str(path), "--cores", "2")
    return work, proc


def test_degenerate_layer_is_found_once_and_skipped_everywhere(large_run):
    work, proc = large_run
    res = work / "results"
    embed = json.loads((res / "embeddings/tiny-en/facts.json").read_text())
    found = {(d["pooling"], d["layer"]) for d in embed["sentences"]["degenerate"]}
    assert found == {("cls", 0)}
    assert embed["sentences"]["spread"]["cls"][0] < 1e-6 < embed["sentences"]["spread"]["cls"][2]

    proj = json.loads((res / "projection/tiny-en/sentences.json").read_text())
    assert "same for every sentence" in proj["cls/layer0"]["skipped"]
    tsne = proj["cls/layer2"]["tsne"]
    assert tsne["points"] == ROWS and tsne["fitted_points"] == ROWS  # the FFT path
    table = read_table(res / "projection/tiny-en/sentences.parquet")
    assert set(table["layer"]) == {2}
    assert np.isfinite(table[["x", "y"]].to_numpy()).all()
    assert table["x"].std() > 1 and table["y"].std() > 1  # a map, not one point

    knn = json.loads((res / "neighbors/tiny-en/knn.json").read_text())
    assert "skipped" in knn["cls/layer0"]
    searched = [f for f in knn.values() if "method" in f and f["points"] == ROWS]
    assert len(searched) == 6  # cls at layers 1-2, mean at 0-2, the pooler
    for f in searched:
        assert f["method"] == "approximate", f
        assert f["recall_at_k"] >= 0.95 and f["index"].startswith("pynndescent NN-descent")
    page = (res / "neighbors/tiny-en/knn.html").read_text()
    assert "same for every sentence" in page and "pynndescent NN-descent graph" in page
    logs = "".join(p.read_text() for p in (res / "logs").rglob("*.log"))
    assert "divide by zero" not in logs and "invalid value" not in logs
