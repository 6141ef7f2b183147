"""Vocabulary-matrix stage: the whole input token-embedding matrix of a model with each token's
string and corpus frequency. No forward pass, so nothing here depends on the embeddings settings.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .io import atomic_path, write_table
from .spread import check_finite


def vocab_matrix(model, tokenizer, counts: np.ndarray, out_npy: str, out_table: str) -> dict:
    """The input token-embedding matrix (whole vocabulary) with token strings and corpus
    frequencies."""
    weight = model.get_input_embeddings().weight.detach().float().cpu().numpy()
    check_finite(weight[None], "input-embedding", np.arange(len(weight)))
    n = weight.shape[0]
    tokens = tokenizer.convert_ids_to_tokens(list(range(min(n, len(tokenizer)))))
    tokens += [f"<unused:{i}>" for i in range(len(tokens), n)]
    special = set(tokenizer.all_special_ids)
    freq = np.zeros(n, dtype=np.int64)
    freq[: min(n, len(counts))] = counts[:n]
    with atomic_path(out_npy, suffix=".npy") as tmp:
        np.save(tmp, weight)
    table = pd.DataFrame(
        {
            "token_id": np.arange(n),
            "token": tokens,
            "frequency": freq,
            "special": [i in special for i in range(n)],
            "subword": [t.startswith("##") for t in tokens],
        }
    )
    write_table(out_table, table)
    return {
        "vocab_size": n,
        "hidden_size": weight.shape[1],
        "tokens_seen_in_corpus": int((freq > 0).sum()),
    }
