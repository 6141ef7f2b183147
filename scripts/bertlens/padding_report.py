"""The padding study's report: the summary and verdict tables and the two figures (histograms
of the last layer's differences, growth of the differences over the layers)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .plotting import save_figure

# What each setting compares, in words (the verdict table and the report captions use these).
COMPARES = {
    "padded": "fp32, right-padded batch with the partner vs the sentence alone (batch size 1)",
    "bf16": "bf16 autocast alone vs fp32 alone",
    "sdpa_vs_eager": "eager attention alone vs SDPA attention alone (fp32)",
    "onednn": "oneDNN linear layers alone vs torch's own alone (fp32; embeddings.cpu_matmul)",
    "left_padding": (
        "left-padded batch with position_ids 0..n-1 vs the same batch right-padded (fp32)"
    ),
    "left_padding_no_position_ids": (
        "left-padded batch without position_ids vs the same batch right-padded (fp32): real "
        "tokens get shifted absolute positions"
    ),
    "cuda": "GPU alone vs CPU alone (fp32)",
    "mask_check": (
        "real-token outputs with the pad positions' token ids and token-type ids changed vs "
        "unchanged (same padded batch)"
    ),
}


def summarize(differences: pd.DataFrame) -> pd.DataFrame:
    """Median, p99 and max of the max-abs difference (plus worst rel and cosine) per setting ×
    partner × layer × pooling."""
    g = differences.groupby(["setting", "partner", "layer", "pooling"], sort=False)
    out = g["max_abs"].agg(
        sentences="count",
        median="median",
        p99=lambda s: float(np.quantile(s, 0.99)),
        max="max",
    )
    out["rel_max"] = g["rel"].max()
    out["cosine_min"] = g["cosine"].min()
    return out.reset_index()


def _tolerance_for(setting: str, tolerance: float, bf16_tolerance: float) -> float:
    return bf16_tolerance if setting == "bf16" else tolerance


VERDICT_POOLINGS = ("cls", "mean", "pooler")


def verdict_table(
    differences: pd.DataFrame,
    mask: dict[str, Any],
    skipped: dict[str, str],
    tolerance: float,
    bf16_tolerance: float,
    n_layers: int,
    timings: dict[str, float] | None = None,
) -> pd.DataFrame:
    """One line per setting: the worst max-abs difference of the sentence vectors (CLS, mean,
    pooler; every sentence, every layer) against the tolerance, plus the last-layer CLS numbers
    the seed question is about and, for information, the worst single real token."""
    timings = timings or {}
    lines = []
    order = [
        "padded",
        "left_padding",
        "left_padding_no_position_ids",
        "bf16",
        "sdpa_vs_eager",
        "onednn",
        "cuda",
    ]
    for setting in order:
        tol = _tolerance_for(setting, tolerance, bf16_tolerance)
        sub = differences[differences["setting"] == setting]
        if sub.empty:
            if setting in skipped:
                lines.append(
                    {
                        "setting": setting,
                        "compares": COMPARES[setting],
                        "tolerance": tol,
                        "verdict": "skipped",
                        "note": skipped[setting],
                    }
                )
            continue
        lines.append(_verdict_line(setting, sub, tol, n_layers, timings))
    lines.append(
        {
            "setting": "mask_check",
            "compares": COMPARES["mask_check"],
            "tolerance": mask["tolerance"],
            "max_abs": mask["max_abs"],
            "worst_at": f"{mask['pads']} pad positions changed",
            "tokens_max": mask["max_abs"],
            "verdict": "pass" if mask["passed"] else "FAIL",
            "seconds": round(float(timings.get("mask_check", math.nan)), 2),
            "note": mask["note"],
        }
    )
    return pd.DataFrame(lines).reindex(columns=VERDICT_COLUMNS)


VERDICT_COLUMNS = [
    "setting",
    "compares",
    "tolerance",
    "max_abs",
    "worst_at",
    "cls_last_median",
    "cls_last_max",
    "tokens_max",
    "cosine_min",
    "verdict",
    "seconds",
    "note",
]


def _verdict_line(
    setting: str, sub: pd.DataFrame, tol: float, n_layers: int, timings: dict[str, float]
) -> dict[str, Any]:
    """The verdict of one setting that ran (``sub``: its differences)."""
    vec = sub[sub["pooling"].isin(VERDICT_POOLINGS)]
    worst = vec.loc[vec["max_abs"].idxmax()]
    cls_last = sub[(sub["pooling"] == "cls") & (sub["layer"] == n_layers)]["max_abs"]
    tokens = sub[sub["pooling"] == "tokens"]["max_abs"]
    passed = bool(vec["max_abs"].max() <= tol)
    expected_fail = setting == "left_padding_no_position_ids"
    verdict = "pass" if passed else ("FAIL (expected)" if expected_fail else "FAIL")
    notes = []
    if expected_fail:
        notes.append(
            "without position_ids the real tokens of a left-padded row get positions shifted "
            "by the pad count: a real change of input, not rounding"
        )
    if setting == "bf16":
        notes.append("bf16 keeps ~3 significant digits; judged against bf16_tolerance")
    pos0 = sub[sub["pooling"] == "pooler_pos0"]["max_abs"]
    if len(pos0):
        notes.append(
            f"the model's own pooler_output reads position 0, a pad under left padding "
            f"(max-abs {pos0.max():.3g} vs the right-padded pooler); the pooler row here is "
            "the pooler applied to the real [CLS]"
        )
    return {
        "setting": setting,
        "compares": COMPARES[setting],
        "tolerance": tol,
        "max_abs": float(worst["max_abs"]),
        "worst_at": f"partner {worst['partner']}, layer {int(worst['layer'])}, {worst['pooling']}",
        "cls_last_median": float(cls_last.median()) if len(cls_last) else math.nan,
        "cls_last_max": float(cls_last.max()) if len(cls_last) else math.nan,
        "tokens_max": float(tokens.max()) if len(tokens) else math.nan,
        "cosine_min": float(vec["cosine"].min()),
        "verdict": verdict,
        "seconds": round(float(timings.get(setting.split("_no_")[0], math.nan)), 2),
        "note": "; ".join(notes),
    }


# --------------------------------------------------------------------------------------------
# plots and files

_FLOOR = 1e-10  # exact zeros are drawn here on log axes


def _figure(nrows: int, ncols: int, figsize: tuple[float, float]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(nrows, ncols, figsize=figsize, squeeze=False)


def _grid(n: int):
    """A figure with a panel per setting, three to a row; the panels beyond ``n`` are hidden.
    Returns the figure and the ``n`` panels in reading order."""
    ncols = min(3, max(1, n))
    nrows = math.ceil(n / ncols)
    fig, axes = _figure(nrows, ncols, (5.0 * ncols, 3.6 * nrows))
    panels = [axes[k // ncols][k % ncols] for k in range(nrows * ncols)]
    for ax in panels[n:]:
        ax.set_visible(False)
    return fig, panels[:n]


def _finish(fig, title: str, path: str | Path) -> None:
    if title:
        fig.suptitle(title)
    save_figure(fig, path, dpi=120)


def _settings_present(differences: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(differences["setting"]))


def histogram_png(
    differences: pd.DataFrame,
    path: str | Path,
    tolerance: float,
    bf16_tolerance: float,
    n_layers: int,
    title: str = "",
) -> None:
    """Per setting, histograms of log10(max-abs) at the last layer (one colour per pooling),
    with the tolerance as a dashed line."""
    settings = _settings_present(differences)
    fig, axes = _grid(len(settings))
    last = differences[differences["layer"] == n_layers]
    colours = {
        "cls": "#4477aa",
        "mean": "#ee6677",
        "tokens": "#228833",
        "pooler": "#ccbb44",
        "pooler_pos0": "#aa3377",
    }
    for ax, setting in zip(axes, settings, strict=True):
        sub = last[last["setting"] == setting]
        vals = {
            p: np.log10(np.maximum(g["max_abs"].to_numpy(), _FLOOR))
            for p, g in sub.groupby("pooling")
        }
        lo = min((v.min() for v in vals.values()), default=-10)
        hi = max((v.max() for v in vals.values()), default=0)
        bins = np.linspace(lo - 0.1, hi + 0.1, 40)
        for pooling, v in vals.items():
            ax.hist(
                v, bins=bins, histtype="step", lw=1.5, color=colours.get(pooling), label=pooling
            )
        tol = _tolerance_for(setting, tolerance, bf16_tolerance)
        ax.axvline(math.log10(tol), color="k", ls="--", lw=1, label=f"tolerance {tol:g}")
        ax.set_title(setting, fontsize=10)
        ax.set_xlabel(
            f"log10 max-abs difference (layer {n_layers}; zeros at {math.log10(_FLOOR):g})"
        )
        ax.set_ylabel("count")
        ax.legend(fontsize=7)
    _finish(fig, title, path)


def growth_png(
    summary: pd.DataFrame,
    path: str | Path,
    tolerance: float,
    bf16_tolerance: float,
    title: str = "",
) -> None:
    """Per setting, median / p99 / max of the CLS max-abs difference against the layer (0 =
    embedding output), the worst real token as a dashed line; every partner pooled together."""
    settings = _settings_present(summary)
    fig, axes = _grid(len(settings))
    for ax, setting in zip(axes, settings, strict=True):
        sub = summary[summary["setting"] == setting]
        cls = sub[sub["pooling"] == "cls"].groupby("layer")
        tok = sub[sub["pooling"] == "tokens"].groupby("layer")["max"].max()
        for stat, colour in (("median", "#4477aa"), ("p99", "#ccbb44"), ("max", "#ee6677")):
            agg = cls[stat].max()
            ax.plot(
                agg.index,
                np.maximum(agg.to_numpy(), _FLOOR),
                marker="o",
                color=colour,
                label=f"CLS {stat}",
            )
        ax.plot(
            tok.index,
            np.maximum(tok.to_numpy(), _FLOOR),
            ls="--",
            color="#228833",
            label="worst token max",
        )
        tol = _tolerance_for(setting, tolerance, bf16_tolerance)
        ax.axhline(tol, color="k", ls=":", lw=1, label=f"tolerance {tol:g}")
        ax.set_yscale("log")
        ax.set_title(setting, fontsize=10)
        ax.set_xlabel("layer (0 = embedding output)")
        ax.set_ylabel("max-abs difference")
        ax.legend(fontsize=7)
    _finish(fig, title, path)
