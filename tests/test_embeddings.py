"""Sentence embeddings: the length-sorted, dynamically padded path equals encoding each sentence
alone; pooling and streaming to disk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from bertlens.embeddings import (
    encode,
    length_sorted_batches,
    pool,
    sentence_embeddings,
    vocab_matrix,
)
from bertlens.tokenstats import token_counts, tokenize_texts


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


def test_failed_encoding_leaves_no_output(minilm, tmp_path):
    model, tokenizer = minilm
    paths = {p: str(tmp_path / f"{p}.npy") for p in ("cls", "mean", "pooler")}
    bad = [np.asarray([101, 999999, 102])]  # id beyond the vocabulary
    with pytest.raises(IndexError):
        sentence_embeddings(model, bad, tokenizer.pad_token_id, 4, ["cls", "mean"], paths)
    assert list(tmp_path.iterdir()) == []


def test_worker_threads_give_the_same_vectors(minilm, sentences, tmp_path):
    """Two batches at a time, one torch thread each: identical vectors from run to run, within
    1e-5 of one batch at a time on all threads (BLAS splits the sums differently), and torch's
    thread count is given back."""
    model, tokenizer = minilm
    ids = list(tokenize_texts(tokenizer, sentences, max_length=128)["input_ids"])
    threads = torch.get_num_threads()
    runs = {}
    for name, workers in (("one", 1), ("two", 2), ("two_again", 2)):
        paths = {p: str(tmp_path / f"{name}_{p}.npy") for p in ("cls", "mean", "pooler")}
        facts = sentence_embeddings(
            model, ids, tokenizer.pad_token_id, 4, ["cls", "mean", "pooler"], paths, workers=workers
        )
        assert facts["workers"] == workers
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
