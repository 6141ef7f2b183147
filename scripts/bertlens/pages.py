"""The figures of the interactive pages, built with holoviews (bokeh backend): the points with
hover / tap / box and lasso selection, text labels drawn on the map that appear as the user zooms
in (most frequent first, decluttered), and, above a point count, a datashader rasterization of every
point under an interactive sample.

holoviews composes the elements and renders them to bokeh models (``hv.render``); the page then
gives every pane's points one shared ``ColumnDataSource`` (so selections link between panes and the
page's JavaScript can switch views and colours) and embeds the label candidates of every view, which
the page shows by zoom level (a static page has no server to re-run holoviews on zoom)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from .io import write_text

LABEL_FONT = "'Noto Sans CJK JP', 'Noto Sans JP', 'IPAexGothic', 'Hiragino Sans', sans-serif"
MAX_LEVEL = 7  # labels are placed for zoom factors up to 2**MAX_LEVEL
NEVER = 127  # level of a point that gets no label


def _hv():
    import holoviews as hv

    if "bokeh" not in hv.Store.renderers:
        hv.extension("bokeh", logo=False)
    return hv


def standalone_html(layout, title: str) -> str:
    """A page with bokeh's resources inline (the CDN default renders blank offline). The pages
    hold only bokeh's own models; holoviews imports panel, whose model classes would otherwise add
    their scripts (relative paths that do not exist beside the page) to every page."""
    from unittest import mock

    from bokeh.embed import file_html
    from bokeh.resources import INLINE, Resources

    # (bokeh adds the scripts of every imported model class, used or not, and clones resources
    # on the way, so the switch has to be on the class for the duration of this call)
    with mock.patch.object(Resources, "_collect_external_resources", lambda self, attr: []):
        page = file_html(layout, INLINE, title)
    return _DOC_JSON.sub(lambda m: m.group(1) + unescape_json(m.group(2)) + m.group(3), page)


def write_page(layout, title: str, out_html: str | os.PathLike) -> None:
    """Write a bokeh layout as one standalone HTML page (``standalone_html``)."""
    write_text(out_html, standalone_html(layout, title))


def script_json(obj: Any) -> str:
    """``obj`` as JSON to embed in a page's JavaScript (UTF-8, no NaN, ``</`` escaped so the text
    cannot close its script element)."""
    return json.dumps(obj, ensure_ascii=False, allow_nan=False).replace("</", "<\\/")


_DOC_JSON = re.compile(r'(<script type="application/json"[^>]*>)(.*?)(</script>)', re.S)
_U_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u([0-9a-fA-F]{4})")


def unescape_json(text: str) -> str:
    """bokeh writes every non-ASCII character of the page's data as a 6-byte ``\\uXXXX`` escape;
    written as UTF-8 instead, Japanese text takes half the bytes. ASCII escapes (``<``, ``>``,
    ``&``, which keep the script element closed) and surrogate halves stay escaped."""

    def one(m: re.Match) -> str:
        code = int(m.group(2), 16)
        if code < 0x80 or 0xD800 <= code <= 0xDFFF:
            return m.group(0)
        return m.group(1) + chr(code)

    return _U_ESCAPE.sub(one, text)


def label_levels(
    xy: np.ndarray, priority: np.ndarray, cells: tuple[float, float], levels: int = MAX_LEVEL
) -> np.ndarray:
    """The zoom level (0 … ``levels``) from which each point's label is drawn, or ``NEVER``
    (also for points left out of ``priority``).

    At level L a label takes a box of 1 / (``cells[0]`` * 2**L) of the map's width and
    1 / (``cells[1]`` * 2**L) of its height (about one label at a zoom factor of 2**L), and the
    map is cut into a grid of such boxes. Going down ``priority``, the first free point of each
    grid cell gets a label unless a labelled point lies within one box of it. Labels once placed
    stay at deeper levels (boxes only shrink), so zooming in only adds labels."""
    xy = np.asarray(xy, dtype=np.float64)
    out = np.full(len(xy), NEVER, dtype=np.int8)
    if not len(xy):
        return out
    lo = xy.min(axis=0)
    span = np.ptp(xy, axis=0)
    span[span == 0] = 1.0
    unit = np.clip((xy - lo) / span, 0, 1 - 1e-9)
    rank = np.full(len(xy), len(xy), dtype=np.int64)  # points not in ``priority``: no label
    rank[np.asarray(priority, dtype=np.int64)] = np.arange(len(priority))
    for level in range(levels + 1):
        nx, ny = int(cells[0] * 2**level), int(cells[1] * 2**level)
        cx, cy = (unit[:, 0] * nx).astype(np.int64), (unit[:, 1] * ny).astype(np.int64)
        # one labelled point per cell at most (boxes of coarser levels are twice as large)
        occ = np.full((nx + 2, ny + 2), -1, dtype=np.int64)
        done = np.flatnonzero(out != NEVER)
        occ[cx[done] + 1, cy[done] + 1] = done
        free = np.flatnonzero((out == NEVER) & (rank < len(xy)) & (occ[cx + 1, cy + 1] < 0))
        if not len(free):
            break
        cell = cx[free] * ny + cy[free]
        order = free[np.lexsort((rank[free], cell))]
        first = order[np.r_[True, np.diff(cx[order] * ny + cy[order]) != 0]]
        first = first[np.argsort(rank[first], kind="stable")]
        # few candidates (wide zoom, where priority shows most): one at a time, in priority
        # order; many: in four batches of non-adjacent cells (no conflicts within a batch)
        batches = (
            [first[i : i + 1] for i in range(len(first))]
            if len(first) <= 300
            else [
                first[(cx[first] % 2 == a) & (cy[first] % 2 == b)] for a in (0, 1) for b in (0, 1)
            ]
        )
        for batch in batches:
            ok = np.ones(len(batch), dtype=bool)
            for dx in (-1, 0, 1):
                for dy in (-1, 0, 1):
                    j = occ[cx[batch] + 1 + dx, cy[batch] + 1 + dy]
                    hit = j >= 0
                    jj = j[hit]
                    near = (np.abs(unit[jj, 0] - unit[batch[hit], 0]) * nx < 1) & (
                        np.abs(unit[jj, 1] - unit[batch[hit], 1]) * ny < 1
                    )
                    ok[np.flatnonzero(hit)[near]] = False
            take = batch[ok]
            out[take] = level
            occ[cx[take] + 1, cy[take] + 1] = take
    return out


def label_candidates(
    xy: np.ndarray, priority: np.ndarray, cells: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Rows that get a label at some zoom level, ordered by level then priority, and their levels."""
    levels = label_levels(xy, priority, cells)
    rank = np.full(len(xy), len(xy), dtype=np.int64)
    rank[np.asarray(priority, dtype=np.int64)] = np.arange(len(priority))
    rows = np.flatnonzero(levels != NEVER)
    rows = rows[np.lexsort((rank[rows], levels[rows]))]
    return rows.astype(np.int32), levels[rows].astype(np.uint8)


def density_image(xy: np.ndarray, bounds: tuple[float, float, float, float], size: tuple[int, int]):
    """A datashader rasterization (through holoviews) of every point: counts per pixel, shown as
    log(1 + count) quantised to uint8 (zero = empty, drawn transparent)."""
    hv = _hv()
    from holoviews.operation.datashader import rasterize

    x0, y0, x1, y1 = bounds
    agg = rasterize(
        hv.Points((xy[:, 0], xy[:, 1])),
        dynamic=False,
        width=size[0],
        height=size[1],
        x_range=(x0, x1),
        y_range=(y0, y1),
    )
    counts = np.nan_to_num(np.asarray(agg.dimension_values(2, flat=False), dtype=np.float64))
    scaled = np.log1p(counts)
    top = scaled.max() or 1.0
    return np.ascontiguousarray((np.ceil(scaled / top * 254)).astype(np.uint8))


@dataclass
class PaneFigure:
    figure: Any  # bokeh figure
    main: Any  # the points' GlyphRenderer
    labels: Any  # the labels' ColumnDataSource
    rasters: list  # per view: the density image's GlyphRenderer ([] without rasterization)


def pane_figure(
    *,
    title: str,
    x: np.ndarray,
    y: np.ndarray,
    labels: dict[str, list],
    hover: list[tuple[str, str]],
    width: int,
    height: int,
    rasters: list[tuple[tuple[float, float, float, float], np.ndarray]],
    point_size: float,
    shown_raster: int = 0,
) -> PaneFigure:
    """One pane: density images ((bounds, uint8 image) per view, only ``shown_raster`` visible), the points and the zoom
    labels, composed as a holoviews overlay and rendered to a bokeh figure."""
    hv = _hv()
    from bokeh.core.properties import value
    from bokeh.models import GlyphRenderer, HoverTool

    layers = [
        hv.Image(img[::-1], bounds=bounds).opts(
            cmap=["#ffffff00", *_greys(254)], clim=(0, 255), alpha=1.0
        )
        for bounds, img in rasters
    ]
    points = hv.Points({"x": x, "y": y}, ["x", "y"]).opts(
        size=point_size,
        fill_alpha=0.7 if not rasters else 0.55,
        line_alpha=0,
        tools=["tap", "box_select", "lasso_select"],
        hover_fill_color="#ff2200",
        hover_fill_alpha=1.0,
        hover_line_color="#000000",
        hover_line_alpha=1.0,
        nonselection_fill_alpha=0.25,
        selection_fill_alpha=1.0,
        selection_line_color="#000000",
        selection_line_alpha=1.0,
    )
    text = hv.Labels(labels, ["x", "y"], "text").opts(
        text_font_size="9pt",
        text_color="#222222",
        text_align="left",
        text_baseline="bottom",
        xoffset=0,
        yoffset=0,
    )
    overlay = hv.Overlay([*layers, points, text]).opts(
        title=title,
        width=width,
        height=height,
        xaxis=None,
        yaxis=None,
        default_tools=["pan", "wheel_zoom", "box_zoom", "reset", "save"],
        active_tools=["wheel_zoom"],
    )
    fig = hv.render(overlay, backend="bokeh")
    fig.output_backend = "webgl"
    renderers = fig.select({"type": GlyphRenderer})
    kinds = {type(r.glyph).__name__: r for r in renderers}
    images = [r for r in renderers if type(r.glyph).__name__ == "Image"]
    for i, r in enumerate(images):
        r.visible = i == shown_raster
    main = kinds["Scatter"]
    # a little offset keeps the text beside its point, as the seed's xoffset did
    kinds["Text"].glyph.text_font = value(LABEL_FONT)  # Japanese glyphs where installed
    kinds["Text"].glyph.x_offset = 4
    kinds["Text"].glyph.y_offset = -2
    fig.add_tools(HoverTool(tooltips=[(n, f"@{{{c}}}") for n, c in hover], renderers=[main]))
    return PaneFigure(fig, main, kinds["Text"].data_source, images)


def _greys(n: int) -> list[str]:
    """Light to dark grey-blue, for the density under the points."""
    out = []
    for i in range(n):
        t = i / max(n - 1, 1)
        r, g, b = (int(225 - 190 * t), int(228 - 180 * t), int(235 - 140 * t))
        out.append(f"#{r:02x}{g:02x}{b:02x}")
    return out
