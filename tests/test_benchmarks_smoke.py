"""The benchmark command still runs (smoke mode: tiny sizes, one repeat). Speed targets are
measured by benchmarks/run.py itself, never asserted here."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers.tiny import REPO


def test_benchmark_smoke(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["mode"] == "smoke"
    for key in ("speedup_vs_notebook", "speedup_vs_sentence_transformers", "share_of_gemm"):
        assert res["extraction"][key] > 0
    tokens = res["extraction"]["tokens"]
    assert res["extraction"]["ours_padded_tokens"] >= tokens
    st_tokens = res["extraction"]["sentence_transformers_tokens"]
    assert res["extraction"]["sentence_transformers_padded_tokens"] >= st_tokens >= tokens
    assert res["tsne"]["ours_kl"] > 0 and res["tsne"]["sklearn_kl"] > 0
    assert res["mlm"]["ours_tokens_per_second"] > 0
    assert res["mlm"]["ours"][0]["tokens"] == res["mlm"]["notebook"][0]["tokens"] or (
        res["mlm"]["notebook"][0]["tokens"] >= res["mlm"]["ours"][0]["tokens"]
    )
    sizes = [r["sentences"] for r in res["memory"]["runs"]]
    assert sizes == [40, 80]
    table = (tmp_path / "results.md").read_text()
    assert "| comparison | ours | theirs | ratio | goal |" in table
    assert "tokens fed to the model, pads included, per real token: ours 1." in table


def test_extraction_bf16_with_a_bert_base_shaped_model(tmp_path):
    """``--extraction-bf16 --extraction-model bert-base``: ours in bf16 and fp32 and
    sentence-transformers in bf16 and fp32 in the same rounds, on a 12 x 768 model; on a CPU
    without bfloat16 units, one clear line instead."""
    from bertlens.stage import has_bf16_units

    cmd = [sys.executable, str(REPO / "benchmarks" / "run.py"), "--smoke", "--only", "extraction"]
    cmd += ["--extraction-bf16", "--extraction-model", "bert-base", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if not has_bf16_units("cpu"):
        assert proc.returncode != 0
        assert "error: --extraction-bf16: cpu has no bfloat16 units; leave it out" in proc.stderr
        return
    assert proc.returncode == 0, proc.stderr[-4000:]
    e = json.loads((tmp_path / "results.json").read_text())["extraction"]
    assert (e["model"], e["device"], e["precision"]) == ("bert-base", "cpu", "bf16")
    assert "13 hidden states" in e["ours_produces"]
    assert e["attention"] == {"ours": "sdpa", "sentence_transformers": "sdpa"}
    for key in ("bf16_speedup_over_fp32", "speedup_vs_sentence_transformers_fp32"):
        assert e[key] > 0
    table = (tmp_path / "results.md").read_text()
    assert "BERT-base shape, cpu, bf16" in table and "| same vs ours in fp32 |" in table


def test_sentence_transformers_padding_follows_character_order():
    """sentence-transformers batches by characters, so a short text with many tokens pads its
    batch: "aaaa" (2 tokens) and "aa" (3 tokens) share a batch padded to 3, "a" (5 tokens) is
    alone."""
    from benchmarks.recipes import sentence_transformers_padded_tokens

    assert sentence_transformers_padded_tokens([2, 5, 3], ["aaaa", "a", "aa"], batch_size=2) == 11
    assert sentence_transformers_padded_tokens([2, 5, 3], ["aaaa", "a", "aa"], batch_size=1) == 10
    assert sentence_transformers_padded_tokens([], []) == 0


def test_benchmarks_read_a_real_corpus_file(tmp_path):
    from benchmarks.corpora import texts_for
    from benchmarks.synthetic import write_synthetic

    path = tmp_path / "corpus.tsv"
    df = write_synthetic(str(path), 60, seed=1)
    unique = list(dict.fromkeys(df["#英語(原文)"]))
    assert texts_for("en", 0, str(path)) == unique  # all of it, duplicates dropped
    repeated = texts_for("en", 150, str(path))
    assert len(repeated) == 150 and repeated[: len(unique)] == unique
    assert texts_for("easy_ja", 5, None) == texts_for("easy_ja", 5)  # synthetic by default


def test_scaling_benchmark_smoke(tmp_path):
    """Two real workflow runs of a tiny model at two corpus sizes: per-stage times and memory
    from the stage logs, growth exponents, the table and the log-log plot."""

    def scaling(*extra):
        cmd = [sys.executable, str(REPO / "benchmarks" / "scaling.py"), "--smoke", *extra]
        proc = subprocess.run(
            [*cmd, "--out", str(tmp_path)], capture_output=True, text=True, timeout=900
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
        return json.loads((tmp_path / "scaling.json").read_text())

    res = scaling()
    assert [r["rows"] for r in res["runs"]] == [60, 120]
    for run in res["runs"]:
        for stage in ("corpus", "tokenize", "embed", "knn", "project"):
            assert run["stages"][stage]["jobs"] >= 1
            assert run["stages"][stage]["peak_rss_mib"] > 10
    assert set(res["exponents"]) >= {"embed", "knn", "project"}
    assert (tmp_path / "scaling.png").stat().st_size > 10_000
    assert "| knn |" in (tmp_path / "scaling.md").read_text()
    # --resume keeps what the sizes already measured said instead of running them again
    (tmp_path / "n60" / "run.json").write_text(json.dumps({**res["runs"][0], "wall_seconds": 1e6}))
    again = scaling("--resume")
    assert [r["wall_seconds"] for r in again["runs"]] == [1e6, res["runs"][1]["wall_seconds"]]


def test_heavy_stages_alone_smoke(tmp_path):
    import numpy as np

    from benchmarks.scaling import stages_alone

    rng = np.random.default_rng(0)
    np.save(tmp_path / "s.npy", rng.normal(size=(2, 300, 16)).astype(np.float32))
    rows = stages_alone(str(tmp_path / "s.npy"), [120, 300], fit_max=200)
    assert [r["rows"] for r in rows] == [120, 300]
    for r in rows:
        assert r["knn"]["method"] == "exact" and r["knn"]["seconds"] >= 0
        assert r["tsne"]["seconds"] > 0 and r["umap"]["seconds"] > 0
        assert 0 < r["tsne"]["neighbors_kept"] <= 1 and 0 < r["tsne_whole"]["neighbors_kept"] <= 1
    assert [r["tsne"]["fitted_points"] for r in rows] == [120, 200]
    assert [r["tsne_whole"]["fitted_points"] for r in rows] == [120, 300]
