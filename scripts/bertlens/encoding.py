"""Token ids of a corpus with the word each token belongs to (for whole-word masking), and
packing of several sentences into one row.

``BertJapaneseTokenizer`` (MeCab + WordPiece) splits a text into MeCab words first and runs WordPiece
on each word separately, so the first piece of a word never starts with ``##`` and every later piece
does. The rule "a new word starts at each piece without ``##``" therefore gives exactly the MeCab
words, with one exception: a MeCab word whose surface itself begins with ``##`` (MeCab makes ``##`` a
word of its own in ``落ち##る``) can match a ``##...`` vocabulary entry and would be glued to the
previous word. :func:`encode_texts` avoids the heuristic altogether for BertJapaneseTokenizer: it runs
``tokenizer.word_tokenizer`` and then ``tokenizer.subword_tokenizer`` on each word (what the
tokenizer does internally), which yields the same pieces with exact word boundaries (tested against
``tokenizer.tokenize``). Texts that contain a special-token string such as ``[MASK]`` go through
``tokenizer.tokenize`` and the ``##`` rule; fast tokenizers use their own ``word_ids()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .stage import UserError


@dataclass
class EncodedCorpus:
    """Token ids with special tokens, and the word index of every token (-1 for special tokens)."""

    input_ids: list[torch.Tensor]
    word_ids: list[torch.Tensor]
    truncated: int = 0

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter(
            (len(x) for x in self.input_ids), dtype=np.int64, count=len(self.input_ids)
        )

    def subset(self, indices: Sequence[int] | np.ndarray) -> EncodedCorpus:
        return EncodedCorpus(
            [self.input_ids[i] for i in indices],
            [self.word_ids[i] for i in indices],
            self.truncated,
        )


def _is_word_split_japanese(tokenizer) -> bool:
    return (
        type(tokenizer).__name__ == "BertJapaneseTokenizer"
        and getattr(tokenizer, "do_word_tokenize", False)
        and getattr(tokenizer, "do_subword_tokenize", False)
    )


def words_from_continuation(pieces: Sequence[str], prefix: str = "##") -> list[int]:
    """Word index per piece by the WordPiece rule: a piece starting with ``prefix`` continues the
    previous word, any other piece starts a new one."""
    out: list[int] = []
    word = -1
    for piece in pieces:
        if not (piece.startswith(prefix) and word >= 0):
            word += 1
        out.append(word)
    return out


def japanese_word_pieces(tokenizer, text: str) -> tuple[list[str], list[int]]:
    """Pieces of ``text`` and their MeCab word index, by tokenizing each MeCab word separately
    (exactly what ``BertJapaneseTokenizer._tokenize`` does, keeping the word boundaries)."""
    pieces: list[str] = []
    words: list[int] = []
    for i, word in enumerate(tokenizer.word_tokenizer.tokenize(text)):
        sub = tokenizer.subword_tokenizer.tokenize(word)
        pieces.extend(sub)
        words.extend([i] * len(sub))
    return pieces, words


def encode_texts(tokenizer, texts: Sequence[str], max_length: int) -> EncodedCorpus:
    """Tokenize ``texts`` as ``[CLS] pieces [SEP]`` (at most ``max_length`` tokens) with word ids.

    See the module docstring for how word groups are found for each kind of tokenizer.
    """
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    if cls_id is None or sep_id is None:
        raise UserError(
            f"tokenizer {type(tokenizer).__name__} has no CLS/SEP tokens; MLM training here needs a "
            "BERT-style tokenizer"
        )
    room = max_length - 2
    cores: list[tuple[list[int], list[int]]] = []
    if _is_word_split_japanese(tokenizer):
        specials = [t for t in tokenizer.all_special_tokens if t]
        for text in texts:
            if any(tok in text for tok in specials):
                pieces = tokenizer.tokenize(text)
                words = words_from_continuation(pieces)
            else:
                pieces, words = japanese_word_pieces(tokenizer, text)
            cores.append((tokenizer.convert_tokens_to_ids(pieces), words))
    elif getattr(tokenizer, "is_fast", False):
        batch = tokenizer(list(texts), add_special_tokens=False)
        for i, ids in enumerate(batch["input_ids"]):
            words = [-1 if w is None else w for w in batch.word_ids(i)]
            cores.append((list(ids), words))
    else:
        for text in texts:
            pieces = tokenizer.tokenize(text)
            cores.append((tokenizer.convert_tokens_to_ids(pieces), words_from_continuation(pieces)))
    input_ids, word_ids, truncated = [], [], 0
    for ids, words in cores:
        if len(ids) > room:
            truncated += 1
            ids, words = ids[:room], words[:room]
        input_ids.append(torch.tensor([cls_id, *ids, sep_id], dtype=torch.long))
        word_ids.append(torch.tensor([-1, *words, -1], dtype=torch.long))
    return EncodedCorpus(input_ids, word_ids, truncated)


def pack_sentences(corpus: EncodedCorpus, max_length: int, seed: int) -> EncodedCorpus:
    """Several sentences per row, up to ``max_length`` tokens (RoBERTa's FULL-SENTENCES,
    run_mlm's ``group_texts`` without cutting a sentence): ``[CLS] s1 [SEP] s2 [SEP] ...`` in a
    seeded random order; word ids stay distinct within a row (whole-word masking still works)."""
    order = np.random.default_rng(seed).permutation(len(corpus.input_ids))
    rows: list[tuple[list[int], list[int]]] = []
    ids: list[int] = []
    words: list[int] = []
    for i in order:
        core = corpus.input_ids[i].tolist()
        if ids and len(ids) + len(core) - 1 > max_length:
            rows.append((ids, words))
            ids, words = [], []
        if not ids:
            ids, words = core[:1], [-1]
        offset = max(words) + 1
        ids.extend(core[1:])
        words.extend(w + offset if w >= 0 else -1 for w in corpus.word_ids[i][1:].tolist())
    if ids:
        rows.append((ids, words))
    return EncodedCorpus(
        [torch.tensor(r, dtype=torch.long) for r, _ in rows],
        [torch.tensor(w, dtype=torch.long) for _, w in rows],
        corpus.truncated,
    )
