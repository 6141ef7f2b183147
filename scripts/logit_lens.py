"""Layer lens, part 5: the model's MLM head applied to every layer at masked positions of
held-out sentences."""

from bertlens.corpus import read_corpus
from bertlens.io import read_table, write_html_table, write_sidecar, write_table
from bertlens.layerplots import lens_png
from bertlens.logitlens import held_out_rows, lens_rows, logit_lens, note_frame
from bertlens.models import check_vocab, has_mlm_head, load_model, load_tokenizer
from bertlens.modelstage import provenance_of, spec_and_location
from bertlens.stage import pick_device, run


def lens_table(sm, spec, loc):
    if has_mlm_head(loc, spec.revision) is False:
        return note_frame(
            f"model '{spec.name}' has no masked-LM head in its weights: no lens"
        ), None
    tokenizer = load_tokenizer(spec, loc)
    model = load_model(spec, loc, head="mlm")
    check_vocab(spec, tokenizer, model)
    cfg = sm.params.layers
    tokens = read_table(sm.input.tokens)
    held = None
    if sm.params.training:
        run_cfg = sm.params.training
        texts = read_corpus(sm.input.corpus, spec.column)[spec.column].tolist()
        held = held_out_rows(texts, run_cfg["seed"], run_cfg["eval_fraction"])
    rows = lens_rows(tokens, held, cfg["logit_lens_sentences"], cfg["seed"])
    ids = list(tokens.set_index("row").loc[rows, "input_ids"])
    table = logit_lens(
        model,
        ids,
        tokenizer.mask_token_id,
        tokenizer.pad_token_id,
        set(tokenizer.all_special_ids),
        probability=cfg["mask_probability"],
        seed=cfg["seed"],
        batch_size=cfg["batch_size"],
        device=pick_device(sm.params.device),
    )
    held_note = "the training run's held-out" if held is not None else "corpus"
    return table.assign(note=f"{len(rows)} {held_note} sentences"), tokenizer


def main(sm):
    spec, loc = spec_and_location(sm)
    table, tokenizer = lens_table(sm, spec, loc)
    write_table(sm.output.table, table)
    write_html_table(
        sm.output.html,
        table,
        f"{spec.name}: logit lens",
        note="The MLM head applied to each layer at masked positions (0 = embedding output).",
    )
    lens_png(table, spec.name, sm.output.png)
    prov = provenance_of(spec, loc, tokenizer) if tokenizer else {"model": spec.name}
    write_sidecar(sm.output.table, **prov, seed=sm.params.layers["seed"])


run(snakemake, main)
