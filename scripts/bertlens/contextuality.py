"""How contextual the vectors of each layer are (Ethayarajh 2019), and how similar layers and
models are (linear CKA, Kornblith et al. 2019).

Ethayarajh's measures, on word occurrences (a word's vector is the mean of its pieces):

- anisotropy: the mean cosine of uniformly random pairs of word occurrences; the baseline;
- self-similarity of a word type: the mean cosine between its occurrences in different contexts
  (types with at least ``min_occurrences`` occurrences), averaged over types;
- intra-sentence similarity: the mean cosine between each word of a sentence and the sentence's
  mean vector, averaged over sentences;
- maximum explainable variance (MEV): the share of the variance of a type's occurrence matrix
  explained by its first principal component (first singular value squared over the sum of
  squares; no centring, as in the paper); its baseline is the MEV of equally many random
  occurrences.

Each measure is reported raw, with its baseline, and adjusted (raw minus baseline), as he does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

MEASURES = ("anisotropy", "self_similarity", "intra_sentence_similarity", "mev")


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm == 0, 1, norm)


def anisotropy(x: np.ndarray, pairs: int, rng: np.random.Generator) -> float:
    """Mean cosine of ``pairs`` uniformly random pairs of distinct rows of ``x``."""
    n = len(x)
    i = rng.integers(0, n, pairs)
    j = (i + rng.integers(1, n, pairs)) % n  # never i itself
    u = unit(x)
    return float(np.mean(np.sum(u[i] * u[j], axis=1)))


def mean_pairwise_cosine(u: np.ndarray) -> float:
    """Mean cosine over distinct pairs of unit rows: (|sum|^2 - n) / (n (n - 1))."""
    n = len(u)
    s = u.sum(axis=0)
    return float((s @ s - n) / (n * (n - 1)))


def self_similarity(x: np.ndarray, groups: Sequence[np.ndarray]) -> float:
    """Mean over word types (``groups``: row indices of each type's occurrences) of the mean
    pairwise cosine of its occurrences."""
    u = unit(x)
    return float(np.mean([mean_pairwise_cosine(u[g]) for g in groups]))


def intra_sentence_similarity(x: np.ndarray, sentences: np.ndarray) -> float:
    """Mean over sentences (of two words or more) of the mean cosine between each word and the
    sentence's mean vector."""
    u = unit(x)
    values = []
    for s in np.unique(sentences):
        rows = u[sentences == s]
        if len(rows) < 2:
            continue
        centre = unit(rows.mean(axis=0))
        values.append(float(np.mean(rows @ centre)))
    return float(np.mean(values))


def mev(x: np.ndarray) -> float:
    """Share of the (uncentred) variance of the rows of ``x`` along its first principal
    direction: sigma_1^2 / sum sigma_i^2."""
    s = np.linalg.svd(np.asarray(x, dtype=np.float64), compute_uv=False)
    return float(s[0] ** 2 / np.sum(s**2))


def type_groups(types: Sequence[str], sentences: np.ndarray, min_occurrences: int) -> list:
    """Row indices per word type that occurs at least ``min_occurrences`` times in at least two
    different sentences (its contexts)."""
    frame = pd.DataFrame({"type": list(types), "sentence": sentences})
    groups = []
    for _, rows in frame.groupby("type", sort=True):
        if len(rows) >= min_occurrences and rows["sentence"].nunique() >= 2:
            groups.append(rows.index.to_numpy())
    return groups


def layer_measures(
    x: np.ndarray,
    groups: list,
    sentences: np.ndarray,
    pairs: int,
    rng: np.random.Generator,
) -> dict[str, tuple[float, float]]:
    """{measure: (raw, baseline)} of one layer's word vectors."""
    base = anisotropy(x, pairs, rng)
    mev_raw = float(np.mean([mev(x[g]) for g in groups])) if groups else float("nan")
    mev_base = (
        float(np.mean([mev(x[rng.choice(len(x), len(g), replace=False)]) for g in groups]))
        if groups
        else float("nan")
    )
    self_sim = self_similarity(x, groups) if groups else float("nan")
    return {
        "anisotropy": (base, 0.0),
        "self_similarity": (self_sim, base),
        "intra_sentence_similarity": (intra_sentence_similarity(x, sentences), base),
        "mev": (mev_raw, mev_base),
    }


def measures_table(
    words: np.ndarray,
    table: pd.DataFrame,
    min_occurrences: int,
    pairs: int,
    seed: int,
) -> pd.DataFrame:
    """Every measure of every layer: layer, measure, raw, baseline, adjusted (raw - baseline),
    plus how many word types and occurrences it rests on. One BLAS thread: many small SVDs
    run faster that way than with threads contending on a loaded machine."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _measures_table(words, table, min_occurrences, pairs, seed)


def _measures_table(words, table, min_occurrences, pairs, seed) -> pd.DataFrame:
    sentences = table["sentence"].to_numpy()
    groups = type_groups(table["word_type"].tolist(), sentences, min_occurrences)
    rng = np.random.default_rng(seed)
    rows = []
    for layer in range(words.shape[0]):
        for name, (raw, baseline) in layer_measures(
            np.asarray(words[layer]), groups, sentences, pairs, rng
        ).items():
            rows.append(
                {
                    "layer": layer,
                    "measure": name,
                    "raw": raw,
                    "baseline": baseline,
                    "adjusted": raw - baseline,
                    "word_types": len(groups),
                    "occurrences": len(table),
                }
            )
    return pd.DataFrame(rows)


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of two representations of the same n examples (n, d1) and (n, d2):
    ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F), columns centred."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) != len(y):
        raise ValueError(f"CKA needs the same examples on both sides ({len(x)} vs {len(y)})")
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    cross = np.linalg.norm(y.T @ x) ** 2
    denom = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(cross / denom) if denom > 0 else float("nan")


def _centred(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x - x.mean(axis=0)


def cka_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CKA between every layer of ``a`` (La, n, d) and every layer of ``b`` (Lb, n, d'), as
    :func:`linear_cka` but with each layer centred once, float32 products, and only one half of
    the matrix computed when ``b is a``."""
    same = b is a
    ca = [_centred(x) for x in a]
    cb = ca if same else [_centred(y) for y in b]
    na = [float(np.linalg.norm(x.T @ x)) for x in ca]
    nb = na if same else [float(np.linalg.norm(y.T @ y)) for y in cb]
    out = np.empty((len(ca), len(cb)))
    for i, x in enumerate(ca):
        for j, y in enumerate(cb):
            if same and j < i:
                out[i, j] = out[j, i]
                continue
            denom = na[i] * nb[j]
            cross = float(np.linalg.norm(y.T @ x)) ** 2
            out[i, j] = cross / denom if denom > 0 else float("nan")
    return out


def cka_frame(matrix: np.ndarray, name_a: str, name_b: str) -> pd.DataFrame:
    """Long table: layer_a, layer_b, cka."""
    i, j = np.indices(matrix.shape)
    return pd.DataFrame(
        {
            f"layer_{name_a}": i.ravel(),
            f"layer_{name_b}": j.ravel(),
            "cka": matrix.ravel(),
        }
    )


def shared_words(
    table_a: pd.DataFrame, table_b: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows of two word tables (from :func:`bertlens.layers.word_vectors`) that are the same
    word occurrence (corpus row, word index, word): (indices into a, indices into b, count)."""
    key = ["row", "word_index", "word"]
    a = table_a[key].reset_index().rename(columns={"index": "ia"})
    b = table_b[key].reset_index().rename(columns={"index": "ib"})
    both = a.merge(b, on=key)
    return both["ia"].to_numpy(), both["ib"].to_numpy(), len(both)
