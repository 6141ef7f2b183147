"""A deterministic synthetic corpus in SNOW's column format, for measuring scale without network
data.

Rows are recombined from the bundled easy-Japanese sample so the text stays real language: each
synthetic row takes a sample row, rewrites its numbers and may prefix a time, place or company
phrase (in all three columns). Rows are drawn so that the English column follows the length
distribution of the sentences SNOW T15 was made from: the small_parallel_enja corpus (Tanaka corpus
sentences of 4 to 16 words; 391,047 words in 50,000 sentences, 7.8 per sentence). ``SNOW_EN_WORDS``
is the histogram of its 500-sentence dev set (words and punctuation marks counted separately, as in
its Stanford tokenization). The Japanese columns follow from the chosen rows. The same (N, seed)
always gives the same file.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from bertlens.io import write_table

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "easy_japanese_sample.tsv"
SNOW_HEADER = ["ID", "#日本語(原文)", "#やさしい日本語", "#英語(原文)"]
_TIMES = [
    ("今日は", "今日は", "Today"),
    ("昨日は", "昨日は", "Yesterday"),
    ("先週、", "先週、", "Last week"),
    ("来月、", "来月、", "Next month"),
    ("毎朝、", "毎朝、", "Every morning"),
    ("週末に", "週末に", "At the weekend"),
    ("時々、", "時々、", "Sometimes"),
    ("実は、", "本当は、", "Actually"),
    ("去年、", "去年、", "Last year"),
    ("最近、", "この間、", "Recently"),
    ("夕方、", "夕方、", "In the evening"),
    ("たまに、", "ときどき、", "Once in a while"),
]
_PLACES = [
    ("東京で", "東京で", "in Tokyo"),
    ("大阪で", "大阪で", "in Osaka"),
    ("駅の近くで", "駅の近くで", "near the station"),
    ("学校で", "学校で", "at school"),
    ("会社で", "会社で", "at work"),
    ("家で", "家で", "at home"),
    ("町で", "町で", "in town"),
]
_WITH = [
    ("友人と", "友だちと", "with a friend"),
    ("家族と", "家族と", "with my family"),
    ("一人で", "一人で", "on my own"),
    ("同僚と", "会社の人と", "with colleagues"),
    ("先生と", "先生と", "with the teacher"),
    ("子どもと", "子どもと", "with the children"),
]
_DIGITS = re.compile(r"\d{1,3}(?:,\d{3})+(?!\d)|\d+")  # 3,776 and 3776 alike
_WORDS = re.compile(r"'\w+|\w+|[^\w\s]")
# Words per English sentence (4..16) in small_parallel_enja's dev set: 500 sentences, 3,931 words.
SNOW_EN_WORDS = {
    4: 15, 5: 49, 6: 77, 7: 87, 8: 95, 9: 80, 10: 42, 11: 29, 12: 13, 13: 6, 14: 4, 15: 2, 16: 1
}  # fmt: skip
# Dated phrases: filled with a random year, date or hour per row, so rows rarely repeat.
_MONTHS = "January February March April May June July August September October November December"
_DATED = [
    ("{y}年に", "{y}年に", "In {y}"),
    ("{m}月{d}日に", "{m}月{d}日に", "On {month} {d}"),
    ("{h}時に", "{h}時に", "At {h} o'clock"),
]
_PHRASES = [*_TIMES, *_PLACES, *_WITH, *_DATED]
# How rows are drawn: without a phrase, with a fixed phrase (time, place, company), with a dated one.
_SHARES = {"plain": 0.25, "fixed": 0.25, "dated": 0.5}


def english_words(sentence: str) -> int:
    """Words and punctuation marks, clitics split off ("don't" is "don" + "'t"), as in the Stanford
    tokenization of small_parallel_enja."""
    return len(_WORDS.findall(sentence))


def _renumber(texts: tuple[str, str, str], rng: np.random.Generator) -> tuple[str, str, str]:
    """Replace every number with a new one, the same in all three columns ("3,776" in English
    and "3776" in Japanese are one number; the English keeps its thousands separators). Rows
    whose columns do not show the same numbers are left as they are."""
    per_column = [{m.replace(",", "") for m in _DIGITS.findall(t)} for t in texts]
    numbers = per_column[0]
    if not numbers or any(c != numbers for c in per_column):
        return texts  # no numbers, or written differently ("3万円" / "30,000 yen"): keep them
    # sorted: set order follows string hashing, which differs between processes
    new = {n: int(rng.integers(1, 10 ** min(len(n), 4) + 1)) for n in sorted(numbers)}

    def sub(text: str) -> str:
        def one(m: re.Match) -> str:
            value = new[m.group(0).replace(",", "")]
            return f"{value:,}" if "," in m.group(0) else str(value)

        return _DIGITS.sub(one, text)

    ja, easy, en = texts
    return sub(ja), sub(easy), sub(en)


def _names(sentences) -> frozenset[str]:
    """Capitalised words seen inside a sentence (not after . ! ?): names, which keep their
    capital when a phrase is put in front of them."""
    names = set()
    for text in sentences:
        tokens = _WORDS.findall(text)
        for prev, word in zip(tokens, tokens[1:], strict=False):
            if word[:1].isupper() and prev not in {".", "!", "?", '"'}:
                names.add(word)
    return frozenset(names)


def _prefix(prefix: str, sentence: str, names: frozenset[str] = frozenset()) -> str:
    """``prefix`` before ``sentence``, whose first word is lower-cased unless it is a name or
    "I"."""
    first = _WORDS.findall(sentence)[0] if sentence else ""
    if first and first not in names and first != "I":
        sentence = sentence[:1].lower() + sentence[1:]
    return f"{prefix} {sentence}"


def _variants(rows: np.ndarray) -> tuple[list[tuple[int, int]], np.ndarray, np.ndarray]:
    """Every (sample row, phrase) pair with its English word count and kind (0 plain, 1 fixed
    phrase, 2 dated phrase); phrase -1 is none, otherwise an index into ``_PHRASES``."""
    n_fixed = len(_TIMES) + len(_PLACES) + len(_WITH)
    pairs, words, kinds = [], [], []
    for r, (_, _, en) in enumerate(rows):
        n = english_words(en)
        pairs.append((r, -1))
        words.append(n)
        kinds.append(0)
        for p, (_, _, pen) in enumerate(_PHRASES):
            pairs.append((r, p))
            words.append(n + english_words(_fill(pen, 0, 1, 1, 1)) + 1)  # + the comma
            kinds.append(1 if p < n_fixed else 2)
    return pairs, np.asarray(words), np.asarray(kinds)


def _fill(text: str, y: int, h: int, m: int, d: int) -> str:
    """A phrase with its year (1950 + y), hour, month and day filled in (fixed phrases as they are)."""
    return text.format(y=1950 + y, h=h, m=m, d=d, month=_MONTHS.split()[m - 1])


def synthetic_corpus(n: int, seed: int = 0, sample: Path = SAMPLE) -> pd.DataFrame:
    """``n`` rows with SNOW's headers (ID, #日本語(原文), #やさしい日本語, #英語(原文)) whose English
    column follows ``SNOW_EN_WORDS``."""
    base = pd.read_csv(sample, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    rows = base[SNOW_HEADER[1:]].to_numpy()
    pairs, words, kinds = _variants(rows)
    lengths = np.array(sorted(SNOW_EN_WORDS))
    share = np.array([SNOW_EN_WORDS[k] for k in lengths], dtype=float)
    rng = np.random.default_rng(seed)
    targets = rng.choice(lengths, size=n, p=share / share.sum())
    modes = rng.choice(3, size=n, p=[_SHARES["plain"], _SHARES["fixed"], _SHARES["dated"]])
    chosen = np.empty(n, dtype=np.int64)
    for k in lengths:
        for mode in range(3):
            where = np.flatnonzero((targets == k) & (modes == mode))
            if len(where) == 0:
                continue
            pool = np.flatnonzero((words == k) & (kinds == mode))
            if len(pool) == 0:  # no such variant: any kind of this length, else the nearest length
                pool = np.flatnonzero(words == k)
            if len(pool) == 0:
                pool = np.flatnonzero(words == words[np.argmin(np.abs(words - k))])
            chosen[where] = rng.choice(pool, size=len(where))
    names = _names(rows[:, 2])
    out = []
    for i, v in enumerate(chosen):
        r, p = pairs[v]
        ja, easy, en = _renumber(tuple(rows[r]), rng)
        if p >= 0:
            m = int(rng.integers(1, 13))
            y, h, d = (int(rng.integers(0, 76)), int(rng.integers(1, 13)), int(rng.integers(1, 29)))
            pja, peasy, pen = (_fill(t, y, h, m, d) for t in _PHRASES[p])
            ja, easy, en = (
                pja + ja,
                peasy + easy,
                _prefix(f"{pen[:1].upper()}{pen[1:]},", en, names),
            )
        out.append((f"SYN-{i + 1:07d}", ja, easy, en))
    return pd.DataFrame(out, columns=SNOW_HEADER)


def write_synthetic(path: str, n: int, seed: int = 0) -> pd.DataFrame:
    df = synthetic_corpus(n, seed)
    write_table(path, df)
    return df
