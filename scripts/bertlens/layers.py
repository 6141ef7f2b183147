"""Token-level contextual vectors of a sample of corpus sentences, every layer.

Each sampled sentence is split into words (MeCab/ipadic words with their part of speech for
Japanese, whitespace words for English), each word into the model's pieces; the pieces must equal
the tokens stage's ids of that sentence (sentences where they do not, or that were truncated, are
skipped and counted). The hidden states of every layer are streamed, batch by batch, into one
``.npy`` of shape (layers + 1, tokens, hidden) with positioned writes (as the embedding stage
does), and a token table says what each row is: sentence, corpus row, position, piece, word, POS.
[CLS] and [SEP] are not stored.
"""

from __future__ import annotations

import contextlib
import logging
import string
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .io import atomic_path, write_table
from .sampling import seeded_order

log = logging.getLogger(__name__)

TOKEN_COLUMNS = [
    "sentence",
    "row",
    "position",
    "token_id",
    "piece",
    "word_index",
    "word",
    "word_type",
    "pos",
    "word_initial",
    "frequency",
]


@dataclass
class Word:
    surface: str
    pos: str
    ids: list[int]


def word_type(word: str, language: str) -> str:
    """The type a word occurrence counts as: English words lower-cased without surrounding
    punctuation ("Tokyo." and "tokyo" are one type); Japanese MeCab words as they are."""
    if language == "en":
        stripped = word.strip(string.punctuation + "“”‘’")
        return (stripped or word).lower()
    return word


def english_words(tokenizer, text: str) -> list[Word]:
    """Whitespace words with their WordPiece ids (BERT splits on whitespace before anything
    else, so the pieces of the words joined are the pieces of the sentence)."""
    words = text.split()
    if not words:
        return []
    enc = tokenizer(words, add_special_tokens=False)["input_ids"]
    return [Word(w, "", list(ids)) for w, ids in zip(words, enc, strict=True)]


def japanese_words(tokenizer, tagger, text: str) -> list[Word]:
    """MeCab words (ipadic part of speech, first field) with the WordPiece ids the model's
    tokenizer gives each word (BertJapaneseTokenizer: MeCab first, then WordPiece per word)."""
    sub = getattr(tokenizer, "subword_tokenizer", None)
    words = []
    for node in tagger(text):
        feature = node.feature
        pos = feature[0] if isinstance(feature, tuple | list) else str(feature).split(",")[0]
        if sub is not None:
            ids = tokenizer.convert_tokens_to_ids(sub.tokenize(node.surface))
        else:  # another tokenizer: its pieces of the word (sentences that differ are skipped)
            ids = tokenizer(node.surface, add_special_tokens=False)["input_ids"]
        words.append(Word(node.surface, pos, list(ids)))
    return words


def align_sample(
    tokenizer,
    texts: Sequence[str],
    tokens: pd.DataFrame,
    language: str,
    wanted: int | None,
    seed: int,
    tagger=None,
    rows: Sequence[int] | None = None,
) -> tuple[list[tuple[int, list[Word]]], dict[str, int]]:
    """The first ``wanted`` sentences (seeded order, or ``rows`` in order) whose word-by-word
    pieces equal the tokens stage's ids; returns [(corpus row, words)] and counts of skips."""
    ids_by_row = dict(zip(tokens["row"], tokens["input_ids"], strict=True))
    truncated = dict(zip(tokens["row"], tokens["truncated"], strict=True))
    order = seeded_order(len(texts), seed) if rows is None else np.asarray(rows)
    picked: list[tuple[int, list[Word]]] = []
    skipped = {"truncated": 0, "empty": 0, "mismatch": 0}
    for row in order:
        if wanted is not None and len(picked) >= wanted:
            break
        row = int(row)
        if truncated.get(row, True):
            skipped["truncated"] += 1
            continue
        if language == "en":
            words = english_words(tokenizer, texts[row])
        else:
            words = japanese_words(tokenizer, tagger, texts[row])
        flat = [i for w in words for i in w.ids]
        words = [w for w in words if w.ids]
        if not words:
            skipped["empty"] += 1
            continue
        if flat != [int(i) for i in ids_by_row[row][1:-1]]:
            skipped["mismatch"] += 1
            continue
        picked.append((row, words))
    return picked, skipped


def token_table(
    tokenizer, picked: list[tuple[int, list[Word]]], language: str, counts: np.ndarray
) -> pd.DataFrame:
    """One row per piece of the picked sentences (position counts [CLS] as 0)."""
    rows = []
    for sent, (row, words) in enumerate(picked):
        position = 1
        for w_i, word in enumerate(words):
            pieces = tokenizer.convert_ids_to_tokens(word.ids)
            for p_i, (tid, piece) in enumerate(zip(word.ids, pieces, strict=True)):
                rows.append(
                    (
                        sent,
                        row,
                        position,
                        int(tid),
                        piece,
                        w_i,
                        word.surface,
                        word_type(word.surface, language),
                        word.pos,
                        p_i == 0,
                        int(counts[tid]) if tid < len(counts) else 0,
                    )
                )
                position += 1
    return pd.DataFrame(rows, columns=TOKEN_COLUMNS)


def hidden_states(model, input_ids, attention_mask):
    """(layers + 1, batch, seq, hidden) of one forward pass."""
    import torch

    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        token_type_ids=torch.zeros_like(input_ids),
        output_hidden_states=True,
    )
    return torch.stack(out.hidden_states)


def extract(
    model,
    picked: list[tuple[int, list[Word]]],
    cls_id: int,
    sep_id: int,
    pad_id: int,
    out_npy: str,
    batch_size: int,
    device: str = "cpu",
) -> dict[str, Any]:
    """Stream the hidden states of every piece (not [CLS]/[SEP]) of the picked sentences, every
    layer, into ``out_npy`` (layers + 1, tokens, hidden), rows in token-table order."""
    import torch

    from .embeddings import NpyRowWriter, length_sorted_batches, pad_batch

    seqs = [np.asarray([cls_id, *[i for w in words for i in w.ids], sep_id]) for _, words in picked]
    lengths = np.asarray([len(s) - 2 for s in seqs])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    n_layers, hidden = model.config.num_hidden_layers + 1, model.config.hidden_size
    model.to(device)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_path(out_npy, suffix=".npy"))
        writer = NpyRowWriter(tmp, (n_layers, int(lengths.sum()), hidden))
        stack.callback(writer.close)
        with torch.inference_mode():
            for batch in length_sorted_batches(lengths, batch_size):
                ids, mask = pad_batch([seqs[i] for i in batch], pad_id)
                states = hidden_states(model, ids.to(device), mask.to(device)).float().cpu()
                parts = [states[:, j, 1 : 1 + lengths[i]] for j, i in enumerate(batch)]
                rows = np.concatenate([np.arange(starts[i], starts[i] + lengths[i]) for i in batch])
                writer.write(torch.cat(parts, dim=1).numpy(), rows)
    return {
        "sentences": len(picked),
        "tokens": int(lengths.sum()),
        "layers": n_layers,
        "hidden_size": hidden,
        "seconds": round(time.perf_counter() - started, 2),
        "device": device,
    }


def contextual_vectors(
    model,
    tokenizer,
    texts: Sequence[str],
    tokens: pd.DataFrame,
    counts: np.ndarray,
    language: str,
    settings: dict[str, Any],
    out_npy: str,
    out_table: str,
    device: str = "cpu",
    tagger=None,
) -> dict[str, Any]:
    """The whole stage: pick and align the sample, write the token table and the vectors."""
    from .stage import UserError

    picked, skipped = align_sample(
        tokenizer, texts, tokens, language, settings["sentences"], settings["seed"], tagger
    )
    if not picked:
        raise UserError(
            f"no corpus sentence could be aligned word by word with the tokens stage's ids "
            f"(skipped: {skipped}); check the model's tokenizer and column in the config"
        )
    if skipped["mismatch"]:
        log.warning(
            "%d sentences skipped: word pieces differ from the sentence's", skipped["mismatch"]
        )
    table = token_table(tokenizer, picked, language, counts)
    facts = extract(
        model,
        picked,
        tokenizer.cls_token_id,
        tokenizer.sep_token_id,
        tokenizer.pad_token_id,
        out_npy,
        settings["batch_size"],
        device,
    )
    write_table(out_table, table)
    return {**facts, "skipped": skipped, "language": language}


def load_vectors(npy: str) -> np.ndarray:
    """The (layers + 1, tokens, hidden) array, memory-mapped."""
    return np.load(npy, mmap_mode="r")


def word_vectors(vectors: np.ndarray, table: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Word-level vectors: the mean of each word occurrence's pieces, every layer; returns
    (layers + 1, words, hidden) and a table with one row per word occurrence."""
    key = table["sentence"].to_numpy() * 100_000 + table["word_index"].to_numpy()
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    n = len(first)
    sums = np.zeros((vectors.shape[0], n, vectors.shape[2]), dtype=np.float64)
    for layer in range(vectors.shape[0]):
        np.add.at(sums[layer], inverse, np.asarray(vectors[layer], dtype=np.float64))
    size = np.bincount(inverse, minlength=n).astype(np.float64)
    words = table.iloc[first].reset_index(drop=True)
    cols = ["sentence", "row", "word_index", "word", "word_type", "pos"]
    return (sums / size[None, :, None]).astype(np.float32), words[cols]
