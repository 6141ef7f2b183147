"""Synthetic workbooks in the format of the SNOW T15/T23 easy-Japanese corpora.

The content is made up from small word lists (deterministic for a seed) but has what the real
files have and what the corpus stage must handle:

* row 2 (index 1) is written in full-width ASCII (``ＡＢＣ１２３``);
* row 3 (index 2) contains half-width katakana (``ｺｰﾋｰ``, ``ﾃﾞﾊﾟｰﾄ``) and an ideographic space;
* row 4 (index 3) has an empty ``#やさしい日本語`` cell;
* the last row repeats row 1 exactly (a plain duplicate, new ID);
* the second-to-last row repeats row 2 in half-width ASCII: a duplicate only after NFKC.

Every other row is a distinct sentence triple.
"""

from __future__ import annotations

import itertools
import random
from os import PathLike
from pathlib import Path

import openpyxl
import pandas as pd

COLUMNS = ["ID", "#日本語(原文)", "#やさしい日本語", "#英語(原文)"]
T23_COLUMNS = [*COLUMNS, "#固有名詞"]

# Row indices of the planted special cases (see the module docstring).
FULLWIDTH_ROW = 1
HALFWIDTH_KANA_ROW = 2
EMPTY_EASY_ROW = 3
MIN_ROWS = 8

# (japanese, easy japanese, english)
_SUBJECTS = [
    ("私", "私", "I"),
    ("兄", "兄", "My brother"),
    ("先生", "先生", "The teacher"),
    ("友達", "友達", "My friend"),
    ("祖母", "おばあさん", "My grandmother"),
]
_TIMES = [
    ("毎朝", "毎朝", "every morning"),
    ("昨日", "昨日", "yesterday"),
    ("週末に", "土曜日と日曜日に", "on the weekend"),
    ("夕方", "夕方", "in the evening"),
]
_PLACES = [
    ("駅", "駅", "the station"),
    ("図書館", "本を借りる所", "the library"),
    ("公園", "公園", "the park"),
    ("市場", "いろいろな物を売る所", "the market"),
]
_ACTIONS = [
    ("新聞を読む", "新聞を読みます", "reads the newspaper"),
    ("果物を購入する", "果物を買います", "buys fruit"),
    ("散策する", "ゆっくり歩きます", "takes a walk"),
    ("昼食を摂る", "昼ごはんを食べます", "eats lunch"),
    ("手紙を投函する", "手紙をポストに入れます", "posts a letter"),
]
_PROPER_NOUNS = ["東京", "富士山", "京都", "ＮＨＫ", "大阪城", "北海道", None]


def _plain_row(subject, time, place, action) -> tuple[str, str, str]:
    ja = f"{subject[0]}は{time[0]}{place[0]}で{action[0]}。"
    easy = f"{subject[1]}は、{time[1]}、{place[1]}で{action[1]}。"
    en = f"{subject[2]} {action[2]} at {place[2]} {time[2]}."
    return ja, easy, en


def snow_rows(rows: int, seed: int = 0) -> list[tuple[str, str | None, str]]:
    """The (ja, easy_ja, en) triples of a synthetic workbook, special rows included."""
    if rows < MIN_ROWS:
        raise ValueError(f"rows must be at least {MIN_ROWS} to hold the special cases")
    combos = list(itertools.product(_SUBJECTS, _TIMES, _PLACES, _ACTIONS))
    n_plain = rows - 2  # the last two rows are duplicates
    if n_plain > len(combos):
        raise ValueError(f"at most {len(combos) + 2} rows can be generated")
    rng = random.Random(seed)
    out: list[tuple[str, str | None, str]] = [_plain_row(*c) for c in rng.sample(combos, n_plain)]
    out[FULLWIDTH_ROW] = (
        "私はＡＢＣ１２３という店で靴を購入した。",
        "私は「ＡＢＣ１２３」という店で靴を買いました。",
        "I bought shoes at a shop called ＡＢＣ１２３.",
    )
    out[HALFWIDTH_KANA_ROW] = (
        "兄は毎朝ﾃﾞﾊﾟｰﾄで　ｺｰﾋｰを飲む。",
        "兄は毎朝ﾃﾞﾊﾟｰﾄでｺｰﾋｰを飲みます。",
        "My  brother drinks coffee at the department store every morning. ",
    )
    ja, _, en = out[EMPTY_EASY_ROW]
    out[EMPTY_EASY_ROW] = (ja, None, en)
    out.append(
        (
            "私はABC123という店で靴を購入した。",
            "私は「ABC123」という店で靴を買いました。",
            "I bought shoes at a shop called ABC123.",
        )
    )
    out.append(out[0])
    return out


def write_snow_xlsx(
    path: str | PathLike, kind: str = "T15", rows: int = 40, seed: int = 0
) -> pd.DataFrame:
    """Write a SNOW-format workbook (one sheet, SNOW's header row) and return what was written.

    The returned DataFrame has SNOW's column names; empty cells are ``None``.
    T15 IDs are integers (1, 2, ...); T23 IDs are strings (``T23-0001``) and T23 has the extra
    ``#固有名詞`` column.
    """
    if kind not in ("T15", "T23"):
        raise ValueError("kind must be 'T15' or 'T23'")
    triples = snow_rows(rows, seed)
    rng = random.Random(f"{seed}-{kind}-nouns")
    records = []
    for i, (ja, easy, en) in enumerate(triples, start=1):
        rec: dict[str, object] = {
            "ID": i if kind == "T15" else f"T23-{i:04d}",
            "#日本語(原文)": ja,
            "#やさしい日本語": easy,
            "#英語(原文)": en,
        }
        if kind == "T23":
            rec["#固有名詞"] = rng.choice(_PROPER_NOUNS)
        records.append(rec)
    columns = T23_COLUMNS if kind == "T23" else COLUMNS
    df = pd.DataFrame.from_records(records, columns=columns)

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = kind
    ws.append(columns)
    for rec in records:
        ws.append([rec[c] for c in columns])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return df
