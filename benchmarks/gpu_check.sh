#!/usr/bin/env bash
# The GPU checks of MLM training (issue 14), as one short script for a machine with a CUDA GPU:
#   1. a tiny Trainer run on CUDA: bf16 autocast and SDPA attention are on (summary.json says so),
#   2. the time-to-quality benchmark (notebook recipe vs ours) on the GPU,
#   3. the tiny workflow test.
# Without a GPU it says so in one line and exits with status 3, measuring nothing.
#   bash benchmarks/gpu_check.sh            # results under benchmarks/out/gpu (or $OUT)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-benchmarks/out/gpu}
SECONDS_EACH=${SECONDS_EACH:-120}

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    smi=$(command -v nvidia-smi >/dev/null && nvidia-smi -L 2>&1 | head -1 || echo "nvidia-smi not found")
    echo "NO GPU: torch sees no CUDA device ($smi); nothing was measured. Run this on a machine with an NVIDIA GPU." >&2
    exit 3
fi
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"

echo "== 1. tiny Trainer run on CUDA (bf16 autocast, SDPA)"
"$PY" - "$OUT" <<'PYEOF'
import json, sys, tempfile
from pathlib import Path
sys.path[:0] = ["scripts", "."]
from bertlens.mlm import TrainArgs
from bertlens.training import train
from tests.helpers.training import sample_texts, tiny_run_config, train_vocab

out, work = Path(sys.argv[1]), Path(tempfile.mkdtemp())
vocab = train_vocab(work / "vocab")
args = TrainArgs.from_config(tiny_run_config(bf16=True, max_steps=60), name="gpu", device="cuda")
s = train(args, sample_texts(), vocab, work / "m", work / "m.csv", work / "c", work / "s.json")
facts = {k: s[k] for k in ("device", "bf16", "attention", "first_eval_loss", "last_eval_loss")}
print(json.dumps(facts))
(out / "tiny_cuda.json").write_text(json.dumps(facts, indent=1))
assert s["bf16"] and s["attention"] == "sdpa" and s["device"].startswith("cuda"), facts
assert s["last_eval_loss"] < s["first_eval_loss"], facts
PYEOF

echo "== 2. time to quality on the GPU (${SECONDS_EACH} s each)"
"$PY" benchmarks/mlm_time.py --device cuda --seconds "$SECONDS_EACH" --every 5 --out "$OUT"

echo "== 3. tiny workflow"
"$PY" -m pytest tests/test_workflow.py -x -q -p no:cacheprovider 2>&1 | tail -3
echo "GPU checks done; results in $OUT"
