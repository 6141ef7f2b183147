"""TensorBoard Projector export: the files read back with TensorBoard's own config message and
plain TSV readers give the matrices, shapes and labels that went in."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from bertlens.export import model_tensors, write_projector


@pytest.fixture
def exported(tmp_path):
    rng = np.random.default_rng(0)
    tokens = ["[PAD]", "[CLS]", "日本", "##本", "tab\there", "line\nbreak", "3", "champion"]
    vocab = rng.normal(size=(len(tokens), 6)).astype(np.float32)
    table = pd.DataFrame(
        {
            "token_id": np.arange(len(tokens))[::-1],  # any order: the export sorts by id
            "token": tokens[::-1],
            "frequency": np.arange(len(tokens))[::-1] * 3,
            "special": [t in ("[PAD]", "[CLS]") for t in tokens[::-1]],
        }
    )
    n, layers = 5, 3
    sentences = {
        "mean": rng.normal(size=(layers + 1, n, 6)).astype(np.float32),
        "cls": rng.normal(size=(layers + 1, n, 6)).astype(np.float32),
        "pooler": np.zeros((1, 0, 0), np.float32),  # a model without a pooler
    }
    meta = pd.DataFrame(
        {
            "id": [f"S{i}" for i in range(n)],
            "source": ["T15", "T15", "T23", "T23", "T23"],
            "text": ["今日は晴れです。", "a\tb", "c", "d", "e"],
            "length": [5, 4, 3, 2, 1],
        }
    )
    chosen = [7, 2, 6, 3]
    vproj = pd.concat(
        [
            pd.DataFrame(
                {"token_id": chosen, "method": m, "x": rng.normal(size=4), "y": rng.normal(size=4)}
            )
            for m in ("tsne", "pca", "umap")
        ]
    )
    sproj = pd.concat(
        [
            meta.assign(method=m, pooling="mean", layer=layer, x=rng.normal(size=n), y=0.5)
            for layer in (0, 3)
            for m in ("tsne", "pca")
        ]
    )
    tensors, tables = model_tensors(vocab, table, sentences, meta, [0, 3], vproj, sproj)
    out = tmp_path / "export" / "model"
    write_projector(out, tensors, tables)
    return out, tokens, vocab, sentences, meta, chosen, vproj


def read_config(folder):
    from google.protobuf import text_format
    from tensorboard.plugins.projector import projector_config_pb2

    return text_format.Parse(
        (folder / "projector_config.pbtxt").read_text(), projector_config_pb2.ProjectorConfig()
    )


def read_metadata(path):
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return rows[0], rows[1:]


def test_projector_files_read_back(exported):
    out, tokens, vocab, sentences, meta, chosen, vproj = exported
    config = read_config(out)
    names = [e.tensor_name for e in config.embeddings]
    assert names == [
        "vocab",
        "sentences_mean_L0",
        "sentences_mean_L3",
        "sentences_cls_L0",
        "sentences_cls_L3",
        "vocab_tsne",
        "vocab_pca",
        "vocab_umap",
        "sentences_mean_L0_tsne",
        "sentences_mean_L0_pca",
        "sentences_mean_L3_tsne",
        "sentences_mean_L3_pca",
    ]
    for e in config.embeddings:
        values = np.loadtxt(out / e.tensor_path, delimiter="\t", ndmin=2)
        assert list(values.shape) == list(e.tensor_shape), e.tensor_name
        header, rows = read_metadata(out / e.metadata_path)
        assert len(rows) == values.shape[0], e.tensor_name
        assert all(len(r) == len(header) for r in rows)
        if e.tensor_name == "vocab":
            np.testing.assert_allclose(values, vocab, rtol=1e-5, atol=1e-6)
            assert header == ["token", "token_id", "frequency", "character class"]
            labels = [r[0] for r in rows]
            assert labels == [t.replace("\t", " ").replace("\n", " ") for t in tokens]
            assert [r[3] for r in rows][:4] == ["special", "special", "kanji", "## continuation"]
        elif e.tensor_name == "sentences_cls_L3":
            np.testing.assert_allclose(values, sentences["cls"][3], rtol=1e-5, atol=1e-6)
            assert header == ["id", "source", "text", "length"]
            assert rows[0] == ["S0", "T15", "今日は晴れです。", "5"]
            assert rows[1][2] == "a b"
        elif e.tensor_name == "vocab_umap":
            assert [int(r[1]) for r in rows] == chosen
            part = vproj[vproj["method"] == "umap"]
            np.testing.assert_allclose(values, part[["x", "y"]].to_numpy(), rtol=1e-5, atol=1e-6)
    assert not list(out.parent.glob(".*tmp"))  # the temporary folder was renamed


def test_a_tensor_without_matching_metadata_leaves_no_folder(tmp_path):
    from bertlens.export import Tensor

    out = tmp_path / "m"
    with pytest.raises(ValueError, match="rows"):
        write_projector(
            out,
            [Tensor("x", np.zeros((3, 2)), "m.tsv")],
            {"m.tsv": pd.DataFrame({"a": [1, 2], "b": [3, 4]})},
        )
    assert not out.exists() and not list(tmp_path.iterdir())
