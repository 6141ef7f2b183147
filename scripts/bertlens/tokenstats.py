"""Tokenization stage: token ids for the corpus and what the tokenizer does with it; MeCab word
statistics for Japanese columns."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from .io import write_json, write_table
from .stage import UserError

log = logging.getLogger(__name__)

# Characteristic cases a WordPiece tokenizer splits in telling ways (ours, per language).
SUBWORD_CASES = {
    "en": [
        ("long number", "31415926535"),
        ("year and price", "In 2024 it cost $1,299.99"),
        ("derived word", "unbelievably"),
        ("derived word", "internationalization"),
        ("prefix", "preprocessing"),
        ("prefix", "antidisestablishment"),
        ("hyphenated", "state-of-the-art"),
        ("hyphenated", "well-known"),
        ("letters and digits", "iPhone15 Wi-Fi A4 5G"),
        ("letters and digits", "COVID-19 B2B mp3"),
        ("gibberish", "qzxvbnmplk"),
        ("gibberish", "asdfghjkl"),
        ("rare word", "photosynthesis"),
        ("name", "Shinkansen Hokkaido"),
    ],
    "ja": [
        ("long number", "31415926535"),
        ("year and price", "2024年に1,500円で買った"),
        ("compound noun", "自然言語処理研究所"),
        ("compound noun", "東京都立大学大学院"),
        ("derived word", "国際化"),
        ("derived word", "非公式"),
        ("prefix", "再利用"),
        ("prefix", "未経験"),
        ("katakana loanword", "スマートフォンアプリケーション"),
        ("letters and digits", "iPhone15とWi-Fiと5G"),
        ("old kanji", "鬱蒼とした森"),
        ("gibberish", "ぬぽぺらむぴょ"),
        ("gibberish (kanji)", "鬮鬯鬲鬵"),
        ("emoji and symbols", "よろしく😊★"),
    ],
}


def language_of(column: str) -> str:
    return "en" if column == "en" else "ja"


def tokenize_texts(
    tokenizer, texts: list[str], max_length: int, batch_size: int = 1024
) -> pd.DataFrame:
    """Token ids (with [CLS]/[SEP], truncated to ``max_length``) and the untruncated length of
    every text. The ids are what the embedding stage feeds the model."""
    ids_out: list[np.ndarray] = []
    lengths: list[int] = []
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        enc = tokenizer(
            chunk,
            add_special_tokens=True,
            truncation=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        for ids in enc["input_ids"]:
            lengths.append(len(ids))
            if len(ids) > max_length:
                ids = ids[: max_length - 1] + [tokenizer.sep_token_id]
            ids_out.append(np.asarray(ids, dtype=np.int32))
    lengths_arr = np.asarray(lengths, dtype=np.int32)
    return pd.DataFrame(
        {
            "row": np.arange(len(texts), dtype=np.int64),
            "input_ids": ids_out,
            "length": lengths_arr,
            "truncated": lengths_arr > max_length,
        }
    )


def token_counts(tokens: pd.DataFrame, vocab_size: int) -> np.ndarray:
    """How often each vocabulary id occurs in the (truncated) corpus token ids."""
    if len(tokens) == 0:
        return np.zeros(vocab_size, dtype=np.int64)
    flat = np.concatenate(list(tokens["input_ids"]))
    return np.bincount(flat, minlength=vocab_size).astype(np.int64)


def token_stats(
    tokenizer, tokens: pd.DataFrame, max_length: int, top_n: int = 50
) -> tuple[dict[str, Any], pd.DataFrame]:
    vocab_size = len(tokenizer)
    counts = token_counts(tokens, vocab_size)
    special = set(tokenizer.all_special_ids)
    content = counts.copy()
    content[list(special)] = 0
    n_tokens = int(content.sum())
    unk = tokenizer.unk_token_id
    unk_count = int(counts[unk]) if unk is not None else 0
    rows_with_unk = (
        int(sum(int((ids == unk).any()) for ids in tokens["input_ids"])) if unk is not None else 0
    )
    lengths = tokens["length"].to_numpy()
    stats = {
        "sentences": int(len(tokens)),
        "vocab_size": vocab_size,
        "max_length": max_length,
        "tokens_without_special": n_tokens,
        "length_mean": round(float(lengths.mean()), 2),
        "length_median": float(np.median(lengths)),
        "length_p95": float(np.percentile(lengths, 95)),
        "length_max": int(lengths.max()),
        "truncated": int(tokens["truncated"].sum()),
        "unk_tokens": unk_count,
        # [UNK] is a special token: count it back in (the share of all text tokens)
        "unk_rate": round(unk_count / max(n_tokens + unk_count, 1), 6),
        "sentences_with_unk": rows_with_unk,
        "vocab_used": int((content > 0).sum()),
        "vocab_coverage": round(float((content > 0).sum()) / vocab_size, 6),
    }
    order = np.argsort(-content, kind="stable")[:top_n]
    order = order[content[order] > 0]
    top = pd.DataFrame(
        {
            "rank": np.arange(1, len(order) + 1),
            "token_id": order,
            "token": tokenizer.convert_ids_to_tokens(order.tolist()),
            "count": content[order],
            "share": np.round(content[order] / max(n_tokens, 1), 5),
        }
    )
    return stats, top


def subword_table(tokenizer, language: str) -> pd.DataFrame:
    rows = []
    for case, text in SUBWORD_CASES[language]:
        pieces = tokenizer.tokenize(text)
        rows.append(
            {
                "case": case,
                "text": text,
                "pieces": " | ".join(pieces),
                "n_pieces": len(pieces),
                "unk": sum(p == tokenizer.unk_token for p in pieces),
            }
        )
    return pd.DataFrame(rows)


def plot_lengths(lengths: np.ndarray, max_length: int, title: str, out_png: str) -> None:
    from .plotting import new_figure, save_figure

    fig, ax = new_figure(figsize=(6.4, 3.6))
    bins = np.arange(0, max(int(lengths.max()), max_length) + 2) - 0.5
    ax.hist(lengths, bins=bins, color="#4477aa")
    ax.axvline(max_length + 0.5, color="#cc3311", ls="--", label=f"max_length = {max_length}")
    ax.set_xlabel("tokens per sentence (with [CLS] and [SEP])")
    ax.set_ylabel("sentences")
    ax.set_title(title)
    ax.legend()
    save_figure(fig, out_png)


def check_unk_rate(stats: dict[str, Any], limit: float, model_name: str, column: str) -> None:
    """Stop before any analysis when the tokenizer turns too much of the corpus into [UNK]."""
    rate = stats["unk_rate"]
    if rate > limit:
        raise UserError(
            f"model '{model_name}': its tokenizer turns {100 * rate:.1f}% of the tokens of column "
            f"'{column}' into [UNK] (limit tokens.max_unk_rate: {limit}); the tokenizer does not "
            "fit this text: save the model's own tokenizer into its folder, or pick a model for "
            "this language or another column:"
        )


def run_tokenization(
    tokenizer,
    texts: list[str],
    column: str,
    max_length: int,
    out: dict[str, str],
    model_name: str,
    max_unk_rate: float = 1.0,
) -> dict[str, Any]:
    """Write token ids, stats JSON, length histogram, top-token and subword tables; stop first
    when more than ``max_unk_rate`` of the tokens are [UNK]."""
    from .io import write_html_table

    tokens = tokenize_texts(tokenizer, texts, max_length)
    stats, top = token_stats(tokenizer, tokens, max_length)
    check_unk_rate(stats, max_unk_rate, model_name, column)
    subwords = subword_table(tokenizer, language_of(column))
    write_table(out["tokens"], tokens)
    write_json(out["stats"], {"model": model_name, "column": column, **stats})
    plot_lengths(
        tokens["length"].to_numpy(), max_length, f"{model_name}: sentence lengths", out["hist"]
    )
    write_table(out["top_csv"], top)
    write_table(out["subwords_csv"], subwords)
    summary = pd.DataFrame(
        [{"statistic": k.replace("_", " "), "value": v} for k, v in stats.items()]
    )
    write_html_table(
        out["stats_html"],
        summary,
        f"{model_name}: token statistics ({column})",
        note="Lengths count [CLS] and [SEP]; rates exclude special tokens.",
    )
    write_html_table(out["top_html"], top, f"{model_name}: most frequent tokens ({column})")
    write_html_table(
        out["subwords_html"],
        subwords,
        f"{model_name}: how words are split",
        note="Pieces starting with ## continue the previous piece.",
    )
    return stats


def mecab_stats(
    texts: list[str], dic: str, top_n: int
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """Words per sentence, vocabulary size, most frequent words and part-of-speech shares."""
    from .models import mecab_tagger

    tagger = mecab_tagger(dic, wakati=False)
    words: Counter[str] = Counter()
    pos: Counter[str] = Counter()
    per_sentence = []
    for text in texts:
        nodes = list(tagger(text))
        per_sentence.append(len(nodes))
        for node in nodes:
            words[node.surface] += 1
            pos[node.feature[0]] += 1
    n = sum(words.values())
    lengths = np.asarray(per_sentence)
    stats = {
        "dictionary": dic,
        "sentences": len(texts),
        "words": n,
        "distinct_words": len(words),
        "words_per_sentence_mean": round(float(lengths.mean()), 2) if len(lengths) else 0.0,
        "words_per_sentence_max": int(lengths.max()) if len(lengths) else 0,
        "hapax_share": round(sum(1 for c in words.values() if c == 1) / max(len(words), 1), 4),
    }
    top = pd.DataFrame(
        [
            {"rank": i + 1, "word": w, "count": c, "share": round(c / n, 5)}
            for i, (w, c) in enumerate(words.most_common(top_n))
        ]
    )
    pos_df = pd.DataFrame(
        [{"part of speech": p, "count": c, "share": round(c / n, 4)} for p, c in pos.most_common()]
    )
    return stats, top, pos_df
