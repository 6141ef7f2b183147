"""Stage `padding`: how much a sentence's hidden states move when it is encoded inside a padded
batch instead of alone, and under other numeric settings (bf16, eager attention, left padding,
GPU), with a verdict per setting against the configured tolerances.

The study runs hundreds of tiny batch-size-1 forward passes. With OpenMP's default busy-waiting,
torch's threads spin between them and, on a machine shared with other jobs, that slows the whole
study down several-fold; passive waiting (set before torch loads, unless the user set it) keeps it
steady. It changes scheduling only, never the numbers.
"""

from bertlens.io import write_sidecar
from bertlens.modelstage import corpus_column, load
from bertlens.padding import padding_study, write_outputs
from bertlens.stage import UserError, pick_device, run


def main(sm):
    spec, loc, tokenizer, model = load(sm)

    texts = corpus_column(sm.input.corpus, spec)
    texts = texts[texts.str.strip() != ""]
    if texts.empty:
        raise UserError(f"corpus column '{spec.column}' is empty: nothing to study")

    cfg = dict(sm.params.padding)
    result = padding_study(
        model,
        tokenizer,
        texts.tolist(),
        rows=texts.index.to_numpy(),
        max_length=spec.max_length,
        sample=cfg.get("sample", 200),
        partners=cfg.get("partners", [16, "longest", "max_length"]),
        settings=cfg.get("settings", ["bf16", "sdpa_vs_eager", "left_padding", "cuda"]),
        tolerance=cfg.get("tolerance", 1e-5),
        bf16_tolerance=cfg.get("bf16_tolerance", 0.1),
        batch_size=cfg.get("batch_size", 32),
        seed=cfg.get("seed", 42),
        cuda=pick_device("auto") == "cuda",
    )
    keys = (
        "differences",
        "summary",
        "summary_html",
        "verdict",
        "verdict_html",
        "histograms",
        "growth",
        "study",
    )
    write_outputs(result, {k: sm.output[k] for k in keys}, spec.name)
    write_sidecar(
        sm.output.differences,
        model=spec.name,
        model_source=spec.describe(),
        tokenizer=type(tokenizer).__name__,
        column=spec.column,
        seed=cfg.get("seed", 42),
        padding=cfg,
    )


run(snakemake, main)
