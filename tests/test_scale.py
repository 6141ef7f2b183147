"""What keeps large and degenerate inputs from crashing or misleading: degenerate matrices found
where the vectors are made, approximate k-NN with measured recall, ties that stay linear, t-SNE
fitted on a sample, and jobs that never start more threads than the machine has."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from bertlens.neighbors import (
    knn_between,
    knn_cosine,
    knn_facts,
    knn_search,
    overlap_table,
    probe_sentence_table,
    recall_at_k,
    search_notes,
    sentence_knn_all,
    unit_rows,
)
from bertlens.projection import neighbors_kept, tsne_2d, tsne_neighbors
from bertlens.spread import SpreadMeter, degenerate_matrices, degenerate_report
from bertlens.stage import UserError, configure_threads, usable_cpus

# NN-descent's numba threads: numba refuses more than the machine has
THREADS = min(2, usable_cpus())


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(4, n // 200), dim))
    return (centres[rng.integers(0, len(centres), n)] + 0.8 * rng.normal(size=(n, dim))).astype(
        np.float32
    )


# --------------------------------------------------------------------------- spread
def test_spread_is_zero_for_one_direction_and_high_for_spread_rows():
    rng = np.random.default_rng(0)
    same = np.tile(rng.normal(size=(1, 16)), (50, 1)) * rng.uniform(0.5, 2, size=(50, 1))
    spread = rng.normal(size=(50, 16))
    meter = SpreadMeter(2, 16)
    for rows in np.array_split(np.arange(50), 4):  # batch by batch, as the stage streams
        meter.add(np.stack([same[rows], spread[rows]]).astype(np.float32), "mean", rows)
    s = meter.spread()
    assert s[0] < 1e-6  # same direction (different lengths): nothing for cosine to see
    assert s[1] > 0.8
    found = degenerate_report({"cls": s}, 50, 1e-6)
    assert [(d["pooling"], d["layer"]) for d in found] == [("cls", 0)]
    assert "[CLS] token's input embedding" in found[0]["reason"]
    facts = {"sentences": {"degenerate": found}}
    assert list(degenerate_matrices(facts)) == [("cls", 0)]


def test_all_zero_rows_count_as_degenerate():
    meter = SpreadMeter(1, 4)
    meter.add(np.zeros((1, 10, 4), np.float32), "mean", np.arange(10))
    assert meter.spread() == [0.0]


def test_non_finite_vectors_stop_with_the_row():
    block = np.ones((3, 5, 4), np.float32)
    block[2, 3, 1] = np.nan
    with pytest.raises(UserError, match=r"non-finite .*mean vectors \(layer 2, row 13\)"):
        SpreadMeter(3, 4).add(block, "mean", np.arange(10, 15))


# --------------------------------------------------------------------------- k-NN
def test_identical_vectors_stay_linear_and_break_ties_by_index():
    x = np.ones((3000, 8), np.float32)
    idx, dist = knn_cosine(x, 5)
    assert idx[0].tolist() == [1, 2, 3, 4, 5]
    assert idx[7].tolist() == [0, 1, 2, 3, 4]
    assert np.allclose(dist, 0, atol=1e-6)


def test_heavy_tie_rows_mixed_with_normal_rows_match_brute_force():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(400, 6)).astype(np.float32)
    x[100:300] = x[100]  # 200 copies: rows with hundreds of ties at distance 0
    idx, dist = knn_cosine(x, 7, block_size=64)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = xn.astype(np.float64) @ xn.T.astype(np.float64)
    np.fill_diagonal(sim, -np.inf)
    for i in (0, 100, 150, 299, 399):
        order = np.lexsort((np.arange(len(x)), -np.round(sim[i], 6)))[:7]
        assert idx[i].tolist() == order.tolist(), i


def test_approximate_search_reaches_its_recall_and_is_deterministic():
    x = clustered(6000, 32, seed=1)
    idx, dist, facts = knn_search(x, 10, "approximate", recall_target=0.95, seed=3, threads=THREADS)
    assert facts["method"] == "approximate" and facts["recall_at_k"] >= 0.95
    assert facts["index"].startswith("pynndescent NN-descent") and facts["threads"] == THREADS
    # independent check on other queries
    rows = np.arange(0, 6000, 37)
    _, exact = knn_cosine(x, 10, rows=rows)
    assert recall_at_k(dist[rows], exact) >= 0.9
    assert (idx != np.arange(6000)[:, None]).all()  # never its own neighbour
    assert (np.diff(dist, axis=1) >= 0).all()
    again = knn_search(x, 10, "approximate", recall_target=0.95, seed=3, threads=THREADS)
    np.testing.assert_array_equal(idx, again[0])
    np.testing.assert_array_equal(dist, again[1])


def test_approximate_search_of_duplicated_rows_finds_their_copies():
    """Repeated sentences (one of them 300 times) have identical vectors: each copy's
    neighbours are other copies at distance 0, never itself."""
    x = clustered(6000, 32, seed=2)
    x[1000:1300] = x[1000]
    x[4000:4003] = x[4000]
    idx, dist, facts = knn_search(x, 10, "approximate", seed=0, threads=THREADS)
    assert facts["method"] == "approximate" and facts["recall_at_k"] >= 0.95
    for row in (1000, 1150, 1299):
        assert set(idx[row]) <= set(range(1000, 1300)) - {row}
        assert np.allclose(dist[row], 0, atol=1e-6)
    assert set(idx[4001, :2]) == {4000, 4002} and np.allclose(dist[4001, :2], 0, atol=1e-6)
    assert (idx != np.arange(6000)[:, None]).all()


def test_approximate_search_finds_rows_at_cosine_zero_exactly():
    """All-zero rows are at cosine distance 1 from everything, which NN-descent's inner-product
    distance takes as infinitely far: those rows get the exact answer (the first rows, ties by
    index)."""
    x = clustered(6000, 32, seed=3)
    x[[10, 2000, 5999]] = 0.0
    idx, dist, facts = knn_search(x, 10, "approximate", seed=0, threads=THREADS)
    assert facts["method"] == "approximate"
    exact_idx, exact_dist = knn_cosine(x, 10, rows=[10, 2000, 5999])
    np.testing.assert_array_equal(idx[[10, 2000, 5999]], exact_idx)
    np.testing.assert_allclose(dist[[10, 2000, 5999]], exact_dist, atol=1e-6)
    assert np.allclose(dist[10], 1.0, atol=1e-6)


def test_approximate_search_of_every_other_row_builds_at_most_n_minus_1_per_point(recwarn):
    # k = n - 1: a graph of k + 1 = n per point cannot be filled (pynndescent warns); n - 1 per
    # point leaves each row one short (recall 18/19), and the stage searches exactly
    x = clustered(20, 8, seed=4)
    idx, dist, facts = knn_search(x, 19, "approximate", threads=THREADS)
    np.testing.assert_allclose(dist, knn_cosine(x, 19)[1], atol=1e-6)
    assert "19 neighbours per point" in facts.get("index", facts.get("note", ""))
    assert not [w for w in recwarn if "n_neighbors" in str(w.message)]


def test_nndescent_widens_its_graph_until_the_recall_is_reached_or_searches_exactly():
    # random directions in 64 dimensions have no clusters: k + 1 neighbours per point are not
    # enough for recall 0.95 (0.59, then 0.93 with 22), so the graph is built again, wider
    x = np.random.default_rng(0).normal(size=(3000, 64)).astype(np.float32)
    idx, dist, facts = knn_search(x, 10, "approximate", recall_target=0.95, threads=THREADS)
    assert facts["method"] == "approximate" and facts["recall_at_k"] >= 0.95
    assert not facts["index"].endswith(" 11 neighbours per point")
    idx, dist, facts = knn_search(x, 10, "approximate", recall_target=1.0, threads=THREADS)
    assert facts["method"] == "exact" and "exact search instead" in facts["note"]
    np.testing.assert_array_equal(idx, knn_cosine(x, 10)[0])


def test_rows_the_probed_lists_cannot_fill_are_searched_again():
    # k near the mean list size: with one list scanned many rows fall short of k neighbours
    x = clustered(20000, 16, seed=7)
    idx, dist, facts = knn_search(x, 120, "approximate", recall_target=0.5, seed=0, index="ivf")
    assert facts["index"].endswith("nprobe 1")
    assert (idx >= 0).all() and (idx != np.arange(20000)[:, None]).all()
    assert (np.diff(dist, axis=1) >= 0).all()
    rows = np.arange(0, 20000, 97)
    assert recall_at_k(dist[rows], knn_cosine(x, 120, rows=rows)[1]) >= 0.5


def test_search_in_list_order_gives_the_plain_search_result():
    from bertlens.neighbors import _ivf_index, search_in_list_order, unit_rows

    xn = unit_rows(clustered(5000, 16, seed=5))
    index = _ivf_index(xn, seed=0)
    index.nprobe = 2
    sim, idx = search_in_list_order(index, xn[:3000], 12)
    plain_sim, plain_idx = index.search(xn[:3000], 12)
    np.testing.assert_array_equal(idx, plain_idx)
    np.testing.assert_array_equal(sim, plain_sim)


def test_auto_is_exact_below_the_threshold_and_approximate_above():
    x = clustered(4000, 16)
    _, _, small = knn_search(x, 5, "auto", exact_max=4000)
    _, _, large = knn_search(x, 5, "auto", exact_max=3999)
    assert small["method"] == "exact" and small["recall_at_k"] == 1.0
    assert large["method"] == "approximate"


def test_recall_counts_ties_as_found():
    exact = np.array([[0.1, 0.2, 0.3]])
    assert recall_at_k(np.array([[0.1, 0.2, 0.3]]), exact) == 1.0
    assert recall_at_k(np.array([[0.1, 0.3, 0.3]]), exact) == 1.0  # another point at the k-th
    assert recall_at_k(np.array([[0.1, 0.2, 0.4]]), exact) == pytest.approx(2 / 3)


def test_degenerate_matrices_are_skipped_with_their_reason(tmp_path):
    rng = np.random.default_rng(2)
    cls = rng.normal(size=(3, 60, 8)).astype(np.float32)
    cls[0] = cls[0, :1]  # layer 0: one vector for every sentence
    skip = {("cls", 0): "all the same"}
    out = sentence_knn_all(lambda p: cls, ["cls"], 4, skip=skip)
    np.savez(tmp_path / "k.npz", **out)
    facts = knn_facts(str(tmp_path / "k.npz"))
    assert facts["cls/layer0"] == {"skipped": "all the same"}
    assert facts["cls/layer1"]["method"] == "exact"
    assert "cls_L0_idx" not in out and "cls_L1_idx" in out
    table = overlap_table(
        {("cls", 1): (out["cls_L1_idx"], out["cls_L1_dist"])},
        {("cls", 1): (out["cls_L1_idx"], out["cls_L1_dist"])},
        1,
        1,
        ["cls"],
        (skip, {}),
    )
    assert table.loc[0, "note"] == "A skipped: all the same"
    assert table.loc[1, "mean_jaccard"] == 1.0
    probes = probe_sentence_table(
        ["p"], [3], [f"s{i}" for i in range(60)], [str(i) for i in range(60)],
        lambda p, layer: cls[layer], {}, [0, 1], ["cls"], 2, skip,
    )  # fmt: skip
    assert probes.loc[0, "vector"] == "skipped: all the same"
    assert (probes["layer"] == 1).sum() == 2


# --------------------------------------------------------------------------- t-SNE
def test_tsne_fitted_on_a_sample_places_every_point():
    x = clustered(1200, 10, seed=5)
    coords, facts = tsne_2d(x, 10, seed=1, n_iter=100, fit_max=400)
    assert coords.shape == (1200, 2) and np.isfinite(coords).all()
    assert facts["fitted_points"] == 400 and "sample of 400 of 1,200" in facts["note"]
    # points placed at the median of their nearest fitted points land among their own cluster
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(6, 10))
    label = rng.integers(0, 6, 1200)
    assert np.allclose(x, centres[label] + 0.8 * rng.normal(size=(1200, 10)), atol=1e-5)
    from sklearn.neighbors import KNeighborsClassifier

    acc = KNeighborsClassifier(5).fit(coords[:600], label[:600]).score(coords[600:], label[600:])
    assert acc > 0.9


def test_tsne_neighbours_are_the_exact_ones_as_euclidean_distances_of_unit_rows():
    x = clustered(900, 16, seed=2)
    xn = unit_rows(x)
    idx, dist, facts = tsne_neighbors(xn, 10, seed=0, threads=1)
    assert idx.shape == (900, 30) and facts["method"] == "exact"  # openTSNE's 3 x perplexity
    np.testing.assert_array_equal(idx, knn_cosine(x, 30)[0])
    np.testing.assert_allclose(dist, np.linalg.norm(xn[:, None] - xn[idx], axis=2), atol=1e-5)
    _, facts = tsne_2d(x, 10, seed=1, n_iter=100)
    assert facts["neighbors"]["method"] == "exact"
    _, facts = tsne_2d(x, 10, seed=1, n_iter=100, metric="euclidean")
    assert facts["neighbors"]["method"].startswith("openTSNE's own")


def test_neighbours_kept_is_one_for_the_data_itself_and_near_chance_for_noise():
    rng = np.random.default_rng(0)
    xy = rng.normal(size=(3000, 2)).astype(np.float32)
    x = np.hstack([xy, np.zeros((3000, 3), np.float32)])
    same = neighbors_kept(x, xy, "euclidean", points=300)
    assert same == {"share": 1.0, "k": 10, "points": 300}
    noise = neighbors_kept(x, rng.normal(size=(3000, 2)), "euclidean", points=300)
    assert noise["share"] < 0.05
    # a sampled map says in its note how much neighbourhood it kept
    coords, facts = tsne_2d(clustered(1200, 10, seed=5), 10, seed=1, n_iter=100, fit_max=400)
    assert 0 < facts["neighbors_kept"]["share"] <= 1
    assert f"keeps {facts['neighbors_kept']['share']:.0%} of the 10 nearest" in facts["note"]


def test_sampled_tsne_of_messy_rows_stays_finite():
    # a user's corpus: the same sentence many times over and rows whose vectors are all zero
    x = clustered(1500, 12, seed=3)
    x[100:400] = x[100]
    x[500:520] = 0.0
    coords, facts = tsne_2d(x, 10, seed=2, n_iter=100, fit_max=500)
    assert coords.shape == (1500, 2) and np.isfinite(coords).all()
    assert facts["fitted_points"] == 500 and np.isfinite(facts["kl_divergence"])
    assert np.ptp(coords[100:400], axis=0).max() < np.ptp(coords, axis=0).max() / 4


def test_rows_placed_through_an_inverted_index_find_their_nearest_fitted_rows():
    x = unit_rows(clustered(3000, 16, seed=4))
    base, queries = x[:2000], x[2000:]
    truth = np.argsort(-(queries @ base.T), axis=1, kind="stable")[:, :10]
    exact = knn_between(base, queries, 10)
    assert np.mean(np.sort(exact, axis=1) == np.sort(truth, axis=1)) > 0.99
    ivf = knn_between(base, queries, 10, seed=1, exact_max=1000, nprobe=4)
    found = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ivf, truth, strict=True)])
    assert found > 0.8
    again = knn_between(base, queries, 10, seed=1, exact_max=1000, nprobe=4)
    np.testing.assert_array_equal(ivf, again)


# --------------------------------------------------------------------------- threads
def test_threads_never_exceed_the_usable_cpus(monkeypatch):
    import torch
    from threadpoolctl import threadpool_info

    before = torch.get_num_threads()
    try:
        n = configure_threads(10 * usable_cpus())
        assert n == usable_cpus()
        assert torch.get_num_threads() == n
        assert os.environ["OMP_NUM_THREADS"] == str(n)
        assert all(p["num_threads"] <= n for p in threadpool_info())
        assert configure_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)


def test_knn_facts_of_an_old_file_are_empty(tmp_path):
    np.savez(tmp_path / "old.npz", k=np.asarray(3))
    assert knn_facts(str(tmp_path / "old.npz")) == {}
    assert json.loads(json.dumps({})) == {}


def test_page_notes_say_how_neighbours_and_maps_were_made():
    knn = {
        "vocab": {"method": "exact", "points": 300, "recall_at_k": 1.0},
        "cls/layer0": {"skipped": "all the same"},
        "mean/layer1": {
            "method": "approximate",
            "index": "faiss IndexIVFFlat, 290 lists, nprobe 4",
            "points": 84300,
            "recall_at_k": 0.97,
            "recall_queries": 500,
        },
        "mean/layer2": {
            "method": "approximate",
            "index": "faiss IndexIVFFlat, 290 lists, nprobe 8",
            "points": 84300,
            "recall_at_k": 0.991,
            "recall_queries": 500,
        },
    }
    proj = {
        "cls/layer0": {"skipped": "all the same"},
        "mean/layer1": {"tsne": {"note": "t-SNE fitted on a random sample"}},
    }
    notes = search_notes(knn, proj)
    assert "recall@k 0.970–0.991" in notes[0] and "84,300" in notes[0]
    assert (
        notes.count(
            "Not shown: cls at layer 0, where every sentence's vector points the same way (spread below embeddings.min_spread; the k-NN table gives each value)."
        )
        == 1
    )
    assert "[CLS] token's input embedding" in notes[2]
    assert notes[-1] == "t-SNE fitted on a random sample"
    assert search_notes({"vocab": knn["vocab"]}) == ["Neighbours come from exact search."]


def test_growth_exponents_fit_log_log_slopes():
    from benchmarks.scaling import exponents, markdown

    runs = [
        {"rows": n, "wall_seconds": n / 100, "stages": {
            "knn": {"seconds": (n / 1000) ** 2, "jobs": 1, "peak_rss_mib": 100},
            "embed": {"seconds": n / 1000, "jobs": 1, "peak_rss_mib": 200},
            "corpus": {"seconds": 0.2, "jobs": 1, "peak_rss_mib": 50},
        }}
        for n in (5000, 20000, 80000)
    ]  # fmt: skip
    slopes = exponents(runs, fit_from=20000)
    assert slopes["knn"] == pytest.approx(2.0) and slopes["embed"] == pytest.approx(1.0)
    assert slopes["corpus"] is None  # under a second: no meaningful slope
    table = markdown(runs, slopes, 20000)
    assert "| knn | 25.0 / 100 | 400.0 / 100 | 6400.0 / 100 | 2.00 |" in table


def test_isotropic_vectors_fall_back_to_exact_search_in_an_inverted_file():
    # random directions in 64 dimensions have no clusters: an inverted file must scan most of
    # its lists to find the neighbours, which costs more than exact search
    x = np.random.default_rng(0).normal(size=(3000, 64)).astype(np.float32)
    idx, dist, facts = knn_search(x, 10, "approximate", recall_target=0.95, index="ivf")
    assert facts["method"] == "exact" and "exact search was cheaper" in facts["note"]
    np.testing.assert_array_equal(idx, knn_cosine(x, 10)[0])


def test_stored_layers_read_one_layer_and_leave_nothing_mapped(tmp_path):
    """Each layer comes from the file as stored, and the file is not left memory-mapped (a
    mapping kept open counts every page read as the process's memory)."""
    from bertlens.io import StoredLayers

    arr = np.random.default_rng(0).normal(size=(3, 50, 8)).astype(np.float32)
    path = tmp_path / "sentences_mean.npy"
    np.save(path, arr)
    stored = StoredLayers(path)
    assert len(stored) == 3 and stored.shape == (3, 50, 8)
    for layer in range(3):
        x = stored[layer]
        assert x.dtype == np.float32 and x.flags.writeable
        assert np.array_equal(x, arr[layer])
    with pytest.raises(IndexError):
        stored[3]
    with pytest.raises(IndexError):
        stored[-1]
    if os.path.exists("/proc/self/maps"):
        with open("/proc/self/maps") as fh:
            assert str(path) not in fh.read()
    empty = tmp_path / "sentences_pooler.npy"  # a model without a pooler: 0 layers
    np.save(empty, np.zeros((0, 50, 8), dtype=np.float32))
    assert len(StoredLayers(empty)) == 0
