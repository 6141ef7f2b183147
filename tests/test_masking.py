"""BERT masking on real tokenized batches: rates, special tokens, labels, whole words, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertlens.mlm import (
    IGNORE_INDEX,
    collate,
    encode_texts,
    japanese_word_pieces,
    length_grouped_batches,
    mask_tokens,
    random_token_pool,
    words_from_continuation,
)
from bertlens.vocab import load_trained_tokenizer
from tests._training_fixtures import SENTENCES, train_vocab

DRAWS = 300


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    # min_frequency 3 leaves many words split into several pieces (needed for whole-word tests)
    return load_trained_tokenizer(
        train_vocab(tmp_path_factory.mktemp("vocab"), size=200, min_frequency=3)
    )


@pytest.fixture(scope="module")
def batch(tokenizer):
    corpus = encode_texts(tokenizer, SENTENCES, max_length=64)
    special = torch.tensor(tokenizer.all_special_ids)
    return collate(corpus, np.arange(len(SENTENCES)), tokenizer.pad_token_id, special)


def _mask(tokenizer, batch, gen, whole_word=False, **kw):
    return mask_tokens(
        batch["input_ids"],
        batch["attention_mask"],
        batch["special_mask"],
        batch["word_ids"] if whole_word else None,
        vocab_size=len(tokenizer),
        mask_id=tokenizer.mask_token_id,
        generator=gen,
        **kw,
    )


def test_batch_is_real_and_padded(tokenizer, batch):
    ids, att = batch["input_ids"], batch["attention_mask"]
    assert ids.shape[0] == len(SENTENCES)
    assert (ids[att == 0] == tokenizer.pad_token_id).all()
    assert (att.sum(1) < ids.shape[1]).any(), "some rows must be padded"
    # several MeCab words are split into more than one WordPiece piece
    words = batch["word_ids"]
    counts = torch.stack([torch.bincount(w[w >= 0]).max() for w in words])
    assert (counts > 1).sum() >= 5


def test_encoding_matches_tokenizer(tokenizer):
    corpus = encode_texts(tokenizer, SENTENCES, max_length=64)
    for ids, text in zip(corpus.input_ids, SENTENCES, strict=True):
        assert ids.tolist() == tokenizer(text)["input_ids"]
    # a text with a special-token string goes through tokenizer.tokenize
    probe = "今日は[MASK]です。"
    enc = encode_texts(tokenizer, [probe], max_length=64)
    assert enc.input_ids[0].tolist() == tokenizer(probe)["input_ids"]
    # truncation keeps [CLS] ... [SEP] and counts the sentence
    short = encode_texts(tokenizer, SENTENCES, max_length=6)
    assert max(len(x) for x in short.input_ids) == 6
    assert short.truncated > 0
    assert all(x[-1] == tokenizer.sep_token_id for x in short.input_ids)


def test_word_groups_equal_continuation_rule_on_corpus(tokenizer):
    """For BertJapaneseTokenizer the '##' rule gives the MeCab words (documented in mlm.py)."""
    for text in SENTENCES:
        pieces, words = japanese_word_pieces(tokenizer, text)
        assert words == words_from_continuation(pieces)


def test_token_level_rates(tokenizer, batch):
    gen = torch.Generator().manual_seed(0)
    eligible = batch["attention_mask"].bool() & ~batch["special_mask"]
    n_eligible = int(eligible.sum())
    chosen = masked = randomised = kept = 0
    for _ in range(DRAWS):
        inputs, labels = _mask(tokenizer, batch, gen)
        sel = labels != IGNORE_INDEX
        chosen += int(sel.sum())
        masked += int((inputs[sel] == tokenizer.mask_token_id).sum())
        kept += int((inputs[sel] == labels[sel]).sum())
        randomised += int(
            ((inputs[sel] != labels[sel]) & (inputs[sel] != tokenizer.mask_token_id)).sum()
        )
    rate = chosen / (n_eligible * DRAWS)
    assert abs(rate - 0.15) < 0.01, rate
    assert abs(masked / chosen - 0.8) < 0.02
    # a random draw can hit the original token: "kept" is 10% plus 10%/V
    assert abs(randomised / chosen - 0.1) < 0.015
    assert abs(kept / chosen - 0.1) < 0.015


def test_special_and_pad_never_masked_and_labels(tokenizer, batch):
    gen = torch.Generator().manual_seed(1)
    protected = batch["special_mask"] | (batch["attention_mask"] == 0)
    for whole_word in (False, True):
        for _ in range(100):
            inputs, labels = _mask(tokenizer, batch, gen, whole_word=whole_word, probability=0.5)
            assert (labels[protected] == IGNORE_INDEX).all()
            assert torch.equal(inputs[protected], batch["input_ids"][protected])
            sel = labels != IGNORE_INDEX
            # labels: the original id where chosen, -100 elsewhere; unchosen inputs untouched
            assert torch.equal(labels[sel], batch["input_ids"][sel])
            assert torch.equal(inputs[~sel], batch["input_ids"][~sel])


def test_random_replacements_are_never_special(tokenizer, batch):
    gen = torch.Generator().manual_seed(2)
    special = torch.tensor(tokenizer.all_special_ids)
    pool = random_token_pool(len(tokenizer), tokenizer.all_special_ids)
    assert len(pool) == len(tokenizer) - len(set(tokenizer.all_special_ids))
    everything = {"probability": 1.0, "mask_replace": 0.0, "random_replace": 1.0}
    for _ in range(20):
        inputs, labels = _mask(tokenizer, batch, gen, random_pool=pool, **everything)
        sel = labels != IGNORE_INDEX
        assert sel.sum() > 100
        assert not torch.isin(inputs[sel], special).any()
        # without a pool: never [MASK] nor a token found at this batch's special positions
        inputs, labels = _mask(tokenizer, batch, gen, **everything)
        at_special = torch.unique(batch["input_ids"][batch["special_mask"]])
        assert not torch.isin(inputs[sel], torch.cat([at_special, torch.tensor([4])])).any()


def test_whole_words_masked_together(tokenizer, batch):
    gen = torch.Generator().manual_seed(3)
    words = batch["word_ids"]
    n_words = sum(int(w.max()) + 1 for w in words)
    chosen_words = 0
    for _ in range(DRAWS):
        inputs, labels = _mask(tokenizer, batch, gen, whole_word=True)
        sel = labels != IGNORE_INDEX
        for row in range(words.shape[0]):
            w = words[row]
            valid = w >= 0
            n = int(w.max()) + 1
            # per word: how many pieces chosen / how many pieces
            chosen_per_word = torch.bincount(w[valid], weights=sel[row][valid].float(), minlength=n)
            size = torch.bincount(w[valid], minlength=n).float()
            assert ((chosen_per_word == 0) | (chosen_per_word == size)).all()
            chosen_words += int((chosen_per_word > 0).sum())
            # the 80/10/10 decision is per word: a chosen word is all [MASK] or has no [MASK]
            is_mask = (inputs[row] == tokenizer.mask_token_id) & sel[row]
            masked_per_word = torch.bincount(w[valid], weights=is_mask[valid].float(), minlength=n)
            assert ((masked_per_word == 0) | (masked_per_word == size)).all()
    rate = chosen_words / (n_words * DRAWS)
    assert abs(rate - 0.15) < 0.01, rate


def test_reproducible_with_generator(tokenizer, batch):
    a = _mask(tokenizer, batch, torch.Generator().manual_seed(5), whole_word=True)
    b = _mask(tokenizer, batch, torch.Generator().manual_seed(5), whole_word=True)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_length_grouped_batches():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 100, size=1000)
    batches = length_grouped_batches(lengths, batch_size=16, seed=1, epoch=0, chunk_batches=10)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))  # every sentence exactly once
    assert all(len(b) <= 16 for b in batches)
    again = length_grouped_batches(lengths, batch_size=16, seed=1, epoch=0, chunk_batches=10)
    assert all(np.array_equal(x, y) for x, y in zip(batches, again, strict=True))
    other = length_grouped_batches(lengths, batch_size=16, seed=1, epoch=1, chunk_batches=10)
    assert not all(np.array_equal(x, y) for x, y in zip(batches, other, strict=False))

    def padded(bs):
        return sum(len(b) * lengths[b].max() for b in bs)

    random_batches = np.array_split(rng.permutation(1000), len(batches))
    assert padded(batches) < 0.75 * padded(random_batches)


def test_collate_pads_to_batch_maximum(tokenizer):
    corpus = encode_texts(tokenizer, SENTENCES, max_length=64)
    special = torch.tensor(tokenizer.all_special_ids)
    idx = [0, 1, 2]
    b = collate(corpus, idx, tokenizer.pad_token_id, special)
    lens = [len(corpus.input_ids[i]) for i in idx]
    assert b["input_ids"].shape == (3, max(lens))
    assert b["attention_mask"].sum(1).tolist() == lens
    assert (b["word_ids"][b["attention_mask"] == 0] == -1).all()
