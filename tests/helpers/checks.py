"""Small checks shared by the failure tests: a message is one line, a model spec of a folder, the
files a folder holds; the mark of tests that need oneDNN."""

from __future__ import annotations

from pathlib import Path

import pytest

from bertlens.matmul import onednn_available
from bertlens.models import ModelSpec

# for tests of the linear layers on oneDNN (every torch CPU wheel has it)
needs_onednn = pytest.mark.skipif(not onednn_available(), reason="this torch build has no oneDNN")


def one_line(err: pytest.ExceptionInfo) -> str:
    """The exception's message, asserted to be one line."""
    msg = str(err.value)
    assert "\n" not in msg, msg
    return msg


def path_spec(name: str, folder: Path, **kw) -> ModelSpec:
    return ModelSpec.from_config({"name": name, "column": "en", "path": str(folder), **kw})


def files_under(folder: Path) -> list[str]:
    """Every file under ``folder`` (hidden temporary files included), relative."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
