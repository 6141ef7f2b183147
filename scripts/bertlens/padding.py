"""The padding-difference study: how much does a sentence's encoding move when it is padded?

A sentence encoded *alone* (batch size 1, no padding) is the reference. The same sentence is then
encoded inside padded batches (with a partner sentence of a configured length in the batch) and
under other numeric settings (bf16 autocast, eager instead of SDPA attention, left instead of right
padding, GPU instead of CPU). Every comparison is made on the sentence's real tokens only, per
layer (0 = embedding output, then every encoder layer) and per pooling:

* ``cls``: the first token's vector;
* ``mean``: the mean over the real tokens;
* ``tokens``: every real token's vector (max-abs over all of them, worst cosine of any token);
* ``pooler``: the model's pooler output (last layer only, when the model has a pooler).

Three numbers describe each comparison: the max-abs difference, the relative difference (max-abs
divided by the reference's largest absolute value) and the cosine similarity. With fp32 the
differences are rounding noise from a different order of floating-point additions (a padded batch
runs other matrix kernels than a single sentence); masked pads themselves contribute exactly zero,
which :func:`mask_check` verifies.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .io import atomic_path, write_html_table, write_json, write_table
from .models import attention_implementation, model_has_pooler, use_attention
from .stage import UserError

log = logging.getLogger(__name__)

SETTINGS = ("bf16", "sdpa_vs_eager", "left_padding", "cuda")
POOLINGS = ("cls", "mean", "tokens", "pooler")

# What each setting compares, in words (the verdict table and the report captions use these).
COMPARES = {
    "padded": "fp32, right-padded batch with the partner vs the sentence alone (batch size 1)",
    "bf16": "bf16 autocast alone vs fp32 alone",
    "sdpa_vs_eager": "eager attention alone vs SDPA attention alone (fp32)",
    "left_padding": (
        "left-padded batch with position_ids 0..n-1 vs the same batch right-padded (fp32)"
    ),
    "left_padding_no_position_ids": (
        "left-padded batch without position_ids vs the same batch right-padded (fp32): real "
        "tokens get shifted absolute positions"
    ),
    "cuda": "GPU alone vs CPU alone (fp32)",
    "mask_check": (
        "real-token outputs with the pad positions' token ids and token-type ids changed vs "
        "unchanged (same padded batch)"
    ),
}


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


@dataclass
class StudyResult:
    """Everything the study produced; :func:`write_outputs` turns it into files."""

    differences: pd.DataFrame
    summary: pd.DataFrame
    verdict: pd.DataFrame
    mask: dict[str, Any]
    partners: list[Partner]
    skipped: dict[str, str]
    timings: dict[str, float]
    info: dict[str, Any]


# --------------------------------------------------------------------------------------------
# inputs


def tokenize(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids with special tokens, truncated to ``max_length`` (what the pipeline encodes)."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, add_special_tokens=True)
    return [list(map(int, ids)) for ids in enc["input_ids"]]


def sample_rows(n: int, sample: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded sample of ``sample`` rows out of ``n`` (all when ``None``)."""
    if sample is None or sample >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=int(sample), replace=False))


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


def _mask_check_batch(rows: Sequence[Sequence[int]], pad_id: int, width: int, k: int = 8):
    """Up to ``k`` rows right-padded to ``width`` (at least one pad guaranteed)."""
    pick = sorted(rows, key=len)[: max(1, k)]
    width = max(width, max(len(r) for r in pick) + 1)
    ids = torch.full((len(pick), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for j, r in enumerate(pick):
        ids[j, : len(r)] = torch.tensor(r)
        mask[j, : len(r)] = 1
    return ids, mask


# --------------------------------------------------------------------------------------------
# the study


def _n_layers(model) -> int:
    return int(model.config.num_hidden_layers)


def padding_study(
    model,
    tokenizer,
    texts: Sequence[str],
    max_length: int,
    sample: int | None = 200,
    partners: Sequence[int | str] = (16, "longest", "max_length"),
    settings: Sequence[str] = SETTINGS,
    tolerance: float = 1e-5,
    bf16_tolerance: float = 0.1,
    batch_size: int = 32,
    seed: int = 42,
    rows: Sequence[int] | None = None,
    cuda: bool | None = None,
) -> StudyResult:
    """Run the whole study on CPU in fp32 (the reference) for one model.

    ``texts`` is the corpus column (``rows`` their corpus row numbers, default 0..N-1). ``cuda``
    (default: when torch sees a GPU) enables the CPU-vs-GPU setting.
    """
    unknown = set(settings) - set(SETTINGS)
    if unknown:
        raise ValueError(f"unknown padding settings {sorted(unknown)}; known: {SETTINGS}")
    t_start = time.perf_counter()
    model = model.eval()
    if next(model.parameters()).device.type != "cpu":
        model = model.cpu()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    n_layers = _n_layers(model)
    max_pos = getattr(model.config, "max_position_embeddings", None)
    if max_pos and max_length > max_pos:
        log.info("max_length %d capped at the model's %d positions", max_length, max_pos)
        max_length = int(max_pos)
    corpus_rows = np.asarray(rows if rows is not None else np.arange(len(texts)))
    corpus_ids = tokenize(tokenizer, texts, max_length)
    pick = sample_rows(len(corpus_ids), sample, seed)
    ids = [corpus_ids[i] for i in pick]
    sel_rows = corpus_rows[pick]
    lengths = [len(r) for r in ids]
    resolved = build_partners(partners, corpus_ids, max_length, tokenizer)
    if not resolved:
        raise UserError("padding.partners is empty; give at least one partner (e.g. [longest])")
    timings: dict[str, float] = {}
    skipped: dict[str, str] = {}
    frames: list[pd.DataFrame] = []

    def add(metrics, setting: str, partner: str, padded_to: Sequence[int]) -> None:
        frames.append(
            comparison_frame(metrics, sel_rows, lengths, padded_to, setting, partner, n_layers)
        )

    t = time.perf_counter()
    alone = encode_alone(model, ids)
    timings["alone"] = time.perf_counter() - t
    log.info("encoded %d sentences alone in %.1f s", len(ids), timings["alone"])

    left_partner = left_padding_partner(resolved)
    right: Encoding | None = None
    t = time.perf_counter()
    for p in resolved:
        enc = encode_padded(model, ids, pad_id, p, batch_size=batch_size, side="right")
        add(compare(alone, enc), "padded", p.name, enc.padded_to)
        if p is left_partner:
            right = enc
    timings["padded"] = time.perf_counter() - t

    if "left_padding" in settings and right is not None:
        t = time.perf_counter()
        for with_pos, name in ((True, "left_padding"), (False, "left_padding_no_position_ids")):
            enc = encode_padded(
                model,
                ids,
                pad_id,
                left_partner,
                batch_size=batch_size,
                side="left",
                position_ids=with_pos,
            )
            add(compare(right, enc), name, left_partner.name, enc.padded_to)
        timings["left_padding"] = time.perf_counter() - t
    right = None

    if "bf16" in settings:
        t = time.perf_counter()
        enc = encode_alone(model, ids, autocast_dtype=torch.bfloat16)
        add(compare(alone, enc), "bf16", "none", lengths)
        timings["bf16"] = time.perf_counter() - t

    if "sdpa_vs_eager" in settings:
        t = time.perf_counter()
        current = attention_implementation(model)
        if current != "sdpa":
            skipped["sdpa_vs_eager"] = (
                f"the model runs '{current}' attention (no SDPA support or set explicitly)"
            )
        else:
            try:
                with use_attention(model, "eager"):
                    enc = encode_alone(model, ids)
                add(compare(alone, enc), "sdpa_vs_eager", "none", lengths)
            except (ValueError, AttributeError) as err:
                skipped["sdpa_vs_eager"] = f"cannot switch to eager attention: {err}"
        timings["sdpa_vs_eager"] = time.perf_counter() - t

    if "cuda" in settings:
        use_cuda = torch.cuda.is_available() if cuda is None else cuda
        if not use_cuda:
            skipped["cuda"] = (
                "torch sees no CUDA GPU on this machine (torch.cuda.is_available() is False)"
            )
        else:
            t = time.perf_counter()
            gpu_model = copy.deepcopy(model).to("cuda")
            enc = encode_alone(gpu_model, ids)
            del gpu_model
            torch.cuda.empty_cache()
            add(compare(alone, enc), "cuda", "none", lengths)
            timings["cuda"] = time.perf_counter() - t

    t = time.perf_counter()
    widest = max(p.length for p in resolved)
    m_ids, m_mask = _mask_check_batch(ids, pad_id, widest)
    mask = mask_check(model, m_ids, m_mask, tolerance=tolerance, seed=seed)
    timings["mask_check"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_start

    differences = pd.concat(frames, ignore_index=True)
    summary = summarize(differences)
    verdict = verdict_table(
        differences, mask, skipped, tolerance, bf16_tolerance, n_layers, timings
    )
    info = {
        "sentences": len(ids),
        "corpus_sentences": len(corpus_ids),
        "layers": n_layers,
        "has_pooler": model_has_pooler(model),
        "attn_implementation": attention_implementation(model),
        "torch_threads": torch.get_num_threads(),
        "max_length": max_length,
        "tolerance": tolerance,
        "bf16_tolerance": bf16_tolerance,
        "batch_size": batch_size,
        "seed": seed,
    }
    log.info("padding study: %d comparisons in %.1f s", len(differences), timings["total"])
    return StudyResult(differences, summary, verdict, mask, resolved, skipped, timings, info)


# --------------------------------------------------------------------------------------------
# tables


def summarize(differences: pd.DataFrame) -> pd.DataFrame:
    """Median, p99 and max of the max-abs difference (plus worst rel and cosine) per setting ×
    partner × layer × pooling."""
    g = differences.groupby(["setting", "partner", "layer", "pooling"], sort=False)
    out = g["max_abs"].agg(
        sentences="count",
        median="median",
        p99=lambda s: float(np.quantile(s, 0.99)),
        max="max",
    )
    out["rel_max"] = g["rel"].max()
    out["cosine_min"] = g["cosine"].min()
    return out.reset_index()


def _tolerance_for(setting: str, tolerance: float, bf16_tolerance: float) -> float:
    return bf16_tolerance if setting == "bf16" else tolerance


VERDICT_POOLINGS = ("cls", "mean", "pooler")


def verdict_table(
    differences: pd.DataFrame,
    mask: dict[str, Any],
    skipped: dict[str, str],
    tolerance: float,
    bf16_tolerance: float,
    n_layers: int,
    timings: dict[str, float] | None = None,
) -> pd.DataFrame:
    """One line per setting: the worst max-abs difference of the sentence vectors (CLS, mean,
    pooler; every sentence, every layer) against the tolerance, plus the last-layer CLS numbers
    the seed question is about and, for information, the worst single real token."""
    timings = timings or {}
    lines = []
    order = [
        "padded",
        "left_padding",
        "left_padding_no_position_ids",
        "bf16",
        "sdpa_vs_eager",
        "cuda",
    ]
    for setting in order:
        tol = _tolerance_for(setting, tolerance, bf16_tolerance)
        sub = differences[differences["setting"] == setting]
        if sub.empty:
            if setting in skipped:
                lines.append(
                    {
                        "setting": setting,
                        "compares": COMPARES[setting],
                        "tolerance": tol,
                        "verdict": "skipped",
                        "note": skipped[setting],
                    }
                )
            continue
        vec = sub[sub["pooling"].isin(VERDICT_POOLINGS)]
        worst = vec.loc[vec["max_abs"].idxmax()]
        cls_last = sub[(sub["pooling"] == "cls") & (sub["layer"] == n_layers)]["max_abs"]
        tokens = sub[sub["pooling"] == "tokens"]["max_abs"]
        passed = bool(vec["max_abs"].max() <= tol)
        expected_fail = setting == "left_padding_no_position_ids"
        verdict = "pass" if passed else ("FAIL (expected)" if expected_fail else "FAIL")
        notes = []
        if expected_fail:
            notes.append(
                "without position_ids the real tokens of a left-padded row get positions shifted "
                "by the pad count: a real change of input, not rounding"
            )
        if setting == "bf16":
            notes.append("bf16 keeps ~3 significant digits; judged against bf16_tolerance")
        pos0 = sub[sub["pooling"] == "pooler_pos0"]["max_abs"]
        if len(pos0):
            notes.append(
                f"the model's own pooler_output reads position 0, a pad under left padding "
                f"(max-abs {pos0.max():.3g} vs the right-padded pooler); the pooler row here is "
                "the pooler applied to the real [CLS]"
            )
        lines.append(
            {
                "setting": setting,
                "compares": COMPARES[setting],
                "tolerance": tol,
                "max_abs": float(worst["max_abs"]),
                "worst_at": f"partner {worst['partner']}, layer {int(worst['layer'])}, {worst['pooling']}",
                "cls_last_median": float(cls_last.median()) if len(cls_last) else math.nan,
                "cls_last_max": float(cls_last.max()) if len(cls_last) else math.nan,
                "tokens_max": float(tokens.max()) if len(tokens) else math.nan,
                "cosine_min": float(vec["cosine"].min()),
                "verdict": verdict,
                "seconds": round(float(timings.get(setting.split("_no_")[0], math.nan)), 2),
                "note": "; ".join(notes),
            }
        )
    lines.append(
        {
            "setting": "mask_check",
            "compares": COMPARES["mask_check"],
            "tolerance": mask["tolerance"],
            "max_abs": mask["max_abs"],
            "worst_at": f"{mask['pads']} pad positions changed",
            "tokens_max": mask["max_abs"],
            "verdict": "pass" if mask["passed"] else "FAIL",
            "seconds": round(float(timings.get("mask_check", math.nan)), 2),
            "note": mask["note"],
        }
    )
    cols = [
        "setting",
        "compares",
        "tolerance",
        "max_abs",
        "worst_at",
        "cls_last_median",
        "cls_last_max",
        "tokens_max",
        "cosine_min",
        "verdict",
        "seconds",
        "note",
    ]
    return pd.DataFrame(lines).reindex(columns=cols)


# --------------------------------------------------------------------------------------------
# plots and files

_FLOOR = 1e-10  # exact zeros are drawn here on log axes


def _figure(nrows: int, ncols: int, figsize: tuple[float, float]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(nrows, ncols, figsize=figsize, squeeze=False)


def _save(fig, path: str | Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def _settings_present(differences: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(differences["setting"]))


def histogram_png(
    differences: pd.DataFrame,
    path: str | Path,
    tolerance: float,
    bf16_tolerance: float,
    n_layers: int,
    title: str = "",
) -> None:
    """Per setting, histograms of log10(max-abs) at the last layer (one colour per pooling),
    with the tolerance as a dashed line."""
    settings = _settings_present(differences)
    ncols = min(3, max(1, len(settings)))
    nrows = math.ceil(len(settings) / ncols)
    fig, axes = _figure(nrows, ncols, (5.0 * ncols, 3.6 * nrows))
    last = differences[differences["layer"] == n_layers]
    colours = {
        "cls": "#4477aa",
        "mean": "#ee6677",
        "tokens": "#228833",
        "pooler": "#ccbb44",
        "pooler_pos0": "#aa3377",
    }
    for k, setting in enumerate(settings):
        ax = axes[k // ncols][k % ncols]
        sub = last[last["setting"] == setting]
        vals = {
            p: np.log10(np.maximum(g["max_abs"].to_numpy(), _FLOOR))
            for p, g in sub.groupby("pooling")
        }
        lo = min((v.min() for v in vals.values()), default=-10)
        hi = max((v.max() for v in vals.values()), default=0)
        bins = np.linspace(lo - 0.1, hi + 0.1, 40)
        for pooling, v in vals.items():
            ax.hist(
                v, bins=bins, histtype="step", lw=1.5, color=colours.get(pooling), label=pooling
            )
        tol = _tolerance_for(setting, tolerance, bf16_tolerance)
        ax.axvline(math.log10(tol), color="k", ls="--", lw=1, label=f"tolerance {tol:g}")
        ax.set_title(setting, fontsize=10)
        ax.set_xlabel(
            f"log10 max-abs difference (layer {n_layers}; zeros at {math.log10(_FLOOR):g})"
        )
        ax.set_ylabel("count")
        ax.legend(fontsize=7)
    for k in range(len(settings), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    if title:
        fig.suptitle(title)
    _save(fig, path)


def growth_png(
    summary: pd.DataFrame,
    path: str | Path,
    tolerance: float,
    bf16_tolerance: float,
    title: str = "",
) -> None:
    """Per setting, median / p99 / max of the CLS max-abs difference against the layer (0 =
    embedding output), the worst real token as a dashed line; every partner pooled together."""
    settings = _settings_present(summary)
    ncols = min(3, max(1, len(settings)))
    nrows = math.ceil(len(settings) / ncols)
    fig, axes = _figure(nrows, ncols, (5.0 * ncols, 3.6 * nrows))
    for k, setting in enumerate(settings):
        ax = axes[k // ncols][k % ncols]
        sub = summary[summary["setting"] == setting]
        cls = sub[sub["pooling"] == "cls"].groupby("layer")
        tok = sub[sub["pooling"] == "tokens"].groupby("layer")["max"].max()
        for stat, colour in (("median", "#4477aa"), ("p99", "#ccbb44"), ("max", "#ee6677")):
            agg = cls[stat].max()
            ax.plot(
                agg.index,
                np.maximum(agg.to_numpy(), _FLOOR),
                marker="o",
                color=colour,
                label=f"CLS {stat}",
            )
        ax.plot(
            tok.index,
            np.maximum(tok.to_numpy(), _FLOOR),
            ls="--",
            color="#228833",
            label="worst token max",
        )
        tol = _tolerance_for(setting, tolerance, bf16_tolerance)
        ax.axhline(tol, color="k", ls=":", lw=1, label=f"tolerance {tol:g}")
        ax.set_yscale("log")
        ax.set_title(setting, fontsize=10)
        ax.set_xlabel("layer (0 = embedding output)")
        ax.set_ylabel("max-abs difference")
        ax.legend(fontsize=7)
    for k in range(len(settings), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    if title:
        fig.suptitle(title)
    _save(fig, path)


def write_outputs(result: StudyResult, paths: dict[str, str], model_name: str) -> None:
    """Write the study's files. ``paths`` keys: differences (parquet), summary (tsv),
    summary_html, verdict (tsv), verdict_html, histograms (png), growth (png), study (json)."""
    info = result.info
    write_table(paths["differences"], result.differences)
    write_table(paths["summary"], result.summary)
    write_html_table(
        paths["summary_html"],
        result.summary,
        title=f"{model_name}: padding differences per setting, partner, layer and pooling",
        note=(
            f"{info['sentences']} sentences; max-abs differences of fp32 hidden states on real tokens "
            "(layer 0 = embedding output). median / p99 / max over sentences."
        ),
        float_format="{:.3g}",
    )
    write_table(paths["verdict"], result.verdict)
    write_html_table(
        paths["verdict_html"],
        result.verdict,
        title=f"{model_name}: padding verdict",
        note=(
            f"max_abs: the worst over {info['sentences']} sentences, every layer and pooling; "
            f"fp32 tolerance {info['tolerance']:g}, bf16 tolerance {info['bf16_tolerance']:g}. "
            f"Whole study: {result.timings['total']:.1f} s on {info['torch_threads']} CPU thread(s)."
        ),
        float_format="{:.3g}",
    )
    title = f"{model_name} ({info['sentences']} sentences)"
    histogram_png(
        result.differences,
        paths["histograms"],
        info["tolerance"],
        info["bf16_tolerance"],
        info["layers"],
        title=title,
    )
    growth_png(
        result.summary, paths["growth"], info["tolerance"], info["bf16_tolerance"], title=title
    )
    write_json(
        paths["study"],
        {
            **info,
            "partners": [
                {"name": p.name, "length": p.length, "source": p.source} for p in result.partners
            ],
            "left_padding_partner": left_padding_partner(result.partners).name,
            "skipped": result.skipped,
            "mask_check": result.mask,
            "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
        },
    )
