"""Sparse MLM loss (the head on the masked rows only, bertlens.mlm.SparseMlm) against the dense
loss of ``BertForMaskedLM(labels=...)``: CPU seconds per training step, interleaved in one
process (one torch thread), on batches shaped like the default run's (SNOW-length sentences).

    python benchmarks/sparse_loss.py [--steps 30] [--vocab 4000] [--hidden 256] [--layers 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "scripts"), str(REPO)]

import torch  # noqa: E402
from transformers import BertForMaskedLM  # noqa: E402

from benchmarks.models import bert_config  # noqa: E402
from bertlens.mlm import SparseMlm  # noqa: E402


def step_seconds(model, loss_fn, batch, opt, repeats: int) -> float:
    start = time.process_time()
    for _ in range(repeats):
        loss = loss_fn(model, batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return (time.process_time() - start) / repeats


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--vocab", type=int, default=4000)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--length", type=int, default=16)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = BertForMaskedLM(bert_config(a.vocab, a.layers, a.hidden))
    ids = torch.randint(5, a.vocab, (a.batch, a.length))
    chosen = torch.rand(ids.shape) < 0.15
    labels = torch.where(chosen, ids, -100)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    sparse = SparseMlm(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def dense_loss(m, b):
        return m(**b).loss

    def sparse_loss(m, b):
        out = sparse(**b)
        return out["loss"] / out["count"]

    times = {"dense": [], "sparse": []}
    step_seconds(model, dense_loss, batch, opt, 3)  # warm-up
    for _ in range(a.rounds):
        times["dense"].append(step_seconds(model, dense_loss, batch, opt, a.steps))
        times["sparse"].append(step_seconds(model, sparse_loss, batch, opt, a.steps))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"vocab {a.vocab}, hidden {a.hidden}, {a.layers} layers, batch {a.batch}x{a.length}: "
        f"dense {med['dense'] * 1e3:.1f} ms/step, sparse {med['sparse'] * 1e3:.1f} ms/step, "
        f"sparse is {med['dense'] / med['sparse']:.2f}x faster"
    )
    return med


if __name__ == "__main__":
    main()
