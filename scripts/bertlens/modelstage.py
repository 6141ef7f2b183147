"""Loading what a model stage needs from the snakemake object: spec, location, tokenizer and
model (the model's corpus rows: ``corpus.read_corpus``)."""

from __future__ import annotations

from typing import Any

from .models import (
    ModelSpec,
    check_max_length,
    check_vocab,
    load_model,
    load_tokenizer,
    location,
)
from .stage import UserError


def spec_and_location(sm: Any) -> tuple[ModelSpec, str]:
    spec = ModelSpec.from_config(dict(sm.params.model))
    trained = sm.input.get("model_dir") if hasattr(sm.input, "get") else None
    return spec, location(spec, trained)


def load(sm: Any, head: str = "base", attn_implementation: str | None = None):
    spec, loc = spec_and_location(sm)
    tokenizer = load_tokenizer(spec, loc)
    model = load_model(spec, loc, head=head, attn_implementation=attn_implementation)
    check_vocab(spec, tokenizer, model)
    check_max_length(spec, model.config)
    return spec, loc, tokenizer, model


def provenance_of(spec: ModelSpec, loc: str, tokenizer) -> dict[str, Any]:
    return {
        "model": spec.name,
        "model_source": spec.describe(),
        "model_location": loc,
        "tokenizer": type(tokenizer).__name__,
        "column": spec.column,
        "max_length": spec.max_length,
    }


def check_rows_for_analysis(
    rows_per_use: dict[str, int], perplexity: float | None, k: int | None
) -> None:
    """Each model's rows must be enough for the sentence t-SNE (more than 3 x perplexity + 1)
    and the sentence k-NN (more than k): say how many are needed, before anything is computed."""
    for use, n in rows_per_use.items():
        needs, fixes = [], []
        if perplexity is not None and n <= 3 * perplexity + 1:
            need = int(3 * perplexity + 1) + 1
            needs.append(f"its sentence t-SNE (perplexity {perplexity:g}) needs at least {need}")
            fixes.append(f"projection.tsne.perplexity below {(n - 1) / 3:.2f}" if n >= 4 else "")
        if k is not None and n <= k:
            needs.append(f"its k-NN (explore.k {k}) needs at least {k + 1}")
            fixes.append(f"explore.k to at most {n - 1}" if n >= 2 else "")
        if needs:
            lower = f", or set {' and '.join(fixes)}" if all(fixes) else ""
            raise UserError(
                f"{use} gets only {n} corpus row{'s' if n != 1 else ''} with text in its column: "
                f"{' and '.join(needs)}; add rows to the corpus{lower}"
            )
