"""Degenerate matrices: a layer whose vectors all point the same way (the [CLS] vector at
layer 0 is the [CLS] token's input embedding, the same for every sentence) has nothing for cosine
neighbours, t-SNE or PCA to show. The embedding stage measures each matrix once, as it writes it
(``SpreadMeter``), and lists the degenerate ones in its facts; every later stage skips those with
the reason (``degenerate_matrices``). Non-finite vectors stop the embedding and vocab_matrix
stages (``check_finite``).

numpy only: the projection and neighbour stages read this without torch.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from .stage import UserError


def check_finite(block: np.ndarray, what: str, rows: np.ndarray) -> None:
    """Stop with the first NaN or infinite value of ``block`` (layers, rows, hidden), named by
    ``what``, its layer and its row among ``rows``."""
    bad = ~np.isfinite(block)
    if bad.any():
        layer, j, _ = np.argwhere(bad)[0]
        raise UserError(
            f"the model gave non-finite (NaN or infinite) {what} vectors (layer {layer}, row "
            f"{int(rows[j])}): its weights are broken (a training run that "
            "diverged, a bad conversion); check the model or retrain it"
        )


class SpreadMeter:
    """How much the rows of each layer's matrix differ in direction, accumulated batch by batch:
    ``spread = 1 - |mean of the unit rows|^2``, 0 when every row points the same way (the [CLS]
    vector at layer 0 is the [CLS] token's embedding, identical for every sentence) and close to
    1 for rows spread evenly. Cosine neighbours, t-SNE and PCA of a matrix with (almost) no
    spread have nothing to show. Non-finite values stop the stage. Batches may be added from
    several threads at once."""

    def __init__(self, layers: int, hidden: int):
        self.sums = np.zeros((layers, hidden), dtype=np.float64)
        self.nonzero = np.zeros(layers, dtype=np.int64)
        self.lock = threading.Lock()

    def add(self, block: np.ndarray, what: str, rows: np.ndarray) -> None:
        """``block`` (layers, rows, hidden); ``what`` and ``rows`` name it in an error."""
        check_finite(block, what, rows)
        norms = np.linalg.norm(block, axis=-1, keepdims=True)
        unit = np.divide(block, norms, out=np.zeros_like(block), where=norms > 0)
        sums = unit.sum(axis=1, dtype=np.float64)
        nonzero = (norms[..., 0] > 0).sum(axis=1)
        with self.lock:
            self.sums += sums
            self.nonzero += nonzero

    def spread(self) -> list[float]:
        mean = self.sums / np.maximum(self.nonzero, 1)[:, None]
        spread = 1.0 - (mean * mean).sum(axis=1)
        spread[self.nonzero < 2] = 0.0  # all-zero (or single) rows: nothing to compare
        return [max(0.0, round(float(v), 9)) for v in spread]


def degenerate_report(
    spreads: dict[str, list[float]], n_rows: int, min_spread: float
) -> list[dict[str, Any]]:
    """The (pooling, layer) matrices whose spread is below ``min_spread``, each with the reason
    every later stage shows instead of analysing it."""
    out = []
    for pooling, values in spreads.items():
        for layer, value in enumerate(values):
            if value >= min_spread:
                continue
            why = (
                f"all {n_rows:,} {pooling} vectors at layer {layer} point the same way "
                f"(spread {value:.2g} < embeddings.min_spread {min_spread:g}: their cosine "
                "distances are near float32 rounding noise)"
            )
            if pooling == "cls" and layer == 0:
                why += ": at layer 0 the [CLS] vector is the [CLS] token's input embedding, the "
                why += "same for every sentence"
            out.append({"pooling": pooling, "layer": layer, "spread": value, "reason": why})
    return out


def degenerate_matrices(facts: dict[str, Any]) -> dict[tuple[str, int], str]:
    """{(pooling, layer): reason} of the sentence matrices the embedding stage found degenerate
    (``facts`` is the stage's facts.json)."""
    found = facts.get("sentences", {}).get("degenerate", [])
    return {(d["pooling"], int(d["layer"])): d["reason"] for d in found}
