"""The interactive explorer pages built from the pipeline's tables: the token-embedding and the
sentence-embedding explorers of one model (projection with hover text, search, colour by a
metadata column, view selectors: t-SNE / PCA / UMAP, pooling, layer; a click lists the nearest
neighbours) and the side-by-side comparison of two models (two figures sharing one data source,
so selection and hover link: one row = one sentence), plus the colourings, views and sentence
clusters they show. Each page is assembled and written by ``bertlens.explorer_page``.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from .explorer_page import Colour, Pane, build_page
from .neighbors import jaccard_rows


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
    sets, nn_a, nn_b, overlap = _paired_sets(pairs, views_a, knn_a, knn_b, names)
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
        note=_compare_note(names, len(base), layers_a, layers_b),
        out_html=out_html,
        budget=budget,
        what="sentence",
        default_view=default_view({vid: views_a[p[0]] for vid, p in pairs.items()}),
        label_chars=10,
        label_cells=(4.0, 26.0),
        raster_above=raster_above,
    )


def _paired_sets(
    pairs: dict[str, tuple[str, str, int, int]],
    views_a: dict[str, Any],
    knn_a: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]],
    knn_b: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]],
    names: tuple[str, str],
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, str], dict[str, str], dict]:
    """The neighbour sets of each paired view (named by model, pooling and layer), the set each
    pane shows per view, and per view each sentence's Jaccard overlap of the two sets."""
    sets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    nn_a, nn_b, overlap = {}, {}, {}
    for vid, (va, _, la, lb) in pairs.items():
        pooling = views_a[va][1]
        ka, kb = f"{names[0]} {pooling} L{la}", f"{names[1]} {pooling} L{lb}"
        sets[ka] = knn_a[(pooling, la)]
        sets[kb] = knn_b[(pooling, lb)]
        nn_a[vid], nn_b[vid] = ka, kb
        overlap[vid] = jaccard_rows(sets[ka][0], sets[kb][0]).astype(np.float32)
    return sets, nn_a, nn_b, overlap


def _compare_note(names: tuple[str, str], n: int, layers_a: int, layers_b: int) -> str:
    """The comparison page's explanation (HTML)."""
    return (
        html.escape(
            f"Both figures show the same {n:,} sentences (one data source: selecting or "
            "hovering a sentence in one figure marks it in the other). Layers are paired by "
            f"relative depth ({names[0]}: {layers_a} layers, {names[1]}: {layers_b}; layer i of "
            "the shallower model ↔ round(i × deeper / shallower) of the deeper, 0 ↔ 0 and last ↔ "
            "last). Colour 'neighbour overlap' is each sentence's Jaccard index between its "
            "k-NN sets in the two models at the paired layers; click a sentence to list both "
            "neighbour lists (shared neighbours in bold)."
        )
        + f' <a href="../../layers/{quote(names[0])}_vs_{quote(names[1])}/cka.png">Linear CKA '
        "between every layer of the two models</a> (report chapter Layers) compares the same "
        "layers without neighbours."
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
