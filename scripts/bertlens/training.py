"""MLM training on ``transformers.Trainer``, as Hugging Face's ``run_mlm.py`` does it.

:class:`bertlens.mlm.TrainArgs` is the one arguments dataclass; :class:`bertlens.mlm.MlmCollator`
does the masking; :class:`MlmTrainer` adds the loss at labelled positions only (through
:class:`bertlens.mlm.SparseMlm`) and length-grouped batches; :class:`RunRecorder` evaluates on
fixed masked held-out sentences, writes ``metrics.csv`` and TensorBoard events, and marks a
checkpoint complete. The loop, gradient accumulation, bf16, optimizer/scheduler/RNG checkpoints,
resumption and DDP (``torchrun``, see :func:`launch`) are Trainer's.

Which checkpoint a rerun resumes from is :mod:`bertlens.checkpoints`'s choice; the split, encoding and
masked held-out set of a run are :func:`bertlens.mlm.prepare`'s.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from . import mlm
from .checkpoints import (
    CKPT_RE,
    KEEP_CHECKPOINTS,
    STATE_FILE,
    fingerprint,
    remove_incomplete,
    resume_point,
)
from .io import read_json, write_json, write_sidecar, write_table
from .mlm import METRIC_COLUMNS, TrainArgs
from .models import attention_implementation
from .stage import UserError, bf16_if_supported, pick_device

log = logging.getLogger(__name__)

#: errno values of a full disk or an exceeded quota.
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


# --------------------------------------------------------------------------------------------------
# Model and tokenizer


def _scratch_model(args: TrainArgs, tokenizer):
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **args.bert)
    return BertForMaskedLM(config)


def _load_pretrained(args: TrainArgs, source) -> tuple[Any, Any, str, str]:
    from . import models as bl_models

    if isinstance(source, tuple):
        spec, loc = source
    else:
        loc = str(source)
        # a name the schema accepts (a hub id's "/" is not): it only labels log lines
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", args.base_model or Path(loc).name).lstrip("_.-")
        entry = {"name": name or "base", "column": args.column, "path": loc}
        spec = bl_models.ModelSpec.from_config(entry)
    tokenizer = bl_models.load_tokenizer(spec, loc)
    head = bl_models.has_mlm_head(loc, getattr(spec, "revision", None))
    model = bl_models.load_model(spec, loc, head="mlm")
    bl_models.check_vocab(spec, tokenizer, model)
    if head is False:
        log.warning("base model '%s' has no MLM head weights: the head starts random", spec.name)
    desc = f"pretrained {spec.describe()}"
    files = [
        (p.name, p.stat().st_size, p.stat().st_mtime_ns)
        for p in bl_models.weight_files(loc, getattr(spec, "revision", None))
    ]
    return model, tokenizer, desc, json.dumps([desc, files])


def load_init(args: TrainArgs, source) -> tuple[Any, Any, str, str]:
    """(model, tokenizer, description, identity) for ``init`` scratch (``source``: a tokenizer
    folder, or ``(ModelSpec, location)`` for the base model's config and tokenizer) or pretrained
    (``(ModelSpec, location)`` or a model folder). The identity enters the checkpoint fingerprint.
    """
    from . import models as bl_models

    if args.init == "pretrained":
        return _load_pretrained(args, source)
    torch.manual_seed(args.seed)
    if isinstance(source, tuple):  # the SNOW notebook: the base model's config, random weights
        from transformers import AutoConfig, AutoModelForMaskedLM

        spec, loc = source
        tokenizer = bl_models.load_tokenizer(spec, loc)
        config = AutoConfig.from_pretrained(loc, revision=spec.revision, trust_remote_code=False)
        model = AutoModelForMaskedLM.from_config(config)
        desc = f"scratch with the config and tokenizer of {spec.describe()}"
        return model, tokenizer, desc, json.dumps(["scratch-config", spec.describe()])
    from .vocab import load_trained_tokenizer

    tokenizer = load_trained_tokenizer(source)
    return _scratch_model(args, tokenizer), tokenizer, f"scratch (tokenizer {source})", "scratch"


# --------------------------------------------------------------------------------------------------
# Trainer


class EpochSampler(torch.utils.data.Sampler):
    """The order of one epoch from ``(seed, epoch)`` alone (Trainer calls ``set_epoch``), so a
    resumed run sees the same batches in every later epoch too: length-grouped like Trainer's
    ``group_by_length`` (megabatches of 50 batches sorted by length) or, without ``lengths``,
    a plain shuffle (the notebook's DataLoader)."""

    def __init__(self, n: int, batch: int, lengths: list[int] | None, seed: int):
        self.n, self.batch, self.lengths, self.seed, self.epoch = n, batch, lengths, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        from transformers.trainer_pt_utils import get_length_grouped_indices

        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.lengths is None:
            return iter(torch.randperm(self.n, generator=gen).tolist())
        return iter(get_length_grouped_indices(self.lengths, self.batch, generator=gen))


class MlmTrainer(Trainer):
    """Trainer with the loss normalised by the labelled positions of the whole optimizer step
    (all micro-batches and processes, as Trainer counts them), length-grouped batches from the
    dataset's own lengths, and checkpoints of the inner model through ``save_pretrained``."""

    loss_is_scaled_for_ga = True

    def __init__(self, *args, group_by_length: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = True  # so Trainer counts num_items_in_batch
        self.group_by_length = group_by_length
        self.tally = [torch.zeros((), device=self.args.device) for _ in range(2)]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        out = model(**inputs)
        self.tally[0] += out["loss"].detach().float()
        self.tally[1] += out["count"]
        n = out["count"] if num_items_in_batch is None else num_items_in_batch
        loss = out["loss"] / torch.clamp(torch.as_tensor(n, device=out["loss"].device), min=1)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            loss = loss * self.args.world_size  # DDP averages the gradients of the processes
        return (loss, out) if return_outputs else loss

    def _get_train_sampler(self, train_dataset=None):
        data = train_dataset if train_dataset is not None else self.train_dataset
        size = self.args.train_batch_size * self.args.gradient_accumulation_steps
        lengths = data.lengths if self.group_by_length else None
        return EpochSampler(len(data), size, lengths, self.args.seed)

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        if self.args.should_save:
            self.accelerator.unwrap_model(self.model).mlm.save_pretrained(output_dir)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        from safetensors.torch import load_file

        inner = self.accelerator.unwrap_model(model if model is not None else self.model).mlm
        weights = load_file(os.path.join(resume_from_checkpoint, "model.safetensors"))
        missing, unexpected = inner.load_state_dict(weights, strict=False)
        tied = set(getattr(inner, "all_tied_weights_keys", None) or {}) | {
            k for k in missing if "decoder" in k
        }
        if unexpected or set(missing) - tied:
            raise RuntimeError(f"checkpoint {resume_from_checkpoint} does not fit the model")


class RunRecorder(TrainerCallback):
    """Scores the fixed masked held-out sentences every ``eval_every`` steps (step 0 and the last
    step included), writes ``metrics.csv`` and TensorBoard scalars, stops on a non-finite loss,
    and writes the state file that makes a checkpoint complete (main process only)."""

    def __init__(self, run: TrainArgs, prep: mlm.Prepared, paths: dict[str, Path], resumed: dict):
        self.run, self.prep, self.paths = run, prep, paths
        self.main = int(os.environ.get("RANK", "0")) == 0
        self.rows = list(resumed.get("metrics", []))
        self.elapsed_before = float(resumed.get("elapsed_s", 0.0))
        self.loss = [float(resumed.get("loss_sum", 0.0)), int(resumed.get("loss_tokens", 0))]
        self.start = time.perf_counter()
        self.trainer: MlmTrainer | None = None
        self.writer = None
        self.last_ckpt: tuple[int, Path] | None = None
        self.on_step: Callable[[int], None] | None = None
        self.fingerprint = ""

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.start

    def on_train_begin(self, args, state, control, **kwargs):
        if self.main and self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.paths["tensorboard"]))
        self.rows = [r for r in self.rows if r["step"] <= state.global_step]
        if not self.rows:
            self.record(state, kwargs["lr_scheduler"])  # step 0: the untrained model
        elif self.main:
            write_table(self.paths["metrics"], pd.DataFrame(self.rows, columns=METRIC_COLUMNS))

    def on_step_end(self, args, state, control, **kwargs):
        tally = self.trainer.tally
        step_loss, step_n = float(tally[0]), int(tally[1])
        tally[0].zero_()
        tally[1].zero_()
        if not math.isfinite(step_loss):
            self._diverged(state.global_step, step_loss)
        self.loss[0] += step_loss
        self.loss[1] += step_n
        if state.global_step % self.run.eval_every == 0 or state.global_step >= state.max_steps:
            self.record(state, kwargs["lr_scheduler"])
        if self.on_step is not None:
            self.on_step(state.global_step)

    def _diverged(self, step: int, value: float) -> None:
        last = self.last_ckpt
        where = f"{last[1]} (step {last[0]})" if last else "none (no checkpoint written yet)"
        raise UserError(
            f"training run '{self.run.name}': the loss became {value} at step {step}; last good "
            f"checkpoint: {where}; lower learning_rate (now {self.run.learning_rate:g}), raise "
            "warmup_ratio or set bf16: false and rerun (changed settings start the run over)"
        )

    def record(self, state, scheduler) -> None:
        if not self.main:
            return
        model = self.trainer.accelerator.unwrap_model(self.trainer.model).mlm
        scores = mlm.evaluate(
            model, self.prep.eval, self.trainer.args.device, self.prep.baseline_id,
            bf16=self.trainer.args.bf16,
        )  # fmt: skip
        row = {
            "step": state.global_step,
            "epoch": round(float(state.epoch or 0.0), 4),
            "train_loss": self.loss[0] / self.loss[1] if self.loss[1] else float("nan"),
            **scores,
            "learning_rate": scheduler.get_last_lr()[0],
            "tokens_seen": int(state.num_input_tokens_seen),
            "elapsed_s": round(self.elapsed(), 2),
        }
        self.rows.append(row)
        self.loss = [0.0, 0]
        write_table(self.paths["metrics"], pd.DataFrame(self.rows, columns=METRIC_COLUMNS))
        for key in ("eval_loss", "accuracy", "baseline_accuracy", "train_loss"):
            self.writer.add_scalar(f"bertlens/{key}", row[key], state.global_step)
        self.writer.flush()
        log.info(
            "train %s: step %d/%d: eval loss %.4f, perplexity %.2f, accuracy %.4f (baseline "
            "%.4f), train loss %.4f",
            self.run.name, row["step"], state.max_steps, row["eval_loss"], row["perplexity"],
            row["accuracy"], row["baseline_accuracy"], row["train_loss"],
        )  # fmt: skip

    def on_save(self, args, state, control, **kwargs):
        path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if self.main:  # written last: a checkpoint folder without it is never resumed
            write_json(
                path / STATE_FILE,
                {
                    "fingerprint": self.fingerprint,
                    "metrics": self.rows,
                    "elapsed_s": self.elapsed(),
                    "loss_sum": self.loss[0],
                    "loss_tokens": self.loss[1],
                    "args": asdict(self.run),
                },
            )
            log.info("checkpoint written: %s", path)
        self.last_ckpt = (state.global_step, path)

    def on_train_end(self, args, state, control, **kwargs):
        if self.writer is not None:
            self.writer.close()


# --------------------------------------------------------------------------------------------------
# The run


def _steps(args: TrainArgs, n_train: int, world: int) -> tuple[int, int]:
    """(optimizer steps of the run, warmup steps), counted as Trainer counts them."""
    batches = math.ceil(n_train / (args.batch_size * world))
    per_epoch = max(math.ceil(batches / args.gradient_accumulation), 1)
    total = int(args.max_steps) if args.max_steps else math.ceil(args.epochs * per_epoch)
    return total, math.ceil(args.warmup_ratio * total)


def training_arguments(
    args: TrainArgs, checkpoint_dir: Path, device: str, bf16: bool, warmup: int
) -> TrainingArguments:
    targs = TrainingArguments(
        output_dir=str(checkpoint_dir),
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=args.gradient_accumulation,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        warmup_steps=warmup,
        lr_scheduler_type="linear" if args.lr_schedule == "linear" else "constant_with_warmup",
        max_grad_norm=args.max_grad_norm,
        num_train_epochs=args.epochs,
        max_steps=int(args.max_steps) if args.max_steps else -1,
        save_strategy="steps",
        save_steps=args.checkpoint_every,
        save_total_limit=KEEP_CHECKPOINTS,
        eval_strategy="no",
        logging_steps=args.eval_every,
        report_to="none",
        seed=args.seed,
        bf16=bf16,
        use_cpu=device == "cpu",
        ddp_backend="gloo" if device == "cpu" and "LOCAL_RANK" in os.environ else None,
        ddp_find_unused_parameters=False,
        remove_unused_columns=False,
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
        average_tokens_across_devices=True,
        dataloader_num_workers=0,
    )
    if targs.world_size == 1 and targs.n_gpu > 1:
        targs._n_gpu = 1  # one device unless `devices:` asks for more (then torchrun, DDP)
    return targs


def _device_and_bf16(args: TrainArgs) -> tuple[str, bool]:
    device = pick_device(args.device)
    if device.startswith("cuda") and "LOCAL_RANK" in os.environ:
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return device, bf16_if_supported(args.bf16 and device.startswith("cuda"), device, "training")


def _fit(trainer: MlmTrainer, args: TrainArgs, resume: Path | None, total: int) -> None:
    from transformers import TrainerState

    ckpt_dir = Path(trainer.args.output_dir)
    if resume is not None:
        state = TrainerState.load_from_json(str(resume / "trainer_state.json"))
        if state.global_step >= total:  # the run had finished: only the model is left to save
            trainer._load_from_checkpoint(str(resume))
            trainer.state = state
            return
    try:
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    except torch.cuda.OutOfMemoryError as err:
        half = args.batch_size // 2
        try_this = (
            f"batch_size: {half} with gradient_accumulation: {2 * args.gradient_accumulation} "
            "keeps the effective batch"
            if half
            else "batch_size is already 1: lower max_length or use a smaller model"
        )
        raise UserError(
            f"training run '{args.name}': the GPU ran out of memory at step "
            f"{trainer.state.global_step + 1} with batch_size {args.batch_size}; set a smaller "
            f"batch_size ({try_this}), or lower max_length"
        ) from err
    except OSError as err:
        if err.errno not in _DISK_FULL:
            raise
        remove_incomplete(ckpt_dir)
        raise UserError(
            f"training run '{args.name}': no space left on the device while writing the "
            f"checkpoint of step {trainer.state.global_step} under '{ckpt_dir}' ({err}); free "
            "disk space and rerun (it resumes from the last complete checkpoint)"
        ) from err


def _build(args, texts, source, paths, logger) -> tuple[MlmTrainer, RunRecorder, dict[str, Any]]:
    """Model, data, Trainer and recorder of a run, positioned at its resume point."""
    device, bf16 = _device_and_bf16(args)
    model, tokenizer, init_desc, init_key = load_init(args, source)
    max_pos = int(getattr(model.config, "max_position_embeddings", args.max_length))
    max_length = min(args.max_length, max_pos)
    if max_length < args.max_length:
        logger.info("max_length %d cut to the model's %d positions", args.max_length, max_pos)
    prep = mlm.prepare(args, texts, tokenizer, max_length)
    total, warmup = _steps(args, len(prep.train), int(os.environ.get("WORLD_SIZE", "1")))
    fp = fingerprint(args, tokenizer, texts, init_key)
    main = int(os.environ.get("RANK", "0")) == 0
    resume, state = resume_point(paths["checkpoints"], fp, total, main)
    recorder = RunRecorder(args, prep, paths, state)
    recorder.fingerprint = fp
    trainer = MlmTrainer(
        model=mlm.SparseMlm(model),
        args=training_arguments(args, paths["checkpoints"], device, bf16, warmup),
        train_dataset=prep.train,
        data_collator=prep.collator,
        callbacks=[recorder],
        group_by_length=args.objective != "notebook",
    )
    _wire_callbacks(trainer, recorder)
    facts = {
        **prep.facts,
        "device": device,
        "bf16": bf16,
        "devices": trainer.args.world_size,  # processes (DDP when > 1)
        "init": init_desc,
        "tokenizer_size": len(tokenizer),
        "parameters": sum(p.numel() for p in model.parameters()),
        "baseline_token": tokenizer.convert_ids_to_tokens(prep.baseline_id),
        "resumed_from_step": None,
        "attention": attention_implementation(model),
    }
    if resume is not None:
        facts["resumed_from_step"] = int(CKPT_RE.match(resume.name).group(1))
        logger.info("resuming from step %d (checkpoint %s)", facts["resumed_from_step"], resume)
        recorder.last_ckpt = (facts["resumed_from_step"], resume)
    logger.info(
        "init %s; device %s%s; %d parameters; vocab %d; %d train / %d eval sentences (%d masked "
        "eval tokens); %d optimizer steps (warmup %d); objective %s",
        init_desc, device, " (bf16 autocast)" if bf16 else "", facts["parameters"],
        len(tokenizer), facts["train_sentences"], facts["eval_sentences"],
        facts["eval_masked_tokens"], total, warmup, args.objective,
    )  # fmt: skip
    return trainer, recorder, {**facts, "_tokenizer": tokenizer, "_resume": resume, "_total": total}


def _wire_callbacks(trainer: MlmTrainer, recorder: RunRecorder) -> None:
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for cb in (PrinterCallback, ProgressCallback):  # progress goes to our log instead
        trainer.remove_callback(cb)
    recorder.trainer = trainer


def train(
    args: TrainArgs,
    corpus_texts: Sequence[str],
    tokenizer_dir_or_base_model: str | os.PathLike | tuple[Any, str],
    out_model_dir: str | os.PathLike,
    metrics_csv: str | os.PathLike,
    checkpoint_dir: str | os.PathLike,
    summary_json: str | os.PathLike,
    log: logging.Logger | None = None,
    on_step: Callable[[int], None] | None = None,
    tensorboard_dir: str | os.PathLike | None = None,
    callbacks: Sequence[TrainerCallback] = (),
) -> dict[str, Any]:
    """Train a masked language model with Trainer and save it with its tokenizer.

    ``tokenizer_dir_or_base_model``: for ``init: scratch`` the folder written by
    :func:`bertlens.vocab.train_wordpiece_vocab` (or the base model's ``(ModelSpec, location)``);
    for ``init: pretrained`` a ``(ModelSpec, location)`` pair or a model folder. ``checkpoint_dir``
    is not a workflow output: a killed job leaves its checkpoints there and the next call resumes
    from the newest one whose settings, tokenizer and texts match. ``on_step(step)`` is called
    after every optimizer step (tests use it to simulate a kill); ``callbacks`` are more Trainer
    callbacks (the benchmarks' clock). Writes ``out_model_dir``
    (``save_pretrained``, renamed into place at the end, with a provenance sidecar),
    ``metrics_csv``, TensorBoard events in ``tensorboard_dir`` (default: beside metrics.csv) and
    ``summary_json`` (main process); returns the summary.
    """
    from transformers.utils import logging as hf_logging

    logger = log or logging.getLogger(__name__)
    session_start = time.perf_counter()
    hf_logging.disable_progress_bar()  # save_pretrained's bars would fill the log
    main = int(os.environ.get("RANK", "0")) == 0
    if main:
        args.log_settings(logger)
    metrics_csv = Path(metrics_csv)
    paths = {
        "metrics": metrics_csv,
        "checkpoints": Path(checkpoint_dir),
        "tensorboard": Path(tensorboard_dir or metrics_csv.parent / "tensorboard"),
    }
    out_model_dir = Path(out_model_dir)
    if main:
        for path in out_model_dir.parent.glob(f".{out_model_dir.name}.tmp-*"):
            shutil.rmtree(path, ignore_errors=True)
    texts = [t for t in corpus_texts if isinstance(t, str) and t.strip()]
    trainer, recorder, facts = _build(args, texts, tokenizer_dir_or_base_model, paths, logger)
    recorder.on_step = on_step
    for callback in callbacks:
        trainer.add_callback(callback)
    _fit(trainer, args, facts.pop("_resume"), facts.pop("_total"))
    tokenizer = facts.pop("_tokenizer")
    state = trainer.state
    summary = mlm.summarize(
        args,
        recorder.rows or [{}],
        **facts,
        steps=state.global_step,
        total_steps=state.max_steps,
        epochs_done=round(float(state.epoch or 0.0), 4),
        tokens_seen=int(state.num_input_tokens_seen),
        wall_time_s=round(recorder.elapsed(), 2),
        session_time_s=round(time.perf_counter() - session_start, 2),
    ) if main else {}  # fmt: skip
    if main:
        _finish(trainer, tokenizer, out_model_dir, args, summary, recorder, summary_json, logger)
    return summary


def _finish(trainer, tokenizer, out_model_dir, args, summary, recorder, summary_json, logger):
    model = trainer.accelerator.unwrap_model(trainer.model).mlm
    try:
        save_model(model, tokenizer, out_model_dir, args, summary)
    except OSError as err:
        if err.errno not in _DISK_FULL:
            raise
        step = recorder.last_ckpt[0] if recorder.last_ckpt else summary["steps"]
        raise UserError(
            f"training run '{args.name}': no space left on the device while saving the model to "
            f"'{out_model_dir}' ({err}); nothing was kept there: free disk space and rerun (it "
            f"resumes from the checkpoint of step {step} and only saves the model)"
        ) from err
    write_json(summary_json, summary)
    logger.info(
        "done: %d steps, eval loss %.4f -> %.4f, accuracy %.4f (baseline %.4f); model in %s",
        summary["steps"], summary["first_eval_loss"], summary["last_eval_loss"],
        summary["final_accuracy"], summary["baseline_accuracy"], out_model_dir,
    )  # fmt: skip


def save_model(model, tokenizer, out_model_dir: Path, args: TrainArgs, summary: dict) -> None:
    """save_pretrained of model and tokenizer into a temporary folder, renamed into place."""
    out_model_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_model_dir.parent / f".{out_model_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.eval()
        model.to("cpu")
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_sidecar(
            tmp / "model.safetensors",
            model=f"training run {args.name}",
            init=summary["init"],
            tokenizer=type(tokenizer).__name__,
            column=args.column,
            seed=args.seed,
            steps=summary["steps"],
            device=summary["device"],
            objective=args.objective,
        )
        if out_model_dir.exists():
            shutil.rmtree(out_model_dir)
        os.replace(tmp, out_model_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# More than one device: torchrun


def launch(
    job: dict[str, Any], devices: int, job_file: str | os.PathLike, log_file: str | None = None
) -> None:
    """Run :func:`train` in ``devices`` processes with ``torchrun --nproc_per_node devices``
    (DDP through Trainer: NCCL on GPUs, gloo on CPU). ``job``: ``args`` (TrainArgs as a dict),
    ``corpus``, ``source`` (a tokenizer folder, or ``{"spec": ..., "location": ...}``) and
    ``outputs`` (train's path arguments); the processes log to ``log_file`` (default: stderr).
    A UserError in a process comes back as one here."""
    job_file = Path(job_file)
    error_file = job_file.with_suffix(".error")
    error_file.unlink(missing_ok=True)
    write_json(job_file, {**job, "error_file": str(error_file)})
    scripts = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([scripts, os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += [f"--nproc_per_node={devices}", "-m", "bertlens.training", str(job_file)]
    log.info("launching: %s", " ".join(cmd))
    with open(log_file or os.devnull, "a", encoding="utf-8") as out:
        stream = out if log_file else None
        done = subprocess.run(cmd, env=env, check=False, stdout=stream, stderr=stream)
    if error_file.is_file():
        raise UserError(error_file.read_text(encoding="utf-8").strip())
    if done.returncode:
        raise RuntimeError(f"torchrun exited with status {done.returncode} (see the log above)")


def _run_job(job_file: str) -> int:
    from .models import ModelSpec
    from .vocab import corpus_texts

    job = read_json(job_file)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s",
    )
    args = TrainArgs(**job["args"])
    source = job["source"]
    if isinstance(source, dict):
        source = (ModelSpec(**source["spec"]), source["location"])
    try:
        train(args, corpus_texts(job["corpus"], args.column), source, **job["outputs"])
    except UserError as err:
        if rank == 0:
            Path(job["error_file"]).write_text(str(err), encoding="utf-8")
        return 1
    finally:
        _end_process_group()
    return 0


def _end_process_group() -> None:
    """Destroy the process group the Trainer made, as torch asks at the end of a distributed
    run: left to the interpreter's exit, its threads once aborted a rank after training had
    finished ("terminate called without an active exception")."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(_run_job(sys.argv[1]))
