"""The MeCab + WordPiece vocabulary: files, loading with BertJapaneseTokenizer, round trip."""

from __future__ import annotations

import json
import unicodedata

import pandas as pd
import pytest
from snakemake.exceptions import WorkflowError

from bertlens.config import run_with_defaults
from bertlens.models import mecab_tagger
from bertlens.stage import UserError
from bertlens.vocab import (
    corpus_texts,
    load_trained_tokenizer,
    roundtrip_stats,
    train_wordpiece_vocab,
    write_vocab_html,
)
from tests.helpers.training import SENTENCES, train_vocab


@pytest.fixture(scope="module")
def vocab_dir(tmp_path_factory):
    return train_vocab(tmp_path_factory.mktemp("vocab"))


def test_files_and_tokenizer_config(vocab_dir):
    assert (vocab_dir / "vocab.txt").is_file()
    cfg = json.loads((vocab_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert cfg["tokenizer_class"] == "BertJapaneseTokenizer"
    assert cfg["word_tokenizer_type"] == "mecab"
    assert cfg["subword_tokenizer_type"] == "wordpiece"
    assert cfg["mecab_kwargs"] == {"mecab_dic": "ipadic"}
    assert cfg["do_lower_case"] is False
    assert not list(vocab_dir.glob(".vocab.*")), "temporary folder left behind"
    stats = json.loads((vocab_dir / "stats.json").read_text(encoding="utf-8"))
    assert stats["texts"] == len(SENTENCES)
    assert stats["vocab_size"] == len((vocab_dir / "vocab.txt").read_text().splitlines())


def test_loads_with_bert_japanese_tokenizer(vocab_dir):
    from transformers import AutoTokenizer, BertJapaneseTokenizer

    tok = BertJapaneseTokenizer.from_pretrained(
        str(vocab_dir),
        word_tokenizer_type="mecab",
        subword_tokenizer_type="wordpiece",
        mecab_kwargs={"mecab_dic": "ipadic"},
    )
    # special tokens first, in the configured order
    assert [tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id] == [0, 1, 2, 3]
    assert tok.mask_token_id == 4
    assert tok.word_tokenizer_type == "mecab" and tok.lower_case is False
    auto = AutoTokenizer.from_pretrained(str(vocab_dir))
    assert type(auto).__name__ == "BertJapaneseTokenizer"
    assert auto.tokenize(SENTENCES[0]) == tok.tokenize(SENTENCES[0])
    ids = tok(SENTENCES[0])["input_ids"]
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id


def test_pieces_stay_inside_mecab_words(vocab_dir):
    """WordPiece runs inside MeCab words: the pieces of each word rebuild exactly that word."""
    from bertlens.encoding import japanese_word_pieces

    tok = load_trained_tokenizer(vocab_dir)
    tagger = mecab_tagger("ipadic")
    for text in SENTENCES:
        pieces, words = japanese_word_pieces(tok, text)
        assert pieces == tok.tokenize(text)
        mecab_words = tagger.parse(unicodedata.normalize("NFKC", text)).split()
        rebuilt = [
            "".join(p.removeprefix("##") for p, w in zip(pieces, words, strict=True) if w == i)
            for i in range(max(words) + 1)
        ]
        assert rebuilt == mecab_words


def test_roundtrip_on_training_text(vocab_dir):
    tok = load_trained_tokenizer(vocab_dir)
    stats = roundtrip_stats(tok, SENTENCES)
    assert stats["unk_tokens"] == 0
    assert stats["unk_token_rate"] == 0.0
    assert stats["roundtrip_share"] == 1.0
    assert stats["tokens"] >= sum(len(s) for s in SENTENCES) / 4


def test_unk_reported_for_unseen_characters(vocab_dir):
    tok = load_trained_tokenizer(vocab_dir)
    texts = ["私は鰻を食べます。", "今日はとても暑いです。"]  # 鰻 is not in the corpus
    stats = roundtrip_stats(tok, texts)
    assert stats["unk_tokens"] >= 1
    assert stats["unk_sentence_rate"] == 0.5
    assert stats["roundtrip_share"] == 0.5
    assert stats["top_unk_words"][0]["word"] == "鰻"


def test_ids_are_reproducible(tmp_path):
    a = train_vocab(tmp_path / "a")
    b = train_vocab(tmp_path / "b")
    assert (a / "vocab.txt").read_text() == (b / "vocab.txt").read_text()


def test_special_tokens_checked(tmp_path):
    with pytest.raises(UserError, match=r"\[MASK\]"):
        train_wordpiece_vocab(
            SENTENCES,
            tmp_path,
            200,
            1,
            special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"],
            mecab_dic="ipadic",
        )


def test_extra_special_tokens(tmp_path):
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<ENT>"]
    train_wordpiece_vocab(SENTENCES, tmp_path, 300, 1, special_tokens=special, mecab_dic="ipadic")
    (tmp_path / "added_tokens.json").write_text("{}")  # a stale file of an earlier tokenizer
    train_wordpiece_vocab(SENTENCES, tmp_path, 300, 1, special_tokens=special, mecab_dic="ipadic")
    assert not (tmp_path / "added_tokens.json").exists()
    tok = load_trained_tokenizer(tmp_path)
    assert tok.convert_tokens_to_ids("<ENT>") == 5
    assert "<ENT>" in tok.tokenize("私は<ENT>が好きです。")


def test_settings_defaults_and_unknown_keys():
    # the schema fills a run's vocab: block and rejects unknown keys before any job
    assert run_with_defaults({"column": "easy_ja"})["vocab"]["size"] == 8000
    assert (
        run_with_defaults({"column": "easy_ja", "vocab": {"size": 500}})["vocab"]["min_frequency"]
        == 2
    )
    with pytest.raises(WorkflowError, match="'sise' was unexpected"):
        run_with_defaults({"column": "easy_ja", "vocab": {"sise": 500}})


def test_corpus_texts(tmp_path):
    table = tmp_path / "corpus.parquet"
    pd.DataFrame(
        {"easy_ja": ["一つ目。", "", None, " 二つ目。 "], "en": ["a", "b", "c", "d"]}
    ).to_parquet(table)
    assert corpus_texts(table, "easy_ja") == ["一つ目。", "二つ目。"]
    with pytest.raises(UserError, match="no column 'ja'"):
        corpus_texts(table, "ja")


def test_vocab_html(vocab_dir, tmp_path):
    stats = json.loads((vocab_dir / "stats.json").read_text(encoding="utf-8"))
    out = tmp_path / "stats.html"
    write_vocab_html(stats, out, title="test")
    html = out.read_text(encoding="utf-8")
    assert "vocab_size" in html and "roundtrip_share" in html
