#!/usr/bin/env bash
# The GPU checks, as one short script for a machine with a CUDA GPU. Steps:
#   train       (issue 14) a tiny Trainer run on CUDA: bf16 autocast and SDPA attention are on
#   time        (issue 14) the MLM time-to-quality benchmark (notebook recipe vs ours)
#   extraction  (issue 13) sentence-embedding throughput on the GPU, BERT-base's shape: ours
#               (bf16 autocast + SDPA, and fp32) next to sentence-transformers (bf16, fp32)
#               and seed 000's recipe, in the same rounds on the same GPU
#   workflow    the tiny workflow test
# Without a GPU it says so in one line and exits with status 3, measuring nothing; a STEPS that
# names an unknown step, or none (set but empty), exits with status 2; unset, every step runs.
#   bash benchmarks/gpu_check.sh                     # every step; results under benchmarks/out/gpu (or $OUT)
#   STEPS="extraction" bash benchmarks/gpu_check.sh  # only the steps named
#   EXTRACTION_SENTENCES=84300 ...                   # the seeds' corpus size (default 20,000)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-benchmarks/out/gpu}
SECONDS_EACH=${SECONDS_EACH:-120}
EXTRACTION_SENTENCES=${EXTRACTION_SENTENCES:-20000}
ALL_STEPS="train time extraction workflow"
read -d "" -ra steps <<<"${STEPS-$ALL_STEPS}" || true  # spaces or newlines
declare -A want=()
for step in "${steps[@]}"; do
    if [[ " $ALL_STEPS " != *" $step "* ]]; then
        echo "unknown step '$step' in STEPS; the steps are: $ALL_STEPS" >&2
        exit 2
    fi
    want[$step]=1
done
if [[ ${#want[@]} -eq 0 ]]; then
    echo "STEPS names no step; the steps are: $ALL_STEPS" >&2
    exit 2
fi
wanted() { [[ -n ${want[$1]:-} ]]; }

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    smi=$(command -v nvidia-smi >/dev/null && nvidia-smi -L 2>&1 | head -1 || echo "nvidia-smi not found")
    echo "NO GPU: torch sees no CUDA device ($smi); nothing was measured. Run this on a machine with an NVIDIA GPU." >&2
    exit 3
fi
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"

if wanted train; then
echo "== train: tiny Trainer run on CUDA (bf16 autocast, SDPA)"
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
fi

if wanted time; then
echo "== time: time to quality on the GPU (${SECONDS_EACH} s each)"
"$PY" benchmarks/mlm_time.py --device cuda --seconds "$SECONDS_EACH" --every 5 --out "$OUT"
fi

if wanted extraction; then
echo "== extraction: ${EXTRACTION_SENTENCES} sentences, BERT-base shape, bf16 + SDPA and fp32"
"$PY" benchmarks/run.py --only extraction --extraction-device cuda --extraction-model bert-base \
    --extraction-bf16 --extraction-sentences "$EXTRACTION_SENTENCES" --repeats 2 --out "$OUT/extraction"
grep -E '^\| (sentence embeddings|same vs|achieved)' "$OUT/extraction/results.md"
"$PY" - "$OUT" <<'PYEOF'
import json, sys
e = json.load(open(f"{sys.argv[1]}/extraction/results.json"))["extraction"]
assert e["device"] == "cuda" and e["precision"] == "bf16", (e["device"], e["precision"])
assert e["attention"] == {"ours": "sdpa", "sentence_transformers": "sdpa"}, e["attention"]
PYEOF
fi

if wanted workflow; then
echo "== workflow: tiny workflow"
"$PY" -m pytest tests/test_workflow.py -x -q -p no:cacheprovider 2>&1 | tail -3
fi

echo "GPU checks done; results in $OUT"
