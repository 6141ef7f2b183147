"""Models the benchmarks make: a BERT of a given size with random weights, for measuring speed and
memory at a model size no packaged model has (speed and memory do not depend on the weights)."""

from __future__ import annotations

import torch
from transformers import BertConfig, BertModel

# The size of the default config's scratch model (training.easy-ja-scratch.bert), which the MLM
# benchmarks train with both recipes.
SCRATCH_BERT = {
    "num_hidden_layers": 4,
    "hidden_size": 256,
    "num_attention_heads": 4,
    "intermediate_size": 1024,
    "max_position_embeddings": 128,
}


def bert_config(vocab_size: int, layers: int = 12, hidden: int = 768) -> BertConfig:
    """A BERT of ``layers`` layers of width ``hidden`` in BERT-base's proportions (64 per
    attention head, a feed-forward 4x as wide); the defaults are BERT-base."""
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        intermediate_size=4 * hidden,
    )


def random_bert(vocab_size: int, layers: int = 12, hidden: int = 768, seed: int = 0) -> BertModel:
    """A ``bert_config`` encoder with random weights from ``seed``, in eval mode."""
    torch.manual_seed(seed)
    return BertModel(bert_config(vocab_size, layers, hidden)).eval()
