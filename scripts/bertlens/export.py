"""Export to the TensorBoard Embedding Projector (https://projector.tensorflow.org, or
TensorBoard's projector plugin): each embedding matrix and each 2-D projection as a tensors TSV
(one row per point, tab-separated values, no header), its labels as a metadata TSV (a header row,
then one row per point), and ``projector_config.pbtxt`` listing them (tensor name, shape, paths).

Load them by opening the folder in TensorBoard (``tensorboard --logdir results/export/<model>``,
Projector tab) or by uploading a tensors and a metadata file at projector.tensorflow.org ("Load")."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Container
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


@dataclass
class Tensor:
    name: str
    values: np.ndarray  # (points, dims)
    metadata: str  # file name of its metadata TSV


def clean_cell(value) -> str:
    """A metadata cell: the Projector splits on tabs and lines, so those become spaces."""
    return " ".join(str(value).replace("\t", " ").splitlines())


def write_metadata(path: Path, table: pd.DataFrame) -> None:
    """A metadata TSV with a header row (the Projector requires one when there are 2+ columns)."""
    lines = ["\t".join(clean_cell(c) for c in table.columns)]
    lines += ["\t".join(clean_cell(v) for v in row) for row in table.itertuples(index=False)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_tensor(path: Path, values: np.ndarray) -> None:
    np.savetxt(path, np.asarray(values, dtype=np.float32), fmt="%.6g", delimiter="\t")


def projector_config(tensors: list[Tensor]) -> str:
    """The text-format ``ProjectorConfig`` message naming every tensor."""
    blocks = []
    for t in tensors:
        shape = "".join(f"  tensor_shape: {int(d)}\n" for d in t.values.shape)
        blocks.append(
            "embeddings {\n"
            f'  tensor_name: "{t.name}"\n'
            f'  tensor_path: "{t.name}.tensors.tsv"\n'
            f'  metadata_path: "{t.metadata}"\n'
            f"{shape}"
            "}\n"
        )
    return "".join(blocks)


def write_projector(out_dir: str | os.PathLike, tensors: list[Tensor], metadata: dict) -> None:
    """Write every tensor and metadata table and the config into ``out_dir``, through a temporary
    folder renamed at the end (a failed export leaves no folder that looks complete)."""
    out = Path(out_dir)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _write_all(tmp, tensors, metadata)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)


def _write_all(tmp: Path, tensors: list[Tensor], metadata: dict) -> None:
    for name, table in metadata.items():
        write_metadata(tmp / name, table)
    for t in tensors:
        if t.metadata not in metadata:
            raise ValueError(f"tensor {t.name}: no metadata table {t.metadata}")
        if len(t.values) != len(metadata[t.metadata]):
            raise ValueError(
                f"tensor {t.name}: {len(t.values)} rows, metadata {t.metadata}: "
                f"{len(metadata[t.metadata])}"
            )
        write_tensor(tmp / f"{t.name}.tensors.tsv", t.values)
        log.info("%s: %s", t.name, t.values.shape)
    (tmp / "projector_config.pbtxt").write_text(projector_config(tensors), encoding="utf-8")


def model_tensors(
    vocab: np.ndarray,
    vocab_table: pd.DataFrame,
    sentences: dict[str, np.ndarray],
    sentence_meta: pd.DataFrame,
    layers: list[int],
    vocab_projection: pd.DataFrame,
    sentence_projection: pd.DataFrame,
    skip: Container[tuple[str, int]] = (),
) -> tuple[list[Tensor], dict[str, pd.DataFrame]]:
    """The tensors of one model: the input embedding matrix, the sentence vectors of every
    pooling at ``layers`` (the pooler: its one layer) but the degenerate ones in ``skip``, and
    every 2-D projection; with their metadata tables."""
    from .explorer import char_class

    table = vocab_table.sort_values("token_id").reset_index(drop=True)
    special = table["special"] if "special" in table else pd.Series(False, index=table.index)
    vmeta = pd.DataFrame(
        {
            "token": table["token"].astype(str),
            "token_id": table["token_id"],
            "frequency": table["frequency"],
            "character class": [
                char_class(t, bool(s)) for t, s in zip(table["token"], special, strict=True)
            ],
        }
    )
    meta = {"vocab.metadata.tsv": vmeta, "sentences.metadata.tsv": sentence_meta}
    tensors = [Tensor("vocab", vocab, "vocab.metadata.tsv")]
    for pooling, arr in sentences.items():
        for layer in [0] if pooling == "pooler" else layers:
            if (pooling, layer) in skip:  # all vectors point one way: nothing to explore
                continue
            if arr.shape[0] > layer and arr[layer].size:  # (a model without a pooler: empty)
                tensors.append(
                    Tensor(f"sentences_{pooling}_L{layer}", arr[layer], "sentences.metadata.tsv")
                )
    methods = list(dict.fromkeys(vocab_projection["method"]))
    first = vocab_projection[vocab_projection["method"] == methods[0]]
    projected = vmeta.set_index("token_id").loc[first["token_id"]].reset_index()
    meta["vocab_projected.metadata.tsv"] = projected[vmeta.columns]
    for method in methods:
        part = vocab_projection[vocab_projection["method"] == method].set_index("token_id")
        xy = part.loc[first["token_id"], ["x", "y"]].to_numpy(np.float32)
        tensors.append(Tensor(f"vocab_{method}", xy, "vocab_projected.metadata.tsv"))
    for (method, pooling, layer), g in sentence_projection.groupby(
        ["method", "pooling", "layer"], sort=False
    ):
        xy = g[["x", "y"]].to_numpy(np.float32)
        tensors.append(
            Tensor(f"sentences_{pooling}_L{layer}_{method}", xy, "sentences.metadata.tsv")
        )
    return tensors, meta
