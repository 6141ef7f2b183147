"""Nearest neighbours, neighbourhood overlap and probe tables: what the pipeline computes (the
explorer pages only look it up), checked against brute force and hand computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import NearestNeighbors

from bertlens import neighbors as nb
from bertlens.explorer import depth_layer, pair_views
from bertlens.explorer_page import compact_neighbors
from bertlens.neighbors import (
    chance_jaccard,
    jaccard_rows,
    knn_cosine,
    knn_cosine_vectors,
    load_sentence_knn,
    match_layers,
    match_sentences,
    overlap_table,
    probe_sentence_table,
    probe_token_table,
    quantize_distances,
    sentence_knn_all,
)
from bertlens.stage import UserError
from tests.helpers.checks import needs_onednn


def brute_knn(x: np.ndarray, k: int, rows=None) -> tuple[np.ndarray, np.ndarray]:
    """Plain double loop in float64: cosine distance (0 similarity for a zero row), the row itself
    excluded, nearest first, ties by the smaller index."""
    x = np.asarray(x, dtype=np.float64)
    rows = range(len(x)) if rows is None else rows
    out_i, out_d = [], []
    for i in rows:
        cand = []
        for j in range(len(x)):
            if j == i:
                continue
            ni, nj = np.linalg.norm(x[i]), np.linalg.norm(x[j])
            sim = 0.0 if ni == 0 or nj == 0 else float(x[i] @ x[j]) / (ni * nj)
            cand.append((1.0 - sim, j))
        cand.sort()
        out_i.append([j for _, j in cand[:k]])
        out_d.append([d for d, _ in cand[:k]])
    return np.asarray(out_i), np.asarray(out_d)


@pytest.mark.parametrize("n", [300, 5000])  # 5000 > 2 x the scanned subset: the bound path
def test_knn_matches_sklearn_brute_force(n):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, 24)).astype(np.float32)
    idx, dist = knn_cosine(x, 10, block_size=700)
    ref = NearestNeighbors(n_neighbors=11, metric="cosine", algorithm="brute").fit(x)
    rd, ri = ref.kneighbors(x)
    assert (ri[:, 0] == np.arange(n)).all()  # sklearn lists the point itself first
    np.testing.assert_array_equal(idx, ri[:, 1:])
    np.testing.assert_allclose(dist, rd[:, 1:], atol=2e-6)
    assert idx.dtype == np.int32 and dist.dtype == np.float32
    assert (np.diff(dist, axis=1) >= 0).all()


def test_ties_self_exclusion_duplicates_and_zero_rows_match_double_loop():
    # exact ties: axis vectors and their duplicates give cosines of exactly 0 and 1
    x = np.array(
        [
            [1, 0, 0, 0],  # 0
            [2, 0, 0, 0],  # 1: same direction as 0 (distance 0)
            [0, 1, 0, 0],  # 2
            [0, 0, 3, 0],  # 3
            [0, 0, 0, 1],  # 4
            [0, 0, 0, 0],  # 5: zero row, similarity 0 to everything (distance 1)
            [1, 1, 0, 0],  # 6
            [0, 1, 0, 0],  # 7: duplicate of 2
        ],
        dtype=np.float32,
    )
    for k in (1, 3, 7):
        idx, dist = knn_cosine(x, k, block_size=3)
        ri, rd = brute_knn(x, k)
        np.testing.assert_array_equal(idx, ri)
        np.testing.assert_allclose(dist, rd, atol=1e-6)
    idx, dist = knn_cosine(x, 3)
    assert (idx != np.arange(len(x))[:, None]).all()  # never its own neighbour
    assert idx[0, 0] == 1 and dist[0, 0] == 0  # …but its duplicate is, at distance 0
    assert idx[2, 0] == 7 and idx[7, 0] == 2
    # the zero row: everything at distance 1, so the tie-break (smaller index) decides
    assert idx[5].tolist() == [0, 1, 2] and np.allclose(dist[5], 1.0)
    # 4 is orthogonal to all but the zero row: ties at distance 1, smaller index first
    assert idx[4].tolist() == [0, 1, 2]


def test_knn_of_some_rows_of_query_vectors_and_k_limits():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 8)).astype(np.float32)
    idx, dist = knn_cosine(x, 5, rows=[7, 3, 59])
    ri, rd = brute_knn(x, 5, rows=[7, 3, 59])
    np.testing.assert_array_equal(idx, ri)
    np.testing.assert_allclose(dist, rd, atol=1e-6)
    # outside query vectors: nothing excluded; a copy of row 11 finds row 11 at distance 0
    qi, qd = knn_cosine_vectors(x, x[[11]] * 2.5, 4)
    assert qi[0, 0] == 11 and qd[0, 0] == pytest.approx(0, abs=1e-6)
    with pytest.raises(UserError, match="only 59 other points"):
        knn_cosine(x, 60)
    assert knn_cosine(x, 59)[0].shape == (60, 59)


def test_quantised_distances_keep_four_decimals():
    d = np.array([0.0, 0.12345, 1.0, 1.99999, 2.0], dtype=np.float32)
    q = quantize_distances(d)
    assert q.dtype == np.uint16
    np.testing.assert_allclose(q / 10000, d, atol=5.1e-5)


def test_jaccard_against_hand_computation():
    a = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    b = np.array([[3, 2, 10], [1, 2, 3], [9, 8, 7]])
    # row 0: {2, 3} shared, union {1, 2, 3, 10}: 2/4; row 1: nothing shared; row 2: identical
    np.testing.assert_allclose(jaccard_rows(a, b), [0.5, 0.0, 1.0])
    # two random 5-sets of 10 others: E|A∩B| = 2.5, Jaccard 2.5 / (10 - 2.5) = 1/3
    assert chance_jaccard(11, 5) == pytest.approx(1 / 3)


def test_layers_are_matched_by_relative_depth():
    assert match_layers(6, 6) == [(i, i) for i in range(7)]
    assert match_layers(6, 12) == [(i, 2 * i) for i in range(7)]
    assert match_layers(12, 6) == [(2 * j, j) for j in range(7)]
    # 4 vs 6 layers: 6 i / 4 = 0, 1.5, 3, 4.5, 6 → halves round up
    assert match_layers(4, 6) == [(0, 0), (1, 2), (2, 3), (3, 5), (4, 6)]
    assert match_layers(2, 3) == [(0, 0), (1, 2), (2, 3)]
    assert [depth_layer(i, 12, 6) for i in (0, 1, 5, 6, 12)] == [0, 1, 3, 3, 6]


def test_overlap_table_by_hand():
    k_a = {
        ("mean", 0): np.array([[1, 2], [0, 2], [0, 1]]),
        ("mean", 1): np.array([[1, 2], [0, 2], [0, 1]]),
        ("mean", 2): np.array([[2, 1], [2, 0], [1, 0]]),
    }
    k_b = {
        ("mean", 0): np.array([[1, 2], [0, 2], [0, 1]]),  # identical: 1
        ("mean", 1): np.array([[1, 2], [2, 0], [2, 0]]),
        ("mean", 2): np.array([[1, 2], [2, 0], [1, 0]]),
        ("mean", 3): np.array([[2, 1], [0, 2], [2, 1]]),  # row 2: {0,1} vs {2,1}: 1/3
    }
    dist = np.full((3, 2), 0.5)
    zero = np.zeros((3, 2))
    ka = {key: (v, dist) for key, v in k_a.items()}
    kb = {key: (v, zero if key[1] == 0 else dist) for key, v in k_b.items()}
    table = overlap_table(ka, kb, 2, 3, ["mean", "cls"])
    assert table[["layer_a", "layer_b"]].values.tolist() == [[0, 0], [1, 2], [2, 3]]
    assert table["mean_jaccard"].tolist() == pytest.approx([1.0, 1.0, (1 + 1 + 1 / 3) / 3])
    assert table["share_identical"].tolist() == pytest.approx([1.0, 1.0, 2 / 3])
    assert table["depth_b"].tolist() == pytest.approx([0, 0.6667, 1.0])
    # B's layer-0 vectors all coincide (distance 0): flagged as tie-breaks
    assert "share one vector in B" in table["note"].iloc[0]
    assert table["note"].iloc[1] == ""


def test_sentence_knn_all_round_trips_through_npz(tmp_path):
    rng = np.random.default_rng(5)
    arrays = {
        "mean": rng.normal(size=(3, 40, 6)).astype(np.float32),
        "pooler": np.zeros((0, 40, 6), np.float32),  # a model without a pooler
    }
    out = sentence_knn_all(lambda p: arrays[p], ["mean", "pooler"], 4)
    np.savez(tmp_path / "s.npz", **out)
    loaded = load_sentence_knn(str(tmp_path / "s.npz"))
    assert sorted(loaded) == [("mean", 0), ("mean", 1), ("mean", 2)]
    for layer in range(3):
        ri, rd = brute_knn(arrays["mean"][layer], 4)
        np.testing.assert_array_equal(loaded[("mean", layer)][0], ri)
        np.testing.assert_allclose(loaded[("mean", layer)][1], rd, atol=1e-5)


def test_probe_tokens_split_absent_and_found():
    vocab = pd.DataFrame(
        {
            "token_id": range(7),
            "token": ["[PAD]", "[UNK]", "champion", "##s", "research", "3", "japan"],
            "frequency": [0, 0, 5, 9, 2, 7, 1],
        }
    )
    rng = np.random.default_rng(1)
    x = rng.normal(size=(7, 5)).astype(np.float32)
    known = set(vocab["token"])

    def tokenize(text):
        if text == "champions":
            return ["champion", "##s"]
        if not text:
            return []
        return [text.lower()] if text.lower() in known else ["[UNK]"]

    table = probe_token_table(
        ["champions", "Japan", "xyzzy", "", 3], tokenize, vocab, x, 3, "[UNK]"
    )
    first = table.groupby("probe", sort=False).first()
    assert list(first.index) == ["champions", "Japan", "xyzzy", "", "3"]
    assert first.loc["champions", "status"].startswith("split into 2 pieces")
    assert first.loc["champions", "pieces"] == "champion ##s"
    assert first.loc["xyzzy", "status"] == "absent: the tokenizer maps it to [UNK]"
    assert first.loc["", "status"].startswith("empty")
    japan = table[table["probe"] == "Japan"]
    ri, rd = brute_knn(x, 3, rows=[6])
    assert japan["neighbor_id"].tolist() == ri[0].tolist()
    assert japan["neighbor"].tolist() == vocab["token"].to_numpy()[ri[0]].tolist()
    np.testing.assert_allclose(japan["cosine_distance"], rd[0], atol=1e-5)
    assert japan["rank"].tolist() == [1, 2, 3]
    assert len(table[table["probe"] == "3"]) == 3


def test_probe_sentences_use_stored_vectors_or_encoded_ones():
    rng = np.random.default_rng(2)
    stored = rng.normal(size=(3, 12, 4)).astype(np.float32)
    texts = [f"sentence {i}." for i in range(12)]
    ids = [f"S{i}" for i in range(12)]
    probes = ["sentence 4.", "  sentence 7.", "not in the corpus"]
    matches = match_sentences(probes, texts)
    assert matches == [4, 7, None]
    encoded = {"mean": rng.normal(size=(3, 3, 4)).astype(np.float32)}
    table = probe_sentence_table(
        probes, matches, texts, ids, lambda p, layer: stored[layer], encoded, [0, 2], ["mean"], 3
    )
    assert len(table) == 3 * 2 * 3
    row4 = table[(table["probe"] == "sentence 4.") & (table["layer"] == 2)]
    ri, rd = brute_knn(stored[2], 3, rows=[4])
    assert row4["neighbor_id"].tolist() == [ids[j] for j in ri[0]]
    assert "S4" not in row4["neighbor_id"].tolist()
    np.testing.assert_allclose(row4["cosine_distance"], rd[0], atol=1e-5)
    other = table[(table["probe"] == "not in the corpus") & (table["layer"] == 0)]
    q = encoded["mean"][0, 2]
    sims = stored[0] @ q / (np.linalg.norm(stored[0], axis=1) * np.linalg.norm(q))
    assert other["neighbor_id"].tolist() == [ids[j] for j in np.argsort(-sims)[:3]]
    assert set(other["vector"]) == {"encoded alone (not in the corpus)"}


def test_page_neighbour_encoding_points_back_to_the_same_items():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(500, 6)).astype(np.float32)
    idx, dist = knn_cosine(x, 5)
    shown = np.sort(rng.choice(500, size=120, replace=False))
    data, extra, k = compact_neighbors(shown, {"s": (idx, dist)})
    assert k == 5 and data["i_s"].dtype == np.uint16
    universe = np.concatenate([shown, extra])  # page position → universe id
    np.testing.assert_array_equal(universe[data["i_s"].reshape(-1, k)], idx[shown])
    np.testing.assert_allclose(data["d_s"].reshape(-1, k) / 10000, dist[shown], atol=5.1e-5)
    assert not set(extra) & set(shown)


def test_side_by_side_views_pair_layers_by_depth():
    xy = np.zeros((3, 2), np.float32)
    views_a = {f"tsne mean L{la}": ("tsne", "mean", la, xy) for la in (0, 3, 6)}
    views_b = {f"tsne mean L{lb}": ("tsne", "mean", lb, xy) for lb in (0, 6, 12)}
    pairs = pair_views(views_a, views_b, 6, 12)
    assert [(p[2], p[3]) for p in pairs.values()] == [(0, 0), (3, 6), (6, 12)]
    # B projected only layers 0 and 2 of 2: A's layer 3 of 6 (depth 0.5 → B layer 1) falls
    # back to the nearest projected layer, the lower on a tie
    views_c = {f"tsne mean L{lb}": ("tsne", "mean", lb, xy) for lb in (0, 2)}
    pairs = pair_views(views_a, views_c, 6, 2)
    assert [(p[2], p[3]) for p in pairs.values()] == [(0, 0), (3, 0), (6, 2)]


def test_blocks_and_subset_bound_do_not_change_results(monkeypatch):
    """The same neighbours whatever the block size; their distances to float32 rounding (a
    block's matrix product may take another BLAS kernel: on an AMD EPYC one row at a time is
    1 ulp off the whole matrix at once)."""
    rng = np.random.default_rng(9)
    x = rng.normal(size=(700, 5)).astype(np.float32)
    ref = knn_cosine(x, 6, block_size=1000)
    monkeypatch.setattr(nb, "_SUBSET", 16)  # a loose bound: many candidates per row
    for block in (1, 33, 700):
        idx, dist = knn_cosine(x, 6, block_size=block)
        np.testing.assert_array_equal(idx, ref[0])
        np.testing.assert_allclose(dist, ref[1], rtol=0, atol=4e-7)


def test_probe_sentences_are_encoded_in_the_corpus_vectors_precision(minilm, english, tmp_path):
    """A probe sentence not in the corpus is encoded as the embedding stage encoded the corpus:
    under bf16 autocast when its facts say bf16 ran, so the two are compared in one precision."""
    from bertlens.embeddings import sentence_embeddings
    from bertlens.tokenstats import tokenize_texts

    model, tokenizer = minilm
    texts = english[:4]
    ids = list(tokenize_texts(tokenizer, texts, max_length=128)["input_ids"])
    paths = {p: str(tmp_path / f"{p}.npy") for p in ("cls", "mean", "pooler")}
    facts = sentence_embeddings(
        model, ids, tokenizer.pad_token_id, 1, ["mean"], paths, workers=1, bf16=True
    )
    stored = np.load(paths["mean"])
    alone = nb.encode_sentences(model, tokenizer, texts, ["mean"], 128, bf16=facts["bf16"])
    assert np.abs(alone["mean"] - stored).max() < 1e-5
    if facts["bf16"]:  # the precision matters: float32 would be off by far more
        fp32 = nb.encode_sentences(model, tokenizer, texts, ["mean"], 128)
        assert np.abs(fp32["mean"] - stored).max() > 1e-4


@needs_onednn
def test_probe_sentences_are_encoded_on_the_corpus_vectors_linear_library(
    minilm, english, tmp_path
):
    """... and on the linear-layer library its facts say ran (``embeddings.cpu_matmul``): one
    sentence per batch on either side, so the two are the same computation, bit for bit."""
    from bertlens.embeddings import sentence_embeddings
    from bertlens.tokenstats import tokenize_texts

    model, tokenizer = minilm
    texts = english[:4]
    ids = list(tokenize_texts(tokenizer, texts, max_length=128)["input_ids"])
    paths = {p: str(tmp_path / f"{p}.npy") for p in ("cls", "mean", "pooler")}
    facts = sentence_embeddings(
        model, ids, tokenizer.pad_token_id, 1, ["mean"], paths, workers=1, cpu_matmul="onednn"
    )
    stored = np.load(paths["mean"])
    kernel = facts["matmul"]["kernel"]
    alone = nb.encode_sentences(model, tokenizer, texts, ["mean"], 128, kernel=kernel)
    assert np.array_equal(alone["mean"], stored)
    torch_kernel = nb.encode_sentences(model, tokenizer, texts, ["mean"], 128)
    assert not np.array_equal(torch_kernel["mean"], stored)  # the library was really switched
