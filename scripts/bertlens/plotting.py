"""Static plots: PNGs (matplotlib, Japanese labels rendered with the IPAex font that
matplotlib-fontja ships). The interactive pages are built with holoviews (``bertlens.pages``,
``bertlens.explorer``)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .io import atomic_path

log = logging.getLogger(__name__)

PALETTE = ["#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb"]


def new_figure(nrows: int = 1, ncols: int = 1, figsize=(8, 8), **kw):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib_fontja  # noqa: F401  (registers IPAexGothic and makes it the default font)

    plt.rcParams["axes.unicode_minus"] = False
    return plt.subplots(nrows, ncols, figsize=figsize, **kw)


def save_figure(fig, path: str, dpi: int = 130) -> None:
    import matplotlib.pyplot as plt

    if fig.get_layout_engine() is None:
        fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)


def spread_labels(xy: np.ndarray, priority: np.ndarray, count: int, min_dist: float) -> np.ndarray:
    """Pick up to ``count`` points in ``priority`` order, skipping any closer than ``min_dist``
    to one already picked, so labels stay readable."""
    chosen: list[int] = []
    for i in priority:
        if len(chosen) >= count:
            break
        if chosen:
            d = np.abs(xy[chosen] - xy[i]).max(axis=1)
            if (d < min_dist).any():
                continue
        chosen.append(int(i))
    return np.asarray(chosen, dtype=np.int64)


def vocab_png(df: pd.DataFrame, method: str, title: str, label_count: int, out_png: str) -> None:
    """Scatter of the token embeddings in 2-D, coloured by log corpus frequency, with a readable
    subset of tokens labelled (frequent ones first, spread over the plane)."""
    sub = df[df["method"] == method].reset_index(drop=True)
    fig, ax = new_figure(figsize=(11, 11))
    freq = sub["frequency"].to_numpy()
    order = np.argsort(freq, kind="stable")  # frequent tokens drawn last, on top
    sc = ax.scatter(
        sub["x"].to_numpy()[order],
        sub["y"].to_numpy()[order],
        s=2,
        c=np.log10(freq[order] + 1),
        cmap="viridis",
        linewidths=0,
        alpha=0.8,
    )
    fig.colorbar(sc, ax=ax, shrink=0.6, label="log10(corpus frequency + 1)")
    xy = sub[["x", "y"]].to_numpy()
    span = float(np.ptp(xy, axis=0).max()) or 1.0
    labelable = ~sub["special"].to_numpy() if "special" in sub else np.ones(len(sub), bool)
    prio = np.lexsort((sub["token_id"].to_numpy(), -freq))
    prio = prio[labelable[prio]]
    picks = spread_labels(xy, prio, label_count, min_dist=span / 60)
    for i in picks:
        ax.annotate(
            str(sub["token"].iat[i]),
            xy[i],
            fontsize=7,
            alpha=0.9,
            xytext=(2, 2),
            textcoords="offset points",
        )
    ax.set_title(f"{title}\n{len(sub):,} tokens, {method}; labels: {len(picks)} frequent tokens")
    ax.set_xticks([])
    ax.set_yticks([])
    save_figure(fig, out_png)


def sentences_png(df: pd.DataFrame, method: str, pooling: str, title: str, out_png: str) -> None:
    """One panel per layer: sentence embeddings in 2-D coloured by token length."""
    sub = df[(df["method"] == method) & (df["pooling"] == pooling)]
    layers = sorted(sub["layer"].unique())
    fig, axes = new_figure(
        1, len(layers), figsize=(4.6 * len(layers) + 1, 4.8), squeeze=False, layout="constrained"
    )
    for ax, layer in zip(axes[0], layers, strict=True):
        part = sub[sub["layer"] == layer]
        sc = ax.scatter(part["x"], part["y"], s=6, c=part["length"], cmap="plasma", linewidths=0)
        ax.set_title(f"layer {layer}" + (" (embedding output)" if layer == 0 else ""))
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(sc, ax=axes[0].tolist(), shrink=0.8, label="tokens in sentence")
    fig.suptitle(f"{title}: {pooling} pooling, {method}")
    save_figure(fig, out_png)
