"""The logit lens: a masked-LM head applied to every layer's hidden states.

Held-out sentences get a share of their (non-special) positions replaced by [MASK]; one forward
pass gives every layer's hidden states, and the model's own MLM head (for BERT, ``cls``: dense,
GELU, LayerNorm, decoder) turns each layer into vocabulary logits at the masked positions. Per
layer: top-1 accuracy against the original token, and the rank, in that layer's logits, of the
token the final layer predicts (1 = the layer already predicts it). At the last layer the lens is
the model's own MLM output.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .sampling import seeded_order

log = logging.getLogger(__name__)

COLUMNS = [
    "layer",
    "top1_accuracy",
    "agrees_with_final",
    "median_rank_of_final",
    "mean_rank_of_final",
    "masked_positions",
    "note",
]


def mlm_head(model):
    """The module that maps hidden states to vocabulary logits (BERT's ``cls``)."""
    head = getattr(model, "cls", None)
    if head is None:
        raise ValueError(f"{type(model).__name__} has no BERT MLM head (.cls)")
    return head


def lens_logits(model, input_ids, attention_mask, positions) -> list:
    """Logits (n_positions, vocab) of every layer (0 = embedding output) at ``positions`` (a
    boolean mask like ``input_ids``), plus the model's own MLM logits there, last."""
    import torch

    head = mlm_head(model)
    with torch.inference_mode():
        out = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=torch.zeros_like(input_ids),
            output_hidden_states=True,
        )
        per_layer = [head(h[positions]).float() for h in out.hidden_states]
        return [*per_layer, out.logits[positions].float()]


def mask_positions(
    ids: Sequence[np.ndarray], special: set[int], probability: float, seed: int
) -> list[np.ndarray]:
    """Boolean masks: ``probability`` of each sentence's non-special positions (at least one)."""
    rng = np.random.default_rng(seed)
    masks = []
    for seq in ids:
        candidates = np.flatnonzero([int(t) not in special for t in seq])
        chosen = np.zeros(len(seq), dtype=bool)
        if len(candidates):
            k = max(1, round(len(candidates) * probability))
            chosen[rng.choice(candidates, k, replace=False)] = True
        masks.append(chosen)
    return masks


def rank_of(logits, target) -> np.ndarray:
    """1-based rank of ``target[i]`` in row i of ``logits``."""
    chosen = logits.gather(1, target.unsqueeze(1))
    return ((logits > chosen).sum(1) + 1).cpu().numpy()


def logit_lens(
    model,
    ids: Sequence[np.ndarray],
    mask_id: int,
    pad_id: int,
    special: set[int],
    probability: float,
    seed: int,
    batch_size: int,
    device: str = "cpu",
) -> pd.DataFrame:
    """Per-layer top-1 accuracy and rank of the final prediction at masked positions."""

    from .embeddings import length_sorted_batches, pad_batch

    masks = mask_positions(ids, special, probability, seed)
    model.to(device).eval()
    n_layers = model.config.num_hidden_layers + 1
    correct = [[] for _ in range(n_layers)]
    agree = [[] for _ in range(n_layers)]
    ranks = [[] for _ in range(n_layers)]
    for batch in length_sorted_batches([len(s) for s in ids], batch_size):
        input_ids, attn = pad_batch([ids[i] for i in batch], pad_id)
        where, _ = pad_batch([masks[i].astype(np.int64) for i in batch], 0)
        where = where.bool()
        target = input_ids[where]
        masked = input_ids.masked_fill(where, mask_id)
        logits = lens_logits(model, masked.to(device), attn.to(device), where.to(device))
        final = logits[-1].argmax(-1)
        for layer in range(n_layers):
            top = logits[layer].argmax(-1)
            correct[layer].append((top.cpu() == target).numpy())
            agree[layer].append((top == final).cpu().numpy())
            ranks[layer].append(rank_of(logits[layer], final))
    rows = []
    for layer in range(n_layers):
        r = np.concatenate(ranks[layer])
        rows.append(
            {
                "layer": layer,
                "top1_accuracy": float(np.concatenate(correct[layer]).mean()),
                "agrees_with_final": float(np.concatenate(agree[layer]).mean()),
                "median_rank_of_final": float(np.median(r)),
                "mean_rank_of_final": float(r.mean()),
                "masked_positions": len(r),
                "note": "",
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def note_frame(note: str) -> pd.DataFrame:
    row = {c: float("nan") for c in COLUMNS}
    row.update(layer=-1, masked_positions=0, note=note)
    return pd.DataFrame([row], columns=COLUMNS)


def held_out_rows(texts: Sequence[str], seed: int, eval_fraction: float) -> np.ndarray:
    """Corpus rows the training run held out: the same seeded split of its non-empty texts
    that MLM training draws (``bertlens.mlm``), mapped back to corpus rows."""
    rows = np.asarray([i for i, t in enumerate(texts) if isinstance(t, str) and t.strip()])
    perm = seeded_order(len(rows), seed)
    n_eval = max(1, round(len(rows) * eval_fraction))
    return np.sort(rows[perm[:n_eval]])


def lens_rows(tokens: pd.DataFrame, held_out: np.ndarray | None, wanted: int, seed: int):
    """The sentences the lens reads: the training run's held-out rows for a model trained here,
    else a seeded sample of the corpus; never truncated ones; at most ``wanted``."""
    usable = tokens.loc[~tokens["truncated"], "row"].to_numpy()
    if held_out is not None:
        usable = np.intersect1d(usable, held_out)
    return np.sort(usable[seeded_order(len(usable), seed)][:wanted])
