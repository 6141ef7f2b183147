"""The padding-difference study: how much does a sentence's encoding move when it is padded?

A sentence encoded *alone* (batch size 1, no padding) is the reference. The same sentence is then
encoded inside padded batches (with a partner sentence of a configured length in the batch) and
under other numeric settings (bf16 autocast, eager instead of SDPA attention, oneDNN instead of
torch's own linear layers, left instead of right padding, GPU instead of CPU). Every comparison
is made on the sentence's real tokens only, per layer (0 = embedding output, then every encoder
layer) and per pooling:

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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from .io import write_html_table, write_json, write_table
from .matmul import linear_kernel, onednn_unusable
from .models import attention_implementation, model_has_pooler, use_attention
from .padding_encodings import (
    Encoding,
    Partner,
    build_partners,
    compare,
    comparison_frame,
    encode_alone,
    encode_padded,
    left_padding_partner,
    mask_check,
    mask_check_batch,
    tokenize,
)
from .padding_report import growth_png, histogram_png, summarize, verdict_table
from .sampling import sample_rows
from .stage import UserError

log = logging.getLogger(__name__)

SETTINGS = ("bf16", "sdpa_vs_eager", "onednn", "left_padding", "cuda")


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


def _n_layers(model) -> int:
    return int(model.config.num_hidden_layers)


@dataclass
class _Sample:
    """The study's sentences: token ids (and corpus rows, lengths) of the sampled sentences, how
    many the corpus column had, the partners they are padded against and the pad id."""

    ids: list[list[int]]
    rows: np.ndarray
    lengths: list[int]
    corpus_sentences: int
    partners: list[Partner]
    pad_id: int
    max_length: int


def _sample(
    model, tokenizer, texts, rows, max_length: int, sample: int | None, seed: int, partners
) -> _Sample:
    """Tokenize the corpus column (capped at the model's positions), sample the sentences and
    resolve the partners."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    max_pos = getattr(model.config, "max_position_embeddings", None)
    if max_pos and max_length > max_pos:
        log.info("max_length %d capped at the model's %d positions", max_length, max_pos)
        max_length = int(max_pos)
    corpus_rows = np.asarray(rows if rows is not None else np.arange(len(texts)))
    corpus_ids = tokenize(tokenizer, texts, max_length)
    pick = sample_rows(len(corpus_ids), sample, seed)
    ids = [corpus_ids[i] for i in pick]
    resolved = build_partners(partners, corpus_ids, max_length, tokenizer)
    if not resolved:
        raise UserError("padding.partners is empty; give at least one partner (e.g. [longest])")
    lengths = [len(r) for r in ids]
    return _Sample(ids, corpus_rows[pick], lengths, len(corpus_ids), resolved, pad_id, max_length)


class _Comparisons:
    """Runs the settings one by one against the sentences encoded alone, collecting the
    difference frames, the time each setting took and why a setting was skipped."""

    def __init__(self, model, sample: _Sample, batch_size: int):
        self.model, self.s, self.batch_size = model, sample, batch_size
        self.n_layers = _n_layers(model)
        self.frames: list[pd.DataFrame] = []
        self.timings: dict[str, float] = {}
        self.skipped: dict[str, str] = {}

    def add(self, metrics, setting: str, partner: str, padded_to: Sequence[int]) -> None:
        s = self.s
        self.frames.append(
            comparison_frame(metrics, s.rows, s.lengths, padded_to, setting, partner, self.n_layers)
        )

    def timed(self, name: str, step: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        out = step()
        self.timings[name] = time.perf_counter() - t
        return out

    def padded(self, alone: Encoding, left_padding: bool) -> None:
        """Right-padded batches with each partner; left against right padding (with and without
        position ids) in the left-padding partner's batch."""
        left_partner = left_padding_partner(self.s.partners)
        right = self.timed("padded", lambda: self._right_padded(alone, left_partner))
        if left_padding and right is not None:
            self.timed("left_padding", lambda: self._left_padded(right, left_partner))

    def _right_padded(self, alone: Encoding, left_partner: Partner) -> Encoding | None:
        s, right = self.s, None
        for p in s.partners:
            enc = encode_padded(
                self.model, s.ids, s.pad_id, p, batch_size=self.batch_size, side="right"
            )
            self.add(compare(alone, enc), "padded", p.name, enc.padded_to)
            if p is left_partner:
                right = enc
        return right

    def _left_padded(self, right: Encoding, partner: Partner) -> None:
        for with_pos, name in ((True, "left_padding"), (False, "left_padding_no_position_ids")):
            enc = encode_padded(
                self.model,
                self.s.ids,
                self.s.pad_id,
                partner,
                batch_size=self.batch_size,
                side="left",
                position_ids=with_pos,
            )
            self.add(compare(right, enc), name, partner.name, enc.padded_to)

    def bf16(self, alone: Encoding) -> None:
        def step() -> None:
            enc = encode_alone(self.model, self.s.ids, autocast_dtype=torch.bfloat16)
            self.add(compare(alone, enc), "bf16", "none", self.s.lengths)

        self.timed("bf16", step)

    def sdpa_vs_eager(self, alone: Encoding) -> None:
        self.timed("sdpa_vs_eager", lambda: self._sdpa_vs_eager(alone))

    def _sdpa_vs_eager(self, alone: Encoding) -> None:
        current = attention_implementation(self.model)
        if current != "sdpa":
            self.skipped["sdpa_vs_eager"] = (
                f"the model runs '{current}' attention (no SDPA support or set explicitly)"
            )
            return
        try:
            with use_attention(self.model, "eager"):
                enc = encode_alone(self.model, self.s.ids)
            self.add(compare(alone, enc), "sdpa_vs_eager", "none", self.s.lengths)
        except (ValueError, AttributeError) as err:
            self.skipped["sdpa_vs_eager"] = f"cannot switch to eager attention: {err}"

    def onednn(self, alone: Encoding) -> None:
        """The embedding stage's other CPU library for the linear layers (``matmul``)."""
        unusable = onednn_unusable(self.model)
        if unusable:
            self.skipped["onednn"] = f"{unusable}: nothing to compare"
            return

        def step() -> None:
            with linear_kernel(self.model, "onednn"):
                enc = encode_alone(self.model, self.s.ids)
            self.add(compare(alone, enc), "onednn", "none", self.s.lengths)

        self.timed("onednn", step)

    def cuda(self, alone: Encoding, use_cuda: bool) -> None:
        if not use_cuda:
            self.skipped["cuda"] = (
                "torch sees no CUDA GPU on this machine (torch.cuda.is_available() is False)"
            )
            return

        def step() -> None:
            gpu_model = copy.deepcopy(self.model).to("cuda")
            enc = encode_alone(gpu_model, self.s.ids)
            del gpu_model
            torch.cuda.empty_cache()
            self.add(compare(alone, enc), "cuda", "none", self.s.lengths)

        self.timed("cuda", step)


def _mask_check(model, s: _Sample, tolerance: float, seed: int) -> dict[str, Any]:
    """``mask_check`` in a batch padded to the widest partner."""
    widest = max(p.length for p in s.partners)
    m_ids, m_mask = mask_check_batch(s.ids, s.pad_id, widest)
    return mask_check(model, m_ids, m_mask, tolerance=tolerance, seed=seed)


def padding_study(
    model,
    tokenizer,
    texts: Sequence[str],
    *,
    max_length: int,
    sample: int | None,
    partners: Sequence[int | str],
    settings: Sequence[str],
    tolerance: float,
    bf16_tolerance: float,
    batch_size: int,
    seed: int,
    rows: Sequence[int] | None = None,
    cuda: bool | None = None,
) -> StudyResult:
    """Run the whole study on CPU in fp32 (the reference) for one model, with the ``padding:``
    settings of the config (``sample``: sentences, ``None`` = all).

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
    s = _sample(model, tokenizer, texts, rows, max_length, sample, seed, partners)
    run = _Comparisons(model, s, batch_size)
    alone = run.timed("alone", lambda: encode_alone(model, s.ids))
    log.info("encoded %d sentences alone in %.1f s", len(s.ids), run.timings["alone"])
    run.padded(alone, "left_padding" in settings)
    if "bf16" in settings:
        run.bf16(alone)
    if "sdpa_vs_eager" in settings:
        run.sdpa_vs_eager(alone)
    if "onednn" in settings:
        run.onednn(alone)
    if "cuda" in settings:
        run.cuda(alone, torch.cuda.is_available() if cuda is None else cuda)
    mask = run.timed("mask_check", lambda: _mask_check(model, s, tolerance, seed))
    timings, n_layers = run.timings, run.n_layers
    timings["total"] = time.perf_counter() - t_start
    differences = pd.concat(run.frames, ignore_index=True)
    summary = summarize(differences)
    verdict = verdict_table(
        differences, mask, run.skipped, tolerance, bf16_tolerance, n_layers, timings
    )
    info = {
        "sentences": len(s.ids),
        "corpus_sentences": s.corpus_sentences,
        "layers": n_layers,
        "has_pooler": model_has_pooler(model),
        "attn_implementation": attention_implementation(model),
        "torch_threads": torch.get_num_threads(),
        "max_length": s.max_length,
        "tolerance": tolerance,
        "bf16_tolerance": bf16_tolerance,
        "batch_size": batch_size,
        "seed": seed,
    }
    log.info("padding study: %d comparisons in %.1f s", len(differences), timings["total"])
    return StudyResult(differences, summary, verdict, mask, s.partners, run.skipped, timings, info)


def write_outputs(result: StudyResult, paths: dict[str, str], model_name: str) -> None:
    """Write the study's files. ``paths`` keys: differences (parquet), summary (tsv),
    summary_html, verdict (tsv), verdict_html, histograms (png), growth (png), study (json)."""
    info = result.info
    write_table(paths["differences"], result.differences)
    tables = (
        (
            "summary",
            result.summary,
            f"{model_name}: padding differences per setting, partner, layer and pooling",
            f"{info['sentences']} sentences; max-abs differences of fp32 hidden states on real "
            "tokens (layer 0 = embedding output). median / p99 / max over sentences.",
        ),
        (
            "verdict",
            result.verdict,
            f"{model_name}: padding verdict",
            f"max_abs: the worst over {info['sentences']} sentences, every layer and pooling; "
            f"fp32 tolerance {info['tolerance']:g}, bf16 tolerance {info['bf16_tolerance']:g}. "
            f"Whole study: {result.timings['total']:.1f} s on {info['torch_threads']} CPU "
            "thread(s).",
        ),
    )
    for key, frame, title, note in tables:
        write_table(paths[key], frame)
        write_html_table(paths[f"{key}_html"], frame, title=title, note=note, float_format="{:.3g}")
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
