"""Interactive explorer pages (standalone bokeh HTML, resources inlined so they render offline):
token-embedding and sentence-embedding projections with hover text, search, colour by a metadata
column, view selectors (t-SNE / PCA / UMAP, pooling, layer), and a click → nearest-neighbours panel; and
the side-by-side comparison of two models (two figures sharing one data source, so selection and
hover link: one row = one sentence).

The neighbours are computed by the pipeline (``bertlens.neighbors``) in the original space and
embedded as data: per shown point its k neighbour positions (uint16 when fewer than 65,536 points
are referenced, else int32) and cosine distances quantised to 1e-4 (uint16). Numeric columns are
numpy arrays, which bokeh embeds as compressed base64 binary; strings appear once per point.
Pages over the point budget show a uniform random sample (stated on the page); neighbours of a
shown point that were not sampled are still listed (their labels are embedded separately).
"""

from __future__ import annotations

import html
import json
import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from .io import write_text
from .neighbors import jaccard_rows, quantize_distances
from .pages import density_image, label_candidates, pane_figure, standalone_html

log = logging.getLogger(__name__)

DIST_SCALE = 10000  # distances are embedded as uint16 in units of 1 / DIST_SCALE
CATEGORICAL = [
    "#4477aa",
    "#ee6677",
    "#228833",
    "#ccbb44",
    "#66ccee",
    "#aa3377",
    "#bbbbbb",
    "#000000",
    "#ee7733",
    "#009988",
    "#cc3311",
    "#33bbee",
]


@dataclass
class Colour:
    """A colouring of the points: numeric values (linear scale) or category codes + names."""

    values: np.ndarray  # one per point
    categories: list[str] | None = None
    per_view: dict[str, np.ndarray] | None = None  # {view id: values}, instead of ``values``
    low: float | None = None  # fixed colour range (default: the data's)
    high: float | None = None


@dataclass
class Pane:
    """One figure: its title and, per view id, the (points, 2) coordinates it shows."""

    title: str
    coords: dict[str, np.ndarray]
    # per view id: the neighbour-set id whose lists this pane shows
    neighbors: dict[str, str]


def sample_rows(n: int, budget: int, seed: int = 0) -> tuple[np.ndarray, str]:
    """Rows to display and a sentence stating the sampling."""
    if n <= budget:
        return np.arange(n), f"all {n:,} points shown"
    rows = np.sort(np.random.default_rng(seed).choice(n, size=budget, replace=False))
    return rows, (
        f"{budget:,} of {n:,} points shown (uniform random sample, seed {seed}; the full data are "
        "in the tables)"
    )


def compact_neighbors(
    shown: np.ndarray,
    sets: dict[str, tuple[np.ndarray, np.ndarray]],
) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    """Neighbour lists of the shown universe ids, re-indexed to page positions: 0 … n - 1 are the
    shown points, n … the extra (not shown) neighbours, whose universe ids are returned.

    Returns ({'i_<set>': flat positions, 'd_<set>': flat uint16 distances}, extra ids, k)."""
    shown = np.asarray(shown, dtype=np.int64)
    ks = {v[0].shape[1] for v in sets.values()}
    if len(ks) > 1:
        raise ValueError(f"neighbour sets differ in k: {sorted(ks)}")
    k = ks.pop() if ks else 0
    size = max([int(shown.max()) + 1 if len(shown) else 0] + [len(v[0]) for v in sets.values()])
    referenced = np.concatenate(
        [v[0][shown].ravel().astype(np.int64) for v in sets.values()] or [np.empty(0, np.int64)]
    )
    pos = np.full(size, -1, dtype=np.int64)
    pos[shown] = np.arange(len(shown))
    extra = np.unique(referenced[pos[referenced] < 0])
    pos[extra] = len(shown) + np.arange(len(extra))
    dtype = np.uint16 if len(shown) + len(extra) < 65536 else np.int32
    data = {}
    for name, (idx, dist) in sets.items():
        data[f"i_{name}"] = pos[idx[shown]].astype(dtype).ravel()
        data[f"d_{name}"] = quantize_distances(dist[shown], DIST_SCALE).ravel()
    return data, extra, k


def char_class(token: str, special: bool = False) -> str:
    """Kind of a vocabulary entry: ``##`` continuation piece, else by its first character."""
    if special:
        return "special"
    if re.fullmatch(r"\[unused\d+\]|<unused:\d+>", token):
        return "unused"
    if token.startswith("##") and len(token) > 2:
        return "## continuation"
    c = token[:1]
    if not c:
        return "other"
    o = ord(c)
    if c.isdigit():
        return "digit"
    if 0x3040 <= o <= 0x309F:
        return "hiragana"
    if 0x30A0 <= o <= 0x30FF or 0xFF66 <= o <= 0xFF9F:
        return "katakana"
    if 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF:
        return "kanji"
    if c.isalpha() and o < 0x250:
        return "latin"
    if unicodedata.category(c)[0] in "PS":
        return "punctuation/symbol"
    return "other"


def word_start_pos(tokens: Sequence[str], special: np.ndarray, mecab_dic: str) -> list[str]:
    """Part of speech (MeCab's first feature) of each token that starts a word, tagging the token
    on its own; ``##`` continuation pieces, special and unused entries get their own class."""
    from .models import mecab_tagger

    tagger = mecab_tagger(mecab_dic, wakati=False)
    out = []
    for token, sp in zip(tokens, special, strict=True):
        kind = char_class(token, bool(sp))
        if kind in ("special", "unused", "## continuation"):
            out.append(kind)
            continue
        nodes = list(tagger(token))
        out.append(nodes[0].feature[0] if nodes else "other")
    return out


def categorical(values: Sequence[Any]) -> Colour:
    """Category codes, the most common category first (it gets the palette's first colour)."""
    from collections import Counter

    counts = Counter(str(v) for v in values)
    cats = sorted(counts, key=lambda c: (-counts[c], c))
    code = {c: i for i, c in enumerate(cats)}
    return Colour(np.asarray([code[str(v)] for v in values], dtype=np.uint8), cats)


def linear(values: Sequence[float]) -> Colour:
    return Colour(np.asarray(values, dtype=np.float32))


# --------------------------------------------------------------------------- page
def _json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False).replace("</", "<\\/")


def build_page(
    *,
    points: pd.DataFrame,
    uid: np.ndarray,
    panes: list[Pane],
    dims: list[str],
    views: dict[str, tuple[str, ...]],
    neighbors: dict[str, tuple[np.ndarray, np.ndarray]],
    universe_labels: Sequence[str],
    label: str,
    hover: list[tuple[str, str]],
    colours: dict[str, Colour],
    title: str,
    note: str,
    out_html: str,
    budget: int,
    seed: int = 0,
    what: str = "point",
    default_view: str | None = None,
    priority: np.ndarray | None = None,
    label_chars: int = 12,
    label_cells: tuple[float, float] = (7.0, 30.0),
    raster_above: int = 50000,
) -> dict[str, Any]:
    """Write one explorer page; returns facts (points shown, sampling, bytes).

    Labels: ``priority`` orders the rows of ``points`` for labelling (first = labelled at the
    widest zoom; default: row order), each cut to ``label_chars`` characters, about
    ``label_cells`` (columns, rows) labels across a pane at zoom 1. Above ``raster_above``
    points, each pane draws every point as a datashader density image under the sample.

    ``points`` (one row per projected point, aligned with every pane's coordinates and with the
    colour values) holds ``label`` and the hover columns; ``uid`` are their indices in the
    neighbour arrays (the universe, e.g. token ids). ``views`` maps view ids to the selector
    values (one per entry of ``dims``)."""
    from bokeh.layouts import column, row
    from bokeh.models import (
        ColorBar,
        ColumnDataSource,
        CustomJS,
        Div,
        LabelSet,
        LinearColorMapper,
        Select,
        TextInput,
    )
    from bokeh.palettes import Viridis256

    rows, sampling = sample_rows(len(points), budget, seed)
    if len(points) > raster_above:
        sampling = (
            f"all {len(points):,} points drawn as a density image (datashader); "
            + (f"{len(rows):,} of them" if len(rows) < len(points) else "every point")
            + " interactive (hover, click, search"
            + (f"; uniform random sample, seed {seed})" if len(rows) < len(points) else ")")
        )
    shown = np.asarray(uid)[rows]
    nn_data, extra, k = compact_neighbors(shown, neighbors)
    view_ids = list(views)
    first = default_view or view_ids[0]

    data, colour_cfg = _page_columns(points, rows, label, hover, panes, view_ids, colours)

    src = ColumnDataSource(data=data, name="points")
    nn_src = ColumnDataSource(data=nn_data, name="neighbors")
    labels = list(universe_labels)
    # labels of neighbours that are not on the page, cut to what the neighbour list shows
    aux = ColumnDataSource(data={"label": [str(labels[i])[:120] for i in extra]}, name="extra")

    first_colour = next(iter(colour_cfg))
    c0 = colour_cfg[first_colour]
    mapper = LinearColorMapper(
        palette=c0.get("palette") or Viridis256, low=c0["low"], high=c0["high"]
    )
    figs, mains, hls, sels, lines_srcs, label_srcs, cands, rasters = [], [], [], [], [], [], [], []
    width = 820 if len(panes) == 1 else 640
    height = 700 if len(panes) == 1 else 600
    big = len(points) > raster_above
    order = np.arange(len(points)) if priority is None else np.asarray(priority)
    pos = np.full(len(points), -1, dtype=np.int64)
    pos[rows] = np.arange(len(rows))
    shown_priority = pos[order][pos[order] >= 0]  # page positions, most important first
    texts = data[label].astype(str) if label in data else np.asarray([], dtype=str)
    short = np.asarray([t[:label_chars] + ("…" if len(t) > label_chars else "") for t in texts])
    spans: list[dict[str, list[float]]] = []
    for p, pane in enumerate(panes):
        v0 = view_ids.index(first)
        pane_cands, pane_spans, images = _pane_layers(
            p, pane, data, view_ids, shown_priority, label_cells, big
        )
        r0 = pane_cands[v0].data["r"]
        initial = r0[pane_cands[v0].data["l"] == 0]
        pf = pane_figure(
            title=pane.title,
            x=data[f"x{p}_{v0}"],
            y=data[f"y{p}_{v0}"],
            labels={
                "x": data[f"x{p}_{v0}"][initial],
                "y": data[f"y{p}_{v0}"][initial],
                "text": short[initial].tolist(),
            },
            hover=hover,
            width=width,
            height=height,
            rasters=images,
            shown_raster=v0,
            point_size=4 if not big else 3,
        )
        fig, main = pf.figure, pf.main
        # one shared source for every pane: selections link, the page switches views and colours
        main.data_source = src
        for g in _glyphs(main):
            g.x, g.y = f"x{p}_{v0}", f"y{p}_{v0}"
            if g is not main.hover_glyph:
                g.fill_color = {"field": c0["cols"][first], "transform": mapper}
        main.name = f"main{p}"
        fig.name = f"figure{p}"
        pf.labels.name = f"labels{p}"
        for v, r in enumerate(pf.rasters):
            r.name = f"raster{p}_{v}"
        hl = ColumnDataSource(data={"i": [], "x": [], "y": [], "label": []}, name=f"search{p}")
        fig.scatter("x", "y", source=hl, size=11, fill_alpha=0, line_color="#ff7f00", line_width=2)
        fig.add_layout(
            LabelSet(
                x="x", y="y", text="label", source=hl, text_font_size="9pt", x_offset=5, y_offset=3
            )
        )
        seg = ColumnDataSource(data={"x0": [], "y0": [], "x1": [], "y1": []}, name=f"lines{p}")
        fig.segment("x0", "y0", "x1", "y1", source=seg, line_color="#d62728", line_alpha=0.6)
        sel = ColumnDataSource(data={"x": [], "y": [], "label": [], "size": []}, name=f"nn{p}")
        fig.scatter(
            "x",
            "y",
            source=sel,
            size="size",
            fill_color="#d62728",
            line_color="#000000",
            fill_alpha=0.9,
        )
        fig.add_layout(
            LabelSet(
                x="x",
                y="y",
                text="label",
                source=sel,
                text_font_size="9pt",
                text_color="#8b0000",
                x_offset=6,
                y_offset=4,
                background_fill_color="#ffffff",
                background_fill_alpha=0.6,
            )
        )
        figs.append(fig)
        mains.append(main)
        hls.append(hl)
        sels.append(sel)
        lines_srcs.append(seg)
        label_srcs.append(pf.labels)
        cands.append(pane_cands)
        rasters.append(pf.rasters)
        spans.append(pane_spans)
    bar = ColorBar(color_mapper=mapper, title=first_colour, visible=not c0["categories"])
    figs[-1].add_layout(bar, "right")

    cfg = {
        "label": label,
        "what": what,
        "k": k,
        "scale": DIST_SCALE,
        "n": len(rows),
        "dims": dims,
        "views": {vid: list(vals) for vid, vals in views.items()},
        "viewIndex": {vid: v for v, vid in enumerate(view_ids)},
        "paneNN": [pane.neighbors for pane in panes],
        "paneTitles": [pane.title for pane in panes],
        "colours": colour_cfg,
        "viridis": list(Viridis256),
        "hover": hover,
        "spans": spans,
        "labelChars": label_chars,
        "maxLabels": 400,
    }
    dim_values = {
        d: list(dict.fromkeys(vals[i] for vals in views.values())) for i, d in enumerate(dims)
    }
    selects = [
        Select(title=d, value=views[first][i], options=dim_values[d], name=f"dim_{d}")
        for i, d in enumerate(dims)
    ]
    colour_select = Select(
        title="colour by", value=first_colour, options=list(colour_cfg), name="colour"
    )
    search = TextInput(
        title=f'search {what}s (substring; "quotes" = exact)',
        placeholder="type and press Enter",
        name="search",
        width=260,
    )
    legend = Div(text=_legend_html(first_colour, c0), width=260, name="legend")
    panel = Div(
        text=f"<p><i>Click a {what} to list its {k} nearest neighbours in the original space.</i>"
        "</p>",
        width=400 if len(panes) == 1 else 1100,
        name="panel",
    )
    status = Div(text="", width=400 if len(panes) == 1 else 1100, name="status")
    args = {
        "src": src,
        "nn": nn_src,
        "aux": aux,
        "mains": mains,
        "hls": hls,
        "sels": sels,
        "segs": lines_srcs,
        "mapper": mapper,
        "bar": bar,
        "legend": legend,
        "panel": panel,
        "status": status,
        "selects": selects,
        "colour": colour_select,
        "search": search,
        "figs": figs,
        "labels": label_srcs,
        "cands": cands,
        "rasters": rasters,
    }
    lib = _JS_LIB.replace("__CFG__", _json(cfg))
    zoom = CustomJS(args=args, code=lib + "E.updateLabels();")
    for fig in figs:
        for rng in (fig.x_range, fig.y_range):
            rng.js_on_change("start", zoom)
            rng.js_on_change("end", zoom)
    for s in selects:
        s.js_on_change("value", CustomJS(args=args, code=lib + "E.onView(cb_obj);"))
    colour_select.js_on_change("value", CustomJS(args=args, code=lib + "E.applyColour();"))
    search.js_on_change("value", CustomJS(args=args, code=lib + "E.search();"))
    src.selected.js_on_change("indices", CustomJS(args=args, code=lib + "E.showNeighbours();"))

    header = Div(
        text=f"<h2 style='margin:0.2em 0'>{html.escape(title)}</h2>"
        f"<p style='max-width:1150px'>{note} <b>{html.escape(sampling)}</b>.</p>",
        width=1150,
        name="header",
    )
    controls = row(*selects, colour_select, search, legend)
    if len(panes) == 1:
        body = row(figs[0], column(status, panel))
    else:
        body = column(row(*figs), status, panel)
    _write_bokeh(column(header, controls, body), title, out_html)
    size = Path(out_html).stat().st_size
    log.info(
        "%s: %d points, %d extra neighbour labels, %.2f MB",
        out_html,
        len(rows),
        len(extra),
        size / 1e6,
    )
    return {
        "points": int(len(points)),
        "shown": int(len(rows)),
        "sampling": sampling,
        "extra_neighbor_labels": int(len(extra)),
        "k": int(k),
        "bytes": int(size),
    }


def _page_columns(
    points: pd.DataFrame,
    rows: np.ndarray,
    label: str,
    hover: list[tuple[str, str]],
    panes: list[Pane],
    view_ids: list[str],
    colours: dict[str, Colour],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The shared source's columns for the shown ``rows`` (label and hover columns, x/y per pane
    and view, colour values) and each colour's configuration for the page's JavaScript."""
    data: dict[str, Any] = {}
    for col in dict.fromkeys([label, *(c for _, c in hover)]):
        values = points[col].iloc[rows]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            arr = values.to_numpy()
            data[col] = arr.astype(np.int32 if np.issubdtype(arr.dtype, np.integer) else np.float32)
        else:
            data[col] = values.astype(str).to_numpy(dtype=object)
    for p, pane in enumerate(panes):
        for v, vid in enumerate(view_ids):
            xy = np.asarray(pane.coords[vid], dtype=np.float32)[rows]
            data[f"x{p}_{v}"] = np.ascontiguousarray(xy[:, 0])
            data[f"y{p}_{v}"] = np.ascontiguousarray(xy[:, 1])
    colour_cfg = {}
    for c, (name, colour) in enumerate(colours.items()):
        entry: dict[str, Any] = {"categories": colour.categories}
        if colour.per_view is not None:
            entry["cols"] = {}
            for v, vid in enumerate(view_ids):
                vals = np.asarray(colour.per_view[vid])[rows]
                data[f"c{c}_{v}"] = vals
                entry["cols"][vid] = f"c{c}_{v}"
            allv = np.concatenate([np.asarray(colour.per_view[vid]) for vid in view_ids])
        else:
            data[f"c{c}"] = np.asarray(colour.values)[rows]
            entry["cols"] = {vid: f"c{c}" for vid in view_ids}
            allv = np.asarray(colour.values)
        if colour.categories:
            entry["low"], entry["high"] = -0.5, len(colour.categories) - 0.5
            entry["palette"] = [
                CATEGORICAL[i % len(CATEGORICAL)] for i in range(len(colour.categories))
            ]
        else:
            finite = allv[np.isfinite(allv)] if allv.size else allv
            lo = float(finite.min()) if finite.size else 0.0
            hi = float(finite.max()) if finite.size else 1.0
            lo = lo if colour.low is None else colour.low
            hi = hi if colour.high is None else colour.high
            entry["low"], entry["high"] = lo, (hi if hi > lo else lo + 1.0)
        colour_cfg[name] = entry
    return data, colour_cfg


RASTER_SIZE = (480, 420)  # pixels of the density images


def _pane_layers(
    p: int,
    pane: Pane,
    data: dict[str, Any],
    view_ids: list[str],
    priority: np.ndarray,
    label_cells: tuple[float, float],
    big: bool,
) -> tuple[list, dict[str, list[float]], list]:
    """Per view of pane ``p``: its label candidates (a named source), the span of its shown
    points (the zoom reference) and, for big pages, the density image of all its points."""
    from bokeh.models import ColumnDataSource

    cands, spans, images = [], {}, []
    for v, vid in enumerate(view_ids):
        xy = np.column_stack([data[f"x{p}_{v}"], data[f"y{p}_{v}"]])
        r, lv = label_candidates(xy, priority, label_cells)
        cands.append(ColumnDataSource(data={"r": r, "l": lv}, name=f"cand{p}_{v}"))
        spans[vid] = [float(np.ptp(xy[:, 0])) or 1.0, float(np.ptp(xy[:, 1])) or 1.0]
        if big:
            full = np.asarray(pane.coords[vid], dtype=np.float32)
            images.append((_bounds(full), density_image(full, _bounds(full), RASTER_SIZE)))
    return cands, spans, images


def _glyphs(renderer) -> list:
    return [
        g
        for g in (
            renderer.glyph,
            renderer.selection_glyph,
            renderer.nonselection_glyph,
            renderer.hover_glyph,
            renderer.muted_glyph,
        )
        if g is not None and not isinstance(g, str)
    ]


def _bounds(xy: np.ndarray) -> tuple[float, float, float, float]:
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    pad = np.maximum((hi - lo) * 0.02, 1e-6)
    return (
        float(lo[0] - pad[0]),
        float(lo[1] - pad[1]),
        float(hi[0] + pad[0]),
        float(hi[1] + pad[1]),
    )


def _legend_html(name: str, entry: dict[str, Any]) -> str:
    cats = entry.get("categories")
    if not cats:
        return ""
    items = "".join(
        f"<span style='white-space:nowrap;margin-right:8px'><span style='display:inline-block;"
        f"width:10px;height:10px;background:{entry['palette'][i]}'></span> {html.escape(c)}</span> "
        for i, c in enumerate(cats)
    )
    return f"<div style='font-size:12px'><b>{html.escape(name)}</b><br>{items}</div>"


def _write_bokeh(layout, title: str, out_html: str) -> None:
    write_text(out_html, standalone_html(layout, title))


# One library of page behaviour, prepended to every callback (callbacks share no scope).
_JS_LIB = r"""
const cfg = __CFG__;
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
const E = {};
E.viewId = function () {
    const vals = selects.map((s) => s.value);
    for (const [vid, v] of Object.entries(cfg.views)) {
        if (v.every((x, i) => x === vals[i])) return vid;
    }
    return null;
};
E.onView = function (changed) {
    if (window.__bertlensBusy) return;
    let vid = E.viewId();
    if (vid === null) {
        // No projection for this combination: keep the changed value, take the first view with it.
        const d = selects.indexOf(changed);
        vid = Object.keys(cfg.views).find((id) => cfg.views[id][d] === changed.value);
        window.__bertlensBusy = true;
        try {
            selects.forEach((s, i) => { s.value = cfg.views[vid][i]; });
        } finally {
            window.__bertlensBusy = false;
        }
    }
    E.applyView(vid);
};
E.cols = function (p, vid) {
    const v = cfg.viewIndex[vid];
    return ['x' + p + '_' + v, 'y' + p + '_' + v];
};
// a renderer's selection / nonselection / hover glyphs carry their own field specs
E.glyphs = (r) => [r.glyph, r.selection_glyph, r.nonselection_glyph, r.hover_glyph,
                   r.muted_glyph].filter((g) => g !== null && typeof g === 'object');
E.applyView = function (vid) {
    mains.forEach((r, p) => {
        const [xc, yc] = E.cols(p, vid);
        E.glyphs(r).forEach((g) => { g.x = {field: xc}; g.y = {field: yc}; });
    });
    const v = cfg.viewIndex[vid];
    rasters.forEach((list) => list.forEach((r, i) => { r.visible = i === v; }));
    E.applyColour();
    E.refreshSearch();
    E.showNeighbours();
    E.updateLabels();
    window.bertlensView = vid;
};
// labels on the map: a view's candidates come ordered by zoom level, then priority; those whose
// level the zoom has reached and that lie in the visible ranges are drawn (at most maxLabels)
E.updateLabels = function () {
    const vid = E.viewId() || Object.keys(cfg.views)[0];
    const v = cfg.viewIndex[vid];
    const shown = [];
    figs.forEach((fig, p) => {
        const xr = fig.x_range, yr = fig.y_range;
        const [sx, sy] = cfg.spans[p][vid];
        const zoom = Math.min(sx / Math.max(xr.end - xr.start, 1e-12),
                              sy / Math.max(yr.end - yr.start, 1e-12));
        const level = Math.floor(Math.log2(Math.max(zoom, 1e-9)) + 0.35);
        const [xc, yc] = E.cols(p, vid);
        const X = src.data[xc], Y = src.data[yc], T = src.data[cfg.label];
        const R = cands[p][v].data.r, L = cands[p][v].data.l;
        const out = {x: [], y: [], text: []};
        for (let j = 0; j < R.length && L[j] <= level && out.x.length < cfg.maxLabels; j++) {
            const i = R[j];
            const x = X[i], y = Y[i];
            if (x < xr.start || x > xr.end || y < yr.start || y > yr.end) continue;
            const t = String(T[i]);
            out.x.push(x);
            out.y.push(y);
            out.text.push(t.length > cfg.labelChars ? t.slice(0, cfg.labelChars) + '…' : t);
        }
        labels[p].data = out;
        // the density image has a fixed resolution: fainter once its pixels grow large
        rasters[p].forEach((r) => { r.glyph.global_alpha = level >= 3 ? 0.35 : 1.0; });
        shown.push({level: level, labels: out.text.slice()});
    });
    window.bertlensLabels = shown;
};
E.applyColour = function () {
    const name = colour.value;
    const c = cfg.colours[name];
    const vid = E.viewId() || Object.keys(cfg.views)[0];
    mapper.palette = c.palette || cfg.viridis;
    mapper.low = c.low;
    mapper.high = c.high;
    mains.forEach((r) => {
        [r.glyph, r.selection_glyph, r.nonselection_glyph, r.muted_glyph].forEach((g) => {
            if (g !== null && typeof g === 'object') g.fill_color = {field: c.cols[vid], transform: mapper};
        });
    });
    bar.visible = !c.categories;
    bar.title = name;
    if (c.categories) {
        legend.text = '<div style="font-size:12px"><b>' + esc(name) + '</b><br>' + c.categories.map(
            (cat, i) => '<span style="white-space:nowrap;margin-right:8px"><span style="display:' +
            'inline-block;width:10px;height:10px;background:' + c.palette[i] + '"></span> ' +
            esc(cat) + '</span>').join(' ') + '</div>';
    } else {
        legend.text = '';
    }
};
E.labelOf = function (pos) {
    return pos < cfg.n ? src.data[cfg.label][pos] : aux.data.label[pos - cfg.n];
};
E.select = function (pos) {
    src.selected.indices = [pos];
};
window.bertlensSelect = E.select;
E.refreshSearch = function (hits, labels) {
    const vid = E.viewId();
    hls.forEach((h, p) => {
        const idx = hits || Array.from(h.data.i || []);
        const lab = labels || Array.from(h.data.label || []);
        const [xc, yc] = E.cols(p, vid);
        h.data = {i: idx, x: idx.map((i) => src.data[xc][i]), y: idx.map((i) => src.data[yc][i]),
                  label: lab};
    });
};
E.search = function () {
    const raw = search.value.trim();
    const exact = raw.length > 1 && raw.startsWith('"') && raw.endsWith('"');
    const q = (exact ? raw.slice(1, -1) : raw).toLowerCase();
    const lab = src.data[cfg.label];
    const hits = [];
    if (q.length) {
        for (let i = 0; i < lab.length; i++) {
            const s = String(lab[i]).toLowerCase();
            if (exact ? s === q : s.includes(q)) hits.push(i);
        }
        // exact matches first, then shorter labels
        hits.sort((a, b) => {
            const ea = String(lab[a]).toLowerCase() === q, eb = String(lab[b]).toLowerCase() === q;
            return (eb - ea) || (String(lab[a]).length - String(lab[b]).length) || (a - b);
        });
    }
    const showLabels = hits.length <= 60;
    E.refreshSearch(hits, hits.map((i) => showLabels ? String(lab[i]).slice(0, 30) : ''));
    mains.forEach((r) => { r.glyph.fill_alpha = q.length ? 0.15 : 0.7; });
    let text = '';
    if (q.length) {
        text = '<p><b>' + hits.length + '</b> ' + cfg.what + '(s) match "' + esc(q) + '"' +
            (hits.length ? ' (click one to list its neighbours):' : '') + '</p>';
        text += hits.slice(0, 40).map((i) => '<a href="#" style="margin-right:6px" ' +
            'onclick="window.bertlensSelect(' + i + ');return false;">' +
            esc(String(lab[i]).slice(0, 80)) + '</a>').join(' ');
        if (hits.length > 40) text += ' …';
    }
    status.text = text;
    window.bertlensLastSearch = {query: q, hits: hits.length,
                                 labels: hits.slice(0, 20).map((i) => String(lab[i]))};
};
// a region selected with the box or lasso tool: the shared source marks it in every map
E.showRegion = function (idx) {
    const lab = src.data[cfg.label];
    const names = cfg.paneTitles.map(esc).join(' and ');
    panel.text = '<p><b>' + idx.length + '</b> ' + esc(cfg.what) + 's selected; highlighted in ' +
        names + ' (shift + drag adds, Esc or reset clears).</p>' +
        idx.slice(0, 30).map((i) => '<a href="#" style="margin-right:6px" onclick="window.' +
        'bertlensSelect(' + i + ');return false;">' + esc(String(lab[i]).slice(0, 60)) + '</a>')
        .join(' ') + (idx.length > 30 ? ' …' : '');
    window.bertlensLastRegion = {count: idx.length, indices: Array.from(idx.slice(0, 5000)),
                                 labels: idx.slice(0, 20).map((i) => String(lab[i]))};
};
E.showNeighbours = function () {
    const i = src.selected.indices.length ? src.selected.indices[0] : null;
    const vid = E.viewId();
    if (i === null || vid === null || src.selected.indices.length > 1) {
        sels.forEach((s) => { s.data = {x: [], y: [], label: [], size: []}; });
        segs.forEach((s) => { s.data = {x0: [], y0: [], x1: [], y1: []}; });
        if (src.selected.indices.length > 1) E.showRegion(src.selected.indices);
        return;
    }
    const k = cfg.k;
    const lists = cfg.paneNN.map((m, p) => {
        const set = m[vid];
        const ia = nn.data['i_' + set], da = nn.data['d_' + set];
        const out = [];
        for (let r = 0; r < k; r++) {
            const pos = ia[i * k + r];
            out.push({pos: pos, label: E.labelOf(pos), distance: da[i * k + r] / cfg.scale,
                      shown: pos < cfg.n});
        }
        return out;
    });
    lists.forEach((list, p) => {
        const [xc, yc] = E.cols(p, vid);
        const X = src.data[xc], Y = src.data[yc];
        const on = list.filter((e) => e.shown);
        sels[p].data = {
            x: [X[i]].concat(on.map((e) => X[e.pos])),
            y: [Y[i]].concat(on.map((e) => Y[e.pos])),
            label: [String(E.labelOf(i)).slice(0, 40)].concat(on.map((e) => String(e.label).slice(0, 30))),
            size: [14].concat(on.map(() => 8)),
        };
        segs[p].data = {x0: on.map(() => X[i]), y0: on.map(() => Y[i]),
                        x1: on.map((e) => X[e.pos]), y1: on.map((e) => Y[e.pos])};
    });
    const info = cfg.hover.map(([name, col]) => '<b>' + esc(name) + '</b>: ' +
        esc(String(src.data[col][i]).slice(0, 300))).join('<br>');
    let shared = null;
    if (lists.length === 2) {
        const a = new Set(lists[0].map((e) => e.pos));
        const both = lists[1].filter((e) => a.has(e.pos)).length;
        shared = {both: both, jaccard: both / (2 * k - both)};
    }
    const tables = lists.map((list, p) => {
        const other = lists.length === 2 ? new Set(lists[1 - p].map((e) => e.pos)) : null;
        const rows = list.map((e, r) => '<tr' + (e.shown ? '' : ' style="color:#888"') + '><td>' +
            (r + 1) + '</td><td>' + (e.shown ? '<a href="#" onclick="window.bertlensSelect(' +
            e.pos + ');return false;">' : '') + ((other && other.has(e.pos)) ? '<b>' : '') +
            esc(String(e.label).slice(0, 120)) + ((other && other.has(e.pos)) ? '</b>' : '') +
            (e.shown ? '</a>' : ' (not shown)') + '</td><td>' + e.distance.toFixed(4) +
            '</td></tr>').join('');
        return '<div style="display:inline-block;vertical-align:top;margin-right:18px;' +
            'max-width:' + (lists.length === 2 ? 540 : 400) + 'px"><p><b>' + esc(cfg.paneTitles[p]) +
            '</b>: ' + k + ' nearest (' + esc(cfg.paneNN[p][vid]) + ', cosine distance)</p>' +
            '<table class="bertlens-nn" style="border-collapse:collapse;font-size:12px">' +
            '<tr><th>#</th><th>' + esc(cfg.what) + '</th><th>distance</th></tr>' + rows +
            '</table></div>';
    }).join('');
    panel.text = '<div style="font-size:13px">' + info + '</div>' +
        (shared ? '<p>shared neighbours: <b>' + shared.both + '</b> of ' + k + ' (Jaccard ' +
         shared.jaccard.toFixed(2) + '; shared ones in bold)</p>' : '') + tables;
    window.bertlensLastSelection = {index: i, label: String(E.labelOf(i)), view: vid,
        neighbors: lists.map((l) => l.map((e) => ({label: String(e.label), distance: e.distance,
                                                   shown: e.shown}))),
        shared: shared};
};
"""


# --------------------------------------------------------------------------- pages
def vocab_explorer(
    projection: pd.DataFrame,
    vocab: pd.DataFrame,
    knn: tuple[np.ndarray, np.ndarray],
    model: str,
    out_html: str,
    budget: int,
    raster_above: int = 50000,
    mecab_dic: str | None = None,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """The token-embedding explorer: one point per projected vocabulary entry, projection
    selector, neighbours over the whole input embedding matrix. With ``mecab_dic`` (Japanese
    models) the tokens can be coloured by the part of speech of the word they start;
    ``notes``: how the neighbours were found (``neighbors.search_notes``)."""
    methods = list(dict.fromkeys(projection["method"]))
    base = projection[projection["method"] == methods[0]].reset_index(drop=True)
    coords = {}
    for m in methods:
        part = projection[projection["method"] == m].set_index("token_id")
        coords[m] = part.loc[base["token_id"], ["x", "y"]].to_numpy(np.float32)
    special = base["special"].to_numpy(bool) if "special" in base else np.zeros(len(base), bool)
    tokens = base["token"].astype(str)
    unused = tokens.str.fullmatch(r"\[unused\d+\]|<unused:\d+>").to_numpy(bool)
    bare = tokens.str.replace(r"^##(?=.)", "", regex=True)
    pos = None if mecab_dic is None else word_start_pos(tokens.tolist(), special, mecab_dic)
    colours = {
        "log10 frequency": linear(np.log10(base["frequency"].to_numpy() + 1)),
        "character class": categorical(
            [char_class(t, s) for t, s in zip(tokens, special, strict=True)]
        ),
        **({"part of speech (word start)": categorical(pos)} if pos is not None else {}),
        "length (characters)": linear(bare.str.len().to_numpy()),
        "seen in corpus": categorical(np.where(base["frequency"] > 0, "seen", "unseen")),
        "special token": categorical(np.where(special, "special", "ordinary")),
    }
    n_vocab = len(vocab)
    pane = Pane(model, coords, {m: "input" for m in methods})
    return build_page(
        points=base,
        uid=base["token_id"].to_numpy(),
        panes=[pane],
        dims=["projection"],
        views={m: (m,) for m in methods},
        neighbors={"input": knn},
        universe_labels=vocab.sort_values("token_id")["token"].astype(str).tolist(),
        label="token",
        hover=[("token", "token"), ("id", "token_id"), ("frequency", "frequency")],
        colours=colours,
        title=f"{model}: token embeddings explorer",
        note=html.escape(
            f"Each point is one of {len(base):,} entries of the input embedding matrix "
            f"({n_vocab:,} rows); the selector switches {_names(methods)} of the same points. "
            "Labels of the most frequent tokens are drawn on the map, more as you zoom in. Click a "
            f"token (or a search hit) to list its {knn[0].shape[1]} nearest neighbours among all "
            f"{n_vocab:,} rows by cosine distance in the original embedding space (computed by "
            "the pipeline, not from the 2-D picture); grey entries are not on the page. "
            + " ".join(notes)
        ),
        out_html=out_html,
        budget=budget,
        what="token",
        # labels: frequent tokens first (ties by id); special and unused entries get none
        priority=_token_priority(base, special | unused),
        raster_above=raster_above,
    )


METHOD_NAMES = {"tsne": "t-SNE", "pca": "PCA", "umap": "UMAP"}


def _names(methods) -> str:
    return " / ".join(METHOD_NAMES.get(m, m) for m in dict.fromkeys(methods))


def _token_priority(base: pd.DataFrame, excluded: np.ndarray) -> np.ndarray:
    """Rows to label, most frequent first (ties by token id), without the ``excluded`` ones."""
    order = np.lexsort((base["token_id"].to_numpy(), -base["frequency"].to_numpy()))
    return order[~excluded[order]]


def sentence_frames(projection: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The sentences of a sentence projection table (one row each, corpus order) and its views:
    {view id: (method, pooling, layer, (sentences, 2) coordinates)}."""
    views = {}
    base = None
    for (method, pooling, layer), g in projection.groupby(
        ["method", "pooling", "layer"], sort=False
    ):
        g = g.reset_index(drop=True)
        if base is None:
            base = g
        elif not g["id"].equals(base["id"]):
            raise ValueError("sentence projection views hold different sentences")
        vid = f"{method} {pooling} L{layer}"
        views[vid] = (method, pooling, int(layer), g[["x", "y"]].to_numpy(np.float32))
    pools = list(dict.fromkeys(v[1] for v in views.values()))
    methods = list(dict.fromkeys(v[0] for v in views.values()))
    order = sorted(
        views, key=lambda v: (pools.index(views[v][1]), views[v][2], methods.index(views[v][0]))
    )
    return base, {v: views[v] for v in order}


def default_view(views: dict[str, tuple]) -> str:
    """t-SNE (else the first method) of the first pooling at its deepest projected layer."""
    first = next(iter(views.values()))
    methods = {v[0] for v in views.values()}
    method = "tsne" if "tsne" in methods else first[0]
    cands = [vid for vid, v in views.items() if v[0] == method and v[1] == first[1]]
    return max(cands, key=lambda vid: views[vid][2])


def sentence_tokens(
    input_ids: Sequence[Sequence[int]], vocab: pd.DataFrame, limit: int = 64
) -> list[str]:
    """Each sentence's token strings (from its stored ids and the vocabulary), space-separated,
    cut after ``limit`` tokens."""
    names = vocab.sort_values("token_id")["token"].astype(str).to_numpy()
    out = []
    for ids in input_ids:
        ids = np.asarray(ids, dtype=np.int64)
        text = " ".join(names[ids[:limit]])
        out.append(text + (f" … (+{len(ids) - limit})" if len(ids) > limit else ""))
    return out


def sentence_explorer(
    projection: pd.DataFrame,
    tokens: list[str],
    knn: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]],
    model: str,
    out_html: str,
    budget: int,
    raster_above: int = 50000,
    clusters: dict[tuple[str, int], np.ndarray] | None = None,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """The sentence-embedding explorer: projection / pooling / layer selectors, neighbours of
    each sentence in the selected pooling and layer; ``clusters`` (per (pooling, layer): one
    cluster label per sentence) adds a colour that follows the pooling and layer; ``notes``:
    skipped layers, how neighbours and maps were made (``neighbors.search_notes``)."""
    base, views = sentence_frames(projection)
    base = base.copy()
    base["tokens"] = tokens
    base["row"] = np.arange(len(base))
    sets = {f"{p} L{layer}": knn[(p, layer)] for _, p, layer, _ in views.values()}
    pane = Pane(
        model,
        {vid: v[3] for vid, v in views.items()},
        {vid: f"{v[1]} L{v[2]}" for vid, v in views.items()},
    )
    colours = {
        "length (tokens)": linear(base["length"].to_numpy()),
        "length (characters)": linear(base["text"].astype(str).str.len().to_numpy()),
        "source": categorical(base["source"].astype(str)),
    }
    if clusters:
        n = max(int(c.max()) + 1 for c in clusters.values())
        colours["cluster (k-means, original space)"] = Colour(
            np.zeros(0),
            [f"cluster {i}" for i in range(n)],
            {vid: clusters[(v[1], v[2])].astype(np.uint8) for vid, v in views.items()},
        )
    return build_page(
        points=base,
        uid=base["row"].to_numpy(),
        panes=[pane],
        dims=["projection", "pooling", "layer"],
        views={vid: (v[0], v[1], str(v[2])) for vid, v in views.items()},
        neighbors=sets,
        universe_labels=base["text"].astype(str).tolist(),
        label="text",
        hover=[("text", "text"), ("tokens", "tokens"), ("id", "id"), ("source", "source")],
        colours=colours,
        title=f"{model}: sentence embeddings explorer",
        note=html.escape(
            f"Each point is one of {len(base):,} corpus sentences; the selectors switch the "
            f"projection ({_names(v[0] for v in views.values())} of the same sentences), the "
            "pooling and the layer (0 = "
            "embedding output). Click a sentence to list its nearest neighbours in the original "
            "space of that pooling and layer (cosine), computed by the pipeline. " + " ".join(notes)
        ),
        out_html=out_html,
        budget=budget,
        what="sentence",
        default_view=default_view(views),
        label_chars=10,
        label_cells=(5.0, 28.0),
        raster_above=raster_above,
    )


def sentence_clusters(
    load, keys: Sequence[tuple[str, int]], n_clusters: int = 8, seed: int = 0
) -> dict[tuple[str, int], np.ndarray]:
    """k-means (scikit-learn) of the unit-length sentence vectors ``load(pooling, layer)`` of each
    (pooling, layer): a topic-like label per sentence, computed in the original space. A layer
    whose vectors are all equal (CLS at layer 0) is one cluster."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    out = {}
    for key in dict.fromkeys(keys):
        x = np.asarray(load(*key), dtype=np.float32)
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
        if len(x) <= n_clusters or np.ptp(x, axis=0).max() == 0:
            out[key] = np.zeros(len(x), dtype=np.uint8)
            continue
        if len(x) > 20000:  # SNOW-sized corpora: mini-batches, seconds instead of a minute
            km = MiniBatchKMeans(
                n_clusters=n_clusters, n_init=3, random_state=seed, batch_size=4096
            )
        else:
            km = KMeans(n_clusters=n_clusters, n_init=2, random_state=seed, max_iter=100)
        labels = km.fit_predict(x)
        # number the clusters by size, largest first
        order = np.argsort(-np.bincount(labels, minlength=n_clusters), kind="stable")
        rank = np.empty(n_clusters, dtype=np.uint8)
        rank[order] = np.arange(n_clusters)
        out[key] = rank[labels]
    return out


def depth_layer(layer: int, layers_from: int, layers_to: int) -> int:
    """The layer of a ``layers_to``-deep model at the relative depth of ``layer`` in a
    ``layers_from``-deep one: round(layer × to / from), halves up (as ``match_layers``)."""
    return (2 * layer * layers_to + layers_from) // (2 * layers_from)


def pair_views(
    views_a: dict[str, Any], views_b: dict[str, Any], layers_a: int, layers_b: int
) -> dict[str, tuple[str, str, int, int]]:
    """Side-by-side views: each projected (method, pooling, layer of A) next to B's projection of
    the same method and pooling at the layer of the same relative depth (``depth_layer``), or, when
    B did not project that layer, B's projected layer nearest to it (ties: the lower).
    Returns {view id: (view id in A, view id in B, layer A, layer B)}."""
    out = {}
    for vid_a, (method, pooling, la, _) in views_a.items():
        target = depth_layer(la, layers_a, layers_b)
        cands = {vid: v[2] for vid, v in views_b.items() if v[0] == method and v[1] == pooling}
        if not cands:
            continue
        vid_b = min(cands, key=lambda v: (abs(cands[v] - target), cands[v]))
        out[f"{method} {pooling} L{la}~L{cands[vid_b]}"] = (vid_a, vid_b, la, cands[vid_b])
    return out


def compare_page(
    proj_a: pd.DataFrame,
    proj_b: pd.DataFrame,
    knn_a: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]],
    knn_b: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]],
    layers_a: int,
    layers_b: int,
    tokens_a: list[str],
    tokens_b: list[str],
    names: tuple[str, str],
    out_html: str,
    budget: int,
    raster_above: int = 50000,
) -> dict[str, Any]:
    """Two projections side by side, sharing one data source (same row = same sentence), with
    both models' neighbour lists of a clicked sentence and the per-sentence neighbourhood overlap
    as a colour."""
    base_a, views_a = sentence_frames(proj_a)
    base_b, views_b = sentence_frames(proj_b)
    if not base_a["id"].equals(base_b["id"]):
        raise ValueError(
            f"{names[0]} and {names[1]} projected different sentences; a comparison needs "
            "models reading the same corpus column"
        )
    pairs = pair_views(views_a, views_b, layers_a, layers_b)
    if not pairs:
        raise ValueError("the two models share no projection method and pooling")
    base = base_a.copy()
    base["tokens_a"] = tokens_a
    base["tokens_b"] = tokens_b
    base["row"] = np.arange(len(base))
    sets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    nn_a, nn_b, overlap = {}, {}, {}
    for vid, (va, _, la, lb) in pairs.items():
        pooling = views_a[va][1]
        ka, kb = f"{names[0]} {pooling} L{la}", f"{names[1]} {pooling} L{lb}"
        sets[ka] = knn_a[(pooling, la)]
        sets[kb] = knn_b[(pooling, lb)]
        nn_a[vid], nn_b[vid] = ka, kb
        overlap[vid] = jaccard_rows(sets[ka][0], sets[kb][0]).astype(np.float32)
    panes = [
        Pane(names[0], {vid: views_a[p[0]][3] for vid, p in pairs.items()}, nn_a),
        Pane(names[1], {vid: views_b[p[1]][3] for vid, p in pairs.items()}, nn_b),
    ]
    colours = {
        "neighbour overlap (Jaccard)": Colour(np.zeros(0), None, overlap, low=0.0, high=1.0),
        "length (tokens)": linear(base["length"].to_numpy()),
        "source": categorical(base["source"].astype(str)),
    }
    return build_page(
        points=base,
        uid=base["row"].to_numpy(),
        panes=panes,
        dims=["projection", "pooling", "layer"],
        views={
            vid: (views_a[p[0]][0], views_a[p[0]][1], f"{p[2]} ↔ {p[3]}")
            for vid, p in pairs.items()
        },
        neighbors=sets,
        universe_labels=base["text"].astype(str).tolist(),
        label="text",
        hover=[
            ("text", "text"),
            (f"tokens ({names[0]})", "tokens_a"),
            (f"tokens ({names[1]})", "tokens_b"),
            ("id", "id"),
            ("source", "source"),
        ],
        colours=colours,
        title=f"{names[0]} vs {names[1]}: sentence embeddings side by side",
        note=html.escape(
            f"Both figures show the same {len(base):,} sentences (one data source: selecting or "
            "hovering a sentence in one figure marks it in the other). Layers are paired by "
            f"relative depth ({names[0]}: {layers_a} layers, {names[1]}: {layers_b}; layer i of "
            "the shallower model ↔ round(i × deeper / shallower) of the deeper, 0 ↔ 0 and last ↔ "
            "last). Colour 'neighbour overlap' is each sentence's Jaccard index between its "
            "k-NN sets in the two models at the paired layers; click a sentence to list both "
            "neighbour lists (shared neighbours in bold)."
        )
        + f' <a href="../../layers/{quote(names[0])}_vs_{quote(names[1])}/cka.png">Linear CKA '
        "between every layer of the two models</a> (report chapter Layers) compares the same "
        "layers without neighbours.",
        out_html=out_html,
        budget=budget,
        what="sentence",
        default_view=default_view({vid: views_a[p[0]] for vid, p in pairs.items()}),
        label_chars=10,
        label_cells=(4.0, 26.0),
        raster_above=raster_above,
    )


def overlap_plot(table: pd.DataFrame, names: tuple[str, str], out_png: str) -> None:
    """Line plot of the mean neighbourhood overlap against relative depth, one line per pooling,
    each point labelled with its pair of layers; dashed: the chance level. Layer pairs where a
    model gives every sentence the same vector (noted in the table) are left out."""
    from .plotting import new_figure, save_figure

    fig, ax = new_figure(figsize=(7.5, 4.8))
    table = table.copy()
    if "note" not in table:
        table["note"] = ""
    for pooling, part in table.groupby("pooling", sort=False):
        part = part[part["note"].fillna("") == ""]
        ax.plot(part["depth_a"], part["mean_jaccard"], marker="o", label=f"{pooling} pooling")
        for _, r in part.iterrows():
            ax.annotate(
                f"{r['layer_a']}↔{r['layer_b']}",
                (r["depth_a"], r["mean_jaccard"]),
                fontsize=7,
                xytext=(3, 4),
                textcoords="offset points",
            )
    if len(table):
        ax.axhline(table["chance"].iloc[0], color="grey", ls="--", lw=1, label="chance")
    k = int(table["k"].iloc[0]) if len(table) else 0
    ax.set_xlabel(f"relative depth (layer of {names[0]} ↔ layer of {names[1]}; 0 = embeddings)")
    ax.set_ylabel(f"mean Jaccard of the {k}-NN sets")
    ax.set_ylim(0, 1)
    ax.set_xlim(-0.05, 1.08)
    ax.set_title(f"Neighbourhood overlap: {names[0]} vs {names[1]}")
    ax.legend(fontsize=8)
    save_figure(fig, out_png)
