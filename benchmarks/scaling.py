"""How every stage's cost grows with the corpus: the workflow on synthetic SNOW-format corpora of
several sizes, wall time and peak memory per stage, growth exponents and a log-log plot.

    python benchmarks/scaling.py --sizes 5000 20000 84300 300000 --out benchmarks/out/scaling
    python benchmarks/scaling.py --sizes 5000 20000 --target results/neighbors/minilm-en/knn.html
    python benchmarks/scaling.py --smoke --out /tmp/scaling     # seconds: tiny model and sizes
    python benchmarks/scaling.py --sizes 5000 20000 84300 300000 --resume --out DIR   # keep
        the sizes already measured in DIR (their n<N>/run.json), run the others
    python benchmarks/scaling.py --alone results/embeddings/minilm-en/sentences_mean.npy \
        --sizes 5000 20000 84300                               # k-NN, t-SNE, UMAP alone

Each size runs the real workflow (``snakemake --cores N``) in its own folder on a corpus written
by ``benchmarks.synthetic`` (every row kept: ``dedupe_on: []``), with the default config's models
and training capped at one epoch (``--config`` for another base). Every stage logs its wall time
and peak RSS when it finishes (``bertlens.stage.run``); they are summed per rule (a rule that
runs once per model counts all its jobs; memory is the largest job's). The growth exponent of a
stage between two sizes is the slope of log(time) against log(rows); the table gives it over the
sizes from ``--fit-from`` rows up.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "scripts"), str(REPO)]

from benchmarks.synthetic import write_synthetic  # noqa: E402

FINISHED = re.compile(r"rule (\w+) finished in ([\d.]+) s \(peak RSS (\d+) MiB\)")
SMOKE_SIZES = (60, 120)


def base_config(path: Path) -> dict[str, Any]:
    """The config every size runs: ``path`` with training capped at one epoch."""
    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    for run in (cfg.get("training") or {}).values():
        if run:
            run["epochs"] = min(float(run.get("epochs", 1)), 1.0)
    return cfg


def smoke_config(work: Path) -> tuple[dict[str, Any], list[str]]:
    """A tiny saved BERT on the English column and the k-NN and projection targets."""
    from tests.helpers.tiny import save_tiny_bert

    model = save_tiny_bert(work / "tiny-model")
    cfg = {
        "models": [{"name": "tiny", "path": str(model), "column": "en", "max_length": 32}],
        "training": {},
        "mecab": {"columns": []},
        "projection": {
            "vocab": {"max_points": 200, "methods": ["pca"]},
            "sentences": {"layers": ["last"], "poolings": ["mean"], "methods": ["tsne"]},
            "tsne": {"perplexity": 5, "n_iter": 50},
        },
    }
    return cfg, ["results/neighbors/tiny/knn.html", "results/projection/tiny/sentences.json"]


def run_size(
    n: int, cfg: dict[str, Any], work: Path, targets: list[str], cores: int
) -> dict[str, Any]:
    """The workflow on ``n`` synthetic rows in ``work/n<n>``: total wall time and per-rule
    seconds, job count and peak RSS from the stage logs."""
    folder = work / f"n{n}"
    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus.tsv"
    if not corpus.exists():
        write_synthetic(str(corpus), n, seed=0)
    cfg = {**cfg, "corpus": {"sources": [{"name": "synthetic", "path": str(corpus)}]}}
    cfg["corpus"]["dedupe_on"] = []
    configfile = folder / "config.yaml"
    configfile.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    cmd = [
        str(Path(sys.executable).with_name("snakemake")),
        *targets,
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(folder),
        "--configfile",
        str(configfile),
        "--cores",
        str(cores),
        "--resources",
        "gpu=1",
    ]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    (folder / "snakemake.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    if proc.returncode != 0:
        raise SystemExit(f"the workflow failed at {n} rows: see {folder / 'snakemake.log'}")
    return {"rows": n, "wall_seconds": round(wall, 1), "stages": stage_costs(folder)}


def stage_costs(folder: Path) -> dict[str, dict[str, float]]:
    stages: dict[str, dict[str, float]] = defaultdict(lambda: {"seconds": 0.0, "jobs": 0})
    for log in sorted((folder / "results" / "logs").rglob("*.log")):
        for rule, seconds, rss in FINISHED.findall(
            log.read_text(encoding="utf-8", errors="replace")
        ):
            s = stages[rule]
            s["seconds"] = round(s["seconds"] + float(seconds), 1)
            s["jobs"] += 1
            s["peak_rss_mib"] = max(s.get("peak_rss_mib", 0), int(rss))
    return dict(stages)


def exponents(runs: list[dict[str, Any]], fit_from: int) -> dict[str, float | None]:
    """Per stage, the least-squares slope of log(seconds) against log(rows) over the runs of at
    least ``fit_from`` rows (None when fewer than two such runs, or a stage under 1 s)."""
    use = [r for r in runs if r["rows"] >= fit_from]
    out: dict[str, float | None] = {}
    for stage in sorted({s for r in runs for s in r["stages"]}):
        pts = [
            (math.log(r["rows"]), math.log(r["stages"][stage]["seconds"]))
            for r in use
            if r["stages"].get(stage, {}).get("seconds", 0) >= 1.0
        ]
        if len(pts) < 2:
            out[stage] = None
            continue
        mx = sum(x for x, _ in pts) / len(pts)
        my = sum(y for _, y in pts) / len(pts)
        sxx = sum((x - mx) ** 2 for x, _ in pts)
        out[stage] = round(sum((x - mx) * (y - my) for x, y in pts) / sxx, 2)
    return out


def plot(runs: list[dict[str, Any]], out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.5, 5.5))
    stages = sorted({s for r in runs for s in r["stages"]})
    styles = iter([(c, ls) for ls in ("-", "--", ":") for c in plt.get_cmap("tab10").colors])
    for stage in stages:
        pts = [(r["rows"], r["stages"][stage]["seconds"]) for r in runs if stage in r["stages"]]
        if len(pts) < 2 or max(t for _, t in pts) < 1.0:
            continue
        if max(t for _, t in pts) < 10.0:  # light stages: drawn, not named
            ax.plot(*zip(*pts, strict=True), color="0.8", lw=0.8)
            continue
        color, style = next(styles)
        ax.plot(*zip(*pts, strict=True), marker="o", color=color, ls=style, label=stage)
    whole = [(r["rows"], r["wall_seconds"]) for r in runs]
    ax.plot(*zip(*whole, strict=True), marker="s", color="black", lw=2, label="whole run (wall)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("corpus rows")
    ax.set_ylabel("stage wall time (s, all jobs of the rule)")
    ax.set_title("How each stage grows with the corpus (grey: stages under 10 s)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))  # outside: hides no point
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)


def markdown(runs: list[dict[str, Any]], slopes: dict[str, float | None], fit_from: int) -> str:
    sizes = [r["rows"] for r in runs]
    head = "| stage | " + " | ".join(f"{n:,} rows: s / MiB" for n in sizes)
    head += f" | exponent (≥{fit_from:,} rows) |"
    lines = [head, "|" + " --- |" * (len(sizes) + 2)]
    for stage, slope in slopes.items():
        cells = []
        for r in runs:
            s = r["stages"].get(stage)
            cells.append(f"{s['seconds']:.1f} / {s['peak_rss_mib']:,}" if s else "–")
        shown = "–" if slope is None else f"{slope:.2f}"
        lines.append(f"| {stage} | " + " | ".join(cells) + f" | {shown} |")
    lines.append(
        "| **whole run (wall)** | " + " | ".join(f"{r['wall_seconds']:.0f}" for r in runs) + " | |"
    )
    return "\n".join(lines) + "\n"


def stages_alone(
    vectors: str, sizes: list[int], layer: int = -1, fit_max: int | None = None
) -> list[dict[str, Any]]:
    """The heavy analysis stages alone, in this process, on ``sizes`` rows (a seeded subsample)
    of one layer of a stored sentence-vector file (``results/embeddings/<model>/
    sentences_mean.npy``): k-NN as the knn stage runs it (default settings), t-SNE and UMAP as
    the project stage runs them, and t-SNE of every point (no sample) beside the default's,
    each with the share of nearest neighbours its map keeps (``fit_max``: the sample size, by
    default the schema's ``projection.sentences.tsne_fit_max``)."""
    import numpy as np

    from bertlens.config import with_defaults
    from bertlens.neighbors import knn_search
    from bertlens.projection import tsne_2d, umap_2d
    from bertlens.stage import configure_threads

    threads = configure_threads(2)
    projection = with_defaults({})["projection"]
    tsne = {k: projection["tsne"][k] for k in ("perplexity", "seed", "refine_iter")}
    fit_max = fit_max or projection["sentences"]["tsne_fit_max"]
    arr = np.load(vectors, mmap_mode="r")
    full = np.asarray(arr[layer], dtype=np.float32)
    order = np.random.default_rng(0).permutation(len(full))
    rows = []
    for n in sorted(sizes):
        x = full[np.sort(order[: min(n, len(full))])]
        row: dict[str, Any] = {"rows": len(x)}
        started = time.perf_counter()
        _, _, facts = knn_search(x, 10, threads=threads)
        row["knn"] = {"seconds": round(time.perf_counter() - started, 1), **facts}
        for name, most in (("tsne", fit_max), ("tsne_whole", None)):
            started = time.perf_counter()
            _, facts = tsne_2d(x, **tsne, threads=threads, fit_max=most)
            row[name] = {
                "seconds": round(time.perf_counter() - started, 1),
                "fitted_points": facts["fitted_points"],
                "neighbors_kept": facts["neighbors_kept"]["share"],
            }
        started = time.perf_counter()
        umap_2d(x, threads=threads)
        row["umap"] = {"seconds": round(time.perf_counter() - started, 1)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 84300, 300000])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "scaling"))
    parser.add_argument("--config", default=str(REPO / "config.yaml"), help="base config")
    parser.add_argument("--target", action="append", default=[], help="only these outputs")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--fit-from", type=int, default=20000)
    parser.add_argument("--smoke", action="store_true", help="tiny model and sizes")
    parser.add_argument(
        "--resume", action="store_true", help="keep the measurements of sizes already run in --out"
    )
    parser.add_argument(
        "--alone", metavar="SENTENCES_NPY", help="time k-NN, t-SNE and UMAP alone on this file"
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.alone:
        rows = stages_alone(args.alone, args.sizes)
        (out / "alone.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
        return {"alone": rows}
    if args.smoke:
        cfg, targets = smoke_config(out)
        sizes, fit_from = list(SMOKE_SIZES), SMOKE_SIZES[0]
    else:
        cfg, targets = base_config(Path(args.config)), args.target
        sizes, fit_from = sorted(args.sizes), args.fit_from
    runs = []
    for n in sizes:
        done = out / f"n{n}" / "run.json"
        if args.resume and done.exists():
            runs.append(json.loads(done.read_text(encoding="utf-8")))
        else:
            runs.append(run_size(n, cfg, out, targets, args.cores))
            done.write_text(json.dumps(runs[-1], indent=2), encoding="utf-8")
        print(f"{n:,} rows: {runs[-1]['wall_seconds']:.0f} s", flush=True)
    slopes = exponents(runs, fit_from)
    result = {"sizes": sizes, "runs": runs, "exponents": slopes, "fit_from": fit_from}
    (out / "scaling.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    (out / "scaling.md").write_text(markdown(runs, slopes, fit_from), encoding="utf-8")
    plot(runs, out / "scaling.png")
    print((out / "scaling.md").read_text(encoding="utf-8"))
    return result


if __name__ == "__main__":
    main()
