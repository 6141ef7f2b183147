"""BERT masking on real tokenized batches: rates, special tokens, labels, whole words, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertlens.encoding import encode_texts, japanese_word_pieces, words_from_continuation
from bertlens.mlm import IGNORE_INDEX, collate, mask_tokens, random_token_pool
from bertlens.vocab import load_trained_tokenizer
from tests.helpers.training import SENTENCES, train_vocab

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


#: BERT's masking (the schema's defaults of a run's `masking:` block)
BERT_MASKING = {"probability": 0.15, "mask_replace": 0.8, "random_replace": 0.1}


def _mask(tokenizer, batch, gen, whole_word=False, **kw):
    return mask_tokens(
        batch["input_ids"],
        batch["attention_mask"],
        batch["special_mask"],
        batch["word_ids"] if whole_word else None,
        vocab_size=len(tokenizer),
        mask_id=tokenizer.mask_token_id,
        generator=gen,
        **{**BERT_MASKING, **kw},
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


def test_epoch_sampler_groups_lengths_reproducibly():
    from bertlens.training import EpochSampler

    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 100, size=1000).tolist()
    sampler = EpochSampler(1000, 16, lengths, seed=1)
    order = list(sampler)
    assert sorted(order) == list(range(1000))  # every sentence exactly once
    assert list(sampler) == order  # the same epoch gives the same order
    sampler.set_epoch(1)
    assert list(sampler) != order
    lens = np.array(lengths)

    def padded(idx):
        return sum(len(b) * lens[b].max() for b in np.array_split(np.array(idx), 1000 // 16))

    assert padded(order) < 0.75 * padded(rng.permutation(1000))
    shuffle = EpochSampler(1000, 16, None, seed=1)  # the notebook's plain shuffle
    assert sorted(shuffle) == list(range(1000)) and list(shuffle) == list(shuffle)


def _collator(tokenizer, objective, **kw):
    from bertlens.mlm import MlmCollator

    special = torch.tensor(sorted(set(tokenizer.all_special_ids)))
    return MlmCollator(
        objective=objective,
        pad_id=tokenizer.pad_token_id,
        mask_id=tokenizer.mask_token_id,
        vocab_size=len(tokenizer),
        special_ids=special,
        **{**BERT_MASKING, "whole_word": False, "max_length": 128, "seed": 0, **kw},
    )


def _features(corpus, start=0, masked=None):
    from bertlens.mlm import EncodedDataset

    data = EncodedDataset(corpus, masked)
    return [data[i] for i in range(start, len(data))]


def test_collator_bert_proportions_and_whole_words(tokenizer):
    corpus = encode_texts(tokenizer, SENTENCES * 4, max_length=64)
    feats = _features(corpus)
    chosen = masked = randomised = eligible = split_words = 0
    for seed in range(40):
        b = _collator(tokenizer, "bert", whole_word=True, seed=seed)(feats)
        sel = b["labels"] != IGNORE_INDEX
        ids = b["input_ids"]
        chosen += int(sel.sum())
        masked += int((ids[sel] == tokenizer.mask_token_id).sum())
        randomised += int(
            ((ids[sel] != b["labels"][sel]) & (ids[sel] != tokenizer.mask_token_id)).sum()
        )
        real = b["attention_mask"].bool()
        eligible += int(real.sum()) - 2 * len(feats)  # all but [CLS] and [SEP]
        words = [f["word_ids"] for f in feats]
        for row, w in enumerate(words):  # a word is chosen whole or not at all
            picked = sel[row, : len(w)]
            for word in w[w >= 0].unique():
                part = picked[w == word]
                split_words += int(part.any() and not part.all())
    assert abs(chosen / eligible - 0.15) < 0.02
    assert abs(masked / chosen - 0.8) < 0.03 and abs(randomised / chosen - 0.1) < 0.02
    assert split_words == 0
    assert (b["input_ids"][b["attention_mask"] == 0] == tokenizer.pad_token_id).all()
    assert b["input_ids"].shape[1] == max(len(f["input_ids"]) for f in feats)  # dynamic padding


def test_collator_notebook_objective(tokenizer):
    """Seed 002: masks drawn once (the same in every epoch), [MASK] always, rows padded to
    max_length, labels = input ids at every position including the pads."""
    from bertlens.mlm import notebook_masks

    corpus = encode_texts(tokenizer, SENTENCES, max_length=64)
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)))
    masks = notebook_masks(corpus, special, tokenizer.mask_token_id, 0.15, seed=3)
    collator = _collator(tokenizer, "notebook", max_length=64)
    first = collator(_features(corpus, masked=masks))
    again = collator(_features(corpus, masked=masks))  # a later epoch: the same features
    assert torch.equal(first["input_ids"], again["input_ids"])
    assert first["input_ids"].shape[1] == 64 and first["labels"].shape == first["input_ids"].shape
    assert (first["labels"] != IGNORE_INDEX).all()  # every position is a target
    pads = first["attention_mask"] == 0
    assert pads.any() and (first["labels"][pads] == tokenizer.pad_token_id).all()
    changed = first["input_ids"] != first["labels"]
    assert (first["input_ids"][changed] == tokenizer.mask_token_id).all()  # [MASK] always
    assert not torch.isin(first["labels"][changed], special).any()
    real = (~pads) & ~torch.isin(first["labels"], special)
    assert abs(changed.sum() / real.sum() - 0.15) < 0.04


def test_collator_all_tokens_labels_every_real_token(tokenizer):
    corpus = encode_texts(tokenizer, SENTENCES, max_length=64)
    b = _collator(tokenizer, "all_tokens", seed=1)(_features(corpus))
    real = b["attention_mask"].bool()
    assert ((b["labels"] != IGNORE_INDEX) == real).all()
    assert (b["input_ids"] == tokenizer.mask_token_id).any()


def test_collate_pads_to_batch_maximum(tokenizer):
    corpus = encode_texts(tokenizer, SENTENCES, max_length=64)
    special = torch.tensor(tokenizer.all_special_ids)
    idx = [0, 1, 2]
    b = collate(corpus, idx, tokenizer.pad_token_id, special)
    lens = [len(corpus.input_ids[i]) for i in idx]
    assert b["input_ids"].shape == (3, max(lens))
    assert b["attention_mask"].sum(1).tolist() == lens
    assert (b["word_ids"][b["attention_mask"] == 0] == -1).all()


def test_packing_keeps_every_token_and_word_groups(tokenizer):
    from bertlens.encoding import pack_sentences

    corpus = encode_texts(tokenizer, SENTENCES, max_length=64)
    packed = pack_sentences(corpus, 64, seed=0)
    assert len(packed.input_ids) < len(corpus.input_ids)
    assert max(len(r) for r in packed.input_ids) <= 64
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    assert all(r[0] == cls and r[-1] == sep for r in packed.input_ids)
    # every sentence's tokens once: [CLS] per row, the rest as they were
    total = sum(len(r) - 1 for r in packed.input_ids)
    assert total == sum(len(r) - 1 for r in corpus.input_ids)
    n_words = sum(int(w.max()) + 1 for w in corpus.word_ids)
    assert sum(int(w.max()) + 1 for w in packed.word_ids) == n_words  # distinct within a row


def test_eval_set_is_capped_and_training_rows_stay_the_same():
    """Evaluation scores at most eval_max_sentences of the held-out split (its cost must not
    grow with the corpus), and the sentences trained on are those of the uncapped split."""
    from bertlens.mlm import TrainArgs, _split
    from tests.helpers.training import tiny_run_config

    texts = [f"文 {i}" for i in range(5000)]
    capped = TrainArgs.from_config(tiny_run_config(eval_max_sentences=100), "r", "cpu")
    whole = TrainArgs.from_config(tiny_run_config(eval_max_sentences=None), "r", "cpu")
    assert capped.eval_fraction == whole.eval_fraction
    train_c, eval_c = _split(capped, texts)
    train_w, eval_w = _split(whole, texts)
    assert len(eval_w) == round(5000 * whole.eval_fraction) > 100
    assert len(eval_c) == 100 and set(eval_c) <= set(eval_w)
    np.testing.assert_array_equal(train_c, train_w)
    assert not set(train_c) & set(eval_w)
    default = TrainArgs.from_config(tiny_run_config(), "r", "cpu")
    assert default.eval_max_sentences == 2000  # the schema's default reaches the run
