"""Figures of the Layers chapter: contextuality curves (models on one column overlaid), probe
accuracies with their controls, CKA heatmaps and the logit lens."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator, ScalarFormatter

from .plotting import PALETTE, new_figure, save_figure

TITLES = {
    "anisotropy": "Anisotropy: mean cosine of random word pairs",
    "self_similarity": "Self-similarity (anisotropy-adjusted)",
    "intra_sentence_similarity": "Intra-sentence similarity (anisotropy-adjusted)",
    "mev": "Variance explained by a word's first PC (baseline-adjusted)",
}


def measure_png(frames: Mapping[str, pd.DataFrame], measure: str, column: str, out_png: str):
    """One measure over layers, one line per model (adjusted solid, raw dashed); the layer axis
    is relative depth (0 = embeddings, 1 = last layer) so models of different depth line up."""
    fig, ax = new_figure(figsize=(7, 4.5))
    for k, (model, df) in enumerate(frames.items()):
        d = df[df["measure"] == measure].sort_values("layer")
        depth = d["layer"] / max(d["layer"].max(), 1)
        colour = PALETTE[k % len(PALETTE)]
        ax.plot(depth, d["adjusted"], "o-", color=colour, label=f"{model} adjusted")
        if measure != "anisotropy":
            ax.plot(depth, d["raw"], "--", color=colour, alpha=0.5, label=f"{model} raw")
    ax.axhline(0, color="#999", lw=0.8)
    ax.set_xlabel("relative depth (0 = embedding output, 1 = last layer)")
    ax.set_ylabel(measure.replace("_", " "))
    ax.set_title(f"{TITLES[measure]} ({column})")
    ax.legend(fontsize=8)
    save_figure(fig, out_png)


def probes_png(df: pd.DataFrame, model: str, out_png: str):
    """Probe, control and majority accuracy per layer, one panel per task."""
    tasks = list(dict.fromkeys(df["task"]))
    fig, axes = new_figure(1, len(tasks), figsize=(4.5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        d = df[df["task"] == task].sort_values("layer")
        ax.plot(d["layer"], d["accuracy"], "o-", color=PALETTE[0], label="probe")
        ax.plot(d["layer"], d["control_accuracy"], "s--", color=PALETTE[1], label="control")
        ax.plot(d["layer"], d["majority"], ":", color="#666", label="majority")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("layer (0 = embedding output)")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"{model}: {task}")
        ax.legend(fontsize=8)
    integer_layers(*axes[0])
    save_figure(fig, out_png)


def cka_png(matrix: np.ndarray, name_a: str, name_b: str, title: str, out_png: str):
    """Heatmap of CKA between the layers of two representations (0 = embedding output)."""
    fig, ax = new_figure(figsize=(1.6 + 0.55 * matrix.shape[1], 1.2 + 0.55 * matrix.shape[0]))
    im = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis", origin="lower")
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                color="white" if v < 0.6 else "black")  # fmt: skip
    ax.set_xticks(range(matrix.shape[1]))
    ax.set_yticks(range(matrix.shape[0]))
    ax.set_xlabel(f"{name_b} layer")
    ax.set_ylabel(f"{name_a} layer")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, label="linear CKA")
    save_figure(fig, out_png)


def lens_png(df: pd.DataFrame, model: str, out_png: str):
    """Top-1 accuracy and agreement with the final layer per layer, and the median rank of the
    final prediction (log scale)."""
    fig, (a1, a2) = new_figure(1, 2, figsize=(10, 4))
    if (df["layer"] < 0).all():
        a1.text(0.5, 0.5, df["note"].iloc[0], wrap=True, ha="center", va="center", fontsize=9)
        a1.set_axis_off()
        a2.set_axis_off()
        save_figure(fig, out_png)
        return
    a1.plot(df["layer"], df["top1_accuracy"], "o-", color=PALETTE[0], label="top-1 accuracy")
    a1.plot(df["layer"], df["agrees_with_final"], "s--", color=PALETTE[1],
            label="top-1 = final layer's")  # fmt: skip
    a1.set_ylim(0, 1.02)
    a1.set_xlabel("layer (0 = embedding output)")
    a1.set_title(f"{model}: logit lens at masked positions")
    a1.legend(fontsize=8)
    a2.semilogy(df["layer"], df["median_rank_of_final"], "o-", color=PALETTE[2], label="median")
    a2.semilogy(df["layer"], df["mean_rank_of_final"], "s--", color=PALETTE[3], label="mean")
    a2.set_xlabel("layer (0 = embedding output)")
    a2.set_ylabel("rank of the final layer's prediction")
    a2.legend(fontsize=8)
    integer_layers(a1, a2)
    a2.yaxis.set_major_formatter(ScalarFormatter())
    save_figure(fig, out_png)


def integer_layers(*axes):
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
