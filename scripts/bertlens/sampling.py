"""Seeded row sampling, one home for every stage: a uniform sample of rows (pages over their point
budget, the padding study's sentences, the t-SNE fit, the k-NN recall queries) and a seeded order
of rows for stages that take the first usable ones (layer vectors, the logit lens)."""

from __future__ import annotations

import numpy as np


def sample_rows(n: int, size: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a uniform random sample (without replacement, seeded) of ``size`` of
    ``n`` rows; all ``n`` rows, in order, when ``size`` is ``None`` or not below ``n``."""
    if size is None or size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=int(size), replace=False))


def seeded_order(n: int, seed: int) -> np.ndarray:
    """The ``n`` rows in a seeded random order: a stage takes the first usable ones, so stages
    and models reading the same rows get (nearly) the same sentences."""
    return np.random.default_rng(seed).permutation(n)
