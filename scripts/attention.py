"""Attention of the probe sentences: weights from the eager attention implementation (rule
attention), a heatmap grid per probe (rule attention_png) and the interactive page (rule
attention_page)."""

from bertlens.attention import attention_maps, attention_page, grid_png, load_maps, save_maps
from bertlens.io import write_sidecar
from bertlens.stage import run


def compute(sm):
    from bertlens.modelstage import load, provenance_of

    spec, loc, tokenizer, model = load(sm, attn_implementation="eager")
    max_tokens = min(int(sm.params.max_tokens), spec.max_length)
    maps = attention_maps(model, tokenizer, list(sm.params.probes), max_tokens)
    prov = provenance_of(spec, loc, tokenizer)
    save_maps(maps, sm.output.npz, sm.output.json, **prov, attn_implementation="eager")
    write_sidecar(sm.output.npz, **prov, max_tokens=max_tokens)


def png(sm):
    maps, meta = load_maps(sm.input.npz, sm.input.json)
    i = int(sm.wildcards.i)  # 1-based, as in the file name
    grid_png(maps[i - 1], f"{sm.wildcards.model}: attention of probe {i}", sm.output[0])


def page(sm):
    maps, meta = load_maps(sm.input.npz, sm.input.json)
    attention_page(maps, f"{sm.wildcards.model}: attention of the probe sentences", sm.output[0])


def main(sm):
    {"attention": compute, "attention_png": png, "attention_page": page}[sm.rule](sm)


run(snakemake, main)
