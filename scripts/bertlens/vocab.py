"""A Japanese WordPiece vocabulary trained the way the cl-tohoku BERTs were built.

Text is NFKC-normalised and split into words by MeCab (fugashi + a dictionary, ``-Owakati``); the
``tokenizers`` library's WordPiece trainer then learns sub-word pieces *inside* those words (a
``WhitespaceSplit`` pre-tokenizer on the space-joined MeCab words, so no piece ever crosses a word
boundary). The result loads with :class:`transformers.BertJapaneseTokenizer` using
``word_tokenizer_type="mecab"`` and ``subword_tokenizer_type="wordpiece"``, which applies exactly the
same two steps at tokenization time.

Token ids are made reproducible: the special tokens come first, in the configured order, and every
other piece follows by descending frequency on the training text (ties by the piece itself). The
trainer's own id order depends on hash-map iteration and changes between runs.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .io import write_json
from .stage import UserError

log = logging.getLogger(__name__)

#: The tokens every BERT tokenizer needs, by role.
REQUIRED_SPECIAL = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
}
#: Files of a saved tokenizer folder (removed when a new save does not write them).
_TOKENIZER_FILES = (
    "added_tokens.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
)
#: How many [UNK]-producing words the stats list.
TOP_UNK = 20


def corpus_texts(table: str | os.PathLike, column: str) -> list[str]:
    """The texts of ``column`` a training run reads (``corpus.read_corpus``), stripped, without
    the blank ones, in table order."""
    from .corpus import read_corpus

    values = read_corpus(table, column, "the training run")[column].str.strip()
    texts = [t for t in values.tolist() if t]
    if len(texts) < 2:
        raise UserError(
            f"corpus column '{column}' has {len(texts)} non-empty texts; training needs at least 2 "
            "(check the corpus sources or the run's `column:`)"
        )
    return texts


def mecab_segment(texts: Iterable[str], mecab_dic: str) -> list[str]:
    """NFKC-normalise each text and return its MeCab words joined by single spaces."""
    from .models import mecab_tagger

    tagger = mecab_tagger(mecab_dic)
    out = []
    for text in texts:
        norm = unicodedata.normalize("NFKC", text)
        out.append(" ".join(tagger.parse(norm).split()))
    return out


def _check_special(special_tokens: Sequence[str]) -> list[str]:
    special = list(dict.fromkeys(special_tokens))
    missing = [tok for tok in REQUIRED_SPECIAL.values() if tok not in special]
    if missing:
        raise UserError(
            f"vocab special_tokens lacks {', '.join(missing)}; a BERT tokenizer needs "
            f"{', '.join(REQUIRED_SPECIAL.values())} (fix `vocab: special_tokens:` in the config)"
        )
    return special


def train_wordpiece_vocab(
    texts: Sequence[str],
    out_dir: str | os.PathLike,
    size: int,
    min_frequency: int,
    special_tokens: Sequence[str],
    mecab_dic: str,
    stats_json: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Train a MeCab + WordPiece vocabulary on ``texts`` and save a BertJapaneseTokenizer.

    Writes ``vocab.txt``, ``tokenizer_config.json`` (tokenizer_class BertJapaneseTokenizer, MeCab
    word tokenizer with ``mecab_dic``, WordPiece sub-words, ``do_lower_case: false``) and whatever
    else ``save_pretrained`` writes into ``out_dir``, each file renamed into place only when
    complete; ``vocab.txt`` is moved last. Returns the statistics (also written to ``stats_json``
    when given): sizes, settings and :func:`roundtrip_stats` on the training texts.
    """
    special = _check_special(special_tokens)
    if not texts:
        raise UserError("no texts to train a vocabulary on; check the corpus column")
    segmented = mecab_segment(texts, mecab_dic)
    log.info(
        "training WordPiece vocabulary: %d texts, size %d, min_frequency %d, MeCab dic %s",
        len(texts),
        size,
        min_frequency,
        mecab_dic,
    )
    tokens, counts = _learn_pieces(segmented, size, min_frequency, special)
    out_dir = Path(out_dir)
    files = _save_tokenizer(tokens, special, mecab_dic, out_dir)
    stats: dict[str, Any] = {
        "texts": len(texts),
        "vocab_size": len(tokens),
        "requested_size": size,
        "min_frequency": min_frequency,
        "mecab_dic": mecab_dic,
        "special_tokens": special,
        "files": files,
        "mecab_words": sum(len(s.split()) for s in segmented),
        "distinct_mecab_words": len({w for s in segmented for w in s.split()}),
        "unused_pieces": sum(1 for t in tokens[len(special) :] if counts[t] == 0),
        **roundtrip_stats(load_trained_tokenizer(out_dir), texts),
    }
    _log_size(len(tokens), size, min_frequency)
    log.info(
        "vocabulary: %d pieces; [UNK] rate %.4f%% of tokens; round-trip %.2f%% of sentences",
        len(tokens),
        100 * stats["unk_token_rate"],
        100 * stats["roundtrip_share"],
    )
    if stats_json is not None:
        write_json(stats_json, stats)
    return stats


def _learn_pieces(
    segmented: list[str], size: int, min_frequency: int, special: list[str]
) -> tuple[list[str], Counter[str]]:
    """The WordPiece trainer's pieces over the MeCab words, in reproducible id order: specials
    first, then by frequency of use on the training text (ties by the piece); and those counts."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    wp = Tokenizer(
        models.WordPiece(unk_token=REQUIRED_SPECIAL["unk_token"], max_input_chars_per_word=100)
    )
    wp.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordPieceTrainer(
        vocab_size=size,
        min_frequency=min_frequency,
        special_tokens=special,
        continuing_subword_prefix="##",
        show_progress=False,
    )
    wp.train_from_iterator(segmented, trainer=trainer, length=len(segmented))
    learned = wp.get_vocab()
    counts: Counter[str] = Counter()
    for enc in wp.encode_batch(segmented, add_special_tokens=False):
        counts.update(enc.tokens)
    rest = sorted((t for t in learned if t not in special), key=lambda t: (-counts[t], t))
    return special + rest, counts


def _save_tokenizer(
    tokens: list[str], special: list[str], mecab_dic: str, out_dir: Path
) -> list[str]:
    """Save a BertJapaneseTokenizer of ``tokens`` into ``out_dir``: written into a temporary
    folder, then each file renamed into place, ``vocab.txt`` last (its presence marks a complete
    tokenizer folder); files an earlier tokenizer left there are removed. Returns the file names."""
    from transformers import BertJapaneseTokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".vocab.", dir=out_dir))
    try:
        (tmp / "vocab.txt").write_text("".join(f"{t}\n" for t in tokens), encoding="utf-8")
        extra = [t for t in special if t not in REQUIRED_SPECIAL.values()]
        tokenizer = BertJapaneseTokenizer(
            vocab_file=str(tmp / "vocab.txt"),
            do_lower_case=False,
            word_tokenizer_type="mecab",
            subword_tokenizer_type="wordpiece",
            mecab_kwargs={"mecab_dic": mecab_dic},
            **REQUIRED_SPECIAL,
            **({"additional_special_tokens": extra} if extra else {}),
        )
        saved = Path(tmp / "saved")
        tokenizer.save_pretrained(saved)
        files = sorted(p.name for p in saved.iterdir() if p.is_file())
        # files an earlier tokenizer left here would be read with the new vocab.txt
        for name in _TOKENIZER_FILES:
            if name not in files and (out_dir / name).is_file():
                (out_dir / name).unlink()
        # vocab.txt last: its presence marks a complete tokenizer folder
        for name in sorted(files, key=lambda n: n == "vocab.txt"):
            os.replace(saved / name, out_dir / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return files


def _log_size(n_pieces: int, size: int, min_frequency: int) -> None:
    """Say why the vocabulary is larger or smaller than asked for."""
    if n_pieces > size:
        log.info(
            "vocabulary has %d pieces (> requested %d): the WordPiece trainer keeps every character "
            "of the corpus (and its ## form) even when that alone exceeds the size",
            n_pieces,
            size,
        )
    elif n_pieces < size:
        log.info(
            "vocabulary has %d pieces (< requested %d): the corpus has no more pieces at "
            "min_frequency %d",
            n_pieces,
            size,
            min_frequency,
        )


def load_trained_tokenizer(tokenizer_dir: str | os.PathLike, mecab_dic: str | None = None):
    """Load a tokenizer folder written by :func:`train_wordpiece_vocab`."""
    from transformers import BertJapaneseTokenizer

    from .models import check_mecab

    dic = mecab_dic or tokenizer_mecab_dic(tokenizer_dir)
    check_mecab(dic)
    if not (Path(tokenizer_dir) / "vocab.txt").is_file():
        raise UserError(
            f"'{tokenizer_dir}' has no vocab.txt; rerun the train_vocab rule (delete the folder first)"
        )
    return BertJapaneseTokenizer.from_pretrained(
        str(tokenizer_dir),
        word_tokenizer_type="mecab",
        subword_tokenizer_type="wordpiece",
        mecab_kwargs={"mecab_dic": dic},
    )


def tokenizer_mecab_dic(tokenizer_dir: str | os.PathLike, default: str = "ipadic") -> str:
    """The MeCab dictionary a saved BertJapaneseTokenizer folder names (``default`` if none)."""
    cfg = Path(tokenizer_dir) / "tokenizer_config.json"
    if not cfg.is_file():
        return default
    from .io import read_json

    kwargs = read_json(cfg).get("mecab_kwargs") or {}
    return kwargs.get("mecab_dic") or default


def roundtrip_stats(tokenizer, texts: Sequence[str]) -> dict[str, Any]:
    """How well ``tokenizer`` covers ``texts``.

    * ``unk_token_rate``: share of all tokens that are the unknown token;
    * ``unk_sentence_rate``: share of texts with at least one unknown token;
    * ``roundtrip_share``: share of texts whose decoded pieces (joined, ``##`` removed, spaces
      removed) equal the NFKC-normalised text with all whitespace removed;
    * ``top_unk_words``: the MeCab words (or texts) that most often became the unknown token.
    """
    unk = tokenizer.unk_token
    n_tokens = n_unk = unk_sentences = same = 0
    unk_words: Counter[str] = Counter()
    word_tok = getattr(tokenizer, "word_tokenizer", None)
    for text in texts:
        pieces = tokenizer.tokenize(text)
        n_tokens += len(pieces)
        k = sum(1 for p in pieces if p == unk)
        n_unk += k
        if k:
            unk_sentences += 1
            if word_tok is not None and hasattr(tokenizer, "subword_tokenizer"):
                for word in word_tok.tokenize(text):
                    if unk in tokenizer.subword_tokenizer.tokenize(word):
                        unk_words[word] += 1
            else:
                unk_words[text] += 1
        decoded = "".join(tokenizer.convert_tokens_to_string(pieces).split())
        target = "".join(unicodedata.normalize("NFKC", text).split())
        same += decoded == target
    n = max(len(texts), 1)
    return {
        "tokens": n_tokens,
        "tokens_per_sentence": n_tokens / n,
        "unk_tokens": n_unk,
        "unk_token_rate": n_unk / max(n_tokens, 1),
        "unk_sentences": unk_sentences,
        "unk_sentence_rate": unk_sentences / n,
        "roundtrip_sentences": same,
        "roundtrip_share": same / n,
        "top_unk_words": [{"word": w, "count": c} for w, c in unk_words.most_common(TOP_UNK)],
    }


def write_vocab_html(stats: dict[str, Any], out_html: str | os.PathLike, title: str = "") -> None:
    """The vocabulary statistics as a table, with the words that became [UNK] (if any)."""
    import pandas as pd

    from .io import write_html_table

    rows = []
    for key, value in stats.items():
        if key == "top_unk_words":
            continue
        if isinstance(value, float):
            value = f"{value:.6g}"
        elif isinstance(value, (list, tuple)):
            value = ", ".join(map(str, value))
        rows.append({"statistic": key, "value": str(value)})
    for item in stats.get("top_unk_words", []):
        rows.append({"statistic": f"[UNK] word: {item['word']}", "value": str(item["count"])})
    note = (
        f"{stats.get('vocab_size')} WordPiece pieces trained on {stats.get('texts')} MeCab-segmented "
        f"sentences; {100 * stats.get('unk_token_rate', 0):.3f}% of tokens are [UNK]; "
        f"{100 * stats.get('roundtrip_share', 0):.2f}% of sentences decode back to their text."
    )
    write_html_table(out_html, pd.DataFrame(rows), title=title or "WordPiece vocabulary", note=note)
