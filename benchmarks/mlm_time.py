"""Time to quality of MLM training: held-out masked-token loss against wall-clock seconds.

    python benchmarks/mlm_time.py --seconds 240 --out benchmarks/out/mlm_time   # both recipes
    python benchmarks/mlm_time.py --only ours --seconds 90 --set learning_rate=0.002 ...

Both recipes train the same BERT (4 x 256, the default config's size) with the same WordPiece
vocabulary on the same synthetic SNOW-length sentences, and are scored on the same held-out
sentences with the same masks (15% of non-special tokens -> [MASK], seed 1) by the same
masked-token cross-entropy (:func:`benchmarks.run.masked_eval_loss`). The clock runs from the
start of each recipe's call (tokenization included) and stops while the held-out set is scored.
``--clock cpu`` (the default) counts the CPU seconds of the process (one torch thread: what the
wall clock shows on an idle core), so that runs on a shared machine whose load drifts stay
comparable; ``--clock wall`` counts wall seconds.

* notebook: seed 002's loop (:func:`benchmarks.recipes.notebook_mlm_curve`): pad to 100, static
  masks, labels everywhere, AdamW 5e-5, batch 16.
* ours: :func:`bertlens.training.train` (Trainer) with the run settings of ``--set`` over
  ``OURS`` (the default of config.yaml).

Writes ``curves.json`` (every point of both) and ``curves.png`` (both in one figure) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "scripts"), str(REPO)]

import pandas as pd  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

from benchmarks import recipes  # noqa: E402
from benchmarks.corpora import texts_for  # noqa: E402
from benchmarks.models import SCRATCH_BERT  # noqa: E402
from benchmarks.run import masked_eval_loss  # noqa: E402


def ours_defaults() -> dict[str, Any]:
    """The default config's training run (config.yaml), at the benchmark's model size."""
    cfg = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    (entry,) = cfg["training"].values()
    entry = {k: v for k, v in entry.items() if k not in ("vocab",)}
    entry.update(
        bert=dict(SCRATCH_BERT), eval_fraction=0.02, eval_every=10**9, checkpoint_every=10**9
    )
    entry.pop("max_steps", None)
    return entry


TIMERS = {"cpu": time.process_time, "wall": time.perf_counter}


class Clock(TrainerCallback):
    """Scores the shared held-out set every ``every`` seconds of training time (the clock stops
    while it scores) and stops the run after ``budget`` seconds."""

    def __init__(self, t0: float, budget: float, every: float, score, timer=time.process_time):
        self.t0, self.budget, self.every, self.score = t0, budget, every, score
        self.paused, self.next, self.points, self.timer = 0.0, every, [], timer

    def elapsed(self) -> float:
        return self.timer() - self.t0 - self.paused

    def on_step_end(self, args, state, control, model=None, **kwargs):
        el = self.elapsed()
        if el >= self.next or el >= self.budget:
            start = self.timer()
            loss = self.score(model.mlm)
            model.train()
            self.paused += self.timer() - start
            self.points.append(
                {"seconds": el, "eval_loss": loss, "step": state.global_step,
                 "tokens": int(state.num_input_tokens_seen)}
            )  # fmt: skip
            self.next = (int(el // self.every) + 1) * self.every
        if el >= self.budget:
            control.should_training_stop = True


def run_ours(
    texts, vocab_dir, score, seconds, every, settings, work: Path, device: str, timer
) -> dict[str, Any]:
    from bertlens.config import run_with_defaults
    from bertlens.mlm import TrainArgs
    from bertlens.training import train

    entry = {**ours_defaults(), **settings}
    entry["epochs"] = entry.get("epochs", 40)
    args = TrainArgs.from_config(run_with_defaults(entry), name="ours", device=device)
    clock = Clock(timer(), seconds, every, score, timer)
    clock.points.append({"seconds": 0.0, "eval_loss": None, "step": 0, "tokens": 0})
    summary = train(
        args, texts, str(vocab_dir), work / "model", work / "m.csv", work / "ckpt",
        work / "s.json", callbacks=[clock],
    )  # fmt: skip
    clock.points = [p for p in clock.points if p["eval_loss"] is not None]
    last = clock.points[-1]
    return {
        "recipe": "ours",
        "settings": entry,
        "points": clock.points,
        "tokens_per_second": last["tokens"] / last["seconds"],
        "train_loss_last": summary.get("last_eval_loss"),
        "steps": json.loads((work / "s.json").read_text())["steps"],
        "metrics": pd.read_csv(work / "m.csv").to_dict("records"),
    }


def run_notebook(
    texts, tokenizer, score, seconds, every, lr: float, device: str, timer
) -> dict[str, Any]:
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(42)
    model = BertForMaskedLM(
        BertConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **SCRATCH_BERT)
    )
    model.to(device)
    res = recipes.notebook_mlm_curve(
        model, tokenizer, texts, seconds, every, score, lr, device=device, timer=timer
    )
    return {"recipe": "notebook", "learning_rate": lr, **res}


def plot(results: list[dict[str, Any]], out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    for res in results:
        xs = [p["seconds"] for p in res["points"]]
        ys = [p["eval_loss"] for p in res["points"]]
        ax.plot(xs, ys, marker=".", label=res.get("label", res["recipe"]))
    clock = results[0].get("clock", "cpu") if results else "cpu"
    xlabel = (
        "CPU seconds, one thread (= wall seconds on an idle core)"
        if clock == "cpu"
        else ("wall-clock seconds")
    )
    ax.set(xlabel=xlabel, ylabel="held-out masked-token loss")
    ax.set_title("MLM time to quality: same model, data, held-out masks")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sentences", type=int, default=12_000)
    p.add_argument("--held-out", type=int, default=600)
    p.add_argument("--seconds", type=float, default=240)
    p.add_argument("--every", type=float, default=15)
    p.add_argument("--only", choices=["ours", "notebook"], default=None)
    p.add_argument("--notebook-lr", type=float, default=5e-5)
    p.add_argument("--set", nargs="*", default=[], help="training settings of ours: key=yaml")
    p.add_argument("--label", default=None)
    p.add_argument("--corpus", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clock", choices=sorted(TIMERS), default="cpu")
    p.add_argument("--device", default="cpu", help="cpu or cuda (ours: bf16 autocast + SDPA)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "mlm_time"))
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    from bertlens.vocab import load_trained_tokenizer, train_wordpiece_vocab

    texts = texts_for("easy_ja", a.sentences, a.corpus)
    held = list(dict.fromkeys(texts[-a.held_out :]))
    train_texts = [t for t in texts[: -a.held_out] if t not in set(held)]
    work = Path(tempfile.mkdtemp(prefix="mlm-time-"))
    print(f"work folder {work}", flush=True)
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    train_wordpiece_vocab(
        train_texts, work / "vocab", size=4000, min_frequency=1, special_tokens=special,
        mecab_dic="ipadic",
    )  # fmt: skip
    tokenizer = load_trained_tokenizer(work / "vocab")

    def score(model) -> float:
        return masked_eval_loss(model, tokenizer, held, device=a.device)

    settings = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in a.set)}
    results = []
    if a.only != "notebook":
        res = run_ours(
            train_texts, work / "vocab", score, a.seconds, a.every, settings, work, a.device,
            TIMERS[a.clock],
        )  # fmt: skip
        results.append({**res, "label": a.label or "ours"})
    if a.only != "ours":
        res = run_notebook(
            train_texts, tokenizer, score, a.seconds, a.every, a.notebook_lr, a.device,
            TIMERS[a.clock],
        )  # fmt: skip
        results.append({**res, "label": f"notebook (seed 002, lr {a.notebook_lr:g})"})
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "sentences": len(train_texts), "held_out": len(held), "seconds": a.seconds,
        "clock": a.clock, "threads": a.threads, "device": a.device,
    }  # fmt: skip
    with open(out / "runs.jsonl", "a", encoding="utf-8") as f:
        for res in results:
            f.write(json.dumps({**meta, **res}, ensure_ascii=False) + "\n")
    plot([{**meta, **r} for r in results], out / "curves.png")
    for res in results:
        best = min(p["eval_loss"] for p in res["points"])
        print(f"{res['label']}: best {best:.3f}, last {res['points'][-1]['eval_loss']:.3f}, "
              f"{res['tokens_per_second']:.0f} tok/s, {len(res['points'])} points")  # fmt: skip
    return results


if __name__ == "__main__":
    main()
