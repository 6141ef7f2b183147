"""Linear probes per layer (Tenney et al. 2019) with control tasks (Hewitt & Liang 2019).

A probe is scikit-learn's LogisticRegression on standardised token vectors, trained on some
sentences and scored on the others (split by sentence, so no sentence is on both sides). Each task
has a control task: every word type gets one random label, drawn from the task's label
distribution, so a probe can only do well on it by memorising types. Selectivity = probe accuracy
minus control accuracy; the majority baseline is the accuracy of always answering the most common
training label.

Tasks: Japanese models, the ipadic part of speech of a piece's word (control type: the word);
English models, word-initial piece vs continuation, position bucket, corpus frequency bucket
(control type: the piece).
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

POSITION_EDGES = (2, 4, 8, 16)  # buckets: 1, 2-3, 4-7, 8-15, 16+


def position_bucket(position: np.ndarray) -> np.ndarray:
    labels = np.array(["1", "2-3", "4-7", "8-15", "16+"])
    return labels[np.searchsorted(POSITION_EDGES, position, side="right")]


def frequency_bucket(frequency: np.ndarray, buckets: int = 3) -> np.ndarray:
    """Corpus frequency in ``buckets`` quantile buckets (rare ... frequent)."""
    edges = np.unique(np.quantile(frequency, np.linspace(0, 1, buckets + 1)[1:-1]))
    return np.asarray([f"q{b + 1}" for b in np.searchsorted(edges, frequency, side="right")])


def tasks_for(table: pd.DataFrame, language: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{task: (labels, control types)} for the token table of a model."""
    if language == "en":
        pieces = table["piece"].to_numpy()
        return {
            "word_initial": (
                np.where(table["word_initial"], "initial", "continuation"),
                pieces,
            ),
            "position": (position_bucket(table["position"].to_numpy()), pieces),
            "frequency": (frequency_bucket(table["frequency"].to_numpy()), pieces),
        }
    return {"pos": (table["pos"].to_numpy(), table["word"].to_numpy())}


def control_labels(labels: np.ndarray, types: np.ndarray, seed: int) -> np.ndarray:
    """One random label per type, drawn from the empirical label distribution."""
    rng = np.random.default_rng(seed)
    values, counts = np.unique(labels, return_counts=True)
    uniq, inverse = np.unique(types, return_inverse=True)
    per_type = rng.choice(values, size=len(uniq), p=counts / counts.sum())
    return per_type[inverse]


def sentence_split(
    sentences: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean train and test masks over tokens, whole sentences on one side."""
    uniq = np.unique(sentences)
    rng = np.random.default_rng(seed)
    n_test = max(1, round(len(uniq) * test_fraction))
    test_sents = rng.permutation(uniq)[:n_test]
    test = np.isin(sentences, test_sents)
    return ~test, test


def fit_score(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, max_iter: int):
    """Test accuracy of a standardised logistic regression trained on ``train``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(y[train])) < 2:
        return float(np.mean(y[test] == y[train][0]))
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit(x[train], y[train])
    return float(probe.score(x[test], y[test]))


def majority(y: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    values, counts = np.unique(y[train], return_counts=True)
    return float(np.mean(y[test] == values[np.argmax(counts)]))


def probe_layers(
    vectors: np.ndarray,
    labels: np.ndarray,
    types: np.ndarray,
    sentences: np.ndarray,
    test_fraction: float,
    max_iter: int,
    seed: int,
) -> pd.DataFrame:
    """One task at every layer of ``vectors`` (layers, tokens, hidden): layer, accuracy,
    control accuracy, selectivity, majority baseline, label count, train and test sizes."""
    labels = np.asarray(labels).astype(str)
    control = control_labels(labels, np.asarray(types).astype(str), seed)
    train, test = sentence_split(sentences, test_fraction, seed)
    rows = []
    for layer in range(vectors.shape[0]):
        x = np.asarray(vectors[layer], dtype=np.float32)
        acc = fit_score(x, labels, train, test, max_iter)
        ctl = fit_score(x, control, train, test, max_iter)
        rows.append(
            {
                "layer": layer,
                "accuracy": acc,
                "control_accuracy": ctl,
                "selectivity": acc - ctl,
                "majority": majority(labels, train, test),
                "labels": len(np.unique(labels)),
                "train_tokens": int(train.sum()),
                "test_tokens": int(test.sum()),
            }
        )
    return pd.DataFrame(rows)


def run_probes(
    vectors: np.ndarray, table: pd.DataFrame, language: str, settings: dict
) -> pd.DataFrame:
    """Every task of the model's language at every layer (long table with a ``task`` column).

    One BLAS/OpenMP thread: scikit-learn's multithreaded loss runs ~50x slower on a loaded
    machine with few cores (threads waiting on descheduled siblings), and these fits are small."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _run_probes(vectors, table, language, settings)


def _run_probes(vectors, table, language, settings) -> pd.DataFrame:
    frames = []
    sentences = table["sentence"].to_numpy()
    for task, (labels, types) in tasks_for(table, language).items():
        log.info("probing %s", task)
        frame = probe_layers(
            vectors,
            labels,
            types,
            sentences,
            test_fraction=settings["probe_test_fraction"],
            max_iter=settings["probe_max_iter"],
            seed=settings["seed"],
        )
        frames.append(frame.assign(task=task))
    out = pd.concat(frames, ignore_index=True)
    return out[["task", *[c for c in out.columns if c != "task"]]]
