"""Masked-language-model objectives, data collators and reporting (training itself runs on
``transformers.Trainer`` in :mod:`bertlens.training`, modelled on Hugging Face's ``run_mlm.py``).

* :class:`TrainArgs`: every setting of a run, built from one ``training:`` entry of the config.
* :func:`mask_tokens`: BERT's 15% / 80-10-10 masking, token- or whole-word-level, vectorised.
* :class:`MlmCollator`: Trainer's data collator for the objectives ``bert``, ``notebook`` (seed
  002 literally) and ``all_tokens``; :class:`SparseMlm`: the loss at labelled positions only.
* :func:`prepare`: a run's split, encoded data, collator and fixed masked held-out sentences.
* :func:`evaluate`, :func:`plot_curves`, :func:`write_summary_html`: held-out scores and reports.

The encoded corpus (token ids with the word of each token) comes from :mod:`bertlens.encoding`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from .encoding import EncodedCorpus, encode_texts, pack_sentences
from .io import write_html_table
from .models import model_has_mlm_head
from .stage import UserError

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
METRIC_COLUMNS = [
    "step",
    "epoch",
    "train_loss",
    "eval_loss",
    "perplexity",
    "accuracy",
    "baseline_accuracy",
    "learning_rate",
    "tokens_seen",
    "elapsed_s",
]
#: bert: BERT's masking, loss at the chosen positions; notebook: seed 002 (15% of non-special
#: tokens -> [MASK], drawn once before training, labels = input ids everywhere, pads included);
#: all_tokens: BERT's masking afresh each batch, loss at every real token (ELECTRA's ablation).
OBJECTIVES = ("bert", "notebook", "all_tokens")

#: Settings that may change between a checkpoint and its resumption (how long, how often, where).
_RESUMABLE_CHANGES = frozenset(
    {"epochs", "max_steps", "eval_every", "checkpoint_every", "device", "bf16", "name"}
)


# --------------------------------------------------------------------------------------------------
# Arguments


# ``training:`` keys that map one to one onto TrainArgs fields
_SIMPLE_KEYS = (
    "init",
    "max_length",
    "batch_size",
    "gradient_accumulation",
    "learning_rate",
    "weight_decay",
    "warmup_ratio",
    "lr_schedule",
    "max_grad_norm",
    "epochs",
    "max_steps",
    "eval_fraction",
    "eval_max_sentences",
    "eval_every",
    "checkpoint_every",
    "bf16",
    "seed",
    "objective",
    "devices",
    "packing",
)


@dataclass
class TrainArgs:
    """Every setting of one MLM training run (one entry of ``training:`` in the config, with the
    schema's defaults filled in: no value here has a default of its own)."""

    column: str
    name: str
    init: str
    base_model: str | None
    # vocabulary (scratch only)
    vocab_size: int
    vocab_min_frequency: int
    mecab_dic: str
    special_tokens: list[str]
    # model (scratch only)
    bert: dict[str, Any]
    # masking
    mlm_probability: float
    mask_replace: float
    random_replace: float
    whole_word_mask: bool
    # data and optimisation
    max_length: int
    batch_size: int
    gradient_accumulation: int
    learning_rate: float
    weight_decay: float
    warmup_ratio: float
    lr_schedule: str
    max_grad_norm: float
    epochs: float
    max_steps: int | None
    eval_fraction: float
    eval_max_sentences: int | None
    eval_every: int
    checkpoint_every: int
    bf16: bool
    seed: int
    objective: str
    packing: bool
    devices: int
    device: str

    @classmethod
    def from_config(cls, entry: Mapping[str, Any], name: str, device: str) -> TrainArgs:
        """Build from a validated ``training:`` entry (the workflow's schema has checked every
        value and filled in the defaults; ``check_config`` the settings that go together)."""
        vocab, masking = entry["vocab"], entry["masking"]
        return cls(
            column=entry["column"],
            name=name,
            base_model=entry.get("base_model"),  # no default: only runs that start from a model
            vocab_size=int(vocab["size"]),
            vocab_min_frequency=int(vocab["min_frequency"]),
            mecab_dic=vocab["mecab_dic"],
            special_tokens=list(vocab["special_tokens"]),
            bert=dict(entry["bert"]),
            mlm_probability=float(masking["probability"]),
            mask_replace=float(masking["mask_replace"]),
            random_replace=float(masking["random_replace"]),
            whole_word_mask=bool(masking["whole_word"]),
            device=device,
            **{k: entry[k] for k in _SIMPLE_KEYS},
        )

    def log_settings(self, logger: logging.Logger) -> None:
        """Log every setting, one a line (as run_mlm.py does)."""
        logger.info("training settings (run %s):", self.name)
        for key, value in asdict(self).items():
            logger.info("  %-22s %s", key, value)

    def resume_key(self) -> dict[str, Any]:
        """The settings a checkpoint must share to be resumed (all but duration and cadence)."""
        return {k: v for k, v in asdict(self).items() if k not in _RESUMABLE_CHANGES}


# --------------------------------------------------------------------------------------------------
# Masking


def random_token_pool(vocab_size: int, special_ids: Sequence[int]) -> torch.Tensor:
    """The ids a random replacement may draw: every id below ``vocab_size`` except special ones."""
    ids = torch.arange(vocab_size)
    special = torch.tensor(sorted({int(i) for i in special_ids if i is not None}), dtype=torch.long)
    return ids[~torch.isin(ids, special)]


def mask_tokens(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    special_mask: torch.Tensor,
    word_ids: torch.Tensor | None,
    vocab_size: int,
    mask_id: int,
    probability: float,
    mask_replace: float,
    random_replace: float,
    generator: torch.Generator | None = None,
    random_pool: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking of a padded batch; returns ``(inputs, labels)``.

    Each non-special, non-padding token is chosen with ``probability`` (or, when ``word_ids`` is
    given, each word: all tokens with the same non-negative word id in a row are chosen together).
    A chosen token is replaced by ``mask_id`` with probability ``mask_replace``, by a random token
    with probability ``random_replace`` (drawn from ``random_pool``; pass
    :func:`random_token_pool` of the tokenizer's special ids, as :func:`train` does, so that no
    special token such as [UNK] is ever drawn; without it every id below ``vocab_size`` except
    ``mask_id`` and the ids at this batch's special positions may be drawn), and kept
    otherwise; in whole-word mode that decision is taken once per word. ``labels`` holds the
    original id at chosen positions and -100 elsewhere. Vectorised; ``generator`` (CPU) makes it
    reproducible.
    """
    shape = input_ids.shape
    eligible = attention_mask.bool() & ~special_mask.bool()
    if word_ids is None:
        chosen = (torch.rand(shape, generator=generator) < probability) & eligible
        decide = torch.rand(shape, generator=generator)
    else:
        eligible &= word_ids >= 0
        n_words = int(word_ids.max().item()) + 1 if word_ids.numel() else 0
        n_words = max(n_words, 1)
        index = word_ids.clamp(min=0)
        word_chosen = torch.rand((shape[0], n_words), generator=generator) < probability
        word_decide = torch.rand((shape[0], n_words), generator=generator)
        chosen = torch.gather(word_chosen, 1, index) & eligible
        decide = torch.gather(word_decide, 1, index)
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    inputs = input_ids.clone()
    to_mask = chosen & (decide < mask_replace)
    to_random = chosen & (decide >= mask_replace) & (decide < mask_replace + random_replace)
    inputs[to_mask] = mask_id
    n_random = int(to_random.sum().item())
    if n_random:
        if random_pool is None:
            specials = torch.unique(input_ids[special_mask.bool()]).tolist()
            random_pool = random_token_pool(vocab_size, [*specials, mask_id])
        pick = torch.randint(len(random_pool), (n_random,), generator=generator)
        inputs[to_random] = random_pool[pick].to(inputs.dtype)
    return inputs, labels


# --------------------------------------------------------------------------------------------------
# Objectives: datasets and data collators (what Trainer's DataLoader calls)


class EncodedDataset(torch.utils.data.Dataset):
    """Encoded sentences as Trainer features; ``masked_ids`` holds the notebook objective's masks,
    drawn once before training (:func:`notebook_masks`)."""

    def __init__(self, corpus: EncodedCorpus, masked_ids: list[torch.Tensor] | None = None):
        self.corpus, self.masked_ids = corpus, masked_ids
        self.lengths = corpus.lengths.tolist()

    def __len__(self) -> int:
        return len(self.corpus.input_ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = {
            "index": i,
            "input_ids": self.corpus.input_ids[i],
            "word_ids": self.corpus.word_ids[i],
        }
        if self.masked_ids is not None:
            item["masked_ids"] = self.masked_ids[i]
        return item


def notebook_masks(
    corpus: EncodedCorpus, special_ids: torch.Tensor, mask_id: int, probability: float, seed: int
) -> list[torch.Tensor]:
    """Seed 002's masks: each token other than ``special_ids`` (the seed: [CLS], [SEP], [PAD])
    becomes [MASK] with ``probability``, drawn once for the whole corpus (the same masks in every
    epoch)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for ids in corpus.input_ids:
        pick = (torch.rand(ids.shape, generator=gen) < probability) & ~torch.isin(ids, special_ids)
        out.append(torch.where(pick, torch.full_like(ids, mask_id), ids))
    return out


def _pad(rows: Sequence[torch.Tensor], value: int, length: int | None = None) -> torch.Tensor:
    from torch.nn.utils.rnn import pad_sequence

    out = pad_sequence(list(rows), batch_first=True, padding_value=value)
    if length is not None and out.shape[1] < length:
        out = torch.nn.functional.pad(out, (0, length - out.shape[1]), value=value)
    return out


def collate(
    corpus: EncodedCorpus,
    indices: Sequence[int] | np.ndarray,
    pad_id: int,
    special_ids: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Pad the chosen sentences to the longest of them (dynamic padding)."""
    ids = _pad([corpus.input_ids[i] for i in indices], pad_id)
    words = _pad([corpus.word_ids[i] for i in indices], -1)
    lengths = torch.tensor([len(corpus.input_ids[i]) for i in indices])
    attention = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).long()
    special = torch.isin(ids, special_ids) | (attention == 0)
    return {
        "input_ids": ids,
        "attention_mask": attention,
        "word_ids": words,
        "special_mask": special,
    }


@dataclass
class MlmCollator:
    """Trainer's data collator for every objective (see ``OBJECTIVES``).

    ``bert`` and ``all_tokens``: dynamic padding and fresh masks per batch, drawn from a
    generator seeded by ``seed`` and the batch's sentence indices (so a resumed run draws the
    masks the uninterrupted run drew, whatever its data loader fetched ahead), whole-word groups when
    ``whole_word``; labels at the chosen positions (``bert``) or at every real token
    (``all_tokens``). ``notebook``: the features carry their fixed masks; every row is padded to
    ``max_length`` and the labels are the input ids at every position, pads included.
    """

    objective: str
    pad_id: int
    mask_id: int
    vocab_size: int
    special_ids: torch.Tensor
    probability: float
    mask_replace: float
    random_replace: float
    whole_word: bool
    max_length: int
    seed: int

    def __post_init__(self):
        self.random_pool = random_token_pool(self.vocab_size, self.special_ids.tolist())

    def __call__(self, features: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        if self.objective == "notebook":
            return self._notebook(features)
        corpus = EncodedCorpus(
            [f["input_ids"] for f in features], [f["word_ids"] for f in features]
        )
        b = collate(corpus, range(len(features)), self.pad_id, self.special_ids)
        key = [self.seed, *(int(f.get("index", 0)) for f in features)]
        gen = torch.Generator().manual_seed(int(np.random.SeedSequence(key).generate_state(1)[0]))
        inputs, labels = mask_tokens(
            b["input_ids"],
            b["attention_mask"],
            b["special_mask"],
            b["word_ids"] if self.whole_word else None,
            vocab_size=self.vocab_size,
            mask_id=self.mask_id,
            probability=self.probability,
            mask_replace=self.mask_replace,
            random_replace=self.random_replace,
            generator=gen,
            random_pool=self.random_pool,
        )
        if self.objective == "all_tokens":
            labels = torch.where(b["attention_mask"].bool(), b["input_ids"], IGNORE_INDEX)
        return {"input_ids": inputs, "attention_mask": b["attention_mask"], "labels": labels}

    def _notebook(self, features: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        lengths = torch.tensor([len(f["input_ids"]) for f in features])
        width = max(self.max_length, int(lengths.max()))
        attention = (torch.arange(width)[None, :] < lengths[:, None]).long()
        return {
            "input_ids": _pad([f["masked_ids"] for f in features], self.pad_id, width),
            "attention_mask": attention,
            "labels": _pad([f["input_ids"] for f in features], self.pad_id, width),
        }


# --------------------------------------------------------------------------------------------------
# Loss and evaluation


def _masked_logits(model, input_ids, attention_mask, positions: torch.Tensor) -> torch.Tensor:
    """Logits at the masked positions only (for a BERT MLM the head runs on those rows alone)."""
    if hasattr(model, "bert") and model_has_mlm_head(model):
        hidden = model.bert(input_ids=input_ids, attention_mask=attention_mask)[0]
        return model.cls(hidden[positions])
    return model(input_ids=input_ids, attention_mask=attention_mask).logits[positions]


class SparseMlm(torch.nn.Module):
    """The model as Trainer sees it: the loss summed over the labelled positions only, with the
    MLM head run on those rows alone (Cramming's sparse prediction); ``count`` is how many."""

    def __init__(self, mlm):
        super().__init__()
        self.mlm = mlm
        self.config = mlm.config

    def forward(self, input_ids, attention_mask, labels):
        positions = labels != IGNORE_INDEX
        logits = _masked_logits(self.mlm, input_ids, attention_mask, positions)
        target = labels[positions]
        loss = torch.nn.functional.cross_entropy(logits.float(), target, reduction="sum")
        return {"loss": loss, "count": positions.sum()}


@dataclass
class EvalSet:
    batches: list[dict[str, torch.Tensor]]
    masked: int


def eval_set(
    corpus: EncodedCorpus, args: TrainArgs, collator: MlmCollator, batch_size: int
) -> EvalSet:
    """The held-out sentences, masked once with a fixed generator so every evaluation scores the
    same positions (BERT's masking of the run; the notebook objective's: [MASK] always)."""
    gen = torch.Generator().manual_seed(args.seed + 1_000_003)
    notebook = args.objective == "notebook"
    order = np.argsort(-corpus.lengths, kind="stable")
    batches, masked = [], 0
    for start in range(0, len(order), batch_size):
        b = collate(
            corpus, order[start : start + batch_size], collator.pad_id, collator.special_ids
        )
        inputs, labels = mask_tokens(
            b["input_ids"],
            b["attention_mask"],
            b["special_mask"],
            b["word_ids"] if args.whole_word_mask and not notebook else None,
            vocab_size=collator.vocab_size,
            mask_id=collator.mask_id,
            probability=args.mlm_probability,
            mask_replace=1.0 if notebook else args.mask_replace,
            random_replace=0.0 if notebook else args.random_replace,
            generator=gen,
            random_pool=collator.random_pool,
        )
        masked += int((labels != IGNORE_INDEX).sum())
        batches.append(
            {"input_ids": inputs, "attention_mask": b["attention_mask"], "labels": labels}
        )
    return EvalSet(batches, masked)


@torch.no_grad()
def evaluate(
    model, data: EvalSet, device, baseline_id: int, bf16: bool = False
) -> dict[str, float]:
    """Loss, perplexity and accuracy on the masked held-out positions, and the accuracy of always
    predicting ``baseline_id`` there."""
    was_training = model.training
    model.eval()
    loss_sum, n, correct, base = 0.0, 0, 0, 0
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    for batch in data.batches:
        labels = batch["labels"].to(device)
        positions = labels != IGNORE_INDEX
        if not positions.any():
            continue
        with autocast:
            ids, attention = batch["input_ids"].to(device), batch["attention_mask"].to(device)
            logits = _masked_logits(model, ids, attention, positions)
        target = labels[positions]
        loss_sum += float(
            torch.nn.functional.cross_entropy(logits.float(), target, reduction="sum")
        )
        n += int(target.numel())
        correct += int((logits.argmax(-1) == target).sum())
        base += int((target == baseline_id).sum())
    if was_training:
        model.train()
    loss = loss_sum / n if n else float("nan")
    return {
        "eval_loss": loss,
        "perplexity": math.exp(loss) if loss < 700 else float("inf"),
        "accuracy": correct / n if n else float("nan"),
        "baseline_accuracy": base / n if n else float("nan"),
    }


def summarize(args: TrainArgs, rows: list[dict[str, Any]], **facts: Any) -> dict[str, Any]:
    first, last = rows[0], rows[-1]
    ratio = last["eval_loss"] / first["eval_loss"] if first["eval_loss"] else float("nan")
    return {
        "run": args.name,
        "settings": asdict(args),
        **facts,
        "first_eval_loss": first["eval_loss"],
        "last_eval_loss": last["eval_loss"],
        "eval_loss_ratio": ratio,
        "final_perplexity": last["perplexity"],
        "final_accuracy": last["accuracy"],
        "baseline_accuracy": last["baseline_accuracy"],
        "beats_baseline": bool(last["accuracy"] > last["baseline_accuracy"]),
    }


# --------------------------------------------------------------------------------------------------
# The data of a run


@dataclass
class Prepared:
    """Everything the Trainer needs besides the model, and the facts the summary reports."""

    train: EncodedDataset
    eval: EvalSet
    collator: MlmCollator
    baseline_id: int
    facts: dict[str, Any]


def _split(args: TrainArgs, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    where = f"training run '{args.name}'"
    if len(texts) < 2:
        raise UserError(
            f"{where} needs at least 2 non-empty texts in column '{args.column}' (one to train "
            f"on, one to hold out; got {len(texts)}); add text to the corpus or train on another "
            "column"
        )
    perm = np.random.default_rng(args.seed).permutation(len(texts))
    n_eval = max(1, round(len(texts) * args.eval_fraction))
    n_train = len(texts) - n_eval
    if n_train < 1:
        raise UserError(
            f"{where}: eval_fraction {args.eval_fraction:g} holds out {n_eval} of {len(texts)} "
            "sentences and leaves none to train on; lower eval_fraction or add text to the corpus"
        )
    if n_train < args.batch_size:
        raise UserError(
            f"{where}: {n_train} training sentences (of {len(texts)}; {n_eval} held out by "
            f"eval_fraction {args.eval_fraction:g}) do not fill one batch of batch_size "
            f"{args.batch_size}; set batch_size to at most {n_train} or add text to the corpus"
        )
    scored = n_eval if args.eval_max_sentences is None else min(n_eval, args.eval_max_sentences)
    return np.sort(perm[n_eval:]), np.sort(perm[:scored])


def prepare(args: TrainArgs, texts: list[str], tokenizer, max_length: int) -> Prepared:
    """Split, encode, build the collator of the objective and the fixed masked eval set."""
    train_idx, eval_idx = _split(args, texts)
    encoded = encode_texts(tokenizer, texts, max_length)
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
    collator = MlmCollator(
        objective=args.objective,
        pad_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
        mask_id=tokenizer.mask_token_id,
        vocab_size=len(tokenizer),
        special_ids=special,
        probability=args.mlm_probability,
        mask_replace=args.mask_replace,
        random_replace=args.random_replace,
        whole_word=args.whole_word_mask,
        max_length=max_length,
        seed=args.seed,
    )
    train_data = encoded.subset(train_idx)
    if args.packing:
        train_data = pack_sentences(train_data, max_length, args.seed)
    masked = None
    if args.objective == "notebook":
        keep = [tokenizer.cls_token_id, tokenizer.sep_token_id, collator.pad_id]  # as seed 002
        masked = notebook_masks(
            train_data, torch.tensor(keep), collator.mask_id, args.mlm_probability, args.seed
        )
    held_out = eval_set(encoded.subset(eval_idx), args, collator, args.batch_size)
    if held_out.masked == 0:
        raise UserError(
            f"training run '{args.name}': the {len(eval_idx)} held-out sentences got no masked "
            f"tokens (masking probability {args.mlm_probability:g}), so nothing can be evaluated; "
            "raise eval_fraction or add text to the corpus"
        )
    counts = np.bincount(torch.cat(train_data.input_ids).numpy(), minlength=len(tokenizer))
    counts[special.numpy()] = 0
    facts = {
        "train_sentences": len(train_idx),
        "train_rows": len(train_data.input_ids),
        "eval_sentences": len(eval_idx),
        "eval_masked_tokens": held_out.masked,
        "truncated_sentences": encoded.truncated,
        "max_length": max_length,
    }
    dataset = EncodedDataset(train_data, masked)
    return Prepared(dataset, held_out, collator, int(counts.argmax()), facts)


# --------------------------------------------------------------------------------------------------
# Report outputs


def plot_curves(metrics: pd.DataFrame, out_png: str | os.PathLike, title: str = "") -> None:
    """Loss, perplexity and accuracy (with the most-frequent-token baseline) against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import atomic_path

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    # a CSV read back with keep_default_na=False has "" for the missing step-0 train loss
    m = metrics.apply(pd.to_numeric, errors="coerce").sort_values("step")
    ax = axes[0]
    ax.plot(m["step"], m["train_loss"], label="train (since previous eval)", marker=".")
    ax.plot(m["step"], m["eval_loss"], label="held-out", marker=".")
    ax.set(xlabel="optimizer step", ylabel="cross-entropy (masked tokens)", title="loss")
    ax.legend()
    ax = axes[1]
    ax.plot(m["step"], m["perplexity"], marker=".", color="C1")
    ax.set(xlabel="optimizer step", ylabel="perplexity", title="held-out perplexity", yscale="log")
    ax = axes[2]
    ax.plot(m["step"], m["accuracy"], marker=".", color="C2", label="model")
    ax.plot(m["step"], m["baseline_accuracy"], ls="--", color="grey", label="most frequent token")
    ax.set(
        xlabel="optimizer step", ylabel="accuracy", title="masked-token accuracy", ylim=(0, None)
    )
    ax.legend()
    for ax in axes:
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def write_summary_html(summary: dict[str, Any], out_html: str | os.PathLike) -> None:
    """The summary as a two-column table (results first, then every setting)."""
    rows = [(k, v) for k, v in summary.items() if k != "settings"]
    rows += [(f"setting: {k}", v) for k, v in summary.get("settings", {}).items()]
    df = pd.DataFrame(
        [
            (k, json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v)
            for k, v in rows
        ],
        columns=["item", "value"],
    )
    df["value"] = df["value"].map(lambda v: f"{v:.4g}" if isinstance(v, float) else str(v))
    verdict = "beats" if summary.get("beats_baseline") else "does NOT beat"
    write_html_table(
        out_html,
        df,
        title=f"MLM training: {summary.get('run', '')}",
        note=(
            f"Final masked-token accuracy {summary.get('final_accuracy', float('nan')):.4f} {verdict} "
            f"the baseline of always predicting the most frequent training token "
            f"({summary.get('baseline_accuracy', float('nan')):.4f}); held-out loss went from "
            f"{summary.get('first_eval_loss', float('nan')):.4f} to {summary.get('last_eval_loss', float('nan')):.4f}."
        ),
    )


__all__ = [
    "OBJECTIVES",
    "TrainArgs",
    "EncodedDataset",
    "MlmCollator",
    "SparseMlm",
    "mask_tokens",
    "notebook_masks",
    "random_token_pool",
    "collate",
    "eval_set",
    "evaluate",
    "summarize",
    "plot_curves",
    "write_summary_html",
]
