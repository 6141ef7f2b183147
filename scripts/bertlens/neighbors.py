"""Nearest neighbours in the original embedding space (cosine), neighbourhood overlap between two
models, and the probe-token / probe-sentence neighbour tables.

Everything here is computed by the pipeline; the explorer pages only look the results up.

Exact k-NN (``knn_cosine``): rows are normalised to unit length (an all-zero row stays zero, so
its cosine similarity to everything is 0 and its distance 1), similarities come from float32
matrix products in blocks of rows, and each row's top k is found without sorting the whole row:
the k-th largest similarity among a fixed, evenly spaced subset of columns is a lower bound of
the row's true k-th largest, so only the columns at or above it can be neighbours; those few
candidates are then ordered exactly. Ties are broken by the smaller index, so the result is deterministic. A row is
never its own neighbour (``exclude_self``); an identical duplicate of it is (at distance 0).

Above a size, ``knn_search`` finds them approximately (pynndescent's NN-descent graph, or a faiss
inverted-file index for the many neighbours t-SNE needs), with recall@k against exact search
measured on a sample of queries.
"""

from __future__ import annotations

import functools
import json
import logging
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .sampling import sample_rows
from .stage import UserError

log = logging.getLogger(__name__)

# Columns scanned to find each row's lower bound of its k-th largest similarity.
_SUBSET = 2048
# Approximate search that must scan more than 1/EXACT_SHARE of its lists falls back to exact
# search: list scanning runs at a fraction of the speed of exact search's matrix products.
EXACT_SHARE = 8


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); all-zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def _topk_block(sim: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k columns of each row of ``sim`` (largest first, ties: smaller column first)."""
    n_rows, n_cols = sim.shape
    step = max(1, n_cols // _SUBSET)
    sub = sim[:, ::step]
    if sub.shape[1] < k:
        sub = sim
    # k-th largest of the subset: a lower bound of the row's k-th largest over all columns.
    bound = np.partition(sub, sub.shape[1] - k, axis=1)[:, sub.shape[1] - k]
    cand = sim >= bound[:, None]
    # Rows with many ties at the bound (a matrix of identical vectors: every column) would make
    # the sort below quadratic: there the exact k-th value decides, and of the columns equal to
    # it only the first ones needed are kept (smaller index first, as everywhere).
    heavy = np.flatnonzero(np.count_nonzero(cand, axis=1) > 4 * k + 64)
    if heavy.size:
        cand[heavy] = _first_k_mask(sim[heavy], k)
    flat = np.flatnonzero(cand)  # much faster than a 2-D np.nonzero
    rows, cols = np.divmod(flat, n_cols)
    vals = sim[rows, cols]
    order = np.lexsort((cols, -vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    # rank of each candidate within its row; keep ranks < k
    starts = np.searchsorted(rows, np.arange(n_rows))
    rank = np.arange(len(rows)) - starts[rows]
    keep = rank < k
    idx = np.empty((n_rows, k), dtype=np.int64)
    best = np.empty((n_rows, k), dtype=np.float32)
    idx[rows[keep], rank[keep]] = cols[keep]
    best[rows[keep], rank[keep]] = vals[keep]
    return idx, best


def _first_k_mask(sim: np.ndarray, k: int) -> np.ndarray:
    """Per row, exactly the k largest columns (ties at the k-th value: smaller index first)."""
    n_cols = sim.shape[1]
    kth = np.partition(sim, n_cols - k, axis=1)[:, n_cols - k]
    above = sim > kth[:, None]
    tied = sim == kth[:, None]
    need = k - np.count_nonzero(above, axis=1)
    return above | (tied & (np.cumsum(tied, axis=1) <= need[:, None]))


def check_k(k: int, k_max: int) -> None:
    if k < 1:
        raise UserError(f"k nearest neighbours needs k >= 1 (got {k}); fix explore.k")
    if k > k_max:
        raise UserError(
            f"{k} nearest neighbours were asked for, but there are only {k_max} other points; "
            "lower explore.k"
        )


def _knn(
    base: np.ndarray,
    queries: np.ndarray,
    k: int,
    self_index: np.ndarray | None,
    block_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    check_k(k, len(base) - (1 if self_index is not None else 0))
    idx = np.empty((len(queries), k), dtype=np.int32)
    dist = np.empty((len(queries), k), dtype=np.float32)
    for start in range(0, len(queries), block_size):
        stop = min(start + block_size, len(queries))
        sim = queries[start:stop] @ base.T
        if self_index is not None:
            sim[np.arange(stop - start), self_index[start:stop]] = -np.inf
        i, s = _topk_block(sim, k)
        idx[start:stop] = i
        dist[start:stop] = np.clip(1.0 - s, 0.0, 2.0)
    return idx, dist


def knn_cosine(
    x: np.ndarray,
    k: int,
    rows: Sequence[int] | np.ndarray | None = None,
    block_size: int = 512,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``x`` (cosine distance = 1 - cosine similarity) for each row
    listed in ``rows`` (default: every row), the row itself excluded. Returns (indices int32,
    distances float32), both (len(rows), k), nearest first, ties by smaller index."""
    started = time.perf_counter()
    xn = unit_rows(x)
    rows = np.arange(len(xn)) if rows is None else np.asarray(rows, dtype=np.int64)
    idx, dist = _knn(xn, xn[rows], k, rows, block_size)
    log.info(
        "k-NN (k=%d, cosine) of %d of %d points x %d dims in %.1f s",
        k,
        len(rows),
        len(xn),
        xn.shape[1],
        time.perf_counter() - started,
    )
    return idx, dist


def knn_search(
    x: np.ndarray,
    k: int,
    method: str = "auto",
    exact_max: int = 20000,
    recall_target: float = 0.95,
    seed: int = 0,
    threads: int | None = None,
    index: str = "nndescent",
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """k-NN (cosine, self excluded) of every row of ``x``: exact up to ``exact_max`` rows (or
    always, ``method="exact"``), else approximate, with ``threads`` threads, through ``index``:
    ``"nndescent"`` (:func:`nndescent_knn`; its work per row hardly grows with the rows) or
    ``"ivf"`` (:func:`ivf_knn`; faster for large k, but its work per row grows as sqrt(rows)).
    Either one measures its recall@k against exact search on a sample of queries and raises it
    to at least ``recall_target``, else searches exactly (NN-descent: when 4 (k + 1) neighbours
    per point are not enough; IVF: when that would scan more than 1/8 of its lists). Returns
    (indices, distances, facts)."""
    if method == "exact" or (method == "auto" and len(x) <= exact_max):
        return _exact_instead(x, k, time.perf_counter())
    approximate = {"nndescent": nndescent_knn, "ivf": ivf_knn}[index]
    return approximate(unit_rows(x), k, recall_target, seed, threads=threads)


def nndescent_knn(
    xn: np.ndarray,
    k: int,
    recall_target: float,
    seed: int,
    queries: int = 500,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Approximate k-NN of the unit rows ``xn`` from pynndescent's nearest-neighbour graph
    (NN-descent on random-projection-tree candidates, inner product, seeded): work about
    linear in the rows for a given k. The graph first holds k + 1 neighbours per row (the
    row itself among them); while its recall@k on ``queries`` random rows is below
    ``recall_target`` it is built again holding twice as many (at most 4 (k + 1)), then exact
    search is used. The result is the same for the same seed and ``threads`` (pynndescent's
    parallel updates depend on how the rows are split between threads). A found neighbour
    counts as right when it is at least as near as the exact k-th neighbour."""
    n = len(xn)
    check_k(k, n - 1)
    _nndescent_compiled(threads)
    started = time.perf_counter()
    sample, exact = _exact_sample(xn, k, queries, seed, threads)
    # at most n - 1 per point: pynndescent cannot fill a graph of n (the row itself is one)
    for width in dict.fromkeys(min(w, n - 1) for w in (k + 1, 2 * (k + 1), 4 * (k + 1))):
        graph = _nndescent_graph(xn, width, seed, threads)
        recall = recall_at_k(_graph_rows(graph, sample, k)[1], exact)
        if recall >= recall_target:
            break
    else:
        note = (
            f"NN-descent reached recall {recall:.3f} only, with {width} neighbours per point: "
            "exact search instead"
        )
        return _exact_instead(xn, k, started, note)
    idx, dist = _graph_rows(graph, np.arange(n), k)
    # pynndescent takes every pair at cosine <= 0 as infinitely far (and reports distance 1):
    # rows it could not fill, or whose k-th neighbour is that far, are searched exactly
    short = np.flatnonzero((idx < 0).any(axis=1) | (dist[:, -1] >= 1.0))
    if short.size:
        idx[short], dist[short] = knn_cosine(xn, k, rows=short)
    index = f"pynndescent NN-descent graph, {width} neighbours per point"
    facts = _approximate_facts(index, xn, recall, len(sample), recall_target, started)
    return idx.astype(np.int32), dist, {**facts, "threads": threads}


def _nndescent_graph(
    xn: np.ndarray, width: int, seed: int, threads: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """pynndescent's graph of the unit rows ``xn``: (indices, 1 - inner products), ``width``
    per row, nearest first."""
    from pynndescent import NNDescent

    index = NNDescent(
        xn, metric="dot", n_neighbors=width, random_state=seed, n_jobs=threads, low_memory=True
    )
    return index.neighbor_graph


def _graph_rows(
    graph: tuple[np.ndarray, np.ndarray], rows: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest of each of ``rows`` in a pynndescent graph (itself excluded):
    (indices, cosine distances); a row the graph could not fill has -1 among its indices."""
    idx, dist = graph[0][rows, : k + 1], graph[1][rows, : k + 1]
    missing = k + 1 - idx.shape[1]  # a graph of n - 1 per point, k = n - 1: one unfilled
    if missing > 0:
        idx = np.pad(idx, ((0, 0), (0, missing)), constant_values=-1)
        dist = np.pad(dist, ((0, 0), (0, missing)), constant_values=np.inf)
    return _without_self(1.0 - dist, idx, rows, k)


@functools.cache
def _nndescent_compiled(threads: int | None) -> None:
    """Compile pynndescent's functions once per process (numba; about 17 s on 2 cores), on a
    small matrix, so that the time of the first real search is its own."""
    started = time.perf_counter()
    rows = np.random.default_rng(0).normal(size=(2000, 8)).astype(np.float32)
    _nndescent_graph(unit_rows(rows), 11, 0, threads)
    log.info("pynndescent compiled in %.1f s", time.perf_counter() - started)


def _exact_sample(
    xn: np.ndarray, k: int, queries: int, seed: int, threads: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """``queries`` random rows of ``xn`` (seeded) and their exact k nearest distances (self
    excluded): the yardstick of an approximate search's recall."""
    faiss = load_faiss(threads)
    sample = sample_rows(len(xn), queries, seed)
    sim, idx = faiss.knn(xn[sample], xn, k + 1, metric=faiss.METRIC_INNER_PRODUCT)
    return sample, _without_self(sim, idx, sample, k)[1]


def _exact_instead(
    x: np.ndarray, k: int, started: float, note: str | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Exact k-NN of the rows ``x`` and its facts (seconds since ``started``); ``note`` says
    why, where an approximate search was tried first."""
    if note:
        log.info("%s", note)
    idx, dist = knn_cosine(x, k)
    seconds = round(time.perf_counter() - started, 2)
    facts = {"method": "exact", "points": len(x), "recall_at_k": 1.0, "seconds": seconds}
    return idx, dist, {**facts, "note": note} if note else facts


def _approximate_facts(
    index: str,
    xn: np.ndarray,
    recall: float,
    queries: int,
    recall_target: float,
    started: float,
) -> dict[str, Any]:
    """What an approximate search of ``xn`` records: its index, the recall@k measured on
    ``queries`` sampled rows, and its seconds since ``started``."""
    facts = {
        "method": "approximate",
        "index": index,
        "points": len(xn),
        "recall_at_k": round(recall, 4),
        "recall_queries": queries,
        "recall_target": recall_target,
        "seconds": round(time.perf_counter() - started, 2),
    }
    log.info("approximate k-NN of %d x %d: %s", len(xn), xn.shape[1], facts)
    return facts


def ivf_knn(
    xn: np.ndarray,
    k: int,
    recall_target: float,
    seed: int,
    queries: int = 500,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Approximate k-NN of the unit rows ``xn`` with faiss ``IndexIVFFlat`` (inner product):
    about sqrt(n) k-means lists (seeded). ``nprobe`` (lists scanned per query) is the smallest
    power of two whose recall@k on ``queries`` random rows reaches ``recall_target``, found on
    those rows alone; then every row is searched once with it. A found neighbour counts as right
    when it is at least as near as the exact k-th neighbour, so ties count as found."""
    load_faiss(threads)
    started = time.perf_counter()
    check_k(k, len(xn) - 1)
    index = _ivf_index(xn, seed)
    nlist = index.nlist
    sample, exact = _exact_sample(xn, k, queries, seed, threads)
    nprobe = 1
    while True:
        index.nprobe = nprobe
        found = _without_self(*index.search(xn[sample], k + 1), sample, k)[1]
        recall = recall_at_k(found, exact)
        if recall >= recall_target or nprobe >= nlist:
            break
        nprobe = min(nlist, nprobe * 2)
    if nprobe * EXACT_SHARE > nlist:
        # Scanning this share of the lists costs about what exact search (matrix products at
        # BLAS speed) does; a matrix of isotropic vectors (a vocabulary) needs it.
        note = (
            f"an approximate index reached recall {recall:.3f} only when scanning {nprobe} of "
            f"its {nlist} lists: exact search was cheaper"
        )
        return _exact_instead(xn, k, started, note)
    idx, dist = _faiss_search(index, xn, k)
    name = f"faiss IndexIVFFlat, {nlist} lists, nprobe {nprobe}"
    return idx, dist, _approximate_facts(name, xn, recall, len(sample), recall_target, started)


def load_faiss(threads: int | None = None):
    """The faiss module, quiet about which SIMD build it picked, using ``threads`` OpenMP
    threads when given."""
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    import faiss

    if threads:
        faiss.omp_set_num_threads(threads)
    return faiss


def _ivf_index(xn: np.ndarray, seed: int):
    """A faiss inverted-file index (inner product) of the unit rows ``xn``: about sqrt(n)
    k-means lists, trained (seeded) on 64 rows per list."""
    faiss = load_faiss()
    n, dim = xn.shape
    nlist = max(1, int(round(np.sqrt(n))))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.cp.niter = 10
    index.cp.max_points_per_centroid = 64
    index.train(xn)
    index.add(xn)
    return index


def knn_between(
    base: np.ndarray,
    queries: np.ndarray,
    k: int,
    seed: int = 0,
    threads: int | None = None,
    exact_max: int = 20000,
    nprobe: int = 16,
) -> np.ndarray:
    """Indices of the ``k`` nearest rows of the unit rows ``base`` to each unit row of
    ``queries`` (inner product, nearest first): exact up to ``exact_max`` base rows, else a
    faiss IVF index scanning ``nprobe`` of its sqrt(n) lists (a query whose scanned lists
    hold fewer than ``k`` rows gets exact search)."""
    faiss = load_faiss(threads)
    base = np.ascontiguousarray(base, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if len(base) <= exact_max:
        return faiss.knn(queries, base, k, metric=faiss.METRIC_INNER_PRODUCT)[1]
    index = _ivf_index(base, seed)
    index.nprobe = min(nprobe, index.nlist)
    idx = search_in_list_order(index, queries, k)[1]
    short = np.flatnonzero((idx < 0).any(axis=1))
    if short.size:
        idx[short] = faiss.knn(queries[short], base, k, metric=faiss.METRIC_INNER_PRODUCT)[1]
    return idx


def _without_self(
    sim: np.ndarray, idx: np.ndarray, rows: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The k + 1 results of each row less the row itself (or, when a duplicate hid it, less the
    farthest): (indices, cosine distances), ordered by distance then index."""
    drop = idx == rows[:, None]
    drop[~drop.any(axis=1), -1] = True
    drop &= np.cumsum(drop, axis=1) == 1  # one per row
    idx = idx[~drop].reshape(len(rows), k)
    dist = np.clip(1.0 - sim[~drop].reshape(len(rows), k), 0.0, 2.0).astype(np.float32)
    order = np.lexsort((idx, dist), axis=1)
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(dist, order, axis=1)


def _faiss_search(index, xn: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k nearest of every row (itself excluded); rows the probed lists could not fill are
    searched again scanning 4 times as many lists, as long as that leaves some unfilled and
    less than an eighth of the lists is scanned, and then exactly. (At 300,000 x 384 with k=90
    and 1 list of 548 scanned, 1,000-2,300 rows fell short; exact search of them took 14-22 s.)"""
    idx, dist = _without_self(*search_in_list_order(index, xn, k + 1), np.arange(len(xn)), k)
    short = np.flatnonzero((idx < 0).any(axis=1))
    nprobe = index.nprobe
    while short.size and index.nprobe * 4 * EXACT_SHARE <= index.nlist:
        index.nprobe *= 4
        idx[short], dist[short] = _without_self(*index.search(xn[short], k + 1), short, k)
        short = short[(idx[short] < 0).any(axis=1)]
    index.nprobe = nprobe
    if short.size:
        idx[short], dist[short] = knn_cosine(xn, k, rows=short)
    return idx.astype(np.int32), dist


def search_in_list_order(
    index, queries: np.ndarray, k: int, block: int = 16384
) -> tuple[np.ndarray, np.ndarray]:
    """``index.search(queries, k)`` of a faiss IVF index, with the queries searched in the order
    of their nearest list, so that queries scanning the same lists follow each other and find
    them in cache: the same result, 1.9-2.3x faster for the rows of 84,300-300,000 sentences.
    Queries are copied ``block`` at a time, not all at once."""
    order = np.argsort(index.quantizer.search(queries, 1)[1][:, 0], kind="stable")
    sim = np.empty((len(queries), k), dtype=np.float32)
    idx = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(order), block):
        rows = order[start : start + block]
        sim[rows], idx[rows] = index.search(queries[rows], k)
    return sim, idx


def recall_at_k(found: np.ndarray, exact: np.ndarray, tol: float = 1e-5) -> float:
    """Share of found neighbours (distances, rows x k) at least as near as the exact k-th
    neighbour of their row (exact distances, rows x k, nearest first)."""
    return float((found <= exact[:, -1:] + tol).mean())


def knn_cosine_vectors(
    x: np.ndarray, queries: np.ndarray, k: int, block_size: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``x`` to each of the vectors ``queries`` (none excluded)."""
    return _knn(unit_rows(x), unit_rows(np.atleast_2d(queries)), k, None, block_size)


def quantize_distances(dist: np.ndarray, scale: int = 10000) -> np.ndarray:
    """Cosine distances (0 … 2) as uint16 in units of 1/``scale`` (1e-4 by default): what the
    explorer pages embed (bokeh has no float16)."""
    return np.round(np.clip(dist, 0, 2) * scale).astype(np.uint16)


# --------------------------------------------------------------------------- overlap
def jaccard_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, the Jaccard index |A ∩ B| / |A ∪ B| of the index sets in row i of ``a`` and of
    ``b`` (each row a set of distinct indices, e.g. k-NN lists)."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"row counts differ: {a.shape[0]} vs {b.shape[0]}")
    inter = (a[:, :, None] == b[:, None, :]).any(axis=2).sum(axis=1)
    union = a.shape[1] + b.shape[1] - inter
    return inter / union


def chance_jaccard(n_points: int, k: int) -> float:
    """Expected Jaccard index of two independent random k-subsets of the n - 1 other points."""
    m = n_points - 1
    inter = k * k / m
    return inter / (2 * k - inter)


def match_layers(layers_a: int, layers_b: int) -> list[tuple[int, int]]:
    """Pairs (layer of A, layer of B) compared by relative depth.

    ``layers_*`` are encoder depths (hidden_states has depth + 1 entries: 0 = embedding output).
    Every layer i of the shallower model is paired with the deeper model's layer
    round(i * deeper / shallower) (halves round up): 0 ↔ 0 and last ↔ last; equal depths pair
    layer for layer."""
    if layers_a < 1 or layers_b < 1:
        raise ValueError("models need at least one encoder layer")

    def near(i: int, num: int, den: int) -> int:
        return (2 * i * num + den) // (2 * den)

    if layers_a <= layers_b:
        return [(i, near(i, layers_b, layers_a)) for i in range(layers_a + 1)]
    return [(near(j, layers_a, layers_b), j) for j in range(layers_b + 1)]


def overlap_table(
    knn_a: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]],
    knn_b: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]],
    layers_a: int,
    layers_b: int,
    poolings: Iterable[str],
    skipped: tuple[dict[tuple[str, int], str], dict[tuple[str, int], str]] = ({}, {}),
) -> pd.DataFrame:
    """Mean (and median) per-sentence Jaccard overlap of the two models' k-NN sets, per pooling
    and pair of layers matched by relative depth. ``knn_*[(pooling, layer)]`` are (indices,
    distances) arrays (sentences x k) over the same sentences in the same order.

    Where every sentence has the same vector in a model (CLS at layer 0 is the [CLS] embedding at
    position 0, the same for all sentences) all distances are 0 and the neighbours are just the
    index-order tie-break: the row is kept with a note, since its overlap means nothing."""
    rows = []
    for pooling in poolings:
        for la, lb in match_layers(layers_a, layers_b):
            why = [
                f"{m} skipped: {reasons[key]}"
                for m, reasons, key in (
                    ("A", skipped[0], (pooling, la)),
                    ("B", skipped[1], (pooling, lb)),
                )
                if key in reasons
            ]
            if why:
                rows.append(
                    {"pooling": pooling, "layer_a": la, "layer_b": lb, "note": "; ".join(why)}
                )
                continue
            if (pooling, la) not in knn_a or (pooling, lb) not in knn_b:
                continue
            a, dist_a = knn_a[(pooling, la)]
            b, dist_b = knn_b[(pooling, lb)]
            if a.shape != b.shape:
                raise UserError(
                    f"k-NN tables of the two models differ in shape ({a.shape} vs {b.shape}); "
                    "rerun the knn stage of both models with the same explore.k"
                )
            j = jaccard_rows(a, b)
            rows.append(
                {
                    "pooling": pooling,
                    "layer_a": la,
                    "layer_b": lb,
                    "depth_a": round(la / layers_a, 4),
                    "depth_b": round(lb / layers_b, 4),
                    "k": a.shape[1],
                    "sentences": a.shape[0],
                    "mean_jaccard": float(j.mean()),
                    "median_jaccard": float(np.median(j)),
                    "share_identical": float((j == 1).mean()),
                    "chance": chance_jaccard(a.shape[0], a.shape[1]),
                    "note": "; ".join(
                        f"all sentences share one vector in {m}: neighbours are ties"
                        for m, d in (("A", dist_a), ("B", dist_b))
                        if d.size and float(np.max(d)) < 1e-6
                    ),
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- stored k-NN
def knn_key(pooling: str, layer: int, what: str) -> str:
    return f"{pooling}_L{layer}_{what}"


def sentence_knn_all(
    load: Callable[[str], np.ndarray],
    poolings: Iterable[str],
    k: int,
    search: Callable[..., tuple[np.ndarray, np.ndarray, dict[str, Any]]] | None = None,
    skip: dict[tuple[str, int], str] | None = None,
) -> dict[str, np.ndarray]:
    """k-NN of every stored sentence vector, per pooling and layer: ``load(pooling)`` gives the
    (layers + 1, sentences, hidden) array (a pooler-less model's pooler file has 0 layers),
    ``search(x, k)`` finds the neighbours (default: ``knn_search``). Matrices listed in ``skip``
    (degenerate: every vector the same) get no table. Under ``facts`` (JSON text): per matrix,
    how it was searched (recall of an approximate search) or why it was skipped."""
    search = search or knn_search
    skip = skip or {}
    out: dict[str, np.ndarray] = {"k": np.asarray(k)}
    facts: dict[str, Any] = {}
    for pooling in poolings:
        arr = load(pooling)
        for layer in range(arr.shape[0]):
            name = f"{pooling}/layer{layer}"
            if (pooling, layer) in skip:
                facts[name] = {"skipped": skip[(pooling, layer)]}
                continue
            idx, dist, facts[name] = search(np.asarray(arr[layer], dtype=np.float32), k)
            out[knn_key(pooling, layer, "idx")] = idx
            out[knn_key(pooling, layer, "dist")] = dist
    out["facts"] = np.asarray(json.dumps(facts))
    return out


def knn_facts(path: str) -> dict[str, Any]:
    """The per-matrix search facts stored in a ``sentences_knn.npz`` (see ``sentence_knn_all``)."""
    data = np.load(path)
    return json.loads(str(data["facts"])) if "facts" in data.files else {}


def load_sentence_knn(path: str) -> dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]:
    """{(pooling, layer): (indices, distances)} from a ``sentences_knn.npz``."""
    data = np.load(path)
    out = {}
    for key in data.files:
        if key.endswith("_idx"):
            pooling, layer, _ = key.rsplit("_", 2)
            layer_no = int(layer[1:])
            out[(pooling, layer_no)] = (data[key], data[knn_key(pooling, layer_no, "dist")])
    return out


# --------------------------------------------------------------------------- probe tables
def probe_token_table(
    probes: Sequence[str],
    tokenize: Callable[[str], list[str]],
    vocab: pd.DataFrame,
    x: np.ndarray,
    k: int,
    unk_token: str | None,
) -> pd.DataFrame:
    """Nearest vocabulary entries (input embedding matrix ``x``, cosine) of each probe word.

    A probe is looked up as the tokenizer sees it: one vocabulary entry → its neighbours; split
    into several pieces, or mapped to the unknown token → one row saying so (no neighbours)."""
    probes = [str(p) for p in probes]  # a YAML probe like 3 arrives as a number
    ids = {t: i for t, i in zip(vocab["token"], vocab["token_id"], strict=True)}
    freq = vocab.set_index("token_id")["frequency"] if "frequency" in vocab else None
    found: list[tuple[str, str, int]] = []
    rows: list[dict[str, Any]] = []
    for probe in probes:
        pieces = tokenize(probe)
        shown = " ".join(pieces)
        if not pieces:
            rows.append(_probe_row(probe, "empty: the tokenizer gives no tokens", shown))
        elif len(pieces) == 1 and pieces[0] != unk_token and pieces[0] in ids:
            found.append((probe, shown, ids[pieces[0]]))
        elif len(pieces) == 1:
            rows.append(_probe_row(probe, f"absent: the tokenizer maps it to {pieces[0]}", shown))
        else:
            unk = sum(p == unk_token or p not in ids for p in pieces)
            note = f" ({unk} unknown)" if unk else ""
            rows.append(
                _probe_row(
                    probe,
                    f"split into {len(pieces)} pieces{note}: not one vocabulary entry",
                    shown,
                )
            )
    if found:
        idx, dist = knn_cosine(x, k, rows=[t for _, _, t in found])
        tokens = vocab.set_index("token_id")["token"]
        for (probe, shown, tid), nn, dd in zip(found, idx, dist, strict=True):
            for rank, (j, d) in enumerate(zip(nn, dd, strict=True), start=1):
                rows.append(
                    {
                        **_probe_row(probe, "in vocabulary", shown),
                        "probe_id": tid,
                        "rank": rank,
                        "neighbor": tokens.get(int(j), f"<id {j}>"),
                        "neighbor_id": int(j),
                        "cosine_distance": round(float(d), 5),
                        "neighbor_frequency": int(freq.get(int(j), 0)) if freq is not None else 0,
                    }
                )
    order = {p: i for i, p in enumerate(probes)}
    table = pd.DataFrame(rows, columns=PROBE_TOKEN_COLUMNS)
    for col in ("probe_id", "rank", "neighbor_id", "neighbor_frequency"):
        table[col] = table[col].astype("Int64")
    table["_o"] = table["probe"].map(order)
    table = table.sort_values(["_o", "rank"], kind="stable", na_position="first")
    return table.drop(columns="_o").reset_index(drop=True)


PROBE_TOKEN_COLUMNS = [
    "probe",
    "status",
    "pieces",
    "probe_id",
    "rank",
    "neighbor",
    "neighbor_id",
    "cosine_distance",
    "neighbor_frequency",
]


def _probe_row(probe: str, status: str, pieces: str) -> dict[str, Any]:
    return {"probe": probe, "status": status, "pieces": pieces}


def match_sentences(probes: Sequence[str], texts: Sequence[str]) -> list[int | None]:
    """Corpus row of each probe sentence (exact text, or equal after NFKC and stripping), else
    None."""

    def norm(s: str) -> str:
        return unicodedata.normalize("NFKC", str(s)).strip()

    exact = {}
    loose = {}
    for i, t in enumerate(texts):
        exact.setdefault(str(t), i)
        loose.setdefault(norm(t), i)
    return [exact.get(p, loose.get(norm(p))) for p in probes]


def probe_sentence_table(
    probes: Sequence[str],
    matches: Sequence[int | None],
    texts: Sequence[str],
    ids: Sequence[str],
    load_layer: Callable[[str, int], np.ndarray],
    encoded: dict[str, np.ndarray],
    layers: Sequence[int],
    poolings: Sequence[str],
    k: int,
    skip: dict[tuple[str, int], str] | None = None,
) -> pd.DataFrame:
    """Nearest corpus sentences of each probe sentence per pooling and layer.

    A probe found in the corpus uses its stored vector and is not its own neighbour; any other
    probe uses ``encoded[pooling]`` ((layers + 1, probes, hidden), encoded alone by the model).
    A degenerate matrix (in ``skip``) gets one row per probe saying why it has no neighbours."""
    rows = []
    skip = skip or {}
    for pooling in poolings:
        for layer in [0] if pooling == "pooler" else layers:
            if (pooling, layer) in skip:
                for probe in probes:
                    rows.append(
                        {
                            "probe": probe,
                            "vector": f"skipped: {skip[(pooling, layer)]}",
                            "pooling": pooling,
                            "layer": layer,
                        }
                    )
                continue
            x = load_layer(pooling, layer)
            if x.size == 0:
                continue
            for p, (probe, match) in enumerate(zip(probes, matches, strict=True)):
                if match is not None:
                    nn, dd = knn_cosine(x, k, rows=[match])
                    how = f"corpus row {ids[match]}"
                else:
                    vec = encoded[pooling][0 if pooling == "pooler" else layer, p]
                    nn, dd = knn_cosine_vectors(x, vec[None, :], k)
                    how = "encoded alone (not in the corpus)"
                for rank, (j, d) in enumerate(zip(nn[0], dd[0], strict=True), start=1):
                    rows.append(
                        {
                            "probe": probe,
                            "vector": how,
                            "pooling": pooling,
                            "layer": layer,
                            "rank": rank,
                            "neighbor_id": ids[j],
                            "neighbor": texts[j],
                            "cosine_distance": round(float(d), 5),
                        }
                    )
    return pd.DataFrame(
        rows,
        columns=[
            "probe",
            "vector",
            "pooling",
            "layer",
            "rank",
            "neighbor_id",
            "neighbor",
            "cosine_distance",
        ],
    )


def encode_sentences(
    model,
    tokenizer,
    texts: Sequence[str],
    poolings: Sequence[str],
    max_length: int,
    bf16: bool = False,
    kernel: str = "torch",
) -> dict[str, np.ndarray]:
    """Encode ``texts`` one at a time (no padding) as the embedding stage pools them, in its
    precision and on its linear-layer library (``bf16``, ``kernel``: what its facts say ran):
    {pooling: (layers + 1, texts, hidden)} (pooler: (1, texts, hidden))."""
    import torch

    from .embeddings import encode, linear_layers
    from .tokenstats import tokenize_texts

    out: dict[str, list[np.ndarray]] = {p: [] for p in poolings}
    tokens = tokenize_texts(tokenizer, list(texts), max_length)
    with torch.inference_mode(), linear_layers(model, bf16, kernel):
        for ids in tokens["input_ids"]:
            input_ids = torch.as_tensor(np.asarray(ids, dtype=np.int64))[None, :]
            pooled = encode(model, input_ids, torch.ones_like(input_ids), poolings, bf16)
            for p in poolings:
                if p in pooled:
                    out[p].append(pooled[p][:, 0].numpy())
    return {p: np.stack(v, axis=1) for p, v in out.items() if v}


def knn_summary(facts: dict[str, Any]) -> pd.DataFrame:
    """One row per matrix of the knn stage's facts: how its neighbours were found."""
    rows = []
    for matrix, f in facts.items():
        rows.append(
            {
                "matrix": matrix,
                "search": f.get("index", f.get("method", "skipped")),
                "points": f.get("points"),
                "recall@k": f.get("recall_at_k"),
                "recall queries": f.get("recall_queries"),
                "seconds": f.get("seconds"),
                "note": f.get("skipped", f.get("note", "")),
            }
        )
    return pd.DataFrame(rows)


def search_notes(knn: dict[str, Any], projection: dict[str, Any] | None = None) -> list[str]:
    """What a page says about how its neighbours and maps were made: exact or approximate search
    (with the measured recall), matrices skipped as degenerate, t-SNE fitted on a sample.
    ``knn``: per-matrix facts of the knn stage (one matrix's facts alone for a single table);
    ``projection``: the projection stage's facts."""
    notes = []
    searched = [f for f in knn.values() if "method" in f]
    approx = [f for f in searched if f["method"] == "approximate"]
    if approx:
        low, high = min(f["recall_at_k"] for f in approx), max(f["recall_at_k"] for f in approx)
        shown = f"{low:.3f}" if low == high else f"{low:.3f}–{high:.3f}"
        notes.append(
            f"Neighbours of {approx[0]['points']:,} vectors come from an approximate search "
            f"({approx[0]['index'].split(',')[0]}): recall@k {shown} against exact search, "
            f"measured on {approx[0]['recall_queries']} random queries."
        )
    elif searched:
        notes.append("Neighbours come from exact search.")
    skipped: dict[str, list[str]] = {}
    for name, f in {**knn, **(projection or {})}.items():
        if "skipped" in f and "/layer" in name:
            pooling, layer = name.split("/layer")
            skipped.setdefault(pooling, []).append(layer)
    if skipped:
        where = "; ".join(
            f"{p} at layer{'s' if len(ls) > 1 else ''} {', '.join(dict.fromkeys(ls))}"
            for p, ls in skipped.items()
        )
        notes.append(
            f"Not shown: {where}, where every sentence's vector points the same way (spread "
            "below embeddings.min_spread; the k-NN table gives each value)."
        )
        if "0" in skipped.get("cls", []):
            notes.append(
                "At layer 0 the [CLS] vector is the [CLS] token's input embedding, the same for "
                "every sentence."
            )
    fitted = {f["tsne"]["note"] for f in (projection or {}).values() if "note" in f.get("tsne", {})}
    notes += sorted(fitted)
    return list(dict.fromkeys(notes))
