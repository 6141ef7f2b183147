"""One explorer page from its parts (standalone bokeh HTML, resources inlined so it renders
offline): the points of one or more panes in one shared data source (so selection and hover link
between panes: one row = one point), view and colour selectors, search, zoom labels, and a
click → nearest-neighbours panel. The pages themselves (which tables become which panes, colours
and views) are built in ``bertlens.explorer``; the figures in ``bertlens.pages``; the page's
JavaScript is ``bertlens.explorer_js``.

The neighbours are computed by the pipeline (``bertlens.neighbors``) in the original space and
embedded as data: per shown point its k neighbour positions (uint16 when fewer than 65,536 points
are referenced, else int32) and cosine distances quantised to 1e-4 (uint16). Numeric columns are
numpy arrays, which bokeh embeds as compressed base64 binary; strings appear once per point.
Pages over the point budget show a uniform random sample (stated on the page); neighbours of a
shown point that were not sampled are still listed (their labels are embedded separately).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .explorer_js import PAGE_JS
from .neighbors import quantize_distances
from .pages import density_image, label_candidates, pane_figure, script_json, write_page
from .sampling import sample_rows

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


def page_sample(n: int, budget: int, seed: int = 0) -> tuple[np.ndarray, str]:
    """Rows to display (``sampling.sample_rows``) and a sentence stating the sampling."""
    rows = sample_rows(n, budget, seed)
    if n <= budget:
        return rows, f"all {n:,} points shown"
    return rows, (
        f"{budget:,} of {n:,} points shown (uniform random sample, seed {seed}; the full data are "
        "in the tables)"
    )


def _sampling_note(n: int, shown: int, seed: int, raster_above: int, sampling: str) -> str:
    """The page's sampling sentence; above ``raster_above`` points it names the density image."""
    if n <= raster_above:
        return sampling
    return (
        f"all {n:,} points drawn as a density image (datashader); "
        + (f"{shown:,} of them" if shown < n else "every point")
        + " interactive (hover, click, search"
        + (f"; uniform random sample, seed {seed})" if shown < n else ")")
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


@dataclass
class _Shared:
    """What every pane of a page draws from: the shared source (and its columns), the view ids,
    the view and colour shown first, the label texts cut to length and the hover columns."""

    data: dict[str, Any]
    src: Any
    view_ids: list[str]
    first: str
    mapper: Any
    colour_col: str
    short: np.ndarray
    hover: list[tuple[str, str]]


@dataclass
class _PaneParts:
    """The bokeh models of one pane that the page's JavaScript drives."""

    figure: Any
    main: Any
    search: Any  # search hits
    lines: Any  # segments to the clicked point's neighbours
    neighbours: Any  # the clicked point and its neighbours
    labels: Any
    candidates: list
    rasters: list
    spans: dict[str, list[float]]


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
    from bokeh.models import ColorBar, ColumnDataSource

    rows, sampling = page_sample(len(points), budget, seed)
    sampling = _sampling_note(len(points), len(rows), seed, raster_above, sampling)
    nn_data, extra, k = compact_neighbors(np.asarray(uid)[rows], neighbors)
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
    mapper = _colour_mapper(c0)
    short = _short_labels(data, label, label_chars)
    shared = _Shared(data, src, view_ids, first, mapper, c0["cols"][first], short, hover)
    size = (820, 700) if len(panes) == 1 else (640, 600)
    big = len(points) > raster_above
    order = _shown_priority(len(points), rows, priority)
    parts = [_pane(p, pane, shared, order, label_cells, big, size) for p, pane in enumerate(panes)]
    bar = ColorBar(color_mapper=mapper, title=first_colour, visible=not c0["categories"])
    parts[-1].figure.add_layout(bar, "right")
    cfg = _page_config(label, what, k, len(rows), dims, views, panes, colour_cfg, hover)
    cfg.update(spans=[part.spans for part in parts], labelChars=label_chars, maxLabels=400)
    widgets = _widgets(dims, views, first, colour_cfg, what, k, len(panes))
    args = {"src": src, "nn": nn_src, "aux": aux, "mains": [part.main for part in parts]}
    args.update(
        hls=[part.search for part in parts],
        sels=[part.neighbours for part in parts],
        segs=[part.lines for part in parts],
        mapper=mapper,
        bar=bar,
        **widgets,
        figs=[part.figure for part in parts],
        labels=[part.labels for part in parts],
        cands=[part.candidates for part in parts],
        rasters=[part.rasters for part in parts],
    )
    _wire(args, PAGE_JS.replace("__CFG__", script_json(cfg)))
    _write(args, title, f"{note} <b>{html.escape(sampling)}</b>.", out_html)
    return _facts(out_html, len(points), rows, sampling, extra, k)


def _colour_mapper(entry: dict[str, Any]):
    """The points' colour mapper, set up for the colour ``entry`` shown first."""
    from bokeh.models import LinearColorMapper
    from bokeh.palettes import Viridis256

    return LinearColorMapper(
        palette=entry.get("palette") or Viridis256, low=entry["low"], high=entry["high"]
    )


def _short_labels(data: dict[str, Any], label: str, chars: int) -> np.ndarray:
    """The shown points' labels cut to ``chars`` characters (an ellipsis marks a cut)."""
    texts = data[label].astype(str) if label in data else np.asarray([], dtype=str)
    return np.asarray([t[:chars] + ("…" if len(t) > chars else "") for t in texts])


def _page_config(
    label: str,
    what: str,
    k: int,
    n: int,
    dims: list[str],
    views: dict[str, tuple[str, ...]],
    panes: list[Pane],
    colour_cfg: dict[str, Any],
    hover: list[tuple[str, str]],
) -> dict[str, Any]:
    """The page's configuration for its JavaScript (``cfg``); the caller adds the zoom spans and
    the label settings."""
    from bokeh.palettes import Viridis256

    return {
        "label": label,
        "what": what,
        "k": k,
        "scale": DIST_SCALE,
        "n": n,
        "dims": dims,
        "views": {vid: list(vals) for vid, vals in views.items()},
        "viewIndex": {vid: v for v, vid in enumerate(views)},
        "paneNN": [pane.neighbors for pane in panes],
        "paneTitles": [pane.title for pane in panes],
        "colours": colour_cfg,
        "viridis": list(Viridis256),
        "hover": hover,
    }


def _facts(
    out_html: str, n: int, rows: np.ndarray, sampling: str, extra: np.ndarray, k: int
) -> dict[str, Any]:
    """What the page holds (points, shown, sampling, bytes), also logged."""
    size = Path(out_html).stat().st_size
    log.info(
        "%s: %d points, %d extra neighbour labels, %.2f MB",
        out_html,
        len(rows),
        len(extra),
        size / 1e6,
    )
    return {
        "points": int(n),
        "shown": int(len(rows)),
        "sampling": sampling,
        "extra_neighbor_labels": int(len(extra)),
        "k": int(k),
        "bytes": int(size),
    }


def _shown_priority(n: int, rows: np.ndarray, priority: np.ndarray | None) -> np.ndarray:
    """Page positions of the shown ``rows`` in labelling order (``priority``, else row order)."""
    order = np.arange(n) if priority is None else np.asarray(priority)
    pos = np.full(n, -1, dtype=np.int64)
    pos[rows] = np.arange(len(rows))
    return pos[order][pos[order] >= 0]  # page positions, most important first


def _pane(
    p: int,
    pane: Pane,
    shared: _Shared,
    priority: np.ndarray,
    label_cells: tuple[float, float],
    big: bool,
    size: tuple[int, int],
) -> _PaneParts:
    """Pane ``p``'s figure (``pages.pane_figure``) drawing from the shared source, with its
    search-hit, neighbour-line and neighbour layers."""
    data = shared.data
    v0 = shared.view_ids.index(shared.first)
    cands, spans, images = _pane_layers(p, pane, data, shared.view_ids, priority, label_cells, big)
    r0 = cands[v0].data["r"]
    initial = r0[cands[v0].data["l"] == 0]
    pf = pane_figure(
        title=pane.title,
        x=data[f"x{p}_{v0}"],
        y=data[f"y{p}_{v0}"],
        labels={
            "x": data[f"x{p}_{v0}"][initial],
            "y": data[f"y{p}_{v0}"][initial],
            "text": shared.short[initial].tolist(),
        },
        hover=shared.hover,
        width=size[0],
        height=size[1],
        rasters=images,
        shown_raster=v0,
        point_size=4 if not big else 3,
    )
    fig, main = pf.figure, pf.main
    # one shared source for every pane: selections link, the page switches views and colours
    main.data_source = shared.src
    for g in _glyphs(main):
        g.x, g.y = f"x{p}_{v0}", f"y{p}_{v0}"
        if g is not main.hover_glyph:
            g.fill_color = {"field": shared.colour_col, "transform": shared.mapper}
    main.name = f"main{p}"
    fig.name = f"figure{p}"
    pf.labels.name = f"labels{p}"
    for v, r in enumerate(pf.rasters):
        r.name = f"raster{p}_{v}"
    hl, seg, sel = _overlays(fig, p)
    return _PaneParts(fig, main, hl, seg, sel, pf.labels, cands, pf.rasters, spans)


def _overlays(fig, p: int) -> tuple[Any, Any, Any]:
    """Pane ``p``'s overlay sources, filled by the page: search hits (orange rings, labelled),
    lines to the clicked point's neighbours, and the point and its neighbours (red, labelled)."""
    from bokeh.models import ColumnDataSource, LabelSet

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
    return hl, seg, sel


def _widgets(
    dims: list[str],
    views: dict[str, tuple[str, ...]],
    first: str,
    colour_cfg: dict[str, Any],
    what: str,
    k: int,
    n_panes: int,
) -> dict[str, Any]:
    """The page's controls and text panels, by the names the page's JavaScript uses."""
    from bokeh.models import Div, Select, TextInput

    first_colour = next(iter(colour_cfg))
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
    legend = Div(
        text=_legend_html(first_colour, colour_cfg[first_colour]), width=260, name="legend"
    )
    panel = Div(
        text=f"<p><i>Click a {what} to list its {k} nearest neighbours in the original space.</i>"
        "</p>",
        width=400 if n_panes == 1 else 1100,
        name="panel",
    )
    status = Div(text="", width=400 if n_panes == 1 else 1100, name="status")
    return {
        "legend": legend,
        "panel": panel,
        "status": status,
        "selects": selects,
        "colour": colour_select,
        "search": search,
    }


def _wire(args: dict[str, Any], lib: str) -> None:
    """Attach the page's callbacks (each one the JavaScript library plus one call)."""
    from bokeh.models import CustomJS

    zoom = CustomJS(args=args, code=lib + "E.updateLabels();")
    for fig in args["figs"]:
        for rng in (fig.x_range, fig.y_range):
            rng.js_on_change("start", zoom)
            rng.js_on_change("end", zoom)
    for s in args["selects"]:
        s.js_on_change("value", CustomJS(args=args, code=lib + "E.onView(cb_obj);"))
    args["colour"].js_on_change("value", CustomJS(args=args, code=lib + "E.applyColour();"))
    args["search"].js_on_change("value", CustomJS(args=args, code=lib + "E.search();"))
    args["src"].selected.js_on_change(
        "indices", CustomJS(args=args, code=lib + "E.showNeighbours();")
    )


def _write(args: dict[str, Any], title: str, note: str, out_html: str) -> None:
    """Lay the page out (header, controls, figures, panels) and write it."""
    from bokeh.layouts import column, row
    from bokeh.models import Div

    header = Div(
        text=f"<h2 style='margin:0.2em 0'>{html.escape(title)}</h2>"
        f"<p style='max-width:1150px'>{note}</p>",
        width=1150,
        name="header",
    )
    controls = row(*args["selects"], args["colour"], args["search"], args["legend"])
    figs = args["figs"]
    if len(figs) == 1:
        body = row(figs[0], column(args["status"], args["panel"]))
    else:
        body = column(row(*figs), args["status"], args["panel"])
    write_page(column(header, controls, body), title, out_html)


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
