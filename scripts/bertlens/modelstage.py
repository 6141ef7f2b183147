"""Loading what a model stage needs from the snakemake object: spec, location, tokenizer,
model, and the texts of the model's corpus column."""

from __future__ import annotations

from typing import Any

import pandas as pd

from .io import read_table
from .models import ModelSpec, check_vocab, load_model, load_tokenizer, location


def spec_and_location(sm: Any) -> tuple[ModelSpec, str]:
    spec = ModelSpec.from_config(dict(sm.params.model))
    trained = sm.input.get("model_dir") if hasattr(sm.input, "get") else None
    return spec, location(spec, trained)


def load(sm: Any, head: str = "base", attn_implementation: str | None = None):
    spec, loc = spec_and_location(sm)
    tokenizer = load_tokenizer(spec, loc)
    model = load_model(spec, loc, head=head, attn_implementation=attn_implementation)
    check_vocab(spec, tokenizer, model)
    return spec, loc, tokenizer, model


def column_rows(path: str, column: str, who: str = "") -> pd.DataFrame:
    """The corpus rows with text in ``column`` (each model and MeCab column reads just these), in
    corpus order, with a fresh index."""
    from .stage import UserError

    corpus = read_table(path)
    if column not in corpus.columns:
        raise UserError(
            f"{who or 'a stage'} reads column '{column}', which the corpus does not have; "
            "fix 'column:' in the config"
        )
    text = corpus[column].fillna("").astype(str)
    return corpus[text != ""].reset_index(drop=True)


def corpus_column(path: str, spec: ModelSpec) -> pd.Series:
    """The model's texts: its corpus column where it has text."""
    return column_rows(path, spec.column, f"model '{spec.name}'")[spec.column].astype(str)


def corpus_texts(path: str, column: str) -> list[str]:
    return column_rows(path, column)[column].astype(str).tolist()


def provenance_of(spec: ModelSpec, loc: str, tokenizer) -> dict[str, Any]:
    return {
        "model": spec.name,
        "model_source": spec.describe(),
        "model_location": loc,
        "tokenizer": type(tokenizer).__name__,
        "column": spec.column,
        "max_length": spec.max_length,
    }
