"""Stage `padding`: how much a sentence's hidden states move when it is encoded inside a padded
batch instead of alone, and under other numeric settings (bf16, eager attention, oneDNN linear
layers, left padding, GPU), with a verdict per setting against the configured tolerances.

The study runs hundreds of tiny batch-size-1 forward passes. With OpenMP's default busy-waiting,
torch's threads spin between them and, on a machine shared with other jobs, that slows the whole
study down several-fold; passive waiting (set before torch loads, unless the user set it) keeps it
steady. It changes scheduling only, never the numbers.
"""

from bertlens.corpus import read_corpus
from bertlens.io import write_sidecar
from bertlens.modelstage import load
from bertlens.padding import padding_study, write_outputs
from bertlens.stage import UserError, pick_device, run


def main(sm):
    spec, loc, tokenizer, model = load(sm)

    texts = read_corpus(sm.input.corpus, spec.column, f"model '{spec.name}'")[spec.column]
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
        sample=cfg["sample"],
        partners=cfg["partners"],
        settings=cfg["settings"],
        tolerance=cfg["tolerance"],
        bf16_tolerance=cfg["bf16_tolerance"],
        batch_size=cfg["batch_size"],
        seed=cfg["seed"],
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
        seed=cfg["seed"],
        padding=cfg,
    )


run(snakemake, main)
