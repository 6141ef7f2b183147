"""Masked-language-model training of a BERT, modelled on Hugging Face's ``run_mlm.py``.

* :class:`TrainArgs`: every setting of a run, built from one ``training:`` entry of the config.
* :func:`encode_texts`: token ids plus the word each token belongs to (for whole-word masking).
* :func:`mask_tokens`: BERT's 15% / 80-10-10 masking, token- or whole-word-level, vectorised.
* :func:`length_grouped_batches`: dynamic padding with batches of similar length.
* :func:`train`: the loop, with evaluation, atomic checkpoints and resumption.

Word groups for whole-word masking
----------------------------------
``BertJapaneseTokenizer`` (MeCab + WordPiece) splits a text into MeCab words first and runs WordPiece
on each word separately, so the first piece of a word never starts with ``##`` and every later piece
does. The rule "a new word starts at each piece without ``##``" therefore gives exactly the MeCab
words, with one exception: a MeCab word whose surface itself begins with ``##`` (MeCab makes ``##`` a
word of its own in ``落ち##る``) can match a ``##...`` vocabulary entry and would be glued to the
previous word. :func:`encode_texts` avoids the heuristic altogether for BertJapaneseTokenizer: it runs
``tokenizer.word_tokenizer`` and then ``tokenizer.subword_tokenizer`` on each word (what the
tokenizer does internally), which yields the same pieces with exact word boundaries (tested against
``tokenizer.tokenize``). Texts that contain a special-token string such as ``[MASK]`` go through
``tokenizer.tokenize`` and the ``##`` rule; fast tokenizers use their own ``word_ids()``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .io import read_json, write_html_table, write_json, write_sidecar, write_table
from .stage import UserError, pick_device

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
#: Batches per length-sorted chunk in :func:`length_grouped_batches`.
CHUNK_BATCHES = 50
#: How many checkpoints stay on disk.
KEEP_CHECKPOINTS = 2
_CKPT_RE = re.compile(r"^step-(\d{8})$")
#: errno values of a full disk or an exceeded quota.
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})

BERT_DEFAULTS: dict[str, Any] = {
    "num_hidden_layers": 4,
    "hidden_size": 256,
    "num_attention_heads": 4,
    "intermediate_size": 1024,
    "max_position_embeddings": 128,
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
}
#: Settings that may change between a checkpoint and its resumption (how long, how often, where).
_RESUMABLE_CHANGES = frozenset(
    {"epochs", "max_steps", "eval_every", "checkpoint_every", "device", "bf16", "name"}
)


# --------------------------------------------------------------------------------------------------
# Arguments


# ``training:`` keys that map one to one onto TrainArgs fields
_SIMPLE_KEYS = (
    "init",
    "base_model",
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
    "eval_every",
    "checkpoint_every",
    "bf16",
    "seed",
)


@dataclass
class TrainArgs:
    """Every setting of one MLM training run (one entry of ``training:`` in the config)."""

    column: str
    name: str = "run"
    init: str = "scratch"
    base_model: str | None = None
    # vocabulary (scratch only)
    vocab_size: int = 8000
    vocab_min_frequency: int = 2
    mecab_dic: str = "ipadic"
    special_tokens: list[str] = field(
        default_factory=lambda: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    )
    # model (scratch only)
    bert: dict[str, Any] = field(default_factory=lambda: dict(BERT_DEFAULTS))
    # masking
    mlm_probability: float = 0.15
    mask_replace: float = 0.8
    random_replace: float = 0.1
    whole_word_mask: bool = False
    # data and optimisation
    max_length: int = 128
    batch_size: int = 32
    gradient_accumulation: int = 1
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    lr_schedule: str = "linear"
    max_grad_norm: float = 1.0
    epochs: float = 2.0
    max_steps: int | None = None
    eval_fraction: float = 0.1
    eval_every: int = 100
    checkpoint_every: int = 200
    bf16: bool = True
    seed: int = 42
    device: str = "auto"

    @classmethod
    def from_config(
        cls, entry: Mapping[str, Any], name: str = "run", device: str = "auto"
    ) -> TrainArgs:
        """Build from a ``training:`` entry (schema keys; missing keys take the schema defaults)."""
        known = {"column", "vocab", "bert", "masking", *_SIMPLE_KEYS}
        unknown = sorted(set(entry) - known)
        if unknown:
            raise UserError(
                f"training run '{name}': unknown setting(s) {', '.join(unknown)}; see "
                "schemas/config.schema.yaml for the keys of a training run"
            )
        if "column" not in entry:
            raise UserError(f"training run '{name}': `column:` is required (e.g. column: easy_ja)")
        from .vocab import vocab_settings

        vocab = vocab_settings(entry.get("vocab"))
        masking = dict(entry.get("masking") or {})
        bert = {**BERT_DEFAULTS, **(entry.get("bert") or {})}
        for block, given, allowed in (
            ("masking", masking, ("probability", "mask_replace", "random_replace", "whole_word")),
            ("bert", bert, tuple(BERT_DEFAULTS)),
        ):
            extra = sorted(set(given) - set(allowed))
            if extra:
                raise UserError(
                    f"training run '{name}': unknown {block} setting(s) {', '.join(extra)}; "
                    f"use {', '.join(allowed)}"
                )
        defaults = cls(column=entry["column"])
        simple = {k: entry[k] for k in _SIMPLE_KEYS if k in entry}
        args = cls(
            column=entry["column"],
            name=name,
            vocab_size=int(vocab["size"]),
            vocab_min_frequency=int(vocab["min_frequency"]),
            mecab_dic=vocab["mecab_dic"],
            special_tokens=list(vocab["special_tokens"]),
            bert=bert,
            mlm_probability=float(masking.get("probability", defaults.mlm_probability)),
            mask_replace=float(masking.get("mask_replace", defaults.mask_replace)),
            random_replace=float(masking.get("random_replace", defaults.random_replace)),
            whole_word_mask=bool(masking.get("whole_word", defaults.whole_word_mask)),
            device=device,
            **simple,
        )
        args.validate()
        return args

    def validate(self) -> None:
        """Raise :class:`UserError` for settings that cannot work together."""
        where = f"training run '{self.name}'"
        if self.init not in ("scratch", "pretrained"):
            raise UserError(f"{where}: init must be scratch or pretrained (got '{self.init}')")
        if self.init == "pretrained" and not self.base_model:
            raise UserError(
                f"{where}: init: pretrained needs `base_model:` naming an entry of `models:`"
            )
        if self.mask_replace + self.random_replace > 1 + 1e-9:
            raise UserError(
                f"{where}: masking mask_replace + random_replace = "
                f"{self.mask_replace + self.random_replace:g} > 1; they are shares of the chosen "
                "tokens (BERT: 0.8 and 0.1)"
            )
        if not 0 < self.mlm_probability <= 1:
            raise UserError(f"{where}: masking probability must be in (0, 1]")
        if not 0 < self.eval_fraction < 1:
            raise UserError(f"{where}: eval_fraction must be between 0 and 1")
        if self.lr_schedule not in ("linear", "constant"):
            raise UserError(
                f"{where}: lr_schedule must be linear (warmup, then linear decay to 0) or "
                f"constant (warmup, then constant); got '{self.lr_schedule}'"
            )
        if self.bert["hidden_size"] % self.bert["num_attention_heads"]:
            raise UserError(
                f"{where}: bert hidden_size {self.bert['hidden_size']} is not a multiple of "
                f"num_attention_heads {self.bert['num_attention_heads']}"
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
# Tokenization with word groups


@dataclass
class EncodedCorpus:
    """Token ids with special tokens, and the word index of every token (-1 for special tokens)."""

    input_ids: list[torch.Tensor]
    word_ids: list[torch.Tensor]
    truncated: int = 0

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter(
            (len(x) for x in self.input_ids), dtype=np.int64, count=len(self.input_ids)
        )

    def subset(self, indices: Sequence[int] | np.ndarray) -> EncodedCorpus:
        return EncodedCorpus(
            [self.input_ids[i] for i in indices],
            [self.word_ids[i] for i in indices],
            self.truncated,
        )


def _is_word_split_japanese(tokenizer) -> bool:
    return (
        type(tokenizer).__name__ == "BertJapaneseTokenizer"
        and getattr(tokenizer, "do_word_tokenize", False)
        and getattr(tokenizer, "do_subword_tokenize", False)
    )


def words_from_continuation(pieces: Sequence[str], prefix: str = "##") -> list[int]:
    """Word index per piece by the WordPiece rule: a piece starting with ``prefix`` continues the
    previous word, any other piece starts a new one."""
    out: list[int] = []
    word = -1
    for piece in pieces:
        if not (piece.startswith(prefix) and word >= 0):
            word += 1
        out.append(word)
    return out


def japanese_word_pieces(tokenizer, text: str) -> tuple[list[str], list[int]]:
    """Pieces of ``text`` and their MeCab word index, by tokenizing each MeCab word separately
    (exactly what ``BertJapaneseTokenizer._tokenize`` does, keeping the word boundaries)."""
    pieces: list[str] = []
    words: list[int] = []
    for i, word in enumerate(tokenizer.word_tokenizer.tokenize(text)):
        sub = tokenizer.subword_tokenizer.tokenize(word)
        pieces.extend(sub)
        words.extend([i] * len(sub))
    return pieces, words


def encode_texts(tokenizer, texts: Sequence[str], max_length: int) -> EncodedCorpus:
    """Tokenize ``texts`` as ``[CLS] pieces [SEP]`` (at most ``max_length`` tokens) with word ids.

    See the module docstring for how word groups are found for each kind of tokenizer.
    """
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    if cls_id is None or sep_id is None:
        raise UserError(
            f"tokenizer {type(tokenizer).__name__} has no CLS/SEP tokens; MLM training here needs a "
            "BERT-style tokenizer"
        )
    room = max_length - 2
    cores: list[tuple[list[int], list[int]]] = []
    if _is_word_split_japanese(tokenizer):
        specials = [t for t in tokenizer.all_special_tokens if t]
        for text in texts:
            if any(tok in text for tok in specials):
                pieces = tokenizer.tokenize(text)
                words = words_from_continuation(pieces)
            else:
                pieces, words = japanese_word_pieces(tokenizer, text)
            cores.append((tokenizer.convert_tokens_to_ids(pieces), words))
    elif getattr(tokenizer, "is_fast", False):
        batch = tokenizer(list(texts), add_special_tokens=False)
        for i, ids in enumerate(batch["input_ids"]):
            words = [-1 if w is None else w for w in batch.word_ids(i)]
            cores.append((list(ids), words))
    else:
        for text in texts:
            pieces = tokenizer.tokenize(text)
            cores.append((tokenizer.convert_tokens_to_ids(pieces), words_from_continuation(pieces)))
    input_ids, word_ids, truncated = [], [], 0
    for ids, words in cores:
        if len(ids) > room:
            truncated += 1
            ids, words = ids[:room], words[:room]
        input_ids.append(torch.tensor([cls_id, *ids, sep_id], dtype=torch.long))
        word_ids.append(torch.tensor([-1, *words, -1], dtype=torch.long))
    return EncodedCorpus(input_ids, word_ids, truncated)


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
    probability: float = 0.15,
    mask_replace: float = 0.8,
    random_replace: float = 0.1,
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
# Batching


def length_grouped_batches(
    lengths: np.ndarray, batch_size: int, seed: int, epoch: int, chunk_batches: int = CHUNK_BATCHES
) -> list[np.ndarray]:
    """Shuffled batches of similar-length sentences for one epoch (reproducible from seed, epoch).

    The sentences are shuffled, cut into chunks of ``chunk_batches * batch_size``, each chunk is
    sorted by length (longest first) and cut into batches, and the batches are shuffled.
    """
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(len(lengths))
    chunk = max(batch_size * chunk_batches, batch_size)
    batches: list[np.ndarray] = []
    for start in range(0, len(perm), chunk):
        part = perm[start : start + chunk]
        part = part[np.argsort(-lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def collate(
    corpus: EncodedCorpus,
    indices: Sequence[int] | np.ndarray,
    pad_id: int,
    special_ids: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Pad the chosen sentences to the longest of them (dynamic padding)."""
    from torch.nn.utils.rnn import pad_sequence

    ids = pad_sequence(
        [corpus.input_ids[i] for i in indices], batch_first=True, padding_value=pad_id
    )
    words = pad_sequence([corpus.word_ids[i] for i in indices], batch_first=True, padding_value=-1)
    lengths = torch.tensor([len(corpus.input_ids[i]) for i in indices])
    attention = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).long()
    special = torch.isin(ids, special_ids) | (attention == 0)
    return {
        "input_ids": ids,
        "attention_mask": attention,
        "word_ids": words,
        "special_mask": special,
    }


class _BatchStream:
    """Micro-batch number ``g`` of an endless sequence of epochs (for exact resumption)."""

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int):
        self.lengths, self.batch_size, self.seed = lengths, batch_size, seed
        self.per_epoch = math.ceil(len(lengths) / batch_size)
        self._epoch, self._batches = -1, []

    def __getitem__(self, g: int) -> np.ndarray:
        epoch, pos = divmod(g, self.per_epoch)
        if epoch != self._epoch:
            self._epoch = epoch
            self._batches = length_grouped_batches(self.lengths, self.batch_size, self.seed, epoch)
        return self._batches[pos]


# --------------------------------------------------------------------------------------------------
# Model


def _masked_logits(model, input_ids, attention_mask, positions: torch.Tensor) -> torch.Tensor:
    """Logits at the masked positions only (for a BERT MLM the head runs on those rows alone)."""
    if hasattr(model, "bert") and hasattr(model, "cls"):
        hidden = model.bert(input_ids=input_ids, attention_mask=attention_mask)[0]
        return model.cls(hidden[positions])
    return model(input_ids=input_ids, attention_mask=attention_mask).logits[positions]


def _optimizer(model, args: TrainArgs) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and LayerNorm weights."""
    no_decay: set[int] = set()
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            no_decay.update(id(p) for p in module.parameters(recurse=False))
    for name, param in model.named_parameters():
        if name.endswith("bias"):
            no_decay.add(id(param))
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if id(p) not in no_decay], "weight_decay": args.weight_decay},
        {"params": [p for p in params if id(p) in no_decay], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=args.learning_rate)


def _scratch_model(args: TrainArgs, tokenizer):
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        **args.bert,
    )
    return BertForMaskedLM(config)


def _load_init(args: TrainArgs, source) -> tuple[Any, Any, str, str]:
    """(model, tokenizer, description, identity) for ``init`` scratch (``source``: a tokenizer
    folder) or pretrained (``source``: ``(ModelSpec, location)`` or a model folder). The identity
    enters the checkpoint fingerprint: "scratch" (the tokenizer is fingerprinted separately), or
    the base model and the size and time of its weight files (a retrained base model changes it).
    """
    from . import models as bl_models

    if args.init == "scratch" and isinstance(source, tuple):
        # The SNOW notebook's setup: the base model's config and tokenizer, random weights.
        from transformers import AutoConfig, AutoModelForMaskedLM

        spec, loc = source
        tokenizer = bl_models.load_tokenizer(spec, loc)
        config = AutoConfig.from_pretrained(loc, revision=spec.revision, trust_remote_code=False)
        torch.manual_seed(args.seed)
        model = AutoModelForMaskedLM.from_config(config)
        desc = f"scratch with the config and tokenizer of {spec.describe()}"
        return model, tokenizer, desc, json.dumps(["scratch-config", spec.describe()])
    if args.init == "scratch":
        from .vocab import load_trained_tokenizer

        tokenizer = load_trained_tokenizer(source)
        torch.manual_seed(args.seed)
        model = _scratch_model(args, tokenizer)
        return model, tokenizer, f"scratch (tokenizer {source})", "scratch"
    if isinstance(source, tuple):
        spec, loc = source
    else:
        loc = str(source)
        spec = bl_models.ModelSpec(
            name=args.base_model or Path(loc).name, column=args.column, source="path", ref=loc
        )
    from .fillmask import has_mlm_head, weight_files

    tokenizer = bl_models.load_tokenizer(spec, loc)
    head = has_mlm_head(loc, getattr(spec, "revision", None))
    model = bl_models.load_model(spec, loc, head="mlm")
    bl_models.check_vocab(spec, tokenizer, model)
    if head is False:
        log.warning(
            "base model '%s' has no MLM head weights: the head starts from random weights",
            spec.name,
        )
    desc = f"pretrained {spec.describe()}"
    files = [
        (p.name, p.stat().st_size, p.stat().st_mtime_ns)
        for p in weight_files(loc, getattr(spec, "revision", None))
    ]
    return model, tokenizer, desc, json.dumps([desc, files])


# --------------------------------------------------------------------------------------------------
# Checkpoints


def _fingerprint(args: TrainArgs, tokenizer, texts: Sequence[str], init: str) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(args.resume_key(), sort_keys=True, default=str).encode())
    h.update(json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False).encode())
    h.update(init.encode())
    for text in texts:
        h.update(text.encode())
        h.update(b"\0")
    return h.hexdigest()


def list_checkpoints(checkpoint_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoints ``(step, path)`` in ``checkpoint_dir``, oldest first."""
    root = Path(checkpoint_dir)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        m = _CKPT_RE.match(path.name)
        if m and path.is_dir() and (path / "state.json").is_file():
            found.append((int(m.group(1)), path))
    return sorted(found)


def _save_checkpoint(
    checkpoint_dir: Path, step: int, model, optimizer, scheduler, mask_gen, state: dict[str, Any]
) -> Path:
    """Write a checkpoint into a temporary folder and rename it into place; keep the last two."""
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    final = checkpoint_dir / f"step-{step:08d}"
    tmp = checkpoint_dir / f".tmp-step-{step:08d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        torch.save(model.state_dict(), tmp / "model.pt")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        rng = {"torch": torch.get_rng_state(), "mask": mask_gen.get_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        torch.save(rng, tmp / "rng.pt")
        # state.json last: a checkpoint folder without it is never taken as complete
        (tmp / "state.json").write_text(json.dumps(state, indent=1, default=str), encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for _, old in list_checkpoints(checkpoint_dir)[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _clean_stale(checkpoint_dir: Path, out_model_dir: Path) -> None:
    """Remove temporary folders a killed job left behind."""
    for root, pattern in (
        (checkpoint_dir, ".tmp-step-*"),
        (out_model_dir.parent, f".{out_model_dir.name}.tmp-*"),
    ):
        if root.is_dir():
            for path in root.glob(pattern):
                log.info("removing leftover %s", path)
                shutil.rmtree(path, ignore_errors=True)
    if checkpoint_dir.is_dir():  # a step folder without state.json was never completed
        for path in checkpoint_dir.glob("step-*"):
            if path.is_dir() and not (path / "state.json").is_file():
                log.info("removing incomplete checkpoint %s", path)
                shutil.rmtree(path, ignore_errors=True)


def _resume_candidates(
    checkpoint_dir: Path, fingerprint: str, total_steps: int
) -> list[tuple[int, Path, dict[str, Any]]]:
    """Checkpoints of these settings, tokenizer and texts at or before ``total_steps``, newest
    first. All others (other settings, beyond the end, unreadable) are removed so that they can
    never be mixed into this run or outlive its own checkpoints when old ones are pruned."""
    keep = []
    for step, path in reversed(list_checkpoints(checkpoint_dir)):
        try:
            state = read_json(path / "state.json")
        except (OSError, ValueError) as err:
            state, why = None, f"unreadable: {err}"
        else:
            why = "other settings, tokenizer or texts"
            if state.get("fingerprint") == fingerprint:
                why = f"beyond the run's {total_steps} steps"
        if state is not None and state.get("fingerprint") == fingerprint and step <= total_steps:
            keep.append((step, path, state))
            continue
        log.info("removing checkpoint %s (%s)", path, why)
        shutil.rmtree(path, ignore_errors=True)
    return keep


def _read_checkpoint(path: Path, device: str) -> dict[str, Any]:
    """Everything a checkpoint holds, read before anything is changed (a damaged file raises)."""
    return {
        "model": torch.load(path / "model.pt", map_location="cpu", weights_only=True),
        "optimizer": torch.load(path / "optimizer.pt", map_location=device, weights_only=True),
        "scheduler": torch.load(path / "scheduler.pt", weights_only=True),
        "rng": torch.load(path / "rng.pt", weights_only=True),
    }


def _apply_checkpoint(
    loaded: dict[str, Any], model, optimizer, scheduler, mask_gen, device: str
) -> None:
    model.load_state_dict(loaded["model"])
    model.to(device)
    optimizer.load_state_dict(loaded["optimizer"])
    scheduler.load_state_dict(loaded["scheduler"])
    rng = loaded["rng"]
    torch.set_rng_state(rng["torch"])
    mask_gen.set_state(rng["mask"])
    if "cuda" in rng and torch.cuda.is_available():
        with contextlib.suppress(RuntimeError):
            torch.cuda.set_rng_state_all(rng["cuda"])


# --------------------------------------------------------------------------------------------------
# Training


class _LogStream:
    """A file-like object that sends tqdm's progress lines to a logger."""

    def __init__(self, logger: logging.Logger):
        self.logger = logger

    def write(self, text: str) -> int:
        line = text.strip("\r\n ")
        if line:
            self.logger.info("%s", line)
        return len(text)

    def flush(self) -> None:
        pass


@dataclass
class _EvalSet:
    batches: list[dict[str, torch.Tensor]]
    masked: int


def _eval_set(
    corpus: EncodedCorpus,
    args: TrainArgs,
    masking: dict[str, Any],
    pad_id: int,
    special: torch.Tensor,
) -> _EvalSet:
    """The held-out sentences, masked once with a fixed generator so every evaluation scores the
    same positions."""
    gen = torch.Generator().manual_seed(args.seed + 1_000_003)
    order = np.argsort(-corpus.lengths, kind="stable")
    batches, masked = [], 0
    for start in range(0, len(order), args.batch_size):
        b = collate(corpus, order[start : start + args.batch_size], pad_id, special)
        inputs, labels = mask_tokens(
            b["input_ids"],
            b["attention_mask"],
            b["special_mask"],
            b["word_ids"] if args.whole_word_mask else None,
            generator=gen,
            **masking,
        )
        masked += int((labels != IGNORE_INDEX).sum())
        batches.append(
            {"input_ids": inputs, "attention_mask": b["attention_mask"], "labels": labels}
        )
    return _EvalSet(batches, masked)


@torch.no_grad()
def evaluate(
    model, eval_set: _EvalSet, device: str, baseline_id: int, autocast
) -> dict[str, float]:
    """Loss, perplexity and accuracy on the masked held-out positions, and the accuracy of always
    predicting ``baseline_id`` there."""
    was_training = model.training
    model.eval()
    loss_sum, n, correct, base = 0.0, 0, 0, 0
    for batch in eval_set.batches:
        labels = batch["labels"].to(device)
        positions = labels != IGNORE_INDEX
        if not positions.any():
            continue
        with autocast():
            logits = _masked_logits(
                model, batch["input_ids"].to(device), batch["attention_mask"].to(device), positions
            )
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


def _total_steps(args: TrainArgs, batches_per_epoch: int) -> int:
    if args.max_steps:
        return int(args.max_steps)
    return max(1, math.ceil(args.epochs * batches_per_epoch / args.gradient_accumulation))


def train(
    args: TrainArgs,
    corpus_texts: Sequence[str],
    tokenizer_dir_or_base_model: str | os.PathLike | tuple[Any, str],
    out_model_dir: str | os.PathLike,
    metrics_csv: str | os.PathLike,
    checkpoint_dir: str | os.PathLike,
    summary_json: str | os.PathLike,
    log: logging.Logger | None = None,
    on_step: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train a masked language model and save it with its tokenizer.

    ``tokenizer_dir_or_base_model``: for ``init: scratch`` the folder written by
    :func:`bertlens.vocab.train_wordpiece_vocab`; for ``init: pretrained`` a ``(ModelSpec,
    location)`` pair (or a model folder) to continue from. ``checkpoint_dir`` is not a workflow
    output: a killed job leaves its checkpoints there and the next call resumes from the newest one
    whose settings, tokenizer and texts match (the step count and the metrics rows continue).
    ``on_step(step)`` is called after every optimizer step (tests use it to simulate a kill).

    Writes ``out_model_dir`` (``save_pretrained`` of model and tokenizer, renamed into place at the
    end, with a provenance sidecar ``model.safetensors.meta.json``), ``metrics_csv`` (one row per
    evaluation) and ``summary_json``; returns the summary.
    """
    logger = log or logging.getLogger(__name__)
    session_start = time.perf_counter()
    args.validate()
    args.log_settings(logger)
    out_model_dir, checkpoint_dir = Path(out_model_dir), Path(checkpoint_dir)
    _clean_stale(checkpoint_dir, out_model_dir)
    device = pick_device(args.device)
    use_bf16 = bool(args.bf16 and device.startswith("cuda"))
    if use_bf16 and not torch.cuda.is_bf16_supported():
        logger.warning("bf16 was asked for but this GPU does not support it; training in fp32")
        use_bf16 = False

    def autocast():
        if use_bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    texts = [t for t in corpus_texts if isinstance(t, str) and t.strip()]
    if len(texts) < 2:
        raise UserError(
            f"training run '{args.name}' needs at least 2 non-empty texts in column "
            f"'{args.column}' (one to train on, one to hold out; got {len(texts)}); add text to "
            "the corpus or train on another column"
        )
    model, tokenizer, init_desc, init_key = _load_init(args, tokenizer_dir_or_base_model)
    max_pos = int(getattr(model.config, "max_position_embeddings", args.max_length))
    max_length = min(args.max_length, max_pos)
    if max_length < args.max_length:
        logger.info("max_length %d cut to the model's %d positions", args.max_length, max_pos)

    # held-out split (seeded)
    perm = np.random.default_rng(args.seed).permutation(len(texts))
    n_eval = max(1, round(len(texts) * args.eval_fraction))
    n_train = len(texts) - n_eval
    if n_train < 1:
        raise UserError(
            f"training run '{args.name}': eval_fraction {args.eval_fraction:g} holds out {n_eval} "
            f"of {len(texts)} sentences and leaves none to train on; lower eval_fraction or add "
            "text to the corpus"
        )
    if n_train < args.batch_size:
        raise UserError(
            f"training run '{args.name}': {n_train} training sentences (of {len(texts)}; "
            f"{n_eval} held out by eval_fraction {args.eval_fraction:g}) do not fill one batch "
            f"of batch_size {args.batch_size}; set batch_size to at most {n_train} or add text to "
            "the corpus"
        )
    eval_idx, train_idx = np.sort(perm[:n_eval]), np.sort(perm[n_eval:])
    encoded = encode_texts(tokenizer, texts, max_length)
    train_data, eval_data = encoded.subset(train_idx), encoded.subset(eval_idx)
    if encoded.truncated:
        logger.info(
            "%d of %d sentences truncated to %d tokens", encoded.truncated, len(texts), max_length
        )

    special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
    vocab_size = len(tokenizer)
    masking = {
        "vocab_size": vocab_size,
        "mask_id": tokenizer.mask_token_id,
        "probability": args.mlm_probability,
        "mask_replace": args.mask_replace,
        "random_replace": args.random_replace,
        "random_pool": random_token_pool(vocab_size, special_ids.tolist()),
    }
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    eval_set = _eval_set(eval_data, args, masking, pad_id, special_ids)
    if eval_set.masked == 0:
        raise UserError(
            f"training run '{args.name}': the {n_eval} held-out sentences got no masked tokens "
            f"(masking probability {args.mlm_probability:g}), so nothing can be evaluated; raise "
            "eval_fraction or add text to the corpus"
        )
    counts = np.bincount(torch.cat(train_data.input_ids).numpy(), minlength=vocab_size)
    counts[special_ids.numpy()] = 0
    baseline_id = int(counts.argmax())

    stream = _BatchStream(train_data.lengths, args.batch_size, args.seed)
    total_steps = _total_steps(args, stream.per_epoch)
    warmup = math.ceil(args.warmup_ratio * total_steps)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info(
        "init %s; device %s%s; %d parameters; vocab %d; %d train / %d eval sentences "
        "(%d masked eval tokens); %d batches per epoch; %d optimizer steps (warmup %d)",
        init_desc,
        device,
        " (bf16 autocast)" if use_bf16 else "",
        n_params,
        vocab_size,
        len(train_idx),
        n_eval,
        eval_set.masked,
        stream.per_epoch,
        total_steps,
        warmup,
    )
    logger.info(
        "baseline: always predicting the most frequent training token %r",
        tokenizer.convert_ids_to_tokens(baseline_id),
    )

    from transformers import get_constant_schedule_with_warmup, get_linear_schedule_with_warmup

    model.to(device)
    model.train()
    optimizer = _optimizer(model, args)
    if args.lr_schedule == "constant":
        scheduler = get_constant_schedule_with_warmup(optimizer, warmup)
    else:
        scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total_steps)
    mask_gen = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)

    fingerprint = _fingerprint(args, tokenizer, texts, init_key)
    step = micro = tokens_seen = 0
    elapsed_before = 0.0
    loss_sum, loss_tokens = 0.0, 0
    rows: list[dict[str, Any]] = []
    resumed_from: int | None = None
    last_ckpt: tuple[int, Path] | None = None
    for ckpt_step, path, state in _resume_candidates(checkpoint_dir, fingerprint, total_steps):
        try:
            loaded = _read_checkpoint(path, device)
        except Exception as err:  # a damaged checkpoint: try the previous one
            logger.warning("cannot read checkpoint %s (%s); trying an older one", path, err)
            shutil.rmtree(path, ignore_errors=True)
            continue
        _apply_checkpoint(loaded, model, optimizer, scheduler, mask_gen, device)
        step, micro = ckpt_step, int(state["micro_batches"])
        tokens_seen, elapsed_before = int(state["tokens_seen"]), float(state["elapsed_s"])
        loss_sum, loss_tokens = float(state["loss_sum"]), int(state["loss_tokens"])
        rows = [r for r in state["metrics"] if r["step"] <= step]
        resumed_from, last_ckpt = step, (step, path)
        logger.info("resuming from step %d (checkpoint %s)", step, path)
        if step < total_steps and total_steps != int(state.get("total_steps", total_steps)):
            logger.info(
                "the run now has %d steps (checkpoint: %s); the learning-rate schedule follows "
                "the new length",
                total_steps,
                state.get("total_steps"),
            )
        break

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - session_start

    def write_metrics() -> None:
        write_table(metrics_csv, pd.DataFrame(rows, columns=METRIC_COLUMNS))

    def record_eval() -> dict[str, Any]:
        nonlocal loss_sum, loss_tokens
        scores = evaluate(model, eval_set, device, baseline_id, autocast)
        row = {
            "step": step,
            "epoch": round(micro / stream.per_epoch, 4),
            "train_loss": loss_sum / loss_tokens if loss_tokens else float("nan"),
            **scores,
            "learning_rate": scheduler.get_last_lr()[0],
            "tokens_seen": tokens_seen,
            "elapsed_s": round(elapsed(), 2),
        }
        rows.append(row)
        loss_sum, loss_tokens = 0.0, 0
        write_metrics()
        logger.info(
            "step %d: eval loss %.4f, perplexity %.2f, accuracy %.4f (baseline %.4f), train loss %.4f",
            step,
            row["eval_loss"],
            row["perplexity"],
            row["accuracy"],
            row["baseline_accuracy"],
            row["train_loss"],
        )
        return row

    def checkpoint() -> Path:
        state = {
            "step": step,
            "micro_batches": micro,
            "tokens_seen": tokens_seen,
            "elapsed_s": elapsed(),
            "loss_sum": loss_sum,
            "loss_tokens": loss_tokens,
            "metrics": rows,
            "total_steps": total_steps,
            "fingerprint": fingerprint,
            "args": asdict(args),
        }
        try:
            path = _save_checkpoint(
                checkpoint_dir, step, model, optimizer, scheduler, mask_gen, state
            )
        except OSError as err:
            if err.errno not in _DISK_FULL:
                raise
            raise UserError(
                f"training run '{args.name}': no space left on the device while writing the "
                f"checkpoint of step {step} under '{checkpoint_dir}' ({err}); free disk space and "
                "rerun (it resumes from the last complete checkpoint)"
            ) from err
        logger.info("checkpoint written: %s", path)
        return path

    from tqdm.auto import tqdm

    bar = tqdm(
        total=total_steps,
        initial=step,
        desc=f"train {args.name}",
        file=_LogStream(logger),
        mininterval=15,
        ascii=True,
        ncols=100,
    )
    try:
        if not rows:
            record_eval()  # step 0: the untrained model
        else:
            write_metrics()
        while step < total_steps:
            group = []
            for _ in range(args.gradient_accumulation):
                b = collate(train_data, stream[micro], pad_id, special_ids)
                micro += 1
                inputs, labels = mask_tokens(
                    b["input_ids"],
                    b["attention_mask"],
                    b["special_mask"],
                    b["word_ids"] if args.whole_word_mask else None,
                    generator=mask_gen,
                    **masking,
                )
                tokens_seen += int(b["attention_mask"].sum())
                group.append((inputs, b["attention_mask"], labels))
            n_masked = sum(int((lab != IGNORE_INDEX).sum()) for _, _, lab in group)
            step_loss = 0.0
            for inputs, attention, labels in group:
                labels = labels.to(device)
                positions = labels != IGNORE_INDEX
                if not positions.any():
                    continue
                with autocast():
                    logits = _masked_logits(
                        model, inputs.to(device), attention.to(device), positions
                    )
                loss = torch.nn.functional.cross_entropy(
                    logits.float(), labels[positions], reduction="sum"
                )
                value = float(loss.detach())
                if not math.isfinite(value):
                    where = (
                        f"{last_ckpt[1]} (step {last_ckpt[0]})"
                        if last_ckpt
                        else "none (no checkpoint written yet)"
                    )
                    raise UserError(
                        f"training run '{args.name}': the loss became {value} at step {step + 1}; "
                        f"last good checkpoint: {where}; lower learning_rate (now "
                        f"{args.learning_rate:g}), raise warmup_ratio or "
                        "set bf16: false and rerun (changed settings start the run over)"
                    )
                (loss / max(n_masked, 1)).backward()
                step_loss += value
            if args.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            loss_sum += step_loss
            loss_tokens += n_masked
            bar.update(1)
            bar.set_postfix(
                loss=f"{step_loss / max(n_masked, 1):.3f}",
                lr=f"{scheduler.get_last_lr()[0]:.2e}",
                refresh=False,
            )
            if step % args.eval_every == 0 or step == total_steps:
                record_eval()
            if step % args.checkpoint_every == 0 or step == total_steps:
                last_ckpt = (step, checkpoint())
            if on_step is not None:
                on_step(step)
        if not rows or rows[-1]["step"] != step:
            record_eval()
        if last_ckpt is None or last_ckpt[0] != step:
            last_ckpt = (step, checkpoint())
        write_metrics()
    except torch.cuda.OutOfMemoryError as err:
        half = args.batch_size // 2
        try_this = (
            f"batch_size: {half} with gradient_accumulation: {2 * args.gradient_accumulation} "
            "keeps the effective batch"
            if half
            else "batch_size is already 1: lower max_length or use a smaller model"
        )
        raise UserError(
            f"training run '{args.name}': the GPU ran out of memory at step {step + 1} with "
            f"batch_size {args.batch_size}; set a smaller batch_size ({try_this}), or lower "
            "max_length"
        ) from err
    finally:
        bar.close()

    summary = _summary(
        args,
        rows,
        device=device,
        bf16=use_bf16,
        init=init_desc,
        tokenizer_size=vocab_size,
        parameters=n_params,
        train_sentences=len(train_idx),
        eval_sentences=n_eval,
        eval_masked_tokens=eval_set.masked,
        truncated_sentences=encoded.truncated,
        max_length=max_length,
        steps=step,
        total_steps=total_steps,
        epochs_done=round(micro / stream.per_epoch, 4),
        tokens_seen=tokens_seen,
        wall_time_s=round(elapsed(), 2),
        session_time_s=round(time.perf_counter() - session_start, 2),
        resumed_from_step=resumed_from,
        baseline_token=tokenizer.convert_ids_to_tokens(baseline_id),
    )
    try:
        _save_model(model, tokenizer, out_model_dir, args, summary)
    except OSError as err:
        if err.errno not in _DISK_FULL:
            raise
        raise UserError(
            f"training run '{args.name}': no space left on the device while saving the model to "
            f"'{out_model_dir}' ({err}); nothing was kept there: free disk space and rerun (it "
            f"resumes from the checkpoint of step {last_ckpt[0]} and only saves the model)"
        ) from err
    write_json(summary_json, summary)
    logger.info(
        "done: %d steps, eval loss %.4f -> %.4f, accuracy %.4f (baseline %.4f); model in %s",
        step,
        summary["first_eval_loss"],
        summary["last_eval_loss"],
        summary["final_accuracy"],
        summary["baseline_accuracy"],
        out_model_dir,
    )
    return summary


def _summary(args: TrainArgs, rows: list[dict[str, Any]], **facts: Any) -> dict[str, Any]:
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


def _save_model(
    model, tokenizer, out_model_dir: Path, args: TrainArgs, summary: dict[str, Any]
) -> None:
    """save_pretrained of model and tokenizer into a temporary folder, renamed into place."""
    out_model_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_model_dir.parent / f".{out_model_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.eval()
        model.to("cpu")
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_sidecar(
            tmp / "model.safetensors",
            model=f"training run {args.name}",
            init=summary["init"],
            tokenizer=type(tokenizer).__name__,
            column=args.column,
            seed=args.seed,
            steps=summary["steps"],
            device=summary["device"],
        )
        if out_model_dir.exists():
            shutil.rmtree(out_model_dir)
        os.replace(tmp, out_model_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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
    "TrainArgs",
    "EncodedCorpus",
    "encode_texts",
    "japanese_word_pieces",
    "words_from_continuation",
    "mask_tokens",
    "random_token_pool",
    "length_grouped_batches",
    "collate",
    "evaluate",
    "train",
    "list_checkpoints",
    "plot_curves",
    "write_summary_html",
]
