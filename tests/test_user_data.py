"""Your data and your model, never silently wrong: the cases of docs/failures.md rows 47 and up that
need no workflow run (tokenizers that do not fit, corpus formats, rows per use, downloads, the
one-line errors)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bertlens.models import (
    ModelSpec,
    check_tokenizer_fits,
    load_tokenizer,
    location,
)
from bertlens.stage import UserError
from bertlens.tokenstats import run_tokenization
from tests.helpers.checks import files_under, one_line, path_spec
from tests.helpers.runner import fake_snakemake


# ============================================================================ tokenizer fits
def test_model_folder_without_tokenizer_files(tmp_path, tiny_model):
    """config.json and weights only: transformers would build a 5-token tokenizer."""
    folder = tmp_path / "no-tokenizer"
    shutil.copytree(tiny_model, folder, ignore=shutil.ignore_patterns("*token*", "vocab*"))
    spec = path_spec("mine", folder)
    with pytest.raises(UserError) as err:
        load_tokenizer(spec, location(spec))
    assert one_line(err) == (
        f"model 'mine': '{folder}' has no tokenizer files (tokenizer.json, vocab.txt); "
        "transformers would make a 5-token placeholder that turns every word into [UNK]: save "
        f"the model's tokenizer there (tokenizer.save_pretrained('{folder}'))"
    )


def test_tokenizer_of_another_model(tmp_path, tiny_model):
    """A 30,522-row model with the tokenizer of a few-token vocabulary next to it."""
    from transformers import BertTokenizerFast

    folder = tmp_path / "other-tokenizer"
    shutil.copytree(tiny_model, folder, ignore=shutil.ignore_patterns("*token*", "vocab*"))
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "cat"]) + "\n")
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(folder)
    spec = path_spec("mine", folder)
    tokenizer = load_tokenizer(spec, location(spec))
    with pytest.raises(UserError) as err:
        check_tokenizer_fits(spec, tokenizer, location(spec))
    assert len(tokenizer) < 10
    assert one_line(err) == (
        f"model 'mine': tokenizer has {len(tokenizer)} tokens but the model's embedding matrix has 30522 rows: "
        "the tokenizer does not belong to this model; use the tokenizer saved with this model"
    )


def test_mostly_unk_corpus_stops_before_writing(tmp_path, tiny_model):
    spec = path_spec("tiny-en", tiny_model)
    tokenizer = load_tokenizer(spec, location(spec))
    out = {
        k: str(tmp_path / f"{k}.out")
        for k in ("tokens", "stats", "top_csv", "subwords_csv", "stats_html", "hist", "top_html")
    }
    out["subwords_html"] = str(tmp_path / "subwords.html")
    texts = ["🙂🙃 🤖🤖 🦜", "ꦧꦱꦗꦮ ꦲꦏ꧀ꦱꦫ", "A cat sleeps."]
    with pytest.raises(UserError) as err:
        run_tokenization(tokenizer, texts, "en", 32, out, "tiny-en", max_unk_rate=0.25)
    assert one_line(err) == (
        "model 'tiny-en': its tokenizer turns 55.6% of the tokens of column 'en' into [UNK] "
        "(limit tokens.max_unk_rate: 0.25); the tokenizer does not fit this text: save the "
        "model's own tokenizer into its folder, or pick a model for this language or another "
        "column:"
    )
    assert files_under(tmp_path) == []


# ============================================================================ corpus formats
HEADER = ["ID", "#日本語(原文)", "#やさしい日本語", "#英語(原文)"]
TRICKY = [
    [
        "q1",
        "「安物買いの銭失い」だ。",
        "安い物はすぐこわれます。",
        '"Buy cheap, buy twice," they say.',
    ],
    ["q2", "一行目\n二行目", "改行が\nあります。", "A line\nbreak, and\ta tab."],
    ["q3", "NA", "None", "null"],
    ["q4", "N/A", "NaN", "#N/A"],
]


@pytest.mark.parametrize("writer", ["csv-module-tsv", "pandas-tsv", "csv-module-csv", "excel-csv"])
def test_quoted_files_read_as_written(tmp_path, writer):
    """Files written by Python's csv module, pandas and Excel (quoted cells, doubled quotes, line
    breaks and separators inside quotes): every cell comes back exactly, NA-like text included."""
    import csv

    import pandas as pd

    from bertlens.corpus import read_source

    fmt = writer.rsplit("-", 1)[1]
    path = tmp_path / f"c.{fmt}"
    sep = "\t" if fmt == "tsv" else ","
    if writer.startswith("pandas"):
        pd.DataFrame(TRICKY, columns=HEADER).to_csv(path, sep=sep, index=False)
    else:
        encoding = "utf-8-sig" if writer.startswith("excel") else "utf-8"
        with open(path, "w", encoding=encoding, newline="") as fh:
            dialect = "excel" if writer.startswith("excel") else None
            w = csv.writer(fh, dialect=dialect or "excel", delimiter=sep, lineterminator="\r\n")
            w.writerows([HEADER, *TRICKY])
    df = read_source(path, fmt, "q")
    assert df[["id", "ja", "easy_ja", "en"]].to_numpy().tolist() == TRICKY


def test_na_like_text_is_kept_in_xlsx(tmp_path):
    import openpyxl

    from bertlens.corpus import read_source

    path = tmp_path / "na.xlsx"
    wb = openpyxl.Workbook()
    for row in [HEADER, *TRICKY[2:]]:
        wb.active.append(row)
    wb.save(path)
    df = read_source(path, "xlsx", "na")
    assert df[["id", "ja", "easy_ja", "en"]].to_numpy().tolist() == TRICKY[2:]


def test_xlsx_merged_cells_read_as_shown(tmp_path):
    """One Japanese sentence merged over two rows with two English translations: both rows get it."""
    import openpyxl

    from bertlens.corpus import read_source

    path = tmp_path / "merged.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["ID", "#日本語(原文)", "#英語(原文)"])
    ws.append([1, "雨が降っている。", "It is raining."])
    ws.append([2, None, "It's raining."])
    ws.append([3, "晴れだ。", "It is sunny."])
    ws.merge_cells("B2:B3")
    wb.save(path)
    df = read_source(path, "xlsx", "m")
    assert df["ja"].tolist() == ["雨が降っている。", "雨が降っている。", "晴れだ。"]
    assert df["id"].tolist() == ["1", "2", "3"]


def _formula_workbook(path: Path, cached: str | None) -> Path:
    """An xlsx whose B2 is a formula; with ``cached`` its saved value (what Excel stores)."""
    import zipfile

    import openpyxl

    wb = openpyxl.Workbook()
    wb.active.append(["ID", "#やさしい日本語"])
    wb.active.append([1, '="猫"&"です。"'])
    wb.save(path)
    if cached is not None:
        with zipfile.ZipFile(path) as zf:
            parts = {n: zf.read(n) for n in zf.namelist()}
        sheet = parts["xl/worksheets/sheet1.xml"].decode()
        sheet = sheet.replace('<c r="B2"><f>', '<c r="B2" t="str"><f>').replace(
            "<v />", f"<v>{cached}</v>"
        )
        parts["xl/worksheets/sheet1.xml"] = sheet.encode()
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in parts.items():
                zf.writestr(name, data)
    return path


def test_xlsx_formula_without_saved_value(tmp_path):
    from bertlens.corpus import read_source

    path = _formula_workbook(tmp_path / "f.xlsx", cached=None)
    with pytest.raises(UserError) as err:
        read_source(path, "xlsx", "f")
    assert one_line(err) == (
        f"corpus source 'f': cell B2 of sheet 'Sheet' in '{path}' is a formula "
        '(="猫"&"です。") without a saved value (the file was written by a program that does not '
        "compute formulas); open it in Excel or LibreOffice and save it again, or paste the "
        "values instead of the formulas"
    )
    saved = _formula_workbook(tmp_path / "saved.xlsx", cached="猫です。")
    assert read_source(saved, "xlsx", "f")["easy_ja"].tolist() == ["猫です。"]


def test_xlsx_missing_sheet_lists_the_sheets(tmp_path):
    import openpyxl

    from bertlens.corpus import read_source

    path = tmp_path / "two.xlsx"
    wb = openpyxl.Workbook()
    wb.active.title = "notes"
    wb.create_sheet("T15").append(["#やさしい日本語"])
    wb.save(path)
    for sheet, shown in (("t15", "'t15'"), (2, "2")):
        with pytest.raises(UserError) as err:
            read_source(path, "xlsx", "two", sheet=sheet)
        assert one_line(err) == (
            f"corpus source 'two': '{path}' has no sheet {shown} (its sheets: 'notes', 'T15'); "
            "fix sheet: in corpus.sources (a name, or an index from 0)"
        )


def _read_error(path: Path, text: str, name: str, encoding: str = "utf-8") -> str:
    """Write ``text`` to ``path`` and read it as the corpus source ``name`` (its format from the
    file name): the one-line error that gives."""
    from bertlens.corpus import read_source

    path.write_text(text, encoding=encoding)
    with pytest.raises(UserError) as err:
        read_source(path, path.suffix[1:], name)
    return one_line(err)


def test_utf16_text_is_named(tmp_path):
    path = tmp_path / "unicode.tsv"
    msg = _read_error(path, "ID\t#やさしい日本語\n1\t猫です。\n", "u16", encoding="utf-16")
    assert msg == (
        f"corpus source 'u16': '{path}' is UTF-16 text (Excel's 'Unicode Text'), not UTF-8; save "
        "it as UTF-8 ('CSV UTF-8' in Excel) or convert it, e.g. 'iconv -f UTF-16 -t UTF-8 "
        "unicode.tsv > unicode.utf8.tsv'"
    )
    assert "SHIFT_JIS" not in msg


def test_header_with_full_width_hash_and_spaces_matches(tmp_path):
    from bertlens.corpus import read_source

    path = tmp_path / "h.tsv"
    path.write_text(
        " ID \t＃やさしい日本語\t# 英語（原文） \n1\t猫です。\tA cat.\n", encoding="utf-8"
    )
    df = read_source(path, "tsv", "h")
    assert df[["id", "easy_ja", "en"]].to_numpy().tolist() == [["1", "猫です。", "A cat."]]


def test_header_near_miss_is_named(tmp_path):
    msg = _read_error(tmp_path / "near.tsv", "ID\t#やさしい日本語文\n1\t猫です。\n", "near")
    assert (
        "found: ID, #やさしい日本語文; near misses: '#やさしい日本語文' (meant '#やさしい日本語'?); "
        "give the file a header row with these names" in msg
    )


def test_header_near_miss_is_named_when_its_column_is_needed(tmp_path):
    from bertlens.corpus import clean, read_source

    path = tmp_path / "near.tsv"
    path.write_text("ID\t#やさしい日本語\t#英語(原文\n1\t猫です。\tA cat.\n", encoding="utf-8")
    frame = read_source(path, "tsv", "near")
    with pytest.raises(UserError) as err:
        clean([frame], required=["easy_ja", "en"], dedupe_on=[])
    assert one_line(err) == (
        "column 'en' is needed (by a model or the MeCab stats) but no corpus source has it; the "
        "corpus has: easy_ja (headers not understood: '#英語(原文' (meant '#英語(原文)'?)). Fix "
        "the model's column: or add a source with that column"
    )


def test_csv_with_a_badly_quoted_cell(tmp_path):
    path = tmp_path / "q.csv"
    msg = _read_error(path, 'ID,#英語(原文)\n1,A cat.\n2,"Buy cheap," they say.\n', "q")
    assert msg == (
        f"corpus source 'q': '{path}' line 3: a quoted cell is not closed properly (',' expected "
        'after \'"\'); quote the whole cell and double the quotes inside it (""like this""), as '
        "spreadsheet programs do"
    )


def test_row_with_more_cells_than_the_header(tmp_path):
    path = tmp_path / "wide.csv"
    msg = _read_error(path, "ID,#英語(原文)\n1,A cat.\n2,Cats, dogs and birds.\n", "w")
    assert msg == (
        f"corpus source 'w': '{path}' row 3 has 3 cells but the header has 2; quote cells that "
        "contain the separator, or fix the row"
    )


# ============================================================================ rows per use
def _snow_and_txt(tmp_path: Path, txt_column: str = "easy_ja"):
    from bertlens.corpus import read_source

    tsv = tmp_path / "snow.tsv"
    tsv.write_text(
        "ID\t#日本語(原文)\t#やさしい日本語\t#英語(原文)\n"
        "1\t猫が寝ている。\t猫が寝ています。\tThe cat is sleeping.\n"
        "2\t雨だ。\t雨です。\tIt rains.\n",
        encoding="utf-8",
    )
    txt = tmp_path / "extra.txt"
    txt.write_text("犬が走ります。\n鳥が鳴きます。\n花がさきます。\n", encoding="utf-8")
    return [
        read_source(tsv, "tsv", "snow"),
        read_source(txt, "txt", "extra", text_column=txt_column),
    ]


USES = {"model 'minilm-en'": "en", "model 'easy-ja'": "easy_ja", "MeCab of 'easy_ja'": "easy_ja"}


def test_txt_source_next_to_a_model_of_another_column(tmp_path):
    """extra easy_ja sentences from a .txt: kept for the easy_ja users, not for the en model."""
    from bertlens.corpus import build_corpus, read_corpus

    frames = _snow_and_txt(tmp_path)
    files = {"snow": str(tmp_path / "snow.tsv"), "extra": str(tmp_path / "extra.txt")}
    sources = [{"name": "snow", "path": files["snow"]}, {"name": "extra", "path": files["extra"]}]
    out = tmp_path / "out"
    stats = build_corpus(
        sources, files, ["easy_ja", "en"], ["ja", "easy_ja", "en"], "NFKC", None,
        str(out / "corpus.parquet"), str(out / "stats.json"), uses=USES,
    )  # fmt: skip
    assert len(frames[1]) == 3
    assert stats["rows_out"] == 5 and stats["dropped_empty"] == {}
    assert stats["rows_per_use"] == {
        "model 'minilm-en'": 2,
        "model 'easy-ja'": 5,
        "MeCab of 'easy_ja'": 5,
    }
    en = read_corpus(str(out / "corpus.parquet"), "en")
    assert en["id"].tolist() == ["1", "2"]
    easy = read_corpus(str(out / "corpus.parquet"), "easy_ja")
    assert easy["easy_ja"].tolist()[2:] == ["犬が走ります。", "鳥が鳴きます。", "花がさきます。"]


def test_source_that_adds_no_rows_is_named(tmp_path):
    """A .txt read into `ja`, which nothing uses: its rows serve nobody."""
    from bertlens.corpus import clean

    frames = _snow_and_txt(tmp_path, txt_column="ja")
    with pytest.raises(UserError) as err:
        clean(frames, ["easy_ja", "en"], ["ja", "easy_ja", "en"], uses=USES)
    assert one_line(err) == (
        "corpus source 'extra' adds no rows: of its 3 rows, 3 have no text in easy_ja/en (the "
        "columns the models, MeCab statistics and training runs read) and 0 repeat earlier rows; "
        "give it text in one of those columns (a .txt source fills its text_column, by default "
        "easy_ja) or remove it from corpus.sources"
    )


def test_use_without_rows_is_named(tmp_path):
    from bertlens.corpus import clean, read_source

    path = tmp_path / "c.tsv"
    path.write_text("ID\t#やさしい日本語\t#英語(原文)\n1\t猫です。\t\n2\t雨です。\t\n")
    with pytest.raises(UserError) as err:
        clean([read_source(path, "tsv", "c")], ["easy_ja", "en"], [], uses=USES)
    assert one_line(err) == (
        "model 'minilm-en' reads column 'en', which has no text in any corpus row (after "
        "max_rows); give a source with text in that column or fix the column:"
    )


# ============================================================================ downloads
def test_unreadable_download_is_deleted_and_named_by_url(tmp_path):
    """A downloaded file the corpus stage refuses is not kept as valid: the next run downloads it
    again. The message names the URL, not the cache file."""
    from bertlens.corpus import build_corpus

    cached = tmp_path / "results" / "downloads" / "web.tsv"
    cached.parent.mkdir(parents=True)
    cached.write_text("番号\t原文\n1\t猫\n", encoding="utf-8")
    (tmp_path / "results" / "downloads" / "web.tsv.meta.json").write_text("{}")
    url = "https://example.org/data/easy.tsv"
    with pytest.raises(UserError) as err:
        build_corpus(
            [{"name": "web", "url": url}], {"web": str(cached)}, ["easy_ja"], [], "NFKC", None,
            str(tmp_path / "corpus.parquet"), str(tmp_path / "stats.json"),
        )  # fmt: skip
    msg = one_line(err)
    assert msg.startswith(f"corpus source 'web': '{url}' has none of the expected columns")
    assert msg.endswith("(the downloaded copy was deleted: the next run downloads it again)")
    assert str(cached) not in msg
    assert files_under(tmp_path) == []


# ============================================================================ one clear line
def test_max_length_above_the_model_positions(tiny_model):
    """The tiny model has 64 positions: tokenize (config only) and every stage that loads the
    model (vocab_matrix, embed, padding, internals, attention, through modelstage.load) stop
    with one line."""
    from bertlens.modelstage import load

    entry = {"name": "tiny-en", "path": str(tiny_model), "column": "en", "max_length": 128}
    expected = (
        "model 'tiny-en': max_length 128 is above the model's 64 positions "
        "(max_position_embeddings in its config.json); set max_length: 64 or less for this model"
    )
    spec = ModelSpec.from_config(entry)
    tokenizer = load_tokenizer(spec, location(spec))
    with pytest.raises(UserError) as err:
        check_tokenizer_fits(spec, tokenizer, location(spec))
    assert one_line(err) == expected
    for head in ("base", "mlm"):
        with pytest.raises(UserError) as err:
            load(fake_snakemake("embed", params={"model": entry}), head=head)
        assert one_line(err) == expected
    load(
        fake_snakemake("embed", params={"model": {**entry, "max_length": 64}})
    )  # exactly the positions is fine


def test_pooler_pooling_on_models_without_pooler_is_a_config_error(tiny_bert):
    from bertlens.models import check_pooler_poolings

    mlm_only = tiny_bert(with_mlm_head=True)
    with_pooler = tiny_bert()
    config = {
        "projection": {"sentences": {"poolings": ["mean", "pooler"]}},
        "explore": {"probes": {"poolings": ["mean"]}},
        "models": [
            {"name": "enc", "path": str(with_pooler), "column": "en"},
            {"name": "mine", "path": str(mlm_only), "column": "en"},
        ],
    }
    with pytest.raises(UserError) as err:
        check_pooler_poolings(config)
    assert one_line(err) == (
        "model 'mine' has no pooler (its weights have no pooler.* tensors), but "
        "projection.sentences.poolings ask for the 'pooler' pooling; remove 'pooler' there (cls "
        "and mean work for every model) or use a checkpoint saved with its pooler"
    )
    config["models"][1] = {"name": "ja", "trained": "scratch", "column": "easy_ja"}
    with pytest.raises(UserError, match=r"model 'ja' has no pooler \(trained here with an MLM"):
        check_pooler_poolings(config)
    config["projection"]["sentences"]["poolings"] = ["mean", "cls"]
    check_pooler_poolings(config)  # nobody asks for it: fine


@pytest.mark.parametrize(
    "error",
    [
        OSError(28, "No space left on device", "/data/results/embeddings/m/sentences_mean.npy"),
        RuntimeError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, "
                     'message: "No space left on device" })'),
    ],
    ids=["oserror", "wrapped"],
)  # fmt: skip
def test_disk_full_is_one_line(tmp_path, capsys, error):
    from bertlens.stage import run

    out = tmp_path / "results" / "x" / "out.npy"
    sm = fake_snakemake("embed", output=[out], log=[tmp_path / "x.log"])

    def main(_):
        raise error

    with pytest.raises(SystemExit) as stop:
        run(sm, main)
    assert stop.value.code == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    where = "/data/results/embeddings/m" if isinstance(error, OSError) else str(out.parent)
    what = "sentences_mean.npy" if isinstance(error, OSError) else "out.npy"
    assert line == (
        f"ERROR [embed]: no space left on {where} (the device filled up while this job wrote "
        f"{what}); free disk space there (see 'df -h {where}') and rerun: nothing incomplete was "
        "kept"
    )
    assert "Traceback" not in (tmp_path / "x.log").read_text()


class _Planted:
    """Pickles as a call of ``open(marker, 'w')``: a weights file that would run code."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_unsafe_pickle_weights_are_refused(tmp_path, tiny_model):
    import torch
    from safetensors.torch import load_file

    from bertlens.models import load_model

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_model, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    marker = tmp_path / "EXECUTED"
    state = load_file(tiny_model / "model.safetensors")
    torch.save({**state, "evil": _Planted(str(marker))}, folder / "pytorch_model.bin")
    spec = path_spec("mine", folder)
    with pytest.raises(UserError) as err:
        load_model(spec, location(spec))
    msg = one_line(err)
    assert msg == (
        f"model 'mine': the weights file in '{folder}' is a pickle that holds more than tensors "
        "(it imports io.open); bertlens loads weights only and never runs code from a model "
        "file: use a model folder with model.safetensors (save_pretrained writes it), or convert "
        "this file on a machine where you trust its source"
    )
    assert "weights_only=False" not in msg and "weights_only" not in msg
    assert not marker.exists()


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (
            3,
            "model 'tiny-en' gets only 3 corpus rows with text in its column: its sentence t-SNE "
            "(perplexity 30) needs at least 92 and its k-NN (explore.k 10) needs at least 11; add "
            "rows to the corpus",
        ),
        (
            50,
            "model 'tiny-en' gets only 50 corpus rows with text in its column: its sentence t-SNE "
            "(perplexity 30) needs at least 92; add rows to the corpus, or set "
            "projection.tsne.perplexity below 16.33",
        ),
    ],
)
def test_corpus_too_small_for_tsne_and_knn(rows, expected):
    from bertlens.modelstage import check_rows_for_analysis

    with pytest.raises(UserError) as err:
        check_rows_for_analysis({"model 'tiny-en'": rows}, 30, 10)
    assert one_line(err) == expected
    check_rows_for_analysis({"model 'tiny-en'": 92}, 30, 10)


KILLED_WRITER = """
import sys, time
sys.path.insert(0, {scripts!r})
from bertlens.io import atomic_path
with atomic_path({dest!r}, suffix=".npy") as tmp:
    tmp.write_bytes(b"x" * 1_000_000)
    print(tmp, flush=True)
    time.sleep(60)
"""


def test_killed_job_leaves_no_hidden_temporary_after_the_next_run(tmp_path):
    """A writer killed with SIGKILL leaves its full-size temporary; the next writer of the same
    file removes it (and never one of a live process)."""
    import signal
    import subprocess
    import sys

    from bertlens.io import atomic_path
    from tests.helpers.tiny import REPO

    dest = tmp_path / "sentences_mean.npy"
    code = KILLED_WRITER.format(scripts=str(REPO / "scripts"), dest=str(dest))
    killed = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    left = Path(killed.stdout.readline().strip())
    live = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    live_tmp = Path(live.stdout.readline().strip())
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert left.stat().st_size == 1_000_000  # what a killed job leaves
        with atomic_path(dest, suffix=".npy") as tmp:
            tmp.write_bytes(b"done")
        assert not left.exists()
        assert live_tmp.exists()  # a running writer's file is kept
    finally:
        live.kill()
        live.wait()
    assert dest.read_bytes() == b"done"
    assert sorted(p.name for p in tmp_path.iterdir()) == [live_tmp.name, dest.name]
