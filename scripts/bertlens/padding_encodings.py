"""The encodings the padding study compares (``bertlens.padding``): each sentence encoded alone
(batch size 1, no padding, the reference) and inside padded batches with a partner sentence
(right or left padding), their differences on the real tokens per layer and pooling, and the
attention-mask check (changing what sits at the pad positions must change nothing)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

POOLINGS = ("cls", "mean", "tokens", "pooler")


@dataclass(frozen=True)
class Partner:
    """What a sentence is padded against.

    ``length`` is the padded length it forces; ``ids`` is the partner row put into every batch
    (``None`` for ``max_length``: the batch is simply padded to the model's max_length).
    """

    name: str
    length: int
    ids: tuple[int, ...] | None
    source: str


@dataclass
class Encoding:
    """One encoding of a set of sentences: per sentence, the real tokens' hidden states
    ``(n_tokens, layers + 1, hidden)`` and the pooler output ``(hidden,)`` (or ``None``)."""

    states: list[torch.Tensor]
    pooler: list[torch.Tensor] | None
    padded_to: list[int] = field(default_factory=list)
    # left padding only: the model's own pooler_output, which reads position 0 (a pad)
    pooler_pos0: list[torch.Tensor] | None = None


# --------------------------------------------------------------------------------------------
# inputs


def tokenize(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids with special tokens, truncated to ``max_length`` (what the pipeline encodes)."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, add_special_tokens=True)
    return [list(map(int, ids)) for ids in enc["input_ids"]]


def build_partners(
    partners: Sequence[int | str], corpus_ids: Sequence[Sequence[int]], max_length: int, tokenizer
) -> list[Partner]:
    """Resolve the configured partners into token-id rows.

    An integer ``L`` takes the shortest corpus sentence with at least ``L`` tokens and truncates
    it to ``L`` (keeping the final [SEP]); when no sentence is that long, the longest sentence's
    inner tokens are repeated to fill ``L``. ``longest`` is the corpus's longest sentence;
    ``max_length`` pads the batch to the model's max_length without a partner row.
    """
    if not corpus_ids:
        raise ValueError("the corpus has no sentences to build padding partners from")
    lengths = np.array([len(ids) for ids in corpus_ids])
    longest = int(lengths.argmax())
    sep = tokenizer.sep_token_id
    out: list[Partner] = []
    for p in partners:
        if p == "longest":
            ids = tuple(corpus_ids[longest])
            out.append(Partner("longest", len(ids), ids, f"corpus sentence {longest}"))
            continue
        if p == "max_length":
            out.append(Partner("max_length", max_length, None, "padding only, no partner row"))
            continue
        want = int(p)
        note = ""
        if want > max_length:
            note = f" (asked {want}, capped at max_length)"
            want = max_length
        long_enough = np.flatnonzero(lengths >= want)
        if long_enough.size:
            i = int(long_enough[lengths[long_enough].argmin()])
            ids = list(corpus_ids[i][:want])
            if sep is not None and want >= 2 and len(corpus_ids[i]) > want:
                ids[-1] = sep
            source = f"corpus sentence {i} truncated to {want} tokens{note}"
        else:
            base = list(corpus_ids[longest])
            inner = base[1:-1] if len(base) > 2 else base
            head, tail = base[:1], base[-1:] if len(base) > 1 else []
            fill = want - len(head) - len(tail)
            reps = [inner[k % len(inner)] for k in range(max(fill, 0))]
            ids = (head + reps + tail)[:want]
            source = f"tokens of corpus sentence {longest} repeated to {want} tokens{note}"
        out.append(Partner(str(p), len(ids), tuple(ids), source))
    return out


# --------------------------------------------------------------------------------------------
# encoding


def _forward(model, **inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Stacked hidden states ``(batch, T, layers + 1, hidden)`` (float32) and pooler output."""
    out = model(**inputs, output_hidden_states=True, return_dict=True)
    states = torch.stack(out.hidden_states, dim=2).float()
    pooled = getattr(out, "pooler_output", None)
    return states, (pooled.float() if pooled is not None else None)


@torch.inference_mode()
def encode_alone(
    model,
    rows: Sequence[Sequence[int]],
    device: str = "cpu",
    autocast_dtype: torch.dtype | None = None,
) -> Encoding:
    """Encode every row alone: batch size 1, no padding, no attention mask."""
    model_device = next(model.parameters()).device
    ctx = (
        torch.autocast(model_device.type, dtype=autocast_dtype)
        if autocast_dtype is not None
        else nullcontext()
    )
    states: list[torch.Tensor] = []
    pooled: list[torch.Tensor] = []
    with ctx:
        for ids in rows:
            x = torch.tensor([list(ids)], dtype=torch.long, device=model_device)
            s, p = _forward(model, input_ids=x)
            states.append(s[0].to(device))
            if p is not None:
                pooled.append(p[0].to(device))
    return Encoding(states, pooled or None, [len(r) for r in rows])


def _batches(
    order: Sequence[int], lengths: Sequence[int], target: int, size: int
) -> Iterator[list[int]]:
    """Length-sorted chunks; sentences that fit the target length are never mixed with longer
    ones, so they are padded to exactly ``target``."""
    fit = [i for i in order if lengths[i] <= target]
    over = [i for i in order if lengths[i] > target]
    for group in (fit, over):
        for k in range(0, len(group), size):
            yield group[k : k + size]


@torch.inference_mode()
def encode_padded(
    model,
    rows: Sequence[Sequence[int]],
    pad_id: int,
    partner: Partner,
    batch_size: int = 32,
    side: str = "right",
    position_ids: bool = True,
) -> Encoding:
    """Encode the rows in padded batches of ``batch_size`` plus the partner row.

    Each batch is padded to ``max(partner.length, longest row in the batch)``. With
    ``side="left"`` the pads come first; ``position_ids=True`` then passes positions 0..n-1 for
    the real tokens (what right padding gives implicitly), ``False`` lets BERT count positions
    from the first pad. Under left padding BERT's pooler would read position 0, a pad: the
    encoding's ``pooler`` is then the pooler applied to the real [CLS] state, and the model's own
    ``pooler_output`` is kept as ``pooler_pos0``.
    """
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', not {side!r}")
    device = next(model.parameters()).device
    lengths = [len(r) for r in rows]
    order = sorted(range(len(rows)), key=lambda i: lengths[i])
    states: list[torch.Tensor | None] = [None] * len(rows)
    pooled: list[torch.Tensor | None] = [None] * len(rows)
    pooled_pos0: list[torch.Tensor | None] = [None] * len(rows)
    padded_to = [0] * len(rows)
    for chunk in _batches(order, lengths, partner.length, batch_size):
        batch_rows = [list(rows[i]) for i in chunk]
        if partner.ids is not None:
            batch_rows.append(list(partner.ids))
        n = torch.tensor([len(r) for r in batch_rows])
        width = max(partner.length, int(n.max()))
        ids = torch.full((len(batch_rows), width), pad_id, dtype=torch.long)
        cols = torch.arange(width)
        start = (
            (width - n)[:, None]
            if side == "left"
            else torch.zeros(len(batch_rows), 1, dtype=torch.long)
        )
        mask = (cols[None, :] >= start) & (cols[None, :] < start + n[:, None])
        ids[mask] = torch.tensor([t for r in batch_rows for t in r], dtype=torch.long)
        inputs = {
            "input_ids": ids.to(device),
            "attention_mask": mask.long().to(device),
            "token_type_ids": torch.zeros_like(ids).to(device),
        }
        if side == "left" and position_ids:
            inputs["position_ids"] = (mask.long().cumsum(1) - 1).clamp(min=0).to(device)
        s, p = _forward(model, **inputs)
        p0 = None
        if p is not None and side == "left":
            # the pooler on each row's real first token ([CLS]), not on position 0
            cls_last = s[torch.arange(len(batch_rows)), start[:, 0].to(s.device), -1]
            p0, p = p, model.pooler(cls_last[:, None, :].to(model.dtype)).float()
        s = s.cpu()
        for j, i in enumerate(chunk):
            lo = int(start[j, 0])
            states[i] = s[j, lo : lo + lengths[i]]
            if p is not None:
                pooled[i] = p[j].cpu()
            if p0 is not None:
                pooled_pos0[i] = p0[j].cpu()
            padded_to[i] = width
    has_pooler = bool(rows) and pooled[0] is not None
    has_pos0 = bool(rows) and pooled_pos0[0] is not None
    return Encoding(
        states,  # type: ignore[arg-type]
        pooled if has_pooler else None,  # type: ignore[arg-type]
        padded_to,
        pooled_pos0 if has_pos0 else None,  # type: ignore[arg-type]
    )


def left_padding_partner(partners: Sequence[Partner]) -> Partner:
    """The batch the left-vs-right comparison runs in: the ``longest`` partner (a realistic
    batch), else the longest partner with a sentence row, else the first."""
    by_name = {p.name: p for p in partners}
    if "longest" in by_name:
        return by_name["longest"]
    with_rows = [p for p in partners if p.ids is not None]
    return max(with_rows, key=lambda p: p.length) if with_rows else partners[0]


# --------------------------------------------------------------------------------------------
# comparison


def _vector_metrics(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """max-abs, relative and cosine over the last dimension (float64 for the cosine)."""
    max_abs = (a - b).abs().amax(-1).double()
    ref = a.abs().amax(-1).double()
    rel = torch.where(ref > 0, max_abs / ref, torch.full_like(ref, math.nan))
    a64, b64 = a.double(), b.double()
    cos = torch.nn.functional.cosine_similarity(a64, b64, dim=-1, eps=1e-30)
    return max_abs, rel, cos


def compare(
    ref: Encoding, var: Encoding, chunk: int = 64
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per pooling, arrays ``(sentences, layers + 1)`` of max-abs, rel and cosine between two
    encodings of the same sentences (``pooler``: ``(sentences, 1)``)."""
    from torch.nn.utils.rnn import pad_sequence

    acc: dict[str, list[list[torch.Tensor]]] = {p: [[], [], []] for p in (*POOLINGS, "pooler_pos0")}
    for k in range(0, len(ref.states), chunk):
        a = pad_sequence(ref.states[k : k + chunk], batch_first=True)  # (C, T, L1, H)
        b = pad_sequence(var.states[k : k + chunk], batch_first=True)
        n = torch.tensor([s.shape[0] for s in ref.states[k : k + chunk]])
        mask = torch.arange(a.shape[1])[None, :] < n[:, None]  # (C, T)
        m4 = mask[:, :, None, None]
        pooled = {
            "cls": (a[:, 0], b[:, 0]),
            "mean": (
                (a * m4).sum(1) / n[:, None, None],
                (b * m4).sum(1) / n[:, None, None],
            ),
        }
        for name, (x, y) in pooled.items():
            for dst, val in zip(acc[name], _vector_metrics(x, y), strict=True):
                dst.append(val)
        # every real token: the worst token per layer (largest difference, lowest cosine)
        m3 = mask[:, :, None]
        tok_max = (a - b).abs().amax(-1).double().masked_fill(~m3, 0).amax(1)  # (C, L1)
        ref_max = a.abs().amax(-1).double().masked_fill(~m3, 0).amax(1)
        tok_rel = torch.where(ref_max > 0, tok_max / ref_max, torch.full_like(ref_max, math.nan))
        cos = torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=-1, eps=1e-30)
        tok_cos = cos.masked_fill(~m3, math.inf).amin(1)
        for dst, val in zip(acc["tokens"], (tok_max, tok_rel, tok_cos), strict=True):
            dst.append(val)
        if ref.pooler is not None and var.pooler is not None:
            pa = torch.stack(ref.pooler[k : k + chunk])
            pb = torch.stack(var.pooler[k : k + chunk])
            for dst, val in zip(acc["pooler"], _vector_metrics(pa, pb), strict=True):
                dst.append(val[:, None])
        if ref.pooler is not None and var.pooler_pos0 is not None:
            pa = torch.stack(ref.pooler[k : k + chunk])
            pb = torch.stack(var.pooler_pos0[k : k + chunk])
            for dst, val in zip(acc["pooler_pos0"], _vector_metrics(pa, pb), strict=True):
                dst.append(val[:, None])
    return {
        p: tuple(torch.cat(v).numpy() for v in vals)  # type: ignore[misc]
        for p, vals in acc.items()
        if vals[0]
    }


def comparison_frame(
    metrics: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    rows: np.ndarray,
    lengths: Sequence[int],
    padded_to: Sequence[int],
    setting: str,
    partner: str,
    n_layers: int,
) -> pd.DataFrame:
    """Long table: one line per sentence × layer × pooling."""
    parts = []
    for pooling, (mx, rel, cos) in metrics.items():
        n_sent, n_l = mx.shape
        layers = np.array([n_layers]) if pooling.startswith("pooler") else np.arange(n_l)
        parts.append(
            pd.DataFrame(
                {
                    "row": np.repeat(rows, n_l),
                    "length": np.repeat(np.asarray(lengths), n_l),
                    "padded_to": np.repeat(np.asarray(padded_to), n_l),
                    "setting": setting,
                    "partner": partner,
                    "layer": np.tile(layers, n_sent),
                    "pooling": pooling,
                    "max_abs": mx.reshape(-1),
                    "rel": rel.reshape(-1),
                    "cosine": cos.reshape(-1),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


# --------------------------------------------------------------------------------------------
# the attention-mask check


@torch.inference_mode()
def mask_check(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    break_mask: bool = False,
    tolerance: float = 1e-5,
    seed: int = 0,
) -> dict[str, Any]:
    """Change every padded position's token id (and token-type id) and measure how much the real
    tokens' outputs (all layers, plus the pooler) move. A correct attention mask hides the pads
    completely, so the difference is (essentially) zero.

    ``break_mask=True`` feeds an all-ones attention mask instead (the pads are attended), which
    must make the check fail: that shows the check can detect a broken mask.
    """
    real = attention_mask.bool()
    if real.all():
        raise ValueError("mask_check needs a batch with at least one padded position")
    device = next(model.parameters()).device
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(seed)
    alt_ids = input_ids.clone()
    pads = ~real
    shift = torch.randint(1, vocab, (int(pads.sum()),), generator=gen)
    alt_ids[pads] = (input_ids[pads] + shift) % vocab
    types = torch.zeros_like(input_ids)
    alt_types = types.clone()
    if getattr(model.config, "type_vocab_size", 1) > 1:
        alt_types[pads] = 1
    used_mask = torch.ones_like(attention_mask) if break_mask else attention_mask
    out = []
    for ids, tt in ((input_ids, types), (alt_ids, alt_types)):
        s, p = _forward(
            model,
            input_ids=ids.to(device),
            attention_mask=used_mask.to(device),
            token_type_ids=tt.to(device),
        )
        out.append((s.cpu(), p.cpu() if p is not None else None))
    (s0, p0), (s1, p1) = out
    diff = (s0 - s1).abs().amax(dim=(2, 3))  # (B, T): worst over layers and features
    max_abs = float(diff[real].max())
    if p0 is not None and p1 is not None:
        max_abs = max(max_abs, float((p0 - p1).abs().max()))
    passed = max_abs <= tolerance
    return {
        "name": "mask_check" + (" (broken mask)" if break_mask else ""),
        "max_abs": max_abs,
        "tolerance": tolerance,
        "passed": bool(passed),
        "pads": int(pads.sum()),
        "note": (
            "all-ones attention mask: pads are attended, so changing them moves real tokens"
            if break_mask
            else "pads masked: changing their token and token-type ids must not move real tokens"
        ),
    }


def mask_check_batch(rows: Sequence[Sequence[int]], pad_id: int, width: int, k: int = 8):
    """Up to ``k`` rows right-padded to ``width`` (at least one pad guaranteed)."""
    pick = sorted(rows, key=len)[: max(1, k)]
    width = max(width, max(len(r) for r in pick) + 1)
    ids = torch.full((len(pick), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for j, r in enumerate(pick):
        ids[j, : len(r)] = torch.tensor(r)
        mask[j, : len(r)] = 1
    return ids, mask
