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


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg, msg
    return msg


def _path_spec(name: str, folder: Path, **kw) -> ModelSpec:
    return ModelSpec(name=name, column="en", source="path", ref=str(folder), **kw)


def _files(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# ============================================================================ tokenizer fits
def test_model_folder_without_tokenizer_files(tmp_path, tiny_model):
    """config.json and weights only: transformers would build a 5-token tokenizer."""
    folder = tmp_path / "no-tokenizer"
    shutil.copytree(tiny_model, folder, ignore=shutil.ignore_patterns("*token*", "vocab*"))
    spec = _path_spec("mine", folder)
    with pytest.raises(UserError) as err:
        load_tokenizer(spec, location(spec))
    assert _one_line(err) == (
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
    spec = _path_spec("mine", folder)
    tokenizer = load_tokenizer(spec, location(spec))
    with pytest.raises(UserError) as err:
        check_tokenizer_fits(spec, tokenizer, location(spec))
    assert len(tokenizer) < 10
    assert _one_line(err) == (
        f"model 'mine': tokenizer has {len(tokenizer)} tokens but the model's embedding matrix has 30522 rows: "
        "the tokenizer does not belong to this model; use the tokenizer saved with this model"
    )


def test_mostly_unk_corpus_stops_before_writing(tmp_path, tiny_model):
    spec = _path_spec("tiny-en", tiny_model)
    tokenizer = load_tokenizer(spec, location(spec))
    out = {
        k: str(tmp_path / f"{k}.out")
        for k in ("tokens", "stats", "top_csv", "subwords_csv", "stats_html", "hist", "top_html")
    }
    out["subwords_html"] = str(tmp_path / "subwords.html")
    texts = ["🙂🙃 🤖🤖 🦜", "ꦧꦱꦗꦮ ꦲꦏ꧀ꦱꦫ", "A cat sleeps."]
    with pytest.raises(UserError) as err:
        run_tokenization(tokenizer, texts, "en", 32, out, "tiny-en", max_unk_rate=0.25)
    assert _one_line(err) == (
        "model 'tiny-en': its tokenizer turns 55.6% of the tokens of column 'en' into [UNK] "
        "(limit tokens.max_unk_rate: 0.25); the tokenizer does not fit this text: save the "
        "model's own tokenizer into its folder, or pick a model for this language or another "
        "column:"
    )
    assert _files(tmp_path) == []
