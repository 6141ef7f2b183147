"""Checkpoints of a training run: ``checkpoint-N`` folders under the run's checkpoint folder,
written by Trainer, each complete only once :data:`STATE_FILE` is in it (written last, with a
fingerprint of the settings, tokenizer and texts); a rerun resumes from the newest complete
checkpoint with the same fingerprint and removes every other one."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .io import read_json
from .mlm import TrainArgs

log = logging.getLogger(__name__)

STATE_FILE = "bertlens_state.json"
#: How many checkpoints stay on disk.
KEEP_CHECKPOINTS = 2
CKPT_RE = re.compile(r"^checkpoint-(\d+)$")


def fingerprint(args: TrainArgs, tokenizer, texts: Sequence[str], init: str) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(args.resume_key(), sort_keys=True, default=str).encode())
    h.update(json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False).encode())
    h.update(init.encode())
    for text in texts:
        h.update(text.encode())
        h.update(b"\0")
    return h.hexdigest()


def list_checkpoints(checkpoint_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoints ``(step, path)`` in ``checkpoint_dir``, oldest first."""
    root = Path(checkpoint_dir)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        m = CKPT_RE.match(path.name)
        if m and path.is_dir() and (path / STATE_FILE).is_file():
            found.append((int(m.group(1)), path))
    return sorted(found)


def remove_incomplete(checkpoint_dir: Path) -> None:
    """Checkpoint folders without the state file (a killed or failed save) are never resumed."""
    if checkpoint_dir.is_dir():
        for path in checkpoint_dir.iterdir():
            if path.is_dir() and not (path / STATE_FILE).is_file():
                log.info("removing incomplete checkpoint %s", path)
                shutil.rmtree(path, ignore_errors=True)


def resume_point(
    checkpoint_dir: Path, fp: str, total_steps: int, main: bool
) -> tuple[Path | None, dict[str, Any]]:
    """The newest complete checkpoint of these settings, tokenizer and texts at or before
    ``total_steps``; the main process removes all others (and incomplete ones) so that they can
    never be mixed into this run. Every process reaches the same answer without a barrier."""
    if main:
        remove_incomplete(checkpoint_dir)
    chosen: tuple[Path | None, dict[str, Any]] = (None, {})
    for step, path in reversed(list_checkpoints(checkpoint_dir)):
        try:
            state = read_json(path / STATE_FILE)
        except (OSError, ValueError):
            state = {}
        if chosen[0] is None and state.get("fingerprint") == fp and step <= total_steps:
            chosen = (path, state)
        elif main:
            why = "beyond the run's end" if state.get("fingerprint") == fp else "other settings"
            log.info("removing checkpoint %s (%s, tokenizer or texts)", path, why)
            shutil.rmtree(path, ignore_errors=True)
    return chosen
