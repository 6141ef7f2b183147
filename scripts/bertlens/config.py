"""Checks of the config that a JSON schema cannot express. Run at workflow start (after the schema
has filled in defaults), so a bad config fails before any job, with one line naming the key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from .models import SOURCE_KEYS
from .stage import UserError

#: The one place where every config default is written (JSON schema, with descriptions).
SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


def with_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` validated against the schema, with its defaults filled in (what
    ``validate`` in rules/common.smk gives every rule; for code that builds a config outside the
    workflow: tests, benchmarks)."""
    from snakemake.utils import validate

    filled = copy.deepcopy(config)
    validate(filled, schema=str(SCHEMA))
    return filled


def _entry_with_defaults(section: str, entry: dict[str, Any]) -> dict[str, Any]:
    """One entry of ``models:`` or ``training:`` validated inside the smallest config the schema
    accepts, with the schema's defaults filled in."""
    config: dict[str, Any] = {
        "corpus": {"sources": [{"name": "corpus", "path": "corpus.tsv"}]},
        "models": [{"name": "model", "column": "en", "path": "model"}],
    }
    if section == "models":
        config["models"] = [entry]
        return with_defaults(config)["models"][0]
    config["training"] = {"run": entry}
    return with_defaults(config)["training"]["run"]


def run_with_defaults(entry: dict[str, Any]) -> dict[str, Any]:
    """One ``training:`` entry validated, with the schema's defaults filled in."""
    return _entry_with_defaults("training", entry)


def model_with_defaults(entry: dict[str, Any]) -> dict[str, Any]:
    """One ``models:`` entry validated, with the schema's defaults filled in."""
    return _entry_with_defaults("models", entry)


def check_config(config: dict[str, Any]) -> None:
    sources = config["corpus"]["sources"]
    names = [s["name"] for s in sources]
    _unique(names, "corpus.sources[].name")
    for src in sources:
        given = [k for k in ("url", "path") if src.get(k)]
        if len(given) != 1:
            raise UserError(
                f"corpus source '{src['name']}': give exactly one of url, path (found "
                f"{given or 'none'})"
            )
        if src.get("sha256") and not src.get("url"):
            raise UserError(
                f"corpus source '{src['name']}': sha256 is only checked for url sources; "
                "remove it or use url:"
            )

    models = config["models"]
    _unique([m["name"] for m in models], "models[].name")
    training = {k: v for k, v in config.get("training", {}).items() if v is not None}
    for m in models:
        given = [k for k in SOURCE_KEYS if m.get(k)]
        if len(given) != 1:
            raise UserError(
                f"model '{m['name']}': give exactly one of {', '.join(SOURCE_KEYS)} "
                f"(found {given or 'none'})"
            )
        if m.get("trained") and m["trained"] not in training:
            raise UserError(
                f"model '{m['name']}': trained: '{m['trained']}' is not a run under training: "
                f"(runs: {', '.join(training) or 'none'}); add it or fix the name"
            )
        run = training.get(m.get("trained") or "")
        if run and not run.get("base_model"):
            dic = run["vocab"]["mecab_dic"]
            if m["mecab_dic"] != dic:
                raise UserError(
                    f"model '{m['name']}': mecab_dic '{m['mecab_dic']}' differs from "
                    f"the dictionary its vocabulary was trained with ('{dic}' in training run "
                    f"'{m['trained']}'); use the same dictionary in both"
                )
        if m.get("revision") and not m.get("hub"):
            raise UserError(f"model '{m['name']}': revision only applies to hub: models")

    model_names = {m["name"] for m in models}
    for run, t in training.items():
        base = t.get("base_model")
        if t.get("init") == "pretrained" or base is not None:
            if base not in model_names:
                raise UserError(
                    f"training run '{run}': base_model must name an entry in models: (needed for "
                    f"init: pretrained; got {base!r}; models: {', '.join(sorted(model_names))})"
                )
            if next(m for m in models if m["name"] == base).get("trained") == run:
                raise UserError(f"training run '{run}': base_model cannot be its own result")
        _check_run(run, t)


def _check_run(run: str, t: dict[str, Any]) -> None:
    """Cross-field checks of one training run (each value's own range is the schema's)."""
    masking, bert = t["masking"], t["bert"]
    if masking["mask_replace"] + masking["random_replace"] > 1:
        raise UserError(
            f"training run '{run}': masking.mask_replace + masking.random_replace must be ≤ 1"
        )
    if bert["hidden_size"] % bert["num_attention_heads"]:
        raise UserError(
            f"training run '{run}': bert.hidden_size ({bert['hidden_size']}) must be a "
            f"multiple of bert.num_attention_heads ({bert['num_attention_heads']})"
        )
    if bert["max_position_embeddings"] < t["max_length"]:
        raise UserError(
            f"training run '{run}': max_length ({t['max_length']}) exceeds "
            f"bert.max_position_embeddings ({bert['max_position_embeddings']})"
        )
    if t["packing"] and t["objective"] == "notebook":
        raise UserError(
            f"training run '{run}': packing does not go with objective: notebook (the notebook "
            "pads every sentence to max_length); set packing: false or another objective"
        )


def canonical(value: Any) -> Any:
    """The same value with the keys of every mapping sorted (lists keep their order)."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def _unique(values: list[str], key: str) -> None:
    dup = sorted({v for v in values if values.count(v) > 1})
    if dup:
        raise UserError(f"{key} must be unique; repeated: {', '.join(dup)}")


def resolve_layers(spec: list[Any], n_layers: int) -> list[int]:
    """Map configured layer specs (0, -1, 'first', 'middle', 'last', 'all') to indices into
    hidden_states (0 = embedding output, n_layers = last encoder layer)."""
    out: list[int] = []
    for item in spec:
        if item == "all":
            out.extend(range(n_layers + 1))
            continue
        if item == "first":
            idx = 0
        elif item == "middle":
            idx = (n_layers + 1) // 2
        elif item == "last":
            idx = n_layers
        else:
            idx = int(item)
            if idx < 0:
                idx += n_layers + 1
        if not 0 <= idx <= n_layers:
            raise UserError(
                f"layer {item} is beyond the model's depth (hidden_states has {n_layers + 1} "
                f"entries: 0 = embeddings … {n_layers} = last layer); fix projection.sentences.layers"
            )
        if idx not in out:
            out.append(idx)
    return out
