"""The layer lens: CKA, Ethayarajh's measures, probes with control tasks, the logit lens, and the
token-level vectors of a real (tiny) model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from bertlens.contextuality import (
    anisotropy,
    cka_matrix,
    linear_cka,
    measures_table,
    mev,
    self_similarity,
    shared_words,
)
from bertlens.layers import contextual_vectors, load_vectors, word_vectors
from bertlens.logitlens import held_out_rows, lens_logits, logit_lens
from bertlens.models import ModelSpec, load_model, load_tokenizer, location
from bertlens.probes import control_labels, probe_layers, sentence_split
from bertlens.tokenstats import token_counts, tokenize_texts

SETTINGS = {"sentences": 40, "seed": 3, "batch_size": 16}


@pytest.fixture(scope="module")
def texts(english):
    return english[:80]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_bert, texts):
    """A tiny BERT with an MLM head, its tokenizer, and its token vectors of 40 sentences."""
    path = tiny_bert(seed=1, with_mlm_head=True)
    spec = ModelSpec.from_config({"name": "tiny", "path": str(path), "column": "en"})
    tokenizer = load_tokenizer(spec, location(spec))
    out = tmp_path_factory.mktemp("vectors")
    tokens = tokenize_texts(tokenizer, texts, 64)
    facts = contextual_vectors(
        load_model(spec, str(path)),
        tokenizer,
        texts,
        tokens,
        token_counts(tokens, len(tokenizer)),
        "en",
        SETTINGS,
        str(out / "v.npy"),
        str(out / "t.parquet"),
    )
    return {
        "path": path,
        "tokenizer": tokenizer,
        "tokens": tokens,
        "facts": facts,
        "vectors": load_vectors(str(out / "v.npy")),
        "table": pd.read_parquet(out / "t.parquet"),
    }


def test_cka_of_a_matrix_with_itself_is_one():
    x = np.random.default_rng(0).normal(size=(300, 20))
    assert linear_cka(x, x) == pytest.approx(1.0)


def test_cka_ignores_rotation_and_isotropic_scaling_but_not_other_maps():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 20))
    q, _ = np.linalg.qr(rng.normal(size=(20, 20)))
    assert linear_cka(x, 7.5 * x @ q) == pytest.approx(1.0)
    # an anisotropic scaling is not a similarity transform: CKA drops
    assert linear_cka(x, x * np.r_[np.full(10, 10.0), np.full(10, 0.1)]) < 0.9


def test_cka_matrix_equals_pairwise_cka():
    rng = np.random.default_rng(7)
    a = rng.normal(size=(3, 200, 12))
    a[1] += a[0]
    b = rng.normal(size=(2, 200, 5))
    for x, y in ((a, a), (a, b)):
        want = [[linear_cka(x[i], y[j]) for j in range(len(y))] for i in range(len(x))]
        np.testing.assert_allclose(cka_matrix(x, y), want, rtol=1e-4)


def test_cka_of_independent_random_matrices_is_low():
    rng = np.random.default_rng(2)
    assert linear_cka(rng.normal(size=(1000, 16)), rng.normal(size=(1000, 24))) < 0.1


def test_anisotropy_of_isotropic_and_of_coned_vectors():
    rng = np.random.default_rng(3)
    iso = rng.normal(size=(3000, 64))
    assert abs(anisotropy(iso, 5000, rng)) < 0.03
    common = np.zeros(64)
    common[5] = 60.0  # expected cosine 60^2 / (60^2 + 64) = 0.98
    assert anisotropy(iso + common, 5000, rng) > 0.95


def test_self_similarity_and_mev_of_static_and_random_vectors():
    rng = np.random.default_rng(4)
    static = np.repeat(rng.normal(size=(1, 32)), 6, axis=0)
    assert self_similarity(static, [np.arange(6)]) == pytest.approx(1.0)
    assert mev(static) == pytest.approx(1.0)
    noise = rng.normal(size=(200, 32))
    assert mev(noise) < 0.2
    assert abs(self_similarity(noise, [np.arange(200)])) < 0.05


def test_measures_subtract_the_anisotropy_baseline():
    rng = np.random.default_rng(5)
    words = rng.normal(size=(2, 120, 16)) + np.r_[8.0, np.zeros(15)]
    table = pd.DataFrame(
        {"sentence": np.arange(120) // 6, "word_type": [f"w{i % 10}" for i in range(120)]}
    )
    m = measures_table(words, table, 5, 2000, 0)
    self_sim = m[m["measure"] == "self_similarity"].iloc[0]
    base = m[m["measure"] == "anisotropy"].iloc[0]["raw"]
    assert self_sim["baseline"] == base and base > 0.5
    assert self_sim["adjusted"] == pytest.approx(self_sim["raw"] - base)
    assert abs(self_sim["adjusted"]) < 0.1  # random words of a cone: nothing beyond the cone


def test_token_vectors_are_the_models_hidden_states(tiny):
    table, vectors, tokenizer = tiny["table"], tiny["vectors"], tiny["tokenizer"]
    n_sent = table["sentence"].nunique()
    assert tiny["facts"]["sentences"] == n_sent == SETTINGS["sentences"]
    assert vectors.shape == (3, len(table), 32)
    first = table[table["sentence"] == 0]
    assert first["position"].tolist() == list(range(1, len(first) + 1))
    # every piece belongs to a whitespace word of its sentence and words start with a piece
    assert first.groupby("word_index")["word_initial"].sum().eq(1).all()
    model = load_model(ModelSpec.from_config({"name": "t", "path": str(tiny["path"])} | {"column": "en"}),
                       str(tiny["path"]))  # fmt: skip
    ids = [tokenizer.cls_token_id, *first["token_id"], tokenizer.sep_token_id]
    with torch.inference_mode():
        states = model(torch.tensor([ids]), output_hidden_states=True).hidden_states
    for layer, h in enumerate(states):
        np.testing.assert_allclose(vectors[layer, first.index], h[0, 1:-1].numpy(), atol=1e-5)


def test_word_vectors_average_pieces_and_pair_across_models(tiny):
    words, wt = word_vectors(tiny["vectors"], tiny["table"])
    table = tiny["table"]
    assert words.shape[1] == len(wt) == len(table.groupby(["sentence", "word_index"]))
    ia, ib, n = shared_words(wt, wt.sample(frac=1, random_state=0).reset_index(drop=True))
    assert n == len(wt)
    np.testing.assert_allclose(cka_matrix(words[:, ia], words[:, ia]).diagonal(), 1.0, rtol=1e-5)


#: the probe settings of the schema's `layers:` defaults, seed 0
PROBE = {"test_fraction": 0.25, "max_iter": 200, "seed": 0}


def test_probe_finds_a_planted_direction_and_the_control_task_does_not(tiny):
    table, vectors = tiny["table"], np.asarray(tiny["vectors"])
    rng = np.random.default_rng(6)
    label = rng.integers(0, 2, len(table))  # independent of the token: only the plant tells it
    direction = rng.normal(size=vectors.shape[2])
    planted = vectors + 3.0 * (label[:, None] * direction / np.linalg.norm(direction))
    result = probe_layers(
        planted, label, table["piece"].to_numpy(), table["sentence"].to_numpy(), **PROBE
    )
    assert (result["accuracy"] > 0.95).all(), result
    assert (result["control_accuracy"] < 0.8).all(), result
    assert (result["selectivity"] > 0.2).all(), result
    # without the plant the probe is near the majority baseline
    plain = probe_layers(
        vectors, label, table["piece"].to_numpy(), table["sentence"].to_numpy(), **PROBE
    )
    assert (plain["accuracy"] < plain["majority"] + 0.1).all(), plain


def test_control_labels_are_one_per_type_and_split_keeps_sentences_whole():
    types = np.array(["a", "b", "a", "c", "b", "a"])
    labels = np.array(["x", "y", "x", "y", "x", "x"])
    control = control_labels(labels, types, 0)
    for t in set(types):
        assert len(set(control[types == t])) == 1
    sentences = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    train, test = sentence_split(sentences, 0.5, 0)
    assert not set(sentences[train]) & set(sentences[test])


def test_logit_lens_at_the_last_layer_is_the_mlm_output(tiny):
    tokenizer = tiny["tokenizer"]
    spec = ModelSpec.from_config({"name": "t", "path": str(tiny["path"]), "column": "en"})
    model = load_model(spec, str(tiny["path"]), head="mlm")
    ids = torch.tensor([list(tiny["tokens"]["input_ids"][0])])
    where = torch.zeros_like(ids, dtype=torch.bool)
    where[0, 1:-1] = True
    logits = lens_logits(model, ids, torch.ones_like(ids), where)
    assert len(logits) == model.config.num_hidden_layers + 2
    torch.testing.assert_close(logits[-2], logits[-1])
    assert not torch.allclose(logits[0], logits[-1])
    table = logit_lens(
        model,
        list(tiny["tokens"]["input_ids"][:10]),
        tokenizer.mask_token_id,
        tokenizer.pad_token_id,
        set(tokenizer.all_special_ids),
        probability=0.15,
        seed=0,
        batch_size=4,
    )
    last = table.iloc[-1]
    assert last["agrees_with_final"] == 1.0 and last["median_rank_of_final"] == 1.0
    assert table["masked_positions"].eq(table["masked_positions"].iloc[0]).all()


def test_held_out_rows_skip_empty_texts():
    texts = ["a", "", "b", "c", "  ", "d", "e", "f", "g", "h", "i", "j"]
    rows = held_out_rows(texts, seed=0, eval_fraction=0.2)
    assert len(rows) == 2 and not {1, 4} & set(rows)


def test_no_usable_sentence_is_one_clear_error_and_no_output(tiny, texts, tmp_path):
    """Every sentence truncated: one line saying what was skipped, and no vectors file."""
    from bertlens.stage import UserError

    tokens = tiny["tokens"].assign(truncated=True)
    spec = ModelSpec.from_config({"name": "t", "path": str(tiny["path"]), "column": "en"})
    with pytest.raises(UserError, match=r"no corpus sentence could be aligned.*'truncated': 80"):
        contextual_vectors(
            load_model(spec, str(tiny["path"])),
            tiny["tokenizer"],
            texts,
            tokens,
            token_counts(tokens, len(tiny["tokenizer"])),
            "en",
            SETTINGS,
            str(tmp_path / "v.npy"),
            str(tmp_path / "t.parquet"),
        )
    assert list(tmp_path.iterdir()) == []
