"""benchmarks/gpu_check.sh says plainly that there is no GPU (and measures nothing) where torch
sees none; on a GPU machine it is run by hand (see the script)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers.tiny import REPO


def test_gpu_check_says_no_gpu(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable, "OUT": str(tmp_path)}
    proc = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith("NO GPU: torch sees no CUDA device"), proc.stderr
    assert "nothing was measured" in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ("extraction trian", "unknown step 'trian' in STEPS"),
        ("extraction\ntrian", "unknown step 'trian' in STEPS"),
        ("", "STEPS names no step"),
        ("  ", "STEPS names no step"),
    ],
)
def test_gpu_check_refuses_steps_it_does_not_know(tmp_path, steps, message):
    env = {**os.environ, "STEPS": steps, "OUT": str(tmp_path)}
    proc = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh")],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert list(tmp_path.iterdir()) == []
