"""Sentence embeddings: the length-sorted, dynamically padded path equals encoding each sentence
alone; pooling and streaming to disk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from bertlens.embeddings import (
    bf16_linear_weights,
    encode,
    length_sorted_batches,
    pad_batch,
    pool,
    sentence_embeddings,
)
from bertlens.stage import UserError, has_bf16_units
from bertlens.tokenstats import token_counts, tokenize_texts
from bertlens.vocab_matrix import vocab_matrix
from tests.helpers.checks import needs_onednn


@pytest.fixture(scope="module")
def sentences(english):
    # short and long sentences mixed, so batches really pad
    return sorted(english, key=len)[:12] + sorted(english, key=len)[-12:]


def test_dynamic_padding_equals_one_at_a_time(minilm, sentences, tmp_path):
    model, tokenizer = minilm
    tokens = tokenize_texts(tokenizer, sentences, max_length=128)
    ids = list(tokens["input_ids"])
    paths = {p: str(tmp_path / f"{p}.npy") for p in ("cls", "mean", "pooler")}
    facts = sentence_embeddings(
        model,
        ids,
        tokenizer.pad_token_id,
        batch_size=8,
        poolings=["cls", "mean", "pooler"],
        out_paths=paths,
    )
    assert facts["padding_share"] > 0  # the batches did contain padding
    batched = {p: np.load(paths[p]) for p in paths}
    assert batched["mean"].shape == (7, len(sentences), 384)
    assert batched["pooler"].shape == (1, len(sentences), 384)
    worst = 0.0
    with torch.inference_mode():
        for i, seq in enumerate(ids):
            one = torch.as_tensor(seq, dtype=torch.long)[None]
            alone = encode(model, one, torch.ones_like(one), ["cls", "mean", "pooler"])
            for p in ("cls", "mean", "pooler"):
                diff = np.abs(alone[p][:, 0].numpy() - batched[p][:, i]).max()
                worst = max(worst, float(diff))
    assert worst < 1e-5, worst


def test_length_sorted_batches_cover_every_index_once():
    lengths = [5, 30, 7, 7, 12, 3, 30, 9]
    batches = list(length_sorted_batches(lengths, 3))
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    for b in batches:  # each batch holds similar lengths: sorted descending overall
        assert max(lengths[i] for i in b) >= min(lengths[i] for i in b)
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)


def test_mean_pool_ignores_padding():
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    out = pool(hidden, mask, "mean")
    assert torch.allclose(out[0], hidden[0, :2].mean(0))
    assert torch.allclose(out[1], hidden[1].mean(0))
    assert torch.equal(pool(hidden, mask, "cls"), hidden[:, 0])


def test_vocab_matrix_has_every_token_and_frequency(minilm, sentences, tmp_path):
    model, tokenizer = minilm
    tokens = tokenize_texts(tokenizer, sentences, max_length=128)
    counts = token_counts(tokens, len(tokenizer))
    facts = vocab_matrix(
        model, tokenizer, counts, str(tmp_path / "v.npy"), str(tmp_path / "v.parquet")
    )
    table = pd.read_parquet(tmp_path / "v.parquet")
    matrix = np.load(tmp_path / "v.npy")
    assert matrix.shape == (30522, 384) == (facts["vocab_size"], facts["hidden_size"])
    assert table.loc[table["token"] == "[CLS]", "frequency"].item() == len(sentences)
    assert table.loc[table["token"] == "[CLS]", "special"].item()
    the = table.loc[table["token"] == "the", "frequency"].item()
    assert the == sum(s.lower().split().count("the") for s in sentences) or the > 0


def test_non_finite_input_matrix_stops_and_writes_nothing(minilm, tmp_path):
    model, tokenizer = minilm
    weight = model.get_input_embeddings().weight
    saved = weight[1037, 3].item()
    with torch.no_grad():
        weight[1037, 3] = float("inf")
    try:
        with pytest.raises(UserError, match=r"input-embedding vectors \(layer 0, row 1037\)"):
            vocab_matrix(
                model,
                tokenizer,
                np.zeros(0, np.int64),
                str(tmp_path / "v.npy"),
                str(tmp_path / "v.parquet"),
            )
    finally:
        with torch.no_grad():
            weight[1037, 3] = saved
    assert not list(tmp_path.iterdir())


def test_token_counts_of_no_rows_are_zeros():
    counts = token_counts(pd.DataFrame({"input_ids": []}), 7)
    assert counts.dtype == np.int64 and counts.tolist() == [0] * 7


def test_failed_encoding_leaves_no_output(minilm, tmp_path):
    model, tokenizer = minilm
    paths = {p: str(tmp_path / f"{p}.npy") for p in ("cls", "mean", "pooler")}
    bad = [np.asarray([101, 999999, 102])]  # id beyond the vocabulary
    with pytest.raises(IndexError):
        sentence_embeddings(model, bad, tokenizer.pad_token_id, 4, ["cls", "mean"], paths)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kernel",
    [
        "torch",
        pytest.param("onednn", marks=needs_onednn),
    ],
)
def test_worker_threads_give_the_same_vectors(minilm, sentences, tmp_path, kernel):
    """Two batches at a time, one torch thread each, on either linear-layer library: identical
    vectors from run to run, within 1e-5 of one batch at a time on all threads (BLAS splits the
    sums differently), and torch's thread count is given back."""
    model, tokenizer = minilm
    ids = list(tokenize_texts(tokenizer, sentences, max_length=128)["input_ids"])
    threads = torch.get_num_threads()
    runs = {}
    for name, workers in (("one", 1), ("two", 2), ("two_again", 2)):
        paths = {p: str(tmp_path / f"{name}_{p}.npy") for p in ("cls", "mean", "pooler")}
        facts = sentence_embeddings(
            model,
            ids,
            tokenizer.pad_token_id,
            4,
            ["cls", "mean", "pooler"],
            paths,
            workers=workers,
            cpu_matmul=kernel,
        )
        assert facts["workers"] == workers
        assert facts["matmul"]["kernel"] == kernel
        runs[name] = {p: np.load(paths[p]) for p in paths}
    assert torch.get_num_threads() == threads
    for p in ("cls", "mean", "pooler"):
        assert np.array_equal(runs["two"][p], runs["two_again"][p])
        assert np.abs(runs["two"][p] - runs["one"][p]).max() < 1e-5


def test_failure_in_a_worker_thread_stops_the_stage(minilm, sentences, tmp_path):
    model, tokenizer = minilm
    ids = list(tokenize_texts(tokenizer, sentences, max_length=128)["input_ids"])
    ids[-1] = np.asarray([101, 999999, 102])  # id beyond the vocabulary, in a late batch
    paths = {p: str(tmp_path / f"{p}.npy") for p in ("cls", "mean", "pooler")}
    threads = torch.get_num_threads()
    with pytest.raises(IndexError):
        sentence_embeddings(
            model, ids, tokenizer.pad_token_id, 2, ["cls", "mean"], paths, workers=2
        )
    assert list(tmp_path.iterdir()) == []
    assert torch.get_num_threads() == threads


def test_bf16_runs_where_the_cpu_has_bfloat16_units(minilm, sentences, tmp_path, caplog):
    """``bf16``: on a CPU with AMX or AVX512-BF16 the forward pass runs under bf16 autocast:
    layer 0 (embeddings and layer norm, float32 under autocast) stays exact, later layers move
    (so autocast really ran) but keep their direction. Elsewhere it runs in float32, says so in
    the log, and the facts record which ran."""
    model, tokenizer = minilm
    ids = list(tokenize_texts(tokenizer, sentences, max_length=128)["input_ids"])
    runs, facts = {}, {}
    for bf16 in (False, True):
        paths = {p: str(tmp_path / f"{bf16}_{p}.npy") for p in ("cls", "mean", "pooler")}
        with caplog.at_level("WARNING"):
            facts[bf16] = sentence_embeddings(
                model, ids, tokenizer.pad_token_id, 8, ["cls", "mean", "pooler"], paths, bf16=bf16
            )
        runs[bf16] = {p: np.load(paths[p]) for p in paths}
    assert facts[False]["bf16"] is False
    native = has_bf16_units("cpu")
    assert facts[True]["bf16"] is native
    assert ("has no bfloat16 units" in caplog.text) is not native
    fp32, bf16 = runs[False], runs[True]
    for p in ("cls", "mean"):
        assert bf16[p].dtype == np.float32
        assert np.abs(bf16[p][0] - fp32[p][0]).max() < 1e-6
        moved = np.abs(bf16[p][1:] - fp32[p][1:]).max()
        assert (moved > 1e-4) if native else (moved < 1e-5)
        cos = (bf16[p] * fp32[p]).sum(-1) / (
            np.linalg.norm(bf16[p], axis=-1) * np.linalg.norm(fp32[p], axis=-1)
        )
        assert cos.min() > 0.999


def test_bf16_weights_held_once_give_the_same_vectors(minilm, sentences):
    """Linear weights cast to bfloat16 once for the whole run give exactly what autocast's cast
    in every call gives, and the float32 weights are back afterwards."""
    model, tokenizer = minilm
    ids = list(tokenize_texts(tokenizer, sentences, max_length=128)["input_ids"])
    input_ids, mask = pad_batch(ids[:8], tokenizer.pad_token_id)
    before = {name: p.clone() for name, p in model.named_parameters()}
    with torch.inference_mode():
        each_call = encode(model, input_ids, mask, ["cls", "mean", "pooler"], bf16=True)
        with bf16_linear_weights(model, True):
            assert model.encoder.layer[0].intermediate.dense.weight.dtype == torch.bfloat16
            held = encode(model, input_ids, mask, ["cls", "mean", "pooler"], bf16=True)
    for p in ("cls", "mean", "pooler"):
        assert torch.equal(held[p], each_call[p])
    for name, p in model.named_parameters():
        assert p.dtype == torch.float32 and torch.equal(p, before[name]), name
