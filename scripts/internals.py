"""Stage `internals`: rebuild the model's pieces by hand from its weights (embeddings, attention,
every encoder layer, pooler, MLM head) and compare them with the model's own outputs; count the
parameters by component."""

from bertlens.corpus import read_corpus
from bertlens.internals import run_internals
from bertlens.io import write_html_table, write_sidecar, write_table
from bertlens.models import has_mlm_head
from bertlens.modelstage import load, spec_and_location
from bertlens.stage import run


def main(sm):
    spec, loc = spec_and_location(sm)
    head = "mlm" if has_mlm_head(loc, spec.revision) else "base"
    spec, loc, tokenizer, model = load(sm, head=head)

    texts = read_corpus(sm.input.corpus, spec.column, f"model '{spec.name}'")[spec.column]
    cfg = dict(sm.params.internals)
    tolerance = cfg["tolerance"]
    checks, params = run_internals(
        model,
        tokenizer,
        texts.tolist(),
        n_sentences=cfg["sentences"],
        max_length=spec.max_length,
        tolerance=tolerance,
    )
    write_table(sm.output.checks, checks)
    failed = int(checks["passed"].eq(False).sum())  # None = skipped
    write_html_table(
        sm.output.checks_html,
        checks,
        title=f"{spec.name}: BERT rebuilt by hand vs the model ({type(model).__name__})",
        note=(
            f"max_abs_error: largest |by hand - model| over the real tokens of one padded batch "
            f"of {cfg['sentences']} corpus sentences (fp32, eval mode); tolerance "
            f"{tolerance:g}. {failed} check(s) failed; empty passed = skipped (see note)."
        ),
        float_format="{:.3g}",
    )
    write_table(sm.output.parameters, params)
    write_html_table(
        sm.output.parameters_html,
        params,
        title=f"{spec.name}: parameters by component ({type(model).__name__})",
        note="share: fraction of all parameters; tied tensors are counted once.",
        float_format="{:.4g}",
    )
    write_sidecar(
        sm.output.checks,
        model=spec.name,
        model_source=spec.describe(),
        model_class=type(model).__name__,
        tokenizer=type(tokenizer).__name__,
        column=spec.column,
        internals=cfg,
    )


run(snakemake, main)
