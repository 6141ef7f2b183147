"""The padding-difference study on the real pretrained MiniLM: fp32 padding differences stay
within 1e-5, bf16 is clearly worse, left padding needs position ids, and the attention-mask check
catches a broken mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bertlens import padding, padding_encodings
from bertlens.io import read_json
from bertlens.sampling import sample_rows
from tests.helpers.checks import needs_onednn
from tests.helpers.runner import fake_snakemake, run_script


@pytest.fixture(scope="module")
def study(minilm, english):
    """A small study on 10 real sentences: every setting but cuda, two partners."""
    model, tokenizer = minilm
    return padding.padding_study(
        model,
        tokenizer,
        english[:120],
        max_length=64,
        sample=10,
        partners=[16, "longest"],
        settings=["bf16", "sdpa_vs_eager", "onednn", "left_padding", "cuda"],
        tolerance=1e-5,
        bf16_tolerance=0.1,
        batch_size=4,
        seed=1,
        cuda=False,
    )


def _worst(df: pd.DataFrame, setting: str, poolings=("cls", "mean", "pooler", "tokens")) -> float:
    sub = df[(df["setting"] == setting) & df["pooling"].isin(poolings)]
    assert not sub.empty, setting
    return float(sub["max_abs"].max())


def test_fp32_padded_vs_alone_within_1e5(study):
    d = study.differences
    worst = _worst(d, "padded")
    assert worst <= 1e-5
    # it is not exactly zero after the first layer (different kernels), but the embedding layer
    # (token by token) is untouched by padding
    layer0 = d[(d["setting"] == "padded") & (d["layer"] == 0)]
    assert float(layer0["max_abs"].max()) == 0.0
    assert (d.loc[d["setting"] == "padded", "cosine"] > 1 - 1e-9).all()
    row = study.verdict.set_index("setting").loc["padded"]
    assert row["verdict"] == "pass"
    assert row["cls_last_max"] <= 1e-5


def test_fp32_bound_on_a_few_sentences_directly(minilm, english):
    """Without the study machinery: alone vs padded next to a long partner, per layer."""
    model, tokenizer = minilm
    rows = padding_encodings.tokenize(tokenizer, english[:4], 64)
    partner = padding_encodings.Partner(
        "p", 48, tuple(rows[0] + [1000] * (48 - len(rows[0]))), "test"
    )
    alone = padding_encodings.encode_alone(model, rows)
    padded = padding_encodings.encode_padded(
        model, rows, tokenizer.pad_token_id, partner, batch_size=8
    )
    assert padded.padded_to == [48] * 4
    for a, b in zip(alone.states, padded.states, strict=True):
        assert a.shape == b.shape  # (tokens, layers + 1, hidden)
        assert float((a - b).abs().max()) <= 1e-5


def test_bf16_clearly_larger_than_fp32(study):
    d = study.differences
    last = d["layer"] == d["layer"].max()
    fp32 = d[(d["setting"] == "padded") & last & (d["pooling"] == "cls")]["max_abs"]
    bf16 = d[(d["setting"] == "bf16") & last & (d["pooling"] == "cls")]["max_abs"]
    assert bf16.median() > 1e-4
    assert bf16.median() > 20 * fp32.max()
    assert study.verdict.set_index("setting").loc["bf16", "tolerance"] == 0.1


def test_left_padding_needs_position_ids(study):
    v = study.verdict.set_index("setting")
    assert v.loc["left_padding", "verdict"] == "pass"
    assert v.loc["left_padding_no_position_ids", "verdict"] == "FAIL (expected)"
    assert _worst(study.differences, "left_padding_no_position_ids") > 1e-2
    # the raw pooler_output of a left-padded batch reads a pad: reported, not hidden
    assert "pooler_pos0" in set(study.differences["pooling"])


def test_sdpa_vs_eager_is_rounding(study):
    assert _worst(study.differences, "sdpa_vs_eager", ("cls", "mean", "pooler")) <= 1e-5


@needs_onednn
def test_onednn_linear_layers_are_rounding(study):
    """The embedding stage's other linear-layer library moves the vectors by rounding only."""
    worst = _worst(study.differences, "onednn", ("cls", "mean", "pooler"))
    assert 0 < worst <= 1e-5  # 0 would mean the library was not switched
    assert study.verdict.set_index("setting").loc["onednn", "verdict"] == "pass"


def test_cuda_recorded_as_skipped_without_gpu(study):
    v = study.verdict.set_index("setting")
    assert v.loc["cuda", "verdict"] == "skipped"
    assert "no CUDA" in v.loc["cuda", "note"]
    assert "cuda" in study.skipped


def test_table_columns_and_summary(study):
    d = study.differences
    for col in ("row", "setting", "partner", "layer", "pooling", "max_abs", "rel", "cosine"):
        assert col in d.columns
    assert d["row"].nunique() == 10
    assert set(d["layer"]) == set(range(7))  # embeddings + 6 layers
    assert set(d.loc[d["pooling"] == "pooler", "layer"]) == {6}
    s = study.summary
    assert {"median", "p99", "max"} <= set(s.columns)
    assert (s["median"] <= s["p99"] + 1e-12).all() and (s["p99"] <= s["max"] + 1e-12).all()


def test_mask_check_passes_and_broken_mask_fails(minilm, english):
    model, tokenizer = minilm
    enc = tokenizer(english[:4], padding="max_length", max_length=40, return_tensors="pt")
    good = padding_encodings.mask_check(model, enc["input_ids"], enc["attention_mask"])
    assert good["passed"] and good["max_abs"] <= 1e-5
    broken = padding_encodings.mask_check(
        model, enc["input_ids"], enc["attention_mask"], break_mask=True
    )
    assert not broken["passed"]
    assert broken["max_abs"] > 1e-3


def test_mask_check_needs_pads(minilm):
    model, _ = minilm
    ids = torch.tensor([[101, 2000, 102]])
    with pytest.raises(ValueError, match="padded position"):
        padding_encodings.mask_check(model, ids, torch.ones_like(ids))


def test_partners(minilm):
    _, tokenizer = minilm
    corpus = [[101, 5, 6, 102], [101, 7, 8, 9, 10, 11, 102], [101, 12, 102]]
    parts = padding_encodings.build_partners(
        [5, 20, "longest", "max_length", 99], corpus, 32, tokenizer
    )
    by = {p.name: p for p in parts}
    assert by["5"].ids == (101, 7, 8, 9, 102) and by["5"].length == 5
    assert by["20"].length == 20 and by["20"].ids[0] == 101 and by["20"].ids[-1] == 102
    assert "repeated" in by["20"].source
    assert by["longest"].length == 7
    assert by["max_length"].ids is None and by["max_length"].length == 32
    assert by["99"].length == 32 and "capped" in by["99"].source


def test_left_and_right_extract_the_same_tokens(minilm):
    model, tokenizer = minilm
    rows = [[101, 2023, 2003, 102], [101, 2307, 102]]
    partner = padding_encodings.Partner("max_length", 9, None, "pad only")
    right = padding_encodings.encode_padded(model, rows, 0, partner, side="right")
    left = padding_encodings.encode_padded(model, rows, 0, partner, side="left")
    for a, b in zip(right.states, left.states, strict=True):
        assert float((a - b).abs().max()) <= 1e-5
    assert left.pooler_pos0 is not None


def test_sample_rows_is_seeded():
    a = sample_rows(600, 200, 42)
    assert len(a) == 200 and (np.diff(a) > 0).all()
    assert (a == sample_rows(600, 200, 42)).all()
    assert len(sample_rows(50, 200, 42)) == 50
    assert len(sample_rows(50, None, 42)) == 50


def test_unknown_setting(minilm):
    model, tokenizer = minilm
    with pytest.raises(ValueError, match="unknown padding settings"):
        padding.padding_study(
            model,
            tokenizer,
            ["a b"],
            max_length=16,
            sample=200,
            partners=[16, "longest", "max_length"],
            settings=["fp8"],
            tolerance=1e-5,
            bf16_tolerance=0.1,
            batch_size=32,
            seed=42,
        )


def test_write_outputs(study, tmp_path):
    names = {
        "differences": "differences.parquet",
        "summary": "summary.tsv",
        "summary_html": "summary.html",
        "verdict": "verdict.tsv",
        "verdict_html": "verdict.html",
        "histograms": "histograms.png",
        "growth": "growth.png",
        "study": "study.json",
    }
    paths = {k: str(tmp_path / v) for k, v in names.items()}
    padding.write_outputs(study, paths, "minilm")
    for p in paths.values():
        assert Path(p).stat().st_size > 0
    assert Path(paths["histograms"]).read_bytes()[:4] == b"\x89PNG"
    assert "verdict" in Path(paths["verdict_html"]).read_text(encoding="utf-8")
    info = read_json(paths["study"])
    assert info["sentences"] == 10 and "cuda" in info["skipped"]
    assert pd.read_parquet(paths["differences"]).shape == study.differences.shape


@pytest.fixture(scope="module")
def tiny_bert_dir(tiny_bert) -> Path:
    """A 2-layer, 32-wide BertModel (with pooler) saved with save_pretrained, MiniLM tokenizer."""
    return tiny_bert(with_mlm_head=False, heads=4, max_positions=40)


def test_stage_script_end_to_end(tiny_bert_dir, english, tmp_path):
    """The padding stage's script as the `script:` directive runs it, on a tiny saved model with
    40 positions: a max_length of 64 stops with the one line every model stage gives (nothing
    written); 40 runs."""
    corpus = tmp_path / "corpus.parquet"
    pd.DataFrame({"id": range(30), "en": english[:29] + [""]}).to_parquet(corpus)
    out = tmp_path / "out"
    names = {
        "differences": "differences.parquet",
        "summary": "summary.tsv",
        "verdict": "verdict.tsv",
        "study": "study.json",
        "verdict_html": "verdict.html",
        "summary_html": "summary.html",
        "histograms": "histograms.png",
        "growth": "growth.png",
    }
    sm = fake_snakemake(
        "padding",
        input={"corpus": corpus},
        output={k: out / v for k, v in names.items()},
        params={
            "model": {"name": "tiny", "path": str(tiny_bert_dir), "column": "en", "max_length": 64},
            "padding": {
                "sample": 12,
                "partners": [8, "longest", "max_length"],
                "settings": ["bf16", "sdpa_vs_eager", "left_padding", "cuda"],
                "tolerance": 1e-5,
                "bf16_tolerance": 0.1,
                "batch_size": 5,
                "seed": 3,
            },
        },
        log=[tmp_path / "padding.log"],
        wildcards={"model": "tiny"},
        threads=2,
    )
    with pytest.raises(SystemExit):
        run_script(sm)
    assert (
        "max_length 64 is above the model's 40 positions" in (tmp_path / "padding.log").read_text()
    )
    assert not out.exists()
    sm.params.model["max_length"] = 40
    run_script(sm)
    for v in names.values():
        assert (out / v).stat().st_size > 0
    assert (out / "differences.parquet.meta.json").is_file()
    info = read_json(out / "study.json")
    assert info["max_length"] == 40 and info["sentences"] == 12
    assert {p["name"]: p["length"] for p in info["partners"]}["max_length"] == 40
    verdict = pd.read_csv(out / "verdict.tsv", sep="\t").set_index("setting")
    assert verdict.loc["padded", "verdict"] == "pass"
    assert verdict.loc["mask_check", "verdict"] == "pass"
