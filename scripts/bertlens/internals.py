"""Model-internals checks: rebuild BERT's pieces by hand from its weights and compare them with
what the model computes.

Each check recomputes one piece with plain tensor formulas (the ``manual_*`` functions read only
the weights) and compares the result with the model's own output on the same padded batch:

* input embedding = LayerNorm(word + token_type + position embeddings) vs ``model.embeddings``;
* ``hidden_states[-1]`` vs ``last_hidden_state``; ``hidden_states[0]`` vs the embedding output;
* every layer's attention probabilities, every head: softmax(QK^T / sqrt(d) + mask) vs the
  attentions the model returns (run with eager attention);
* every encoder layer: self-attention, output dense + residual + LayerNorm, intermediate
  activation + output dense + residual + LayerNorm vs the next hidden state;
* pooler: tanh(dense(CLS)) vs ``pooler_output`` (when the model has a pooler);
* MLM logits: decoder(LayerNorm(act(dense(h)))) vs the model's logits (when it has an MLM head).

Every check takes an optional ``perturb(site, tensor) -> tensor`` hook that is applied to the
recomputation side only (site names are listed in :data:`SITES`), so a test can show that a check
fails when one piece no longer matches; a forward hook on the model perturbs the model side.
Comparisons cover real tokens only (pads are meaningless outputs).
"""

from __future__ import annotations

import inspect
import logging
import math
import re
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from .models import (
    attention_implementation,
    base_of,
    model_has_mlm_head,
    model_has_pooler,
    use_attention,
)

log = logging.getLogger(__name__)

Perturb = Callable[[str, torch.Tensor], torch.Tensor]

# Where a perturbation hook is applied ({i}: layer index).
SITES = (
    "embeddings.sum",  # word + token_type + position, before LayerNorm
    "embeddings.output",  # after LayerNorm
    "hidden_states.last",  # hidden_states[-1]
    "hidden_states.embedding",  # the embedding output compared with hidden_states[0]
    "layer{i}.query",
    "layer{i}.key",
    "layer{i}.value",
    "layer{i}.probs",  # attention probabilities
    "layer{i}.attention_output",  # after output dense + residual + LayerNorm
    "layer{i}.intermediate",  # after the activation
    "layer{i}.output",  # the layer's output
    "pooler.output",
    "mlm.transform",  # after the head's LayerNorm
    "mlm.logits",
)


@dataclass
class Check:
    """The outcome of one check (``passed`` is ``None`` when it was skipped)."""

    name: str
    max_abs_error: float | None
    tolerance: float
    passed: bool | None
    note: str

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Trace:
    """One run of the model on a padded batch, with everything the checks compare against."""

    inputs: dict[str, torch.Tensor]
    hidden_states: tuple[torch.Tensor, ...]
    last_hidden_state: torch.Tensor
    attentions: tuple[torch.Tensor, ...] | None
    pooler_output: torch.Tensor | None
    logits: torch.Tensor | None
    embedding_output: torch.Tensor | None


def _tap(perturb: Perturb | None, site: str, x: torch.Tensor) -> torch.Tensor:
    return perturb(site, x) if perturb is not None else x


# --------------------------------------------------------------------------------------------
# what kind of model


def is_bert(model) -> bool:
    return getattr(model.config, "model_type", None) == "bert"


def _skip(name: str, tolerance: float, why: str) -> Check:
    return Check(name, None, tolerance, None, f"skipped: {why}")


def _not_bert(model) -> str:
    return (
        f"model_type '{getattr(model.config, 'model_type', '?')}' is not BERT; the hand-written "
        "formulas here follow BertModel"
    )


# --------------------------------------------------------------------------------------------
# inputs and the model run


def select_sentences(tokenizer, texts: Sequence[str], n: int, max_length: int) -> list[str]:
    """``n`` sentences spread over the length range (so the batch really has padding)."""
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        raise ValueError("no sentences to run the internals checks on")
    lengths = [
        len(x) for x in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    ]
    order = np.argsort(lengths, kind="stable")
    idx = np.unique(np.linspace(0, len(order) - 1, num=min(n, len(order))).round().astype(int))
    return [texts[int(order[i])] for i in idx]


def prepare_inputs(tokenizer, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
    """One right-padded batch: input_ids, attention_mask, token_type_ids."""
    enc = tokenizer(
        list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    out = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    out["token_type_ids"] = enc.get("token_type_ids", torch.zeros_like(enc["input_ids"]))
    return out


@torch.inference_mode()
def trace_model(model, inputs: dict[str, torch.Tensor]) -> Trace:
    """Run the model once in eval mode with hidden states (and, for BERT, eager attention so the
    attention probabilities come back)."""
    model.eval()
    base = base_of(model)
    bert = is_bert(model)
    feed = dict(inputs)
    if not bert and "token_type_ids" not in inspect.signature(base.forward).parameters:
        feed.pop("token_type_ids", None)
    ctx = nullcontext()
    if bert and attention_implementation(model) != "eager":
        ctx = use_attention(model, "eager")
    with ctx:
        out = base(**feed, output_hidden_states=True, output_attentions=bert, return_dict=True)
        logits = model(**feed, return_dict=True).logits if model_has_mlm_head(model) else None
    emb = None
    if bert:
        emb = base.embeddings(input_ids=feed["input_ids"], token_type_ids=feed["token_type_ids"])
    return Trace(
        inputs=feed,
        hidden_states=tuple(out.hidden_states),
        last_hidden_state=out.last_hidden_state,
        attentions=tuple(out.attentions) if getattr(out, "attentions", None) else None,
        pooler_output=getattr(out, "pooler_output", None),
        logits=logits,
        embedding_output=emb,
    )


# --------------------------------------------------------------------------------------------
# BERT by hand


def activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The hidden activation written out (erf GELU for ``gelu``)."""
    if name == "gelu":
        return lambda x: 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        c = math.sqrt(2.0 / math.pi)
        return lambda x: 0.5 * x * (1.0 + torch.tanh(c * (x + 0.044715 * x.pow(3))))
    if name == "relu":
        return lambda x: x.clamp_min(0)
    if name in ("silu", "swish"):
        return lambda x: x * torch.sigmoid(x)
    from transformers.activations import ACT2FN

    return ACT2FN[name]


def _linear(x: torch.Tensor, layer: torch.nn.Linear) -> torch.Tensor:
    """x W^T + b, as nn.Linear computes it."""
    y = x @ layer.weight.T
    return y + layer.bias if layer.bias is not None else y


def _layer_norm(x: torch.Tensor, ln: torch.nn.LayerNorm) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps) * gamma + beta, variance without Bessel correction."""
    mean = x.mean(-1, keepdim=True)
    var = (x - mean).pow(2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias


def additive_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, T) 1/0 mask -> (B, 1, 1, T) additive mask: 0 for real keys, the dtype's minimum for
    pads (exp of it underflows to exactly 0 in the softmax)."""
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def manual_embeddings(
    embeddings,
    input_ids: torch.Tensor,
    token_type_ids: torch.Tensor,
    position_ids: torch.Tensor | None = None,
    perturb: Perturb | None = None,
) -> torch.Tensor:
    """LayerNorm(word[ids] + token_type[types] + position[0..T-1]) (dropout is off in eval)."""
    if position_ids is None:
        position_ids = torch.arange(input_ids.shape[1], device=input_ids.device)[None, :]
    x = (
        embeddings.word_embeddings.weight[input_ids]
        + embeddings.token_type_embeddings.weight[token_type_ids]
        + embeddings.position_embeddings.weight[position_ids]
    )
    x = _tap(perturb, "embeddings.sum", x)
    return _tap(perturb, "embeddings.output", _layer_norm(x, embeddings.LayerNorm))


def _heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, T, H) -> (B, heads, T, H / heads)."""
    b, t, h = x.shape
    return x.view(b, t, n_heads, h // n_heads).transpose(1, 2)


def manual_attention_probs(
    self_attn,
    hidden: torch.Tensor,
    attention_mask: torch.Tensor,
    n_heads: int,
    perturb: Perturb | None = None,
    prefix: str = "layer0",
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(Q K^T / sqrt(d) + mask) for every head; returns (probs (B, heads, T, T), V)."""
    q = _heads(_tap(perturb, f"{prefix}.query", _linear(hidden, self_attn.query)), n_heads)
    k = _heads(_tap(perturb, f"{prefix}.key", _linear(hidden, self_attn.key)), n_heads)
    v = _heads(_tap(perturb, f"{prefix}.value", _linear(hidden, self_attn.value)), n_heads)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    scores = scores + additive_mask(attention_mask, scores.dtype)
    probs = _tap(perturb, f"{prefix}.probs", torch.softmax(scores, dim=-1))
    return probs, v


def manual_layer(
    layer,
    hidden: torch.Tensor,
    attention_mask: torch.Tensor,
    n_heads: int,
    act: Callable[[torch.Tensor], torch.Tensor],
    perturb: Perturb | None = None,
    prefix: str = "layer0",
) -> torch.Tensor:
    """One BertLayer: multi-head self-attention, output dense + residual + LayerNorm, then the
    feed-forward block (dense, activation, dense) + residual + LayerNorm."""
    probs, v = manual_attention_probs(
        layer.attention.self, hidden, attention_mask, n_heads, perturb, prefix
    )
    b, _, t, _ = probs.shape
    context = (probs @ v).transpose(1, 2).reshape(b, t, -1)  # concatenate the heads
    attn_out = _layer_norm(
        _linear(context, layer.attention.output.dense) + hidden, layer.attention.output.LayerNorm
    )
    attn_out = _tap(perturb, f"{prefix}.attention_output", attn_out)
    inter = _tap(
        perturb, f"{prefix}.intermediate", act(_linear(attn_out, layer.intermediate.dense))
    )
    out = _layer_norm(_linear(inter, layer.output.dense) + attn_out, layer.output.LayerNorm)
    return _tap(perturb, f"{prefix}.output", out)


def manual_pooler(
    pooler, last_hidden: torch.Tensor, perturb: Perturb | None = None
) -> torch.Tensor:
    """tanh(dense(hidden state of the first token, [CLS]))."""
    return _tap(perturb, "pooler.output", torch.tanh(_linear(last_hidden[:, 0], pooler.dense)))


def manual_mlm_logits(
    predictions,
    last_hidden: torch.Tensor,
    act: Callable[[torch.Tensor], torch.Tensor],
    perturb: Perturb | None = None,
) -> torch.Tensor:
    """BertLMPredictionHead: LayerNorm(act(dense(h))) @ decoder^T + bias."""
    tr = predictions.transform
    h = _layer_norm(act(_linear(last_hidden, tr.dense)), tr.LayerNorm)
    h = _tap(perturb, "mlm.transform", h)
    bias = predictions.decoder.bias if predictions.decoder.bias is not None else predictions.bias
    return _tap(perturb, "mlm.logits", h @ predictions.decoder.weight.T + bias)


# --------------------------------------------------------------------------------------------
# the checks


def _max_abs(a: torch.Tensor, b: torch.Tensor, real: torch.Tensor | None = None) -> float:
    """Largest |a - b|; with ``real`` (B, T) only over real-token positions (dim 1 of a/b, or
    dim 2 for (B, heads, T, ...) attention tensors when ``real`` is given as (B, 1, T))."""
    d = (a.float() - b.float()).abs()
    if real is not None:
        d = d[real]
    return float(d.max()) if d.numel() else 0.0


def _verdict(name: str, err: float, tolerance: float, note: str) -> Check:
    ok = math.isfinite(err) and err <= tolerance
    return Check(name, err, tolerance, bool(ok), note)


@torch.inference_mode()
def check_embeddings(
    model, trace: Trace, tolerance: float, perturb: Perturb | None = None
) -> Check:
    name = "embeddings = LayerNorm(word + token_type + position)"
    if not is_bert(model):
        return _skip(name, tolerance, _not_bert(model))
    if getattr(model.config, "position_embedding_type", "absolute") != "absolute":
        return _skip(name, tolerance, "position embeddings are not absolute")
    emb = base_of(model).embeddings
    manual = manual_embeddings(
        emb, trace.inputs["input_ids"], trace.inputs["token_type_ids"], perturb=perturb
    )
    err = _max_abs(manual, trace.embedding_output)
    return _verdict(
        name, err, tolerance, f"vs model.embeddings(...); LayerNorm eps {emb.LayerNorm.eps:g}"
    )


@torch.inference_mode()
def check_hidden_last(
    model, trace: Trace, tolerance: float, perturb: Perturb | None = None
) -> Check:
    name = "hidden_states[-1] = last_hidden_state"
    real = trace.inputs["attention_mask"].bool()
    last = _tap(perturb, "hidden_states.last", trace.hidden_states[-1])
    err = _max_abs(last, trace.last_hidden_state, real)
    return _verdict(
        name, err, tolerance, f"{len(trace.hidden_states)} hidden states = embeddings + each layer"
    )


@torch.inference_mode()
def check_hidden_first(
    model, trace: Trace, tolerance: float, perturb: Perturb | None = None
) -> Check:
    name = "hidden_states[0] = embedding output"
    if not is_bert(model) or trace.embedding_output is None:
        return _skip(name, tolerance, _not_bert(model))
    real = trace.inputs["attention_mask"].bool()
    emb = _tap(perturb, "hidden_states.embedding", trace.embedding_output)
    err = _max_abs(trace.hidden_states[0], emb, real)
    return _verdict(name, err, tolerance, "hidden_states[0] vs model.embeddings(...) on its own")


@torch.inference_mode()
def check_attention(
    model, trace: Trace, layer: int, tolerance: float, perturb: Perturb | None = None
) -> Check:
    name = f"attention probabilities, layer {layer}, every head"
    if not is_bert(model):
        return _skip(name, tolerance, _not_bert(model))
    if trace.attentions is None:
        return _skip(name, tolerance, "the model returned no attention probabilities")
    cfg = model.config
    lay = base_of(model).encoder.layer[layer]
    mask = trace.inputs["attention_mask"]
    probs, _ = manual_attention_probs(
        lay.attention.self,
        trace.hidden_states[layer],
        mask,
        cfg.num_attention_heads,
        perturb,
        prefix=f"layer{layer}",
    )
    real_rows = mask.bool()[:, None, :].expand(-1, cfg.num_attention_heads, -1)  # (B, h, T)
    err = _max_abs(probs, trace.attentions[layer], real_rows)
    return _verdict(
        name,
        err,
        tolerance,
        f"softmax(QK^T/sqrt({cfg.hidden_size // cfg.num_attention_heads}) + mask), "
        f"{cfg.num_attention_heads} heads, real query rows",
    )


@torch.inference_mode()
def check_layer(
    model, trace: Trace, layer: int, tolerance: float, perturb: Perturb | None = None
) -> Check:
    name = f"encoder layer {layer} by hand"
    if not is_bert(model):
        return _skip(name, tolerance, _not_bert(model))
    cfg = model.config
    mask = trace.inputs["attention_mask"]
    out = manual_layer(
        base_of(model).encoder.layer[layer],
        trace.hidden_states[layer],
        mask,
        cfg.num_attention_heads,
        activation(cfg.hidden_act),
        perturb,
        prefix=f"layer{layer}",
    )
    err = _max_abs(out, trace.hidden_states[layer + 1], mask.bool())
    return _verdict(
        name,
        err,
        tolerance,
        f"attention + dense + residual + LayerNorm, {cfg.hidden_act} FFN + residual + LayerNorm "
        f"vs hidden_states[{layer + 1}]",
    )


@torch.inference_mode()
def check_pooler(model, trace: Trace, tolerance: float, perturb: Perturb | None = None) -> Check:
    name = "pooler = tanh(dense(CLS))"
    if not is_bert(model):
        return _skip(name, tolerance, _not_bert(model))
    if not model_has_pooler(model) or trace.pooler_output is None:
        return _skip(
            name,
            tolerance,
            f"{type(model).__name__} has no pooler (none in the checkpoint, or an MLM model)",
        )
    manual = manual_pooler(base_of(model).pooler, trace.last_hidden_state, perturb)
    err = _max_abs(manual, trace.pooler_output)
    return _verdict(name, err, tolerance, "vs pooler_output")


@torch.inference_mode()
def check_mlm(model, trace: Trace, tolerance: float, perturb: Perturb | None = None) -> Check:
    name = "MLM logits = head(last hidden state)"
    if not is_bert(model):
        return _skip(name, tolerance, _not_bert(model))
    if not model_has_mlm_head(model) or trace.logits is None:
        return _skip(name, tolerance, f"{type(model).__name__} has no MLM head")
    pred = model.cls.predictions
    manual = manual_mlm_logits(
        pred, trace.last_hidden_state, activation(model.config.hidden_act), perturb
    )
    err = _max_abs(manual, trace.logits, trace.inputs["attention_mask"].bool())
    tied = (
        pred.decoder.weight.data_ptr()
        == base_of(model).embeddings.word_embeddings.weight.data_ptr()
    )
    return _verdict(
        name,
        err,
        tolerance,
        "decoder(LayerNorm(act(dense(h)))), decoder weight "
        + ("tied to the word embeddings" if tied else "not tied"),
    )


def checks_on_trace(
    model, trace: Trace, tolerance: float, perturb: Perturb | None = None
) -> list[Check]:
    """Every check against one model run (attention and layer checks for every layer)."""
    checks = [
        check_embeddings(model, trace, tolerance, perturb),
        check_hidden_last(model, trace, tolerance, perturb),
        check_hidden_first(model, trace, tolerance, perturb),
    ]
    n_layers = len(trace.hidden_states) - 1
    if is_bert(model):
        checks += [check_attention(model, trace, i, tolerance, perturb) for i in range(n_layers)]
        checks += [check_layer(model, trace, i, tolerance, perturb) for i in range(n_layers)]
    else:
        checks += [
            _skip("attention probabilities, every layer and head", tolerance, _not_bert(model)),
            _skip("encoder layers by hand", tolerance, _not_bert(model)),
        ]
    checks += [
        check_pooler(model, trace, tolerance, perturb),
        check_mlm(model, trace, tolerance, perturb),
    ]
    return checks


def run_checks(
    model, inputs: dict[str, torch.Tensor], tolerance: float, perturb: Perturb | None = None
) -> list[Check]:
    """Run the model once on a padded batch, then every check against that run."""
    return checks_on_trace(model, trace_model(model, inputs), tolerance, perturb)


def checks_frame(checks: Sequence[Check]) -> pd.DataFrame:
    return pd.DataFrame([c.as_row() for c in checks]).reindex(
        columns=["name", "max_abs_error", "tolerance", "passed", "note"]
    )


# --------------------------------------------------------------------------------------------
# parameter count

_LAYER_RE = re.compile(r"(?:^|\.)(?:layer|layers|h|block|blocks)\.(\d+)\.")


def parameter_table(model) -> pd.DataFrame:
    """Parameters by component (embeddings, each encoder layer, pooler, head, other) and each
    one's share of the total. Shared (tied) tensors are counted once, under the first name
    (for BERT MLM models the decoder weight is the word-embedding matrix)."""
    base = base_of(model)
    prefix = getattr(model, "base_model_prefix", "")
    base_names = {n for n, _ in base.named_parameters()}
    counts: dict[str, int] = {}
    notes: dict[str, list[str]] = {}
    order: list[str] = []
    seen: dict[int, str] = {}
    for full, p in model.named_parameters(remove_duplicate=False):
        name = full[len(prefix) + 1 :] if prefix and full.startswith(prefix + ".") else full
        key = p.data_ptr()
        if key in seen:
            comp_first = seen[key]
            comp = _component(name, name in base_names)
            notes.setdefault(comp, []).append(f"{full} is tied to {comp_first} (counted once)")
            if comp not in counts:
                counts[comp] = 0
                order.append(comp)
            continue
        comp = _component(name, name in base_names)
        seen[key] = comp
        if comp not in counts:
            counts[comp] = 0
            order.append(comp)
        counts[comp] += p.numel()
    total = sum(counts.values())
    rows = [
        {
            "component": c,
            "parameters": counts[c],
            "share": counts[c] / total if total else math.nan,
            "note": "; ".join(notes.get(c, [])),
        }
        for c in order
    ]
    rows.append({"component": "total", "parameters": total, "share": 1.0, "note": ""})
    return pd.DataFrame(rows)


def _component(name: str, in_base: bool) -> str:
    if not in_base:
        return "head"
    if name.startswith("embeddings."):
        return "embeddings"
    if name.startswith("pooler."):
        return "pooler"
    m = _LAYER_RE.search(name)
    if m:
        return f"encoder layer {int(m.group(1))}"
    return "other"


# --------------------------------------------------------------------------------------------
# the stage


def run_internals(
    model,
    tokenizer,
    texts: Sequence[str],
    n_sentences: int,
    max_length: int,
    tolerance: float,
    perturb: Perturb | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check table and parameter table for one model (on CPU, fp32, eval mode)."""
    model = model.eval()
    if next(model.parameters()).device.type != "cpu":
        model = model.cpu()
    max_length = min(max_length, getattr(model.config, "max_position_embeddings", max_length))
    chosen = select_sentences(tokenizer, texts, n_sentences, max_length)
    inputs = prepare_inputs(tokenizer, chosen, max_length)
    checks = run_checks(model, inputs, tolerance, perturb)
    for c in checks:
        level = logging.INFO if c.passed is not False else logging.WARNING
        log.log(level, "%s: %s (%s)", c.name, c.passed, c.max_abs_error)
    return checks_frame(checks), parameter_table(model)
