"""Hub models through a loopback HF_ENDPOINT mirror (real huggingface_hub downloads), the cache
used offline afterwards, and the clear error when offline and not cached."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.helpers.hub_mirror import hub_mirror
from tests.helpers.tiny import REPO

SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {scripts!r})
    from bertlens.models import ModelSpec, load_model, load_tokenizer, location
    from bertlens.stage import UserError
    spec = ModelSpec.from_config({{"name": "m", "hub": "bertlens-test/tiny-bert", "column": "en"}})
    try:
        loc = location(spec)
        tok = load_tokenizer(spec, loc)
        model = load_model(spec, loc)
        print("LOADED", type(model).__name__, model.config.hidden_size, len(tok))
    except UserError as err:
        print("USERERROR", err)
    """
).format(scripts=str(REPO / "scripts"))


def run_fresh(code: str, env: dict[str, str]) -> str:
    """Run ``code`` in a fresh interpreter (huggingface_hub reads HF_* variables at import time)
    whose only HF_* variables are those of ``env``; its stdout."""
    import os

    clean = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def run_loader(env: dict[str, str]) -> str:
    """Load the hub model in a fresh interpreter."""
    return run_fresh(SCRIPT, env)


@pytest.fixture(scope="module")
def tiny_repo(tiny_model):
    """The folder the mirror serves as bertlens-test/tiny-bert (it only reads it)."""
    return tiny_model


def test_hub_model_downloads_through_hf_endpoint_mirror_then_works_offline(tiny_repo, tmp_path):
    home = str(tmp_path / "hf-home")
    with hub_mirror({"bertlens-test/tiny-bert": tiny_repo}) as (endpoint, counts):
        out = run_loader({"HF_ENDPOINT": endpoint, "HF_HOME": home})
    assert "LOADED BertModel 32 30522" in out, out
    assert any(p.endswith("/model.safetensors") for p in counts), counts
    # the same hub id now loads from the cache with the network switched off
    out = run_loader({"HF_HUB_OFFLINE": "1", "HF_HOME": home})
    assert "LOADED BertModel 32 30522" in out, out


def test_offline_and_not_cached_names_the_fix(tmp_path):
    out = run_loader({"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "empty")})
    assert out.startswith("USERERROR"), out
    assert "'bertlens-test/tiny-bert' is not in the local Hugging Face cache" in out
    assert "HF_ENDPOINT" in out and "path:" in out


def test_unknown_repo_on_the_mirror_is_a_clear_error(tiny_repo, tmp_path):
    with hub_mirror({"someone-else/model": tiny_repo}) as (endpoint, _):
        out = run_loader({"HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "h")})
    assert out.startswith("USERERROR"), out
    assert "hub id 'bertlens-test/tiny-bert' was not found on http://127.0.0.1:" in out
    assert "check the id" in out


MLM_PROBE = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {scripts!r})
    from bertlens.models import has_mlm_head
    print("MLM", has_mlm_head("bertlens-test/tiny-mlm"), has_mlm_head("bertlens-test/tiny-bert"))
    """
).format(scripts=str(REPO / "scripts"))


def test_wants_mlm_head_for_hub_ids(tiny_repo, tiny_bert, tmp_path):
    """The internals stage loads a hub model with its MLM head when its config (read through the
    mirror, then from the cache offline) names a *ForMaskedLM architecture; an encoder stays
    an encoder."""
    mlm_repo = tiny_bert(with_mlm_head=True)
    home = {"HF_HOME": str(tmp_path / "hf-home")}

    def probe(env):
        return run_fresh(MLM_PROBE, env)

    repos = {"bertlens-test/tiny-mlm": mlm_repo, "bertlens-test/tiny-bert": tiny_repo}
    with hub_mirror(repos) as (endpoint, counts):
        assert "MLM True False" in probe({**home, "HF_ENDPOINT": endpoint})
    assert any("tiny-mlm/resolve/" in p and p.endswith("/config.json") for p in counts), counts
    assert "MLM True False" in probe({**home, "HF_HUB_OFFLINE": "1"})
