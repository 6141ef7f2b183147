"""Models the benchmarks make: a BERT of a given size with random weights, for measuring speed and
memory at a model size no packaged model has (speed and memory do not depend on the weights)."""

from __future__ import annotations

import torch
from transformers import BertConfig, BertModel


def random_bert(vocab_size: int, layers: int = 12, hidden: int = 768, seed: int = 0) -> BertModel:
    """A BERT encoder with ``layers`` layers of width ``hidden`` (64 per attention head, a
    feed-forward 4x as wide: BERT-base's proportions; the defaults are BERT-base), in eval mode."""
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        intermediate_size=4 * hidden,
    )
    return BertModel(config).eval()
