"""What users would otherwise run: the seed notebooks' recipes, written from their description
(seed 000's extraction: ``padding=True`` batches in corpus order under ``no_grad``; seed 002's
training: every sentence padded to a fixed length, batch 16, static masks with labels equal to
the input ids), and sentence-transformers' ``encode``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch


def notebook_extract(
    model, tokenizer, texts: Sequence[str], max_length: int = 128, batch_size: int = 16
) -> np.ndarray:
    """Seed 000's recipe over a corpus: batches in corpus order, each tokenized with
    ``padding=True`` (to its longest sentence), the forward pass under ``torch.no_grad()`` in
    float32 on the model's device, the last-layer [CLS] vector kept."""
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                max_length=max_length,
                truncation=True,
                return_tensors="pt",
            ).to(device)
            hidden = model(**enc).last_hidden_state
            out.append(hidden[:, 0].cpu().numpy())
    return np.concatenate(out)


ST_BATCH_SIZE = 32  # sentence-transformers' default for ``encode``


class EncodeRun(NamedTuple):
    vectors: np.ndarray
    seconds: float
    max_seq_length: int  # the token length it truncates to
    attention: str  # the attention implementation its model ran


def sentence_transformers_model(model_dir: str, device: str = "cpu", bf16: bool = False):
    """sentence-transformers' model on the same weights (mean pooling of the last layer) on
    ``device``; with ``bf16`` loaded in bfloat16 (its documented way,
    ``model_kwargs={"dtype": torch.bfloat16}``)."""
    from sentence_transformers import SentenceTransformer

    kwargs = {"dtype": torch.bfloat16} if bf16 else None
    return SentenceTransformer(model_dir, device=device, model_kwargs=kwargs)


def sentence_transformers_encode(
    st, texts: Sequence[str], batch_size: int = ST_BATCH_SIZE, kernel: str = "torch"
) -> EncodeRun:
    """``encode`` of a model from ``sentence_transformers_model``, after a warm-up; ``kernel``
    ``onednn`` runs its linear layers on oneDNN as ours may (``bertlens.matmul``), to show how
    much of a difference is the library (its default, ``torch``, is what its users run)."""
    from bertlens.matmul import linear_kernel

    with linear_kernel(st[0].auto_model, kernel):
        st.encode(list(texts[:8]), batch_size=batch_size)
        start = time.perf_counter()
        vecs = st.encode(list(texts), batch_size=batch_size, convert_to_numpy=True)
        seconds = time.perf_counter() - start
    attention = st[0].auto_model.config._attn_implementation
    return EncodeRun(vecs, seconds, st.max_seq_length, attention)


def sentence_transformers_padded_tokens(
    token_lengths: Sequence[int], texts: Sequence[str], batch_size: int = ST_BATCH_SIZE
) -> int:
    """Tokens (pads included) that ``encode`` feeds the model, given each text's token length
    after its truncation: it sorts the texts by descending character count, as
    ``BaseModel._input_length`` does for strings, and pads each batch of ``batch_size`` to its
    longest sentence in tokens."""
    lengths = np.asarray(token_lengths)
    order = np.argsort([-len(t) for t in texts])
    batches = np.split(order, range(batch_size, len(order), batch_size))
    return int(sum(len(b) * lengths[b].max() for b in batches if len(b)))


def notebook_mlm_train(
    model,
    tokenizer,
    texts: Sequence[str],
    token_budget: int,
    learning_rate: float,
    seed: int = 0,
    max_length: int = 100,
    batch_size: int = 16,
) -> dict:
    """The SNOW notebook's training loop: every sentence padded to ``max_length``; labels are the
    input ids (loss over every position, pads included); 15% of non-special tokens replaced by
    [MASK] once, before training; shuffled batches of 16; AdamW. Runs until ``token_budget`` real
    (non-pad) tokens have been seen."""
    torch.manual_seed(seed)
    enc = tokenizer(
        list(texts),
        padding="max_length",
        max_length=max_length,
        truncation=True,
        return_tensors="pt",
    )
    ids = enc["input_ids"]
    labels = ids.clone()
    special = torch.isin(ids, torch.tensor(tokenizer.all_special_ids))
    rand = torch.rand(ids.shape)
    masked = ids.clone()
    masked[(rand < 0.15) & ~special] = tokenizer.mask_token_id
    mask = enc["attention_mask"]
    optim = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    model.train()
    seen = 0
    steps = 0
    start = time.perf_counter()
    loss = None
    while seen < token_budget:
        order = torch.randperm(len(ids))
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            out = model(input_ids=masked[idx], attention_mask=mask[idx], labels=labels[idx])
            optim.zero_grad()
            out.loss.backward()
            optim.step()
            loss = float(out.loss)
            seen += int(mask[idx].sum())
            steps += 1
            if seen >= token_budget:
                break
    seconds = time.perf_counter() - start
    model.eval()
    return {
        "tokens": seen,
        "steps": steps,
        "seconds": seconds,
        "train_loss": loss,
        "tokens_per_second": seen / seconds,
    }


def notebook_mlm_curve(
    model,
    tokenizer,
    texts: Sequence[str],
    seconds: float,
    every: float,
    score,
    learning_rate: float = 5e-5,
    seed: int = 0,
    max_length: int = 100,
    batch_size: int = 16,
    device: str = "cpu",
    timer=time.perf_counter,
) -> dict:
    """Seed 002's loop as :func:`notebook_mlm_train` (on ``device``), run for ``seconds`` of wall time (from the
    tokenization on) with ``score(model)`` every ``every`` seconds; the clock stops while it
    scores (``timer``: wall by default, ``time.process_time`` for CPU seconds). Returns the points
    (seconds, eval_loss, step, tokens) and real tokens per second."""
    start = timer()
    paused = 0.0
    torch.manual_seed(seed)
    enc = tokenizer(
        list(texts), padding="max_length", max_length=max_length, truncation=True,
        return_tensors="pt",
    )  # fmt: skip
    ids = enc["input_ids"]
    keep = [tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id]
    pick = (torch.rand(ids.shape) < 0.15) & ~torch.isin(ids, torch.tensor(keep))
    masked = torch.where(pick, torch.full_like(ids, tokenizer.mask_token_id), ids)
    mask = enc["attention_mask"]
    optim = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    points, seen, steps, nxt = [], 0, 0, every
    model.train()
    while True:
        for idx in torch.randperm(len(ids)).split(batch_size):
            batch = {"input_ids": masked[idx], "attention_mask": mask[idx], "labels": ids[idx]}
            out = model(**{k: v.to(device) for k, v in batch.items()})
            optim.zero_grad()
            out.loss.backward()
            optim.step()
            seen += int(mask[idx].sum())
            steps += 1
            el = timer() - start - paused
            if el >= nxt or el >= seconds:
                t = timer()
                points.append(
                    {"seconds": el, "eval_loss": score(model), "step": steps, "tokens": seen}
                )
                model.train()
                paused += timer() - t
                nxt = (int(el // every) + 1) * every
            if el >= seconds:
                return {"points": points, "tokens_per_second": seen / el}
