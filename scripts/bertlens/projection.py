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
) -> tuple[np.ndarray, dict[str, Any]]:
    """2-D t-SNE of ``x``; returns the coordinates and facts (KL divergence, seconds). With
    openTSNE and more than ``fit_max`` points, the map is fitted on a seeded random sample of
    ``fit_max`` points and the rest are placed into it (``TSNEEmbedding.transform``)."""
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
    fitted = len(x)
    if backend == "opentsne":
        coords, kl, fitted = _opentsne(
            x, perplexity, seed, init, knn_metric, n_iter, threads, fit_max
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
        kl = float(model.kl_divergence_)
    else:
        raise UserError(f"unknown t-SNE backend '{backend}'; use opentsne or sklearn")
    facts = {
        "backend": backend,
        "perplexity": perplexity,
        "seed": seed,
        "init": init,
        "metric": metric,
        "n_iter": n_iter,
        "points": len(x),
        "fitted_points": fitted,
        "kl_divergence": kl,
        "seconds": round(time.perf_counter() - started, 2),
    }
    if fitted < len(x):
        facts["note"] = (
            f"t-SNE fitted on a random sample of {fitted:,} of {len(x):,} points (seed {seed}); "
            "the others were placed into that map by openTSNE's transform"
        )
    log.info("t-SNE (%s) of %d points: KL %.4f in %.1f s", backend, len(x), kl, facts["seconds"])
    return coords, facts


def _opentsne(x, perplexity, seed, init, metric, n_iter, threads, fit_max):
    """openTSNE fit (on a sample of ``fit_max`` rows when there are more); returns coordinates
    of every row, the KL divergence of the fitted map and how many rows it was fitted on."""
    from openTSNE import TSNE

    fit_rows = sample_rows(len(x), fit_max or None, seed)
    emb = TSNE(
        n_components=2,
        perplexity=perplexity,
        metric=metric,
        initialization=init,
        n_iter=n_iter,
        random_state=seed,
        n_jobs=threads,
        verbose=False,
        # A slightly coarser FFT grid than openTSNE's default (1 interval per unit, at least
        # 50): measured on the 30,522 x 384 MiniLM vocabulary on 2 cores, the 500 main
        # iterations take 25 s instead of 40 s at a KL divergence within 1% of the default's.
        ints_in_interval=1.25,
        min_num_intervals=10,
    ).fit(x[fit_rows])
    coords = np.empty((len(x), 2), dtype=np.float32)
    coords[fit_rows] = np.asarray(emb, dtype=np.float32)
    rest = np.setdiff1d(np.arange(len(x)), fit_rows)
    if rest.size:
        coords[rest] = np.asarray(emb.transform(x[rest]), dtype=np.float32)
    return coords, float(emb.kl_divergence), len(fit_rows)


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
