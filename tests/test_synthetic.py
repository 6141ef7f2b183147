"""The synthetic SNOW-format corpus: deterministic, SNOW's columns, SNOW's length distribution,
consistent numbers and phrases across the three columns."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from benchmarks.synthetic import (
    SAMPLE,
    SNOW_EN_WORDS,
    SNOW_HEADER,
    _names,
    _prefix,
    _renumber,
    english_words,
    synthetic_corpus,
)


@pytest.fixture(scope="module")
def corpus() -> pd.DataFrame:
    return synthetic_corpus(20_000, seed=0)


def test_same_seed_same_rows_other_seed_other_rows():
    a, b, c = synthetic_corpus(500, seed=3), synthetic_corpus(500, seed=3), synthetic_corpus(500)
    pd.testing.assert_frame_equal(a, b)
    assert (a["#英語(原文)"] != c["#英語(原文)"]).mean() > 0.5


def test_snow_columns_and_ids(corpus):
    assert list(corpus.columns) == SNOW_HEADER
    assert corpus["ID"].is_unique
    assert (corpus[SNOW_HEADER[1:]].map(len) > 0).all().all()


def test_english_follows_the_snow_length_histogram(corpus):
    words = corpus["#英語(原文)"].map(english_words)
    assert words.between(4, 16).all(), words[~words.between(4, 16)].head()
    total = sum(SNOW_EN_WORDS.values())
    target_mean = sum(k * v for k, v in SNOW_EN_WORDS.items()) / total
    assert abs(words.mean() - target_mean) < 0.1
    shares = words.value_counts(normalize=True)
    for k, v in SNOW_EN_WORDS.items():
        # 20,000 draws: a share is within 1 percentage point of the target's (binomial sd <= 0.35)
        assert abs(shares.get(k, 0.0) - v / total) < 0.01, (k, shares.get(k), v / total)


def test_japanese_is_short_like_snow(corpus):
    # small_parallel_enja's Japanese has 11.3 words per sentence; SNOW's easy Japanese rewrites
    # of such sentences are short too: tens of characters, not hundreds
    easy = corpus["#やさしい日本語"].str.len()
    assert 12 <= easy.mean() <= 30
    assert easy.quantile(0.99) < 80


def _numbers(text: str) -> set[str]:
    return {d.replace(",", "") for d in re.findall(r"\d{1,3}(?:,\d{3})+|\d+", text)}


def test_renumber_changes_numbers_alike_in_every_column():
    triple = (
        "富士山は3776メートルだ。",
        "富士山は3776メートルです。",
        "Fuji is 3,776 meters high.",
    )
    seen = set()
    for seed in range(20):
        ja, easy, en = _renumber(triple, np.random.default_rng(seed))
        assert _numbers(ja) == _numbers(easy) == _numbers(en)
        assert re.search(r"\d,\d{3}|is \d{1,3} ", en), en  # thousands separator kept
        seen |= _numbers(en)
    assert len(seen) > 10


def test_renumber_leaves_numbers_written_differently():
    triple = ("3万円を下ろした。", "3万円を出しました。", "I withdrew 30,000 yen.")
    assert _renumber(triple, np.random.default_rng(0)) == triple


def test_rows_with_numbers_stay_consistent(corpus):
    sample = pd.read_csv(SAMPLE, sep="\t", dtype=str, keep_default_na=False, quoting=3)

    def consistent_share(df):
        rows = [r for r in df[SNOW_HEADER[1:]].itertuples(index=False) if _numbers(r[2])]
        return np.mean([_numbers(r[0]) == _numbers(r[1]) == _numbers(r[2]) for r in rows])

    assert consistent_share(corpus) >= consistent_share(sample) - 0.05


def test_dated_phrases_are_the_same_date_in_every_column(corpus):
    years = corpus[corpus["#英語(原文)"].str.match(r"In \d{4},")]
    assert len(years) > 500
    for _, row in years.head(200).iterrows():
        year = row["#英語(原文)"][3:7]
        assert row["#日本語(原文)"].startswith(f"{year}年に")
        assert row["#やさしい日本語"].startswith(f"{year}年に")


def test_rows_repeat_rarely_enough_for_scale_runs(corpus):
    # the 640-row sample limits variety; dated phrases make most long rows new
    assert corpus["#英語(原文)"].nunique() > 0.2 * len(corpus)


def test_prefix_keeps_names_and_i_lowercases_the_rest():
    names = _names(["We flew to Paris.", "I met Ken in London."])
    assert {"Paris", "Ken", "London"} <= names
    assert "We" not in names
    assert _prefix("Today,", "The bath is ready.", names) == "Today, the bath is ready."
    assert _prefix("Today,", "Paris is far.", names) == "Today, Paris is far."
    assert _prefix("Today,", "I overslept.", names) == "Today, I overslept."


def test_english_words_counts_like_the_stanford_tokenization():
    assert english_words("i can 't swim at all .") == 7
    assert english_words("I can't swim at all.") == 7
    assert english_words("Hello, world!") == 4


def test_command_line_writes_a_file(tmp_path):
    out = tmp_path / "syn.tsv"
    proc = subprocess.run(
        [sys.executable, "benchmarks/synthetic_corpus.py", "300", str(out), "--seed", "2"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    df = pd.read_csv(out, sep="\t", dtype=str, keep_default_na=False)
    assert len(df) == 300 and list(df.columns) == SNOW_HEADER
    pd.testing.assert_frame_equal(df, synthetic_corpus(300, seed=2))
    assert np.isin(df["#英語(原文)"].map(english_words), list(SNOW_EN_WORDS)).all()
