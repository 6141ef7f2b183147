"""Fill-mask probes: the top-k tokens a masked language model puts into each ``[MASK]``.

A model without an MLM head (a sentence-embedding BERT such as all-MiniLM-L6-v2 ships only the
encoder) would get a randomly initialised head from ``AutoModelForMaskedLM``; its "predictions"
would be noise. :func:`bertlens.models.has_mlm_head` looks at the weight names first, and such a model gets a table
with one explanatory note row instead.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pandas as pd

log = logging.getLogger(__name__)

COLUMNS = ["probe", "mask", "rank", "token", "score", "note"]
PROBE_MASK = "[MASK]"


def note_frame(note: str, probes: Sequence[str] = ()) -> pd.DataFrame:
    """A result table that carries only an explanation (one row)."""
    return pd.DataFrame(
        [
            {
                "probe": " | ".join(probes),
                "mask": pd.NA,
                "rank": pd.NA,
                "token": "",
                "score": float("nan"),
                "note": note,
            }
        ],
        columns=COLUMNS,
    )


def fill_mask(model, tokenizer, probes: Sequence[str], top_k: int) -> pd.DataFrame:
    """Top-``top_k`` tokens (softmax scores) for every ``[MASK]`` of every probe.

    ``[MASK]`` in a probe is replaced by the tokenizer's own mask token. Columns: probe, mask
    (1-based index of the ``[MASK]`` within the probe), rank, token, score, note (empty, or why a
    probe gave no rows).
    """
    import torch

    if tokenizer.mask_token is None:
        return note_frame(f"tokenizer {type(tokenizer).__name__} has no mask token", probes)
    device = next(model.parameters()).device
    model.eval()
    k = min(top_k, len(tokenizer))
    rows: list[dict] = []
    for probe in probes:
        text = probe.replace(PROBE_MASK, tokenizer.mask_token)
        enc = tokenizer(text, return_tensors="pt", truncation=True)
        positions = (enc["input_ids"][0] == tokenizer.mask_token_id).nonzero().flatten()
        if len(positions) == 0:
            rows.append({"probe": probe, "token": "", "note": "no mask token after tokenization"})
            continue
        with torch.no_grad():
            logits = model(**{k_: v.to(device) for k_, v in enc.items()}).logits[0, positions]
        probs = logits.float().softmax(-1)
        scores, ids = probs.topk(k, dim=-1)
        for m in range(len(positions)):
            tokens = tokenizer.convert_ids_to_tokens(ids[m].tolist())
            for r, (tok, sc) in enumerate(zip(tokens, scores[m].tolist(), strict=True), start=1):
                rows.append(
                    {
                        "probe": probe,
                        "mask": m + 1,
                        "rank": r,
                        "token": tok,
                        "score": sc,
                        "note": "",
                    }
                )
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["note"] = df["note"].fillna("")
    return df


def run_fill_mask(spec, loc: str, probes: Sequence[str], top_k: int) -> pd.DataFrame:
    """Load the model named by ``spec`` (at ``loc``) with its MLM head and probe it; a model
    without an MLM head, or a column without probes, gives a note row instead."""
    from .models import has_mlm_head, load_model, load_tokenizer

    if not probes:
        return note_frame(
            f"no fill-mask probes for column '{spec.column}'; add some under "
            f"fill_mask: probes: {spec.column}: in the config"
        )
    head = has_mlm_head(loc, spec.revision)
    if head is False:
        log.info("model %s has no MLM head weights: fill-mask skipped", spec.name)
        return note_frame(
            f"model '{spec.name}' ({spec.describe()}) has no masked-LM head in its weights (an "
            "encoder-only checkpoint); fill-mask predictions would come from a random head, so "
            "none are shown; for predictions, use a checkpoint saved with its MLM head "
            "(*ForMaskedLM or *ForPreTraining)",
            probes,
        )
    tokenizer = load_tokenizer(spec, loc)
    model = load_model(spec, loc, head="mlm")
    return fill_mask(model, tokenizer, probes, top_k)
