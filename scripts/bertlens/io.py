"""File output that is never half-written, and provenance sidecars.

Every artifact is written to a temporary name in the same folder and renamed into place, so a
killed or failing job never leaves a file that a later run would take as valid.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import platform
import socket
import sys
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# Packages whose versions describe how an artifact was made.
_VERSIONED = (
    "torch",
    "transformers",
    "tokenizers",
    "snakemake",
    "numpy",
    "pandas",
    "scikit-learn",
    "openTSNE",
    "fugashi",
    "ipadic",
)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix or "".join(path.suffixes) + ".part"
    remove_stale_temporaries(path, suffix)
    owner = f"{socket.gethostname()}-{os.getpid()}"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{owner}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_stale_temporaries(path: Path, suffix: str) -> list[Path]:
    """Delete temporary files of ``path`` left by killed processes of this host.

    Temporary names carry their writer (``.<name>.<host>-<pid>.<random><suffix>``), so a later
    writer of the same file can tell those of killed jobs (as large as the output may be) from
    live ones."""
    host = socket.gethostname()
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.{glob.escape(host)}-*{suffix}"):
        owner = tmp.name[len(path.name) + len(host) + 3 :].split(".", 1)[0]
        if owner.isdigit() and not _alive(int(owner)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def write_json(path: str | os.PathLike, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_table(path: str | os.PathLike, df: pd.DataFrame) -> None:
    """Write a DataFrame as parquet, TSV or CSV, chosen by the file suffix."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        elif path.suffix == ".tsv":
            df.to_csv(tmp, sep="\t", index=False)
        elif path.suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:
            raise ValueError(f"unsupported table suffix {path.suffix!r} for {path}")


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    path = Path(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    sep = "\t" if path.suffix == ".tsv" else ","
    return pd.read_csv(path, sep=sep, keep_default_na=False)


class StoredLayers:
    """A stored (layers, rows, hidden) ``.npy`` (the embedding stage's sentence vectors), read one
    layer at a time: ``stored[layer]`` is that layer in memory, read from the file, which is
    then closed. A memory map kept open instead counts every page it has read as the process's
    memory: at 300,000 MiniLM sentences the k-NN stage, which reads all 14 layers, peaked at
    6.6 GB that way and at 2.2 GB this way (a cluster sizes the job by that number)."""

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        arr = np.load(self.path, mmap_mode="r")
        if arr.ndim != 3 or not arr.flags.c_contiguous:
            raise ValueError(f"{self.path}: not a C-ordered (layers, rows, hidden) array")
        self.shape, self.dtype, self._offset = arr.shape, arr.dtype, arr.offset
        del arr

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, layer: int) -> np.ndarray:
        if not 0 <= layer < self.shape[0]:
            raise IndexError(f"layer {layer} of {self.path}, which has {self.shape[0]}")
        count = self.shape[1] * self.shape[2]
        offset = self._offset + layer * count * self.dtype.itemsize
        x = np.fromfile(self.path, dtype=self.dtype, count=count, offset=offset)
        return x.reshape(self.shape[1:]).astype(np.float32, copy=False)


def write_html_table(
    path: str | os.PathLike,
    df: pd.DataFrame,
    title: str,
    note: str = "",
    float_format: str = "{:.4g}",
) -> None:
    """A self-contained HTML rendering of a table for the report viewer (which only offers CSV
    files as downloads)."""
    body = df.to_html(
        index=False,
        border=0,
        classes="bl-table",
        float_format=lambda v: float_format.format(v),
        na_rep="",
        escape=True,
    )
    note_html = f"<p>{_escape(note)}</p>" if note else ""
    write_text(
        path,
        f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_escape(title)}</title>
<style>
body {{ font-family: system-ui, "Noto Sans CJK JP", sans-serif; margin: 1.2em; }}
table.bl-table {{ border-collapse: collapse; font-size: 0.9em; }}
.bl-table th, .bl-table td {{ padding: 0.25em 0.7em; border-bottom: 1px solid #ddd; text-align: left; }}
.bl-table th {{ background: #f3f3f3; position: sticky; top: 0; }}
</style></head>
<body><h2>{_escape(title)}</h2>{note_html}
{body}
</body></html>
""",
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def provenance(**info: Any) -> dict[str, Any]:
    """What made an artifact: the caller's facts (model, tokenizer, seed, ...) plus versions."""
    return {
        **info,
        "versions": versions(),
        "platform": f"{platform.system()} {platform.machine()}",
        "argv0": Path(sys.argv[0]).name if sys.argv else "",
    }


def sidecar_path(artifact: str | os.PathLike) -> Path:
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".meta.json")


def write_sidecar(artifact: str | os.PathLike, **info: Any) -> Path:
    """Write ``<artifact>.meta.json`` naming model, tokenizer, seed and versions."""
    path = sidecar_path(artifact)
    write_json(path, provenance(artifact=Path(artifact).name, **info))
    return path
