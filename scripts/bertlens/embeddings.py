"""Embedding stage: the CLS, mean and pooler vector of every sentence at every layer.

Sentence vectors are computed in batches sorted by length with padding only to the longest
sentence of each batch, under ``torch.inference_mode``, and streamed into ``.npy`` files of shape
(layers + 1, sentences, hidden): memory is bounded by the batch, not the corpus. On the CPU the
job's threads each encode whole batches with one torch thread apiece (``map_batches``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .io import atomic_path
from .matmul import linear_kernel, pick_linear_kernel
from .models import model_has_pooler
from .spread import SpreadMeter, degenerate_report
from .stage import bf16_if_supported

log = logging.getLogger(__name__)

POOLINGS = ("cls", "mean", "pooler")


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[np.ndarray]:
    """Indices in batches of similar length (longest first, so memory peaks at once)."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def pad_batch(seqs: Sequence[np.ndarray], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """Pool hidden states (..., batch, seq, hidden) to (..., batch, hidden): ``cls`` takes the
    first position, ``mean`` averages over real (mask = 1) tokens, [CLS] and [SEP] included."""
    if how == "cls":
        return hidden[..., 0, :]
    if how == "mean":
        weights = mask.to(hidden.dtype)
        weights = weights / weights.sum(-1, keepdim=True).clamp(min=1)
        return (weights.unsqueeze(-2) @ hidden).squeeze(-2)  # no masked copy of ``hidden``
    raise ValueError(f"unknown pooling {how!r}")


def encode(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    poolings: Sequence[str],
    bf16: bool = False,
) -> dict[str, torch.Tensor]:
    """One forward pass, under bf16 autocast if ``bf16`` (matrix products in bfloat16; BERT's
    residual stream, and so its layer norms, stay float32), pooled in float32; returns {pooling:
    (layers + 1, batch, hidden)} and ``pooler`` as (1, batch, hidden) when the model has one."""
    with torch.autocast(input_ids.device.type, dtype=torch.bfloat16, enabled=bf16):
        out = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=torch.zeros_like(input_ids),
            output_hidden_states=True,
        )
    result = {}
    for how in poolings:
        if how == "pooler":
            if getattr(out, "pooler_output", None) is not None:
                result["pooler"] = out.pooler_output.float().unsqueeze(0)
            continue
        states = out.hidden_states
        result[how] = torch.stack([pool(h.float(), attention_mask, how) for h in states])
    return result


@contextlib.contextmanager
def bf16_linear_weights(model, on: bool) -> Iterator[None]:
    """With ``on``, the model's linear layers hold bfloat16 copies of their weights and biases
    meanwhile (the float32 ones are put back after): autocast would otherwise cast every weight
    again in every batch. The vectors are identical; BERT-base under bf16 autocast on 2 AMX
    cores encodes 15% faster. Meant for encoders (``AutoModel``): a linear layer tied to the word
    embeddings (an MLM head) would change the embedding lookup too."""
    saved = []
    try:
        for m in model.modules() if on else ():
            if isinstance(m, torch.nn.Linear):
                for p in (m.weight, m.bias):
                    if p is not None and p.dtype == torch.float32:
                        saved.append((p, p.data))
                        p.data = p.data.to(torch.bfloat16)
        yield
    finally:
        for p, data in saved:
            p.data = data


@contextlib.contextmanager
def linear_layers(model, bf16: bool, kernel: str) -> Iterator[None]:
    """The linear layers as the embedding stage runs them: bfloat16 weights under ``bf16``
    (``bf16_linear_weights``), on the CPU library ``kernel`` in float32 (``matmul``)."""
    with bf16_linear_weights(model, bf16), linear_kernel(model, kernel):
        yield


def batch_threads(workers: int) -> int:
    """Torch threads each batch runs on under ``map_batches``."""
    return 1 if workers > 1 else torch.get_num_threads()


def map_batches(fn: Callable[[np.ndarray], Any], batches: Iterable[np.ndarray], workers: int):
    """``fn`` over ``batches``, results in order. With ``workers`` > 1 that many threads each run
    whole batches with one torch thread apiece (restored after). On 2 cores this encodes 7%
    faster than one batch at a time on 2 torch threads (MiniLM, 1.39x sentence-transformers
    against 1.30x): the Python between kernels (the model's forward, pooling, writing) of one
    batch overlaps the matrix products of the other, and small matrix products run as fast on
    one thread. A batch's vectors do not depend on the thread that ran it."""
    if workers <= 1:
        yield from map(fn, batches)
        return
    before = torch.get_num_threads()
    torch.set_num_threads(batch_threads(workers))
    ex = ThreadPoolExecutor(workers, thread_name_prefix="encode")
    try:
        yield from ex.map(fn, batches)
    finally:
        ex.shutdown(cancel_futures=True)
        torch.set_num_threads(before)


class NpyRowWriter:
    """Write a (layers, rows, hidden) ``.npy`` file row by row with ``os.pwrite``.

    Rows arrive in length-sorted order, i.e. scattered over the file. Writing them through a
    memory map would keep every touched page resident in the process (RSS grows with the corpus);
    positioned writes leave the data to the page cache, so memory stays bounded by the batch.
    """

    def __init__(self, path: str | Path, shape: tuple[int, int, int], dtype: str = "float32"):
        self.shape = shape
        self.dtype = np.dtype(dtype)
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": shape,
        }
        self.fh = open(path, "wb")  # noqa: SIM115 (closed in close())
        np.lib.format.write_array_header_1_0(self.fh, header)
        self.fh.flush()
        self.offset = self.fh.tell()
        self.row_bytes = shape[2] * self.dtype.itemsize
        self.fh.truncate(self.offset + shape[0] * shape[1] * self.row_bytes)

    def write(self, block: np.ndarray, rows: np.ndarray) -> None:
        """``block`` (layers, len(rows), hidden) goes to ``rows`` of every layer."""
        block = np.ascontiguousarray(block, dtype=self.dtype)
        fd = self.fh.fileno()
        n_rows = self.shape[1]
        for layer in range(block.shape[0]):
            base = self.offset + layer * n_rows * self.row_bytes
            for j, row in enumerate(rows):
                os.pwrite(fd, block[layer, j].tobytes(), base + int(row) * self.row_bytes)

    def close(self) -> None:
        self.fh.close()


def sentence_embeddings(
    model,
    ids: Sequence[np.ndarray],
    pad_id: int,
    batch_size: int,
    poolings: Sequence[str],
    out_paths: dict[str, str],
    device: str = "cpu",
    dtype: str = "float32",
    min_spread: float = 0.0,
    workers: int | None = None,
    bf16: bool = False,
    cpu_matmul: str = "auto",
) -> dict[str, Any]:
    """Encode every sentence and stream each pooling to ``out_paths[pooling]`` (.npy); matrices
    whose rows barely differ (spread below ``min_spread``, see ``SpreadMeter``) are listed under
    ``degenerate`` for the later stages to skip. ``workers``: batches encoded at once on the CPU
    (default: torch's thread count; see ``map_batches``); a GPU runs one at a time. ``bf16``:
    the forward pass under bf16 autocast where ``device`` has bfloat16 units (else float32, with
    a warning; ``bf16`` in the facts says which ran). ``cpu_matmul``: the library of the float32
    linear layers on a CPU (``auto``, ``torch`` or ``onednn``; see ``matmul``); ``matmul`` in
    the facts says which ran and why."""
    n_layers = model.config.num_hidden_layers
    hidden = model.config.hidden_size
    wanted = [p for p in poolings if p != "pooler" or model_has_pooler(model)]
    lengths = np.asarray([len(s) for s in ids])
    if device != "cpu":
        workers = 1
    workers = workers or torch.get_num_threads()
    bf16 = bf16_if_supported(bf16, device, "encoding")
    model.to(device)
    matmul = pick_linear_kernel(cpu_matmul, model, device, bf16, batch_threads(workers))
    log.info(
        "encoding %d sentences on %s in %s, linear layers on %s (%s%s)",
        len(ids),
        device,
        "bf16 (autocast)" if bf16 else "float32",
        matmul["kernel"],
        matmul["reason"],
        f": {matmul['gflops']} GFLOP/s" if "gflops" in matmul else "",
    )
    started = time.perf_counter()
    batches = list(length_sorted_batches(lengths, batch_size))
    # Each file is written under a temporary name and renamed only when all batches are done.
    with contextlib.ExitStack() as stack:
        stack.enter_context(linear_layers(model, bf16, matmul["kernel"]))
        writers: dict[str, NpyRowWriter] = {}
        meters: dict[str, SpreadMeter] = {}
        for how in wanted:
            tmp = stack.enter_context(atomic_path(out_paths[how], suffix=".npy"))
            shape = (1 if how == "pooler" else n_layers + 1, len(ids), hidden)
            writers[how] = NpyRowWriter(tmp, shape, dtype)
            meters[how] = SpreadMeter(shape[0], hidden)
            stack.callback(writers[how].close)

        def encode_batch(batch: np.ndarray) -> None:
            input_ids, mask = pad_batch([ids[i] for i in batch], pad_id)
            with torch.inference_mode():
                pooled = encode(model, input_ids.to(device), mask.to(device), wanted, bf16)
            for how, vecs in pooled.items():
                block = vecs.cpu().numpy()
                meters[how].add(block, how, batch)
                writers[how].write(block, batch)

        for b, _ in enumerate(map_batches(encode_batch, batches, workers)):
            if b % 20 == 0:
                done = min((b + 1) * batch_size, len(ids))
                elapsed = time.perf_counter() - started
                log.info("encoded %d/%d sentences (%.1f s)", done, len(ids), elapsed)
    elapsed = time.perf_counter() - started
    tokens = int(lengths.sum())
    padded = sum(len(batch) * int(lengths[batch].max()) for batch in batches)
    skipped = [p for p in poolings if p not in wanted]
    if skipped:
        log.info("model has no pooler: pooling %s skipped", skipped)
    spreads = {how: meter.spread() for how, meter in meters.items()}
    degenerate = degenerate_report(spreads, len(ids), min_spread)
    for d in degenerate:
        log.warning("not analysed further: %s", d["reason"])
    return {
        "sentences": len(ids),
        "layers": n_layers + 1,
        "hidden_size": hidden,
        "poolings": wanted,
        "skipped_poolings": skipped,
        "tokens": tokens,
        "padding_share": round(1 - tokens / max(padded, 1), 4),
        "seconds": round(elapsed, 2),
        "sentences_per_second": round(len(ids) / max(elapsed, 1e-9), 1),
        "device": device,
        "bf16": bf16,
        "matmul": matmul,
        "workers": workers,
        "spread": spreads,
        "degenerate": degenerate,
    }
