"""Attention of probe sentences: per-layer, per-head attention weights from the eager attention
implementation (``output_attentions=True``), a static grid of heatmaps (layers × heads) per
probe, and an interactive page with probe / layer / head selectors."""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from .io import atomic_path, read_json, write_json
from .models import attention_implementation
from .pages import script_json, write_page

log = logging.getLogger(__name__)


def attention_maps(model, tokenizer, texts: Sequence[str], max_tokens: int) -> list[dict[str, Any]]:
    """For each text: its tokens (with [CLS]/[SEP], cut to ``max_tokens``) and the attention
    weights (layers, heads, tokens, tokens) of one unpadded forward pass. The model must use the
    eager attention implementation (the fused kernels return no weights)."""
    import torch

    impl = attention_implementation(model)
    if impl != "eager":
        raise ValueError(f"attention weights need attn_implementation='eager' (model has {impl})")
    out = []
    with torch.inference_mode():
        for text in texts:
            enc = tokenizer(text, truncation=True, max_length=max_tokens, return_tensors="pt")
            ids = enc["input_ids"]
            res = model(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                token_type_ids=torch.zeros_like(ids),
                output_attentions=True,
            )
            weights = torch.stack([a[0] for a in res.attentions]).float().numpy()
            out.append(
                {
                    "text": text,
                    "tokens": tokenizer.convert_ids_to_tokens(ids[0].tolist()),
                    "weights": weights,
                }
            )
    return out


def save_maps(maps: list[dict[str, Any]], out_npz: str, out_json: str, **facts: Any) -> None:
    """Weights as float16 in an .npz (one array per probe), tokens and facts in JSON."""
    with atomic_path(out_npz, suffix=".npz") as tmp:
        np.savez_compressed(
            tmp, **{f"probe{i}": m["weights"].astype(np.float16) for i, m in enumerate(maps)}
        )
    write_json(
        out_json,
        {
            **facts,
            "probes": [
                {
                    "text": m["text"],
                    "tokens": m["tokens"],
                    "layers": int(m["weights"].shape[0]),
                    "heads": int(m["weights"].shape[1]),
                }
                for m in maps
            ],
        },
    )


def load_maps(npz: str, json_path: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    meta = read_json(json_path)
    data = np.load(npz)
    maps = [
        {**p, "weights": data[f"probe{i}"].astype(np.float32)} for i, p in enumerate(meta["probes"])
    ]
    return maps, meta


def grid_png(entry: dict[str, Any], title: str, out_png: str) -> None:
    """All heads of all layers of one probe: rows = layers, columns = heads; each heatmap has
    the attending token (query) down and the attended token (key) across."""
    from .plotting import new_figure, save_figure

    w = entry["weights"]
    layers, heads, t, _ = w.shape
    tokens = [str(s) for s in entry["tokens"]]
    cell = 1.25 if t <= 24 else 1.6
    fig, axes = new_figure(
        layers,
        heads,
        figsize=(cell * heads + 1.5, cell * layers + 1.2),
        squeeze=False,
        layout="constrained",
    )
    font = max(3.0, min(6.0, 120 / max(t, 1)))
    for li in range(layers):
        for hi in range(heads):
            ax = axes[li][hi]
            ax.imshow(w[li, hi], cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if hi == 0:
                ax.set_ylabel(f"layer {li + 1}", fontsize=7)
                if li == layers - 1:
                    ax.set_yticks(range(t), tokens, fontsize=font)
            if li == 0:
                ax.set_title(f"head {hi + 1}", fontsize=7)
            if li == layers - 1:
                ax.set_xticks(range(t), tokens, fontsize=font, rotation=90)
    fig.suptitle(f"{title}\n{entry['text']}", fontsize=9)
    save_figure(fig, out_png, dpi=110)


def attention_page(maps: list[dict[str, Any]], title: str, out_html: str) -> None:
    """One heatmap (query token down, key token across) with probe, layer and head selectors
    ("mean" averages heads or layers); hover shows both tokens and the weight."""
    from bokeh.layouts import column, row
    from bokeh.models import ColumnDataSource, CustomJS, Div

    if not maps:
        write_page(
            Div(text=f"<h2>{html.escape(title)}</h2><p>No probe sentences.</p>"), title, out_html
        )
        return
    stores = [
        ColumnDataSource(data={"w": m["weights"].astype(np.float32).ravel()}, name=f"probe{i}")
        for i, m in enumerate(maps)
    ]
    info = [
        {
            "text": m["text"],
            "tokens": [f"{j}·{t}" for j, t in enumerate(m["tokens"])],
            "layers": int(m["weights"].shape[0]),
            "heads": int(m["weights"].shape[1]),
        }
        for m in maps
    ]
    first = info[0]
    cells = ColumnDataSource(data=_cells(maps[0]["weights"], first["tokens"], 0, 0), name="cells")
    fig = _heatmap(cells, first["tokens"])
    probe, layer, head = _selectors(info)
    status = Div(text="", name="status", width=900)
    cb = CustomJS(
        args={
            "stores": stores,
            "cells": cells,
            "fig": fig,
            "probe": probe,
            "layer": layer,
            "head": head,
            "status": status,
        },
        code=f"const info = {script_json(info)};" + _PAGE_JS,
    )
    for s in (probe, layer, head):
        s.js_on_change("value", cb)
    status.text = (
        f"<p><b>{html.escape(first['text'])}</b> — layer 1, head 1 ({first['layers']} layers × "
        f"{first['heads']} heads)</p>"
    )
    header = Div(
        text=f"<h2 style='margin:0.2em 0'>{html.escape(title)}</h2><p style='max-width:1000px'>"
        "Attention weights of each probe sentence, encoded alone (no padding) with the eager "
        "attention implementation: row = attending token (query), column = attended token "
        "(key); each row sums to 1. 'mean' averages over heads or layers.</p>",
        width=1000,
    )
    write_page(column(header, row(probe, layer, head), status, fig), title, out_html)


def _heatmap(cells, tokens: list[str]):
    """The heatmap figure of the ``cells`` source (first probe's ``tokens`` on both axes)."""
    from bokeh.models import ColorBar, FactorRange, HoverTool, LinearColorMapper
    from bokeh.palettes import Viridis256
    from bokeh.plotting import figure

    mapper = LinearColorMapper(palette=Viridis256, low=0, high=1)
    size = max(420, min(900, 26 * len(tokens) + 160))
    fig = figure(
        title="",
        x_range=FactorRange(factors=tokens),
        y_range=FactorRange(factors=list(reversed(tokens))),
        width=size + 90,
        height=size,
        tools="save,reset",
        x_axis_location="above",
    )
    fig.rect(
        "x",
        "y",
        1,
        1,
        source=cells,
        line_color=None,
        fill_color={"field": "w", "transform": mapper},
    )
    fig.xaxis.major_label_orientation = 1.1
    fig.xaxis.axis_label = "attended token (key)"
    fig.yaxis.axis_label = "attending token (query)"
    fig.add_tools(HoverTool(tooltips=[("query", "@y"), ("key", "@x"), ("weight", "@w{0.000}")]))
    fig.add_layout(ColorBar(color_mapper=mapper, title="weight"), "right")
    return fig


def _selectors(info: list[dict[str, Any]]) -> tuple[Any, Any, Any]:
    """The probe, layer and head selectors ("mean" averages layers or heads)."""
    from bokeh.models import Select

    max_layers = max(i["layers"] for i in info)
    max_heads = max(i["heads"] for i in info)
    probe = Select(
        title="probe sentence",
        value="0",
        options=[(str(i), f"{i + 1}: {m['text'][:60]}") for i, m in enumerate(info)],
        name="probe",
        width=420,
    )
    layer = Select(
        title="layer",
        value="1",
        options=[str(i) for i in range(1, max_layers + 1)] + ["mean"],
        name="layer",
    )
    head = Select(
        title="head",
        value="1",
        options=[str(i) for i in range(1, max_heads + 1)] + ["mean"],
        name="head",
    )
    return probe, layer, head


# The page's behaviour: redraw the heatmap for the selected probe, layer and head (``info``, the
# probes' tokens and shapes, is prepended).
_PAGE_JS = r"""
const p = parseInt(probe.value), m = info[p], T = m.tokens.length;
const L = m.layers, H = m.heads;
const w = stores[p].data.w;
const ls = layer.value === 'mean' ? [...Array(L).keys()] : [Math.min(parseInt(layer.value), L) - 1];
const hs = head.value === 'mean' ? [...Array(H).keys()] : [Math.min(parseInt(head.value), H) - 1];
const x = [], y = [], v = [];
for (let q = 0; q < T; q++) {
    for (let k = 0; k < T; k++) {
        let s = 0;
        for (const l of ls) for (const h of hs) s += w[((l * H + h) * T + q) * T + k];
        x.push(m.tokens[k]); y.push(m.tokens[q]); v.push(s / (ls.length * hs.length));
    }
}
fig.x_range.factors = m.tokens;
fig.y_range.factors = m.tokens.slice().reverse();
cells.data = {x: x, y: y, w: v};
status.text = '<p><b>' + m.text.replace(/&/g, '&amp;').replace(/</g, '&lt;') + '</b> — layer ' +
    layer.value + ', head ' + head.value + ' (' + L + ' layers × ' + H + ' heads)</p>';
window.bertlensAttention = {probe: p, layer: layer.value, head: head.value, cells: v.length};
"""


def _cells(weights: np.ndarray, tokens: list[str], layer: int, head: int) -> dict[str, Any]:
    t = len(tokens)
    w = weights[layer, head]
    return {
        "x": [tokens[k] for _ in range(t) for k in range(t)],
        "y": [tokens[q] for q in range(t) for _ in range(t)],
        "w": w.astype(np.float32).ravel(),
    }
