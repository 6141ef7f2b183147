"""Code style gates: ruff (lint + format) and snakefmt stay clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers.tiny import REPO

BIN = Path(sys.executable).parent


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)


def test_ruff_check():
    proc = run(str(BIN / "ruff"), "check", "scripts", "tests", "benchmarks")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format():
    proc = run(str(BIN / "ruff"), "format", "--check", "scripts", "tests", "benchmarks")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_snakefmt():
    proc = run(str(BIN / "snakefmt"), "--check", "Snakefile", "rules")
    assert proc.returncode == 0, proc.stdout + proc.stderr
