"""Projection stage: t-SNE (openTSNE by default, scikit-learn selectable) and PCA to 2-D."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from .sampling import sample_rows
from .stage import UserError

log = logging.getLogger(__name__)


def check_perplexity(perplexity: float, n_points: int, what: str) -> None:
    """t-SNE needs about 3 x perplexity neighbours per point."""
    limit = (n_points - 1) / 3
    if perplexity >= limit:
        raise UserError(
            f"t-SNE perplexity {perplexity:g} is too large for {n_points} points ({what}); it must "
            f"be below (points - 1) / 3 = {limit:.1f}: lower projection.tsne.perplexity"
        )


def pca_2d(x: np.ndarray) -> np.ndarray:
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=0).fit_transform(x).astype(np.float32)


def tsne_2d(
    x: np.ndarray,
    perplexity: float,
    seed: int,
    init: str = "pca",
    metric: str = "cosine",
    n_iter: int = 500,
    backend: str = "opentsne",
    threads: int = 1,
    fit_max: int | None = None,
    refine_iter: int = 100,
) -> tuple[np.ndarray, dict[str, Any]]:
    """2-D t-SNE of ``x``; returns the coordinates and facts (KL divergence, the share of
    nearest neighbours the map keeps (:func:`neighbors_kept`), seconds). With openTSNE and more than ``fit_max`` points, the map is fitted on a seeded random sample of
    ``fit_max`` points, the rest are placed into it and (cosine) every point is then optimised
    for ``refine_iter`` iterations (:func:`_opentsne`)."""
    check_perplexity(perplexity, len(x), f"{len(x)} x {x.shape[1]} matrix")
    started = time.perf_counter()
    x = np.ascontiguousarray(x, dtype=np.float32)
    knn_metric = metric
    if metric == "cosine":
        # Euclidean distance between unit vectors ranks neighbours exactly as cosine does, and
        # stays defined for all-zero rows (e.g. a [PAD] embedding initialised to zero).
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
        knn_metric = "euclidean"
    fit = {"fitted_points": len(x)}
    if backend == "opentsne":
        coords, fit = _opentsne(
            x, perplexity, seed, init, metric, n_iter, threads, fit_max, refine_iter
        )
    elif backend == "sklearn":
        from sklearn.manifold import TSNE

        model = TSNE(
            n_components=2,
            perplexity=perplexity,
            metric=knn_metric,
            init=init,
            max_iter=n_iter + 250,
            random_state=seed,
            n_jobs=threads,
        )
        coords = model.fit_transform(x).astype(np.float32)
        fit["kl_divergence"] = float(model.kl_divergence_)
    else:
        raise UserError(f"unknown t-SNE backend '{backend}'; use opentsne or sklearn")
    kept = neighbors_kept(x, coords, metric, seed=seed)
    facts = {
        "backend": backend,
        "perplexity": perplexity,
        "seed": seed,
        "init": init,
        "metric": metric,
        "n_iter": n_iter,
        "points": len(x),
        **fit,
        "neighbors_kept": kept,
        "seconds": round(time.perf_counter() - started, 2),
    }
    if "note" in facts:
        facts["note"] += (
            f"; the map keeps {kept['share']:.0%} of the {kept['k']} nearest neighbours of "
            f"{kept['points']:,} sampled points"
        )
    kl, seconds = facts["kl_divergence"], facts["seconds"]
    log.info("t-SNE (%s) of %d points: KL %.4f in %.1f s", backend, len(x), kl, seconds)
    return coords, facts


def neighbors_kept(
    x: np.ndarray, coords: np.ndarray, metric: str, k: int = 10, points: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """How much of each point's neighbourhood a 2-D map keeps: over a seeded sample of
    ``points`` rows, the mean share of their ``k`` nearest rows of ``x`` (exact search; ``x``
    holds unit rows for cosine) that are also among their ``k`` nearest in ``coords``."""
    from .neighbors import load_faiss

    faiss = load_faiss()
    k = min(k, len(x) - 1)
    rows = sample_rows(len(x), points, seed)
    space = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
    high = faiss.knn(np.ascontiguousarray(x[rows]), np.ascontiguousarray(x), k + 1, metric=space)
    flat = np.ascontiguousarray(coords, dtype=np.float32)
    low = faiss.knn(flat[rows], flat, k + 1, metric=faiss.METRIC_L2)
    kept = [
        len(set(_others(h, r, k)) & set(_others(lo, r, k))) / k
        for r, h, lo in zip(rows, high[1], low[1], strict=True)
    ]
    return {"share": round(float(np.mean(kept)), 4), "k": k, "points": len(rows)}


def _others(found: np.ndarray, row: int, k: int) -> list[int]:
    """The first ``k`` of ``found`` other than ``row`` itself."""
    return [int(i) for i in found if i != row][:k]


# A slightly coarser FFT grid than openTSNE's default (1 interval per unit, at least 50):
# measured on the 30,522 x 384 MiniLM vocabulary on 2 cores, the 500 main iterations take 25 s
# instead of 40 s at a KL divergence within 1% of the default's.
GRID = {"ints_in_interval": 1.25, "min_num_intervals": 10}


def _opentsne(x, perplexity, seed, init, metric, n_iter, threads, fit_max, refine_iter):
    """openTSNE map of every row of ``x``; returns the coordinates and facts (KL divergence, how
    many rows the map was first fitted on, how the neighbours were found, a note when sampled).
    With more than ``fit_max`` rows (cosine: ``x`` holds unit rows) the map is fitted on a
    seeded sample, the other rows are placed at the median of their nearest fitted rows, and
    then every row is optimised for ``refine_iter`` iterations (Kobak & Berens' recipe for large
    data): measured on 84,300 MiniLM sentences on 2 cores, 44.9% of each sentence's 10 nearest
    neighbours kept against 45.7% for a fit of every point, in 48 s against 77 s."""
    from openTSNE import TSNE, TSNEEmbedding

    tsne = TSNE(
        n_components=2,
        perplexity=perplexity,
        metric="euclidean",
        initialization=init,
        n_iter=n_iter,
        random_state=seed,
        n_jobs=threads,
        verbose=False,
        **GRID,
    )
    if metric != "cosine":
        return _opentsne_own(tsne, x, seed, fit_max)
    fit_rows = sample_rows(len(x), fit_max or None, seed)
    affinities, neighbors = tsne_affinities(x[fit_rows], perplexity, seed, threads)
    emb = tsne.fit(x[fit_rows], affinities=affinities)
    if len(fit_rows) == len(x):
        return np.asarray(emb, dtype=np.float32), _fit_facts(emb, len(x), neighbors)
    coords = np.empty((len(x), 2))
    coords[fit_rows] = emb
    rest = np.setdiff1d(np.arange(len(x)), fit_rows)
    coords[rest] = place_rows(np.asarray(emb), x[fit_rows], x[rest], seed, threads)
    affinities, neighbors = tsne_affinities(x, perplexity, seed, threads)
    emb = TSNEEmbedding(
        coords,
        affinities,
        negative_gradient_method="fft",
        n_jobs=threads,
        random_state=seed,
        **GRID,
    ).optimize(n_iter=refine_iter, exaggeration=1, momentum=0.8)
    note = (
        f"each map was first fitted on a random sample of {len(fit_rows):,} of {len(x):,} "
        f"points (seed {seed}); the others were placed at the median of their 10 nearest "
        f"fitted points, then every point was optimised for {refine_iter} more iterations"
    )
    return np.asarray(emb, dtype=np.float32), _fit_facts(emb, len(fit_rows), neighbors, note)


def _fit_facts(emb, fitted: int, neighbors: dict[str, Any], note: str | None = None):
    facts = {"fitted_points": fitted, "kl_divergence": float(emb.kl_divergence)}
    return {**facts, "neighbors": neighbors, **({"note": note} if note else {})}


def _opentsne_own(tsne, x, seed, fit_max):
    """openTSNE with its own neighbours (the Euclidean metric): fit on a seeded sample of
    ``fit_max`` rows when there are more, the rest placed by its ``transform``."""
    fit_rows = sample_rows(len(x), fit_max or None, seed)
    emb = tsne.fit(x[fit_rows])
    coords = np.empty((len(x), 2), dtype=np.float32)
    coords[fit_rows] = np.asarray(emb, dtype=np.float32)
    rest = np.setdiff1d(np.arange(len(x)), fit_rows)
    note = None
    if rest.size:
        coords[rest] = np.asarray(emb.transform(x[rest]), dtype=np.float32)
        note = (
            f"t-SNE fitted on a random sample of {len(fit_rows):,} of {len(x):,} points (seed "
            f"{seed}); the others were placed into that map by openTSNE's transform"
        )
    neighbors = {"method": "openTSNE's own (Annoy or exact)"}
    return coords, _fit_facts(emb, len(fit_rows), neighbors, note)


def tsne_affinities(xn: np.ndarray, perplexity: float, seed: int, threads: int):
    """openTSNE's perplexity affinities of the unit rows ``xn`` from :func:`tsne_neighbors`,
    and how those were found."""
    from openTSNE.affinity import MultiscaleMixture
    from openTSNE.nearest_neighbors import PrecomputedNeighbors

    idx, dist, facts = tsne_neighbors(xn, perplexity, seed, threads)
    knn = PrecomputedNeighbors(idx, dist)
    return MultiscaleMixture(
        perplexities=perplexity, knn_index=knn, n_jobs=threads, random_state=seed
    ), facts


def tsne_neighbors(
    xn: np.ndarray, perplexity: float, seed: int, threads: int
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The 3 x perplexity nearest rows of the unit rows ``xn`` (openTSNE's count) and their
    Euclidean distances, found by :func:`bertlens.neighbors.knn_search` (exact up to 20,000
    rows, else faiss IVF at recall@k >= 0.95) instead of openTSNE's Annoy index: on 84,300 x
    384 MiniLM sentences on 2 cores 5 s against about 60 s, and the whole t-SNE 77 s against
    112 s, keeping as many of each sentence's 10 nearest neighbours (46%). For these 90
    neighbours the IVF index is faster than NN-descent (3.4 s against 25.6 s at 84,300 rows,
    18 s against 87 s at 300,000)."""
    from .neighbors import knn_search

    k = min(len(xn) - 1, int(3 * perplexity))
    idx, dist, facts = knn_search(xn, k, seed=seed, threads=threads, index="ivf")
    # between unit vectors, |a - b|^2 = 2 (1 - cos)
    return idx, np.sqrt(2.0 * dist.astype(np.float64)), facts


def place_rows(
    emb: np.ndarray, fitted: np.ndarray, rest: np.ndarray, seed: int, threads: int, k: int = 10
) -> np.ndarray:
    """2-D positions of the rows ``rest`` in a map fitted on the rows ``fitted``: the median of
    the map positions of their ``k`` nearest fitted rows (cosine, faiss; openTSNE's median
    initialisation, the start of its ``transform``, without the optimisation after it)."""
    from openTSNE.initialization import median

    from .neighbors import knn_between

    nearest = knn_between(fitted, rest, min(k, len(fitted)), seed, threads)
    return median(emb, nearest).astype(np.float32)


def project(
    x: np.ndarray,
    methods: list[str],
    tsne: dict[str, Any],
    threads: int = 1,
    umap: dict[str, Any] | None = None,
    fit_max: int | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """2-D coordinates of ``x`` by each method (``umap``: UMAP settings; t-SNE fitted on
    ``fit_max`` rows at most)."""
    coords: dict[str, np.ndarray] = {}
    facts: dict[str, Any] = {}
    for method in methods:
        if method == "pca":
            started = time.perf_counter()
            coords["pca"] = pca_2d(x)
            facts["pca"] = {"seconds": round(time.perf_counter() - started, 2)}
        elif method == "tsne":
            coords["tsne"], facts["tsne"] = tsne_2d(
                x,
                perplexity=tsne["perplexity"],
                seed=tsne["seed"],
                init=tsne["init"],
                metric=tsne["metric"],
                n_iter=tsne["n_iter"],
                backend=tsne["backend"],
                threads=threads,
                fit_max=fit_max,
                refine_iter=tsne["refine_iter"],
            )
        elif method == "umap":
            coords["umap"], facts["umap"] = umap_2d(x, threads=threads, **(umap or {}))
        else:
            raise UserError(f"unknown projection method '{method}'; use tsne, pca or umap")
    return coords, facts


def umap_2d(
    x: np.ndarray,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "cosine",
    seed: int = 42,
    threads: int = 1,
) -> tuple[np.ndarray, dict[str, Any]]:
    """2-D UMAP (umap-learn) of ``x``; returns the coordinates and facts (seconds)."""
    import umap

    started = time.perf_counter()
    x = np.ascontiguousarray(x, dtype=np.float32)
    n_neighbors = max(2, min(n_neighbors, len(x) - 1))
    # a seed makes umap-learn run single-threaded (reproducible); that is the point of the seed
    coords = umap.UMAP(
        n_components=2,
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        metric=metric,
        random_state=seed,
        n_jobs=1 if seed is not None else threads,
        init="spectral" if len(x) > n_neighbors + 2 else "random",
    ).fit_transform(x)
    facts = {
        "n_neighbors": n_neighbors,
        "min_dist": min_dist,
        "metric": metric,
        "seed": seed,
        "points": len(x),
        "seconds": round(time.perf_counter() - started, 2),
    }
    log.info("UMAP of %d points in %.1f s", len(x), facts["seconds"])
    return np.asarray(coords, dtype=np.float32), facts


def select_vocab(table: pd.DataFrame, max_points: int | None) -> pd.DataFrame:
    """Every token (default) or the ``max_points`` most frequent ones (ties by id)."""
    if not max_points or max_points >= len(table):
        return table
    order = np.lexsort((table["token_id"].to_numpy(), -table["frequency"].to_numpy()))
    return table.iloc[np.sort(order[:max_points])]


def long_table(meta: pd.DataFrame, coords: dict[str, np.ndarray], **constant: Any) -> pd.DataFrame:
    parts = []
    for method, xy in coords.items():
        part = meta.copy()
        for key, value in constant.items():
            part[key] = value
        part["method"] = method
        part["x"] = xy[:, 0]
        part["y"] = xy[:, 1]
        parts.append(part)
    return pd.concat(parts, ignore_index=True)
