"""The SNOW config keeps every row of T15 and T23 (50,000 + 34,300 = 84,300) as the notebook of
seed 002 did, repeated sentences included, and the corpus statistics say how many rows came from
each file. Workbooks of the real sizes are generated (repeats planted) and cleaned with the
SNOW config's corpus settings."""

from __future__ import annotations

import json

import openpyxl
import yaml

from bertlens.corpus import build_corpus
from tests.helpers.snow import COLUMNS, T23_COLUMNS
from tests.helpers.tiny import REPO

SIZES = {"T15": 50_000, "T23": 34_300}


def _workbook(path, kind: str, rows: int) -> None:
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet(kind)
    columns = T23_COLUMNS if kind == "T23" else COLUMNS
    ws.append(columns)
    for i in range(rows):
        k = i % 9_000  # every sentence appears several times, as repeats do in SNOW
        row = [i + 1, f"{k}番目の文を書いた。", f"{k}番目の文を書きました。", f"Sentence {k}."]
        ws.append(row + (["東京"] if kind == "T23" else []))
    wb.save(path)


def test_snow_config_keeps_all_84300_rows(tmp_path):
    snow = yaml.safe_load((REPO / "config" / "snow-cl-tohoku.yaml").read_text(encoding="utf-8"))
    base = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    corpus = {**base["corpus"], **snow["corpus"]}
    files = {}
    for src in corpus["sources"]:
        files[src["name"]] = str(tmp_path / f"{src['name']}.xlsx")
        _workbook(files[src["name"]], src["name"], SIZES[src["name"]])
    stats = build_corpus(
        sources=corpus["sources"],
        files=files,
        required=["ja", "easy_ja", "en"],
        dedupe_on=corpus["dedupe_on"],
        normalize=corpus.get("normalize", "NFKC"),
        max_rows=corpus.get("max_rows"),
        out_table=str(tmp_path / "corpus.parquet"),
        out_stats=str(tmp_path / "stats.json"),
    )
    assert stats["rows_out"] == 84_300
    written = json.loads((tmp_path / "stats.json").read_text())
    assert written["rows_in"] == {"T15": 50_000, "T23": 34_300}  # rows per file
