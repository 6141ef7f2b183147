"""A deterministic synthetic corpus in SNOW's column format, for measuring scale without network
data.

Rows are recombined from the bundled easy-Japanese sample so the text stays real language: each
synthetic row takes a sample row, rewrites its numbers, sometimes prefixes a time phrase and
sometimes joins a second row (which gives the long tail of SNOW's length distribution). The same
(N, seed) always gives the same file.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .io import write_table

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "easy_japanese_sample.tsv"
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
# Sentence starts that may be lower-cased after a prefix; anything else (names, "I") keeps case.
_LOWERABLE = {
    "The",
    "A",
    "An",
    "It",
    "This",
    "That",
    "There",
    "We",
    "They",
    "He",
    "She",
    "You",
    "My",
    "Our",
    "Please",
    "Let's",
    "Many",
    "Most",
    "Some",
    "All",
    "Every",
    "In",
    "Near",
    "At",
    "With",
    "On",
    "Have",
    "Do",
    "Does",
    "Is",
    "Are",
    "Can",
    "What",
    "How",
    "When",
    "Where",
    "Why",
    "If",
    "After",
    "Before",
    "Because",
}
_DIGITS = re.compile(r"\d+")


def _renumber(texts: tuple[str, str, str], rng: np.random.Generator) -> tuple[str, str, str]:
    """Replace every number with a new one, the same in all three columns."""
    numbers = {m for t in texts for m in _DIGITS.findall(t)}
    if not numbers:
        return texts
    new = {n: str(int(rng.integers(1, 10 ** min(len(n), 4) + 1))) for n in numbers}

    def sub(text: str) -> str:
        return _DIGITS.sub(lambda m: new.get(m.group(0), m.group(0)), text)

    ja, easy, en = texts
    return sub(ja), sub(easy), sub(en)


def _prefix(prefix: str, sentence: str) -> str:
    first = sentence.split(" ", 1)[0]
    if first in _LOWERABLE:
        sentence = sentence[:1].lower() + sentence[1:]
    return f"{prefix} {sentence}"


def synthetic_corpus(n: int, seed: int = 0, sample: Path = SAMPLE) -> pd.DataFrame:
    """``n`` rows with SNOW's headers (ID, #日本語(原文), #やさしい日本語, #英語(原文))."""
    base = pd.read_csv(sample, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    rows = base[SNOW_HEADER[1:]].to_numpy()
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(rows), size=n)
    joins = rng.random(n) < 0.18
    partners = rng.integers(0, len(rows), size=n)
    times = rng.integers(-len(_TIMES) // 2, len(_TIMES), size=n)  # negative: none
    places = rng.integers(-len(_PLACES), len(_PLACES), size=n)
    withs = rng.integers(-len(_WITH), len(_WITH), size=n)
    out = []
    for i in range(n):
        ja, easy, en = _renumber(tuple(rows[picks[i]]), rng)
        if joins[i]:
            ja2, easy2, en2 = _renumber(tuple(rows[partners[i]]), rng)
            ja, easy, en = ja + ja2, easy + easy2, f"{en} {en2}"
        if withs[i] >= 0:
            pja, peasy, pen = _WITH[withs[i]]
            ja, easy, en = pja + ja, peasy + easy, _prefix(f"{pen[:1].upper()}{pen[1:]},", en)
        if places[i] >= 0:
            pja, peasy, pen = _PLACES[places[i]]
            ja, easy, en = pja + ja, peasy + easy, _prefix(f"{pen[:1].upper()}{pen[1:]},", en)
        if times[i] >= 0:
            pja, peasy, pen = _TIMES[times[i]]
            ja, easy, en = pja + ja, peasy + easy, _prefix(f"{pen},", en)
        out.append((f"SYN-{i + 1:07d}", ja, easy, en))
    return pd.DataFrame(out, columns=SNOW_HEADER)


def write_synthetic(path: str, n: int, seed: int = 0) -> pd.DataFrame:
    df = synthetic_corpus(n, seed)
    write_table(path, df)
    return df


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, help="number of rows")
    parser.add_argument("out", help="output .tsv/.csv/.parquet")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    df = write_synthetic(args.out, args.n, args.seed)
    print(f"wrote {len(df)} rows to {args.out}")
