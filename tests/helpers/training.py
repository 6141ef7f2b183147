"""Shared inputs of the training tests: short easy-Japanese sentences (written for these tests),
a WordPiece vocabulary trained on them, a tiny BERT training configuration, and a tiny run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.helpers.tiny import sample_column

SENTENCES = [
    "私は毎朝パンを食べます。",
    "今日はとても暑いです。",
    "駅まで歩いて十分です。",
    "母は台所で料理をしています。",
    "明日は雨が降るでしょう。",
    "この本はとてもおもしろいです。",
    "兄は大学で日本語を勉強しています。",
    "公園で子どもたちが遊んでいます。",
    "私は犬と猫が好きです。",
    "夏休みに海へ行きました。",
    "電車は九時に出ます。",
    "先生に手紙を書きました。",
    "冬は寒いので、コートを着ます。",
    "友だちと映画を見に行きます。",
    "父は毎日新聞を読みます。",
    "この店のラーメンはおいしいです。",
    "日曜日に買い物に行きました。",
    "妹はピアノを練習しています。",
    "図書館で静かに本を読みます。",
    "朝ごはんを食べてから学校へ行きます。",
    "雨の日は家で音楽を聞きます。",
    "春になると、桜の花が咲きます。",
    "秋には木の葉が赤くなります。",
    "私の町には大きい川があります。",
    "バスに乗って病院へ行きました。",
    "昨日はとても疲れました。",
    "水をたくさん飲んでください。",
    "祖母は田舎に住んでいます。",
    "この道をまっすぐ行ってください。",
    "週末に山に登りました。",
    "弟はサッカーが上手です。",
    "部屋の窓を開けてもいいですか。",
    "私は八時に寝ます。",
    "新しい靴を買いました。",
    "駅の前に銀行があります。",
    "天気がいいので、散歩をします。",
    "日本の夏はとても暑いです。",
    "姉は会社で働いています。",
    "お茶を一杯ください。",
    "来年、東京へ引っ越します。",
    "子どもが庭で花に水をやっています。",
    "私は毎晩日記を書きます。",
    "この川の水はきれいです。",
    "猫が窓のそばで寝ています。",
    "朝、牛乳を飲みました。",
    "友だちに電話をかけました。",
    "冬休みに家族と旅行しました。",
    "先週、新しい自転車を買いました。",
]

#: A tiny BERT (2 layers, hidden 32) that trains in seconds on two CPU cores.
TINY_BERT = {
    "num_hidden_layers": 2,
    "hidden_size": 32,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
}


#: BERT's special tokens (the schema's default of `vocab: special_tokens:`).
BERT_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_vocab(out_dir: Path, size: int = 400, min_frequency: int = 2) -> Path:
    """Train the test vocabulary into ``out_dir`` (MeCab + WordPiece) and return the folder."""
    from bertlens.vocab import train_wordpiece_vocab

    train_wordpiece_vocab(
        SENTENCES,
        out_dir,
        size=size,
        min_frequency=min_frequency,
        special_tokens=BERT_SPECIAL,
        mecab_dic="ipadic",
        stats_json=out_dir / "stats.json",
    )
    return out_dir


def tiny_run_config(**overrides: Any) -> dict[str, Any]:
    """A `training:` entry for a tiny scratch run (overrides replace top-level keys), with the
    schema's defaults filled in as the workflow's validation fills them."""
    from bertlens.config import run_with_defaults

    cfg: dict[str, Any] = {
        "column": "easy_ja",
        "init": "scratch",
        "bert": dict(TINY_BERT),
        "masking": {"probability": 0.15, "whole_word": True},
        "max_length": 64,
        "batch_size": 8,
        "learning_rate": 0.003,
        "warmup_ratio": 0.05,
        "max_steps": 60,
        "eval_fraction": 0.25,
        "eval_every": 20,
        "checkpoint_every": 20,
        "bf16": False,
        "seed": 7,
    }
    cfg.update(overrides)
    return run_with_defaults(cfg)


def sample_texts() -> list[str]:
    """The easy-Japanese column of the bundled sample corpus (640 sentences): large enough for a
    held-out loss that is not dominated by noise."""
    return [t for t in sample_column("#やさしい日本語") if isinstance(t, str) and t.strip()]


def train_outputs(root: Path) -> dict[str, Path]:
    """Where a training run writes (the keyword arguments of ``bertlens.training.train``)."""
    return {
        "out_model_dir": root / "model",
        "metrics_csv": root / "metrics.csv",
        "checkpoint_dir": root / "checkpoints",
        "summary_json": root / "summary.json",
    }


def train_tiny(root: Path, texts: list[str], source: Path, log=None, on_step=None, **overrides):
    """Train the tiny run of ``tiny_run_config(**overrides)`` on CPU into ``root``."""
    from bertlens.mlm import TrainArgs
    from bertlens.training import train

    args = TrainArgs.from_config(tiny_run_config(**overrides), name="tiny", device="cpu")
    return train(args, texts, source, **train_outputs(root), log=log, on_step=on_step)


def one_torch_thread() -> Iterator[None]:
    """Run with one torch thread (tiny models are slower with more on a busy 2-core machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
