"""Plots: static PNGs (matplotlib, Japanese labels rendered with the IPAex font that
matplotlib-fontja ships) and interactive standalone HTML pages (bokeh, resources inlined so they
render offline)."""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .io import atomic_path, write_text

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


# --------------------------------------------------------------------------- interactive
def _bokeh_html(layout, title: str, out_html: str) -> None:
    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    # Inline resources: the CDN default renders blank offline.
    write_text(out_html, file_html(layout, INLINE, title))


def _downsample(df: pd.DataFrame, budget: int, seed: int = 0) -> tuple[pd.DataFrame, str]:
    if len(df) <= budget:
        return df, f"all {len(df):,} points shown"
    keep = df.sample(n=budget, random_state=seed).sort_index()
    return keep, f"{budget:,} of {len(df):,} points shown (uniform random sample, seed {seed})"


def interactive_scatter(
    frames: dict[str, pd.DataFrame],
    hover: list[tuple[str, str]],
    color: str,
    title: str,
    note: str,
    out_html: str,
    budget: int = 40000,
) -> None:
    """A standalone page: one scatter whose data set is chosen with a selector (method, layer,
    pooling: the keys of ``frames``), hover text, wheel zoom, box zoom, colour by ``color``, and a
    search box that highlights points whose label contains the query."""
    from bokeh.layouts import column, row
    from bokeh.models import (
        ColorBar,
        ColumnDataSource,
        CustomJS,
        Div,
        HoverTool,
        LinearColorMapper,
        Select,
        TextInput,
    )
    from bokeh.palettes import Viridis256
    from bokeh.plotting import figure

    keys = list(frames)
    sampled = {}
    notes = {}
    for key, df in frames.items():
        sampled[key], notes[key] = _downsample(df, budget)
    label_col = hover[0][1]

    def columns_of(df: pd.DataFrame) -> dict[str, Any]:
        data = {c: df[c].to_numpy() for _, c in hover if c in df}
        data.update(
            x=df["x"].to_numpy(),
            y=df["y"].to_numpy(),
            c=np.asarray(df[color], dtype=float),
            alpha=np.full(len(df), 0.7),
            size=np.full(len(df), 4.0),
        )
        data[label_col] = df[label_col].astype(str).to_numpy()
        return data

    all_data = {k: columns_of(v) for k, v in sampled.items()}
    source = ColumnDataSource(data=dict(all_data[keys[0]]))
    store = ColumnDataSource(data={"key": keys})
    cvals = np.concatenate([d["c"] for d in all_data.values()])
    mapper = LinearColorMapper(
        palette=Viridis256, low=float(np.nanmin(cvals)), high=float(np.nanmax(cvals))
    )
    fig = figure(
        title=title,
        width=900,
        height=760,
        tools="pan,wheel_zoom,box_zoom,reset,save,tap",
        active_scroll="wheel_zoom",
        output_backend="webgl",
    )
    fig.scatter(
        "x",
        "y",
        source=source,
        size="size",
        fill_alpha="alpha",
        line_alpha=0,
        fill_color={"field": "c", "transform": mapper},
    )
    fig.add_tools(HoverTool(tooltips=[(name, f"@{{{col}}}") for name, col in hover]))
    fig.add_layout(ColorBar(color_mapper=mapper, title=color), "right")
    fig.xaxis.visible = False
    fig.yaxis.visible = False

    info = Div(text=f"<p>{html.escape(note)} <b>{html.escape(notes[keys[0]])}</b></p>", width=900)
    select = Select(title="view", value=keys[0], options=keys)
    search = TextInput(title=f"search {label_col}", placeholder="type and press Enter")
    status = Div(text="", width=400)
    payload = {
        k: {c: (v.tolist() if hasattr(v, "tolist") else v) for c, v in d.items()}
        for k, d in all_data.items()
    }
    del store
    select.js_on_change(
        "value",
        CustomJS(
            args={"src": source, "info": info, "search": search},
            code=f"""
        const all = {_json(payload)};
        const notes = {_json(notes)};
        const d = all[cb_obj.value];
        src.data = Object.assign({{}}, d);
        info.text = info.text.replace(/<b>.*<\\/b>/, '<b>' + notes[cb_obj.value] + '</b>');
        search.value = search.value;  // re-apply highlighting
    """,
        ),
    )
    search.js_on_change(
        "value",
        CustomJS(
            args={"src": source, "status": status},
            code=f"""
        const q = cb_obj.value.trim().toLowerCase();
        const lab = src.data['{label_col}'];
        const n = lab.length;
        const alpha = new Array(n), size = new Array(n);
        let hits = 0;
        for (let i = 0; i < n; i++) {{
            const hit = q.length > 0 && String(lab[i]).toLowerCase().includes(q);
            if (hit) hits++;
            alpha[i] = q.length === 0 ? 0.7 : (hit ? 1.0 : 0.08);
            size[i] = hit ? 11 : 4;
        }}
        src.data = Object.assign({{}}, src.data, {{alpha: alpha, size: size}});
        status.text = q.length ? hits + ' match(es) for "' + q + '"' : '';
        window.bertlensLastSearch = {{query: q, hits: hits}};
    """,
        ),
    )
    controls = row(select, search, status) if len(keys) > 1 else row(search, status)
    _bokeh_html(column(info, controls, fig), title, out_html)


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, ensure_ascii=False, allow_nan=False, default=float).replace("</", "<\\/")


def write_image_page(png: str, out_html: str, title: str) -> None:
    """Wrap a PNG in an HTML page (for places that want a page rather than an image)."""
    import base64

    data = base64.b64encode(Path(png).read_bytes()).decode()
    write_text(
        out_html,
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>"
        f"{html.escape(title)}</title></head><body><img src='data:image/png;"
        f"base64,{data}'></body></html>",
    )


def vocab_page(df: pd.DataFrame, model: str, out_html: str, budget: int) -> None:
    df = df.copy()
    df["log10 frequency"] = np.log10(df["frequency"] + 1)
    interactive_scatter(
        {m: g for m, g in df.groupby("method", sort=False)},
        hover=[("token", "token"), ("id", "token_id"), ("frequency", "frequency")],
        color="log10 frequency",
        title=f"{model}: input token embeddings ({df['token_id'].nunique():,} tokens)",
        note="Each point is a vocabulary entry of the model's input embedding matrix; colour is "
        "log10 of its frequency in the corpus. The view selector switches t-SNE and PCA.",
        out_html=out_html,
        budget=budget,
    )


def sentence_pages(df: pd.DataFrame, model: str, out_png: str, out_html: str, budget: int) -> None:
    methods = set(df["method"])
    sentences_png(
        df,
        "tsne" if "tsne" in methods else sorted(methods)[0],
        df["pooling"].iloc[0],
        f"{model}: sentence embeddings",
        out_png,
    )
    frames = {
        f"{method} · {pooling} · layer {layer}": g
        for (pooling, layer, method), g in df.groupby(["pooling", "layer", "method"], sort=True)
    }
    interactive_scatter(
        frames,
        hover=[("text", "text"), ("id", "id"), ("tokens", "length"), ("source", "source")],
        color="length",
        title=f"{model}: sentence embeddings",
        note="Each point is a corpus sentence; colour is its length in tokens. The view selector "
        "switches projection method, pooling and layer (0 = embedding output).",
        out_html=out_html,
        budget=budget,
    )
