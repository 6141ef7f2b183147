"""Nearest neighbours in the original embedding space (cosine), neighbourhood overlap between two
models, and the probe-token / probe-sentence neighbour tables.

Everything here is computed by the pipeline; the explorer pages only look the results up.

k-NN is exact: rows are normalised to unit length (an all-zero row stays zero, so its cosine
similarity to everything is 0 and its distance 1), similarities come from float32 matrix products
in blocks of rows, and each row's top k is found without sorting the whole row: the k-th largest
similarity among a fixed, evenly spaced subset of columns is a lower bound of the row's true k-th
largest, so only the columns at or above it can be neighbours; those few candidates are then
ordered exactly. Ties are broken by the smaller index, so the result is deterministic. A row is
never its own neighbour (``exclude_self``); an identical duplicate of it is (at distance 0).
"""

from __future__ import annotations

import logging
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .stage import UserError

log = logging.getLogger(__name__)

# Columns scanned to find each row's lower bound of its k-th largest similarity.
_SUBSET = 2048


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
    flat = np.flatnonzero(sim >= bound[:, None])  # much faster than a 2-D np.nonzero
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


def _knn(
    base: np.ndarray,
    queries: np.ndarray,
    k: int,
    self_index: np.ndarray | None,
    block_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    n = len(base)
    k_max = n - (1 if self_index is not None else 0)
    if k < 1:
        raise UserError(f"k nearest neighbours needs k >= 1 (got {k}); fix explore.k")
    if k > k_max:
        raise UserError(
            f"{k} nearest neighbours were asked for, but there are only {k_max} other points; "
            "lower explore.k"
        )
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
    load: Callable[[str], np.ndarray], poolings: Iterable[str], k: int
) -> dict[str, np.ndarray]:
    """k-NN of every stored sentence vector, per pooling and layer: ``load(pooling)`` gives the
    (layers + 1, sentences, hidden) array (a pooler-less model's pooler file has 0 layers)."""
    out: dict[str, np.ndarray] = {"k": np.asarray(k)}
    for pooling in poolings:
        arr = load(pooling)
        for layer in range(arr.shape[0]):
            idx, dist = knn_cosine(np.asarray(arr[layer], dtype=np.float32), k)
            out[knn_key(pooling, layer, "idx")] = idx
            out[knn_key(pooling, layer, "dist")] = dist
    return out


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
) -> pd.DataFrame:
    """Nearest corpus sentences of each probe sentence per pooling and layer.

    A probe found in the corpus uses its stored vector and is not its own neighbour; any other
    probe uses ``encoded[pooling]`` ((layers + 1, probes, hidden), encoded alone by the model)."""
    rows = []
    for pooling in poolings:
        for layer in [0] if pooling == "pooler" else layers:
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
    model, tokenizer, texts: Sequence[str], poolings: Sequence[str], max_length: int
) -> dict[str, np.ndarray]:
    """Encode ``texts`` one at a time (no padding) as the embedding stage pools them:
    {pooling: (layers + 1, texts, hidden)} (pooler: (1, texts, hidden))."""
    import torch

    from .embeddings import encode
    from .tokenstats import tokenize_texts

    out: dict[str, list[np.ndarray]] = {p: [] for p in poolings}
    tokens = tokenize_texts(tokenizer, list(texts), max_length)
    with torch.inference_mode():
        for ids in tokens["input_ids"]:
            input_ids = torch.as_tensor(np.asarray(ids, dtype=np.int64))[None, :]
            pooled = encode(model, input_ids, torch.ones_like(input_ids), poolings)
            for p in poolings:
                if p in pooled:
                    out[p].append(pooled[p][:, 0].float().numpy())
    return {p: np.stack(v, axis=1) for p, v in out.items() if v}
