"""The sentences every benchmark runs on: a real corpus file when one is given, else the synthetic
SNOW-format corpus (``benchmarks.synthetic``). Importers put ``scripts/`` on ``sys.path`` first, as
run.py and memory_child.py do."""

from __future__ import annotations

COLUMNS = {"en": "#英語(原文)", "easy_ja": "#やさしい日本語", "ja": "#日本語(原文)"}


def texts_for(column: str, n: int, corpus: str | None = None) -> list[str]:
    """``n`` sentences of ``column`` (en, easy_ja or ja). A corpus file is read and cleaned like
    the corpus stage does (SNOW headers mapped, NFKC, empty and duplicate rows dropped) and
    repeated when it has fewer than ``n`` rows; ``n = 0`` takes all of it."""
    if corpus:
        from bertlens.corpus import clean, read_source, source_format

        src = {"name": "bench", "path": corpus}
        df, _ = clean([read_source(corpus, source_format(src), "bench")], [column], [column])
        texts = df[column].tolist()
        if not texts:
            raise SystemExit(f"error: {corpus} has no text in column {column!r}")
        return (texts * (n // len(texts) + 1))[:n] if n else texts
    from benchmarks.synthetic import synthetic_corpus

    return synthetic_corpus(n, seed=0)[COLUMNS[column]].tolist()
