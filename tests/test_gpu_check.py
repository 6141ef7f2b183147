"""benchmarks/gpu_check.sh says plainly that there is no GPU (and measures nothing) where torch
sees none; on a GPU machine it is run by hand (see the script)."""

from __future__ import annotations

import os
import subprocess
import sys

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


def test_gpu_check_refuses_an_unknown_step(tmp_path):
    env = {**os.environ, "STEPS": "extraction trian", "OUT": str(tmp_path)}
    proc = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh")],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "unknown step 'trian' in STEPS" in proc.stderr
    assert list(tmp_path.iterdir()) == []
