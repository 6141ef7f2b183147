"""Write a synthetic corpus in SNOW's column format (any size, SNOW's length distribution).

    python benchmarks/synthetic_corpus.py 84300 results/synthetic/snow84k.tsv [--seed 0]

The file is a normal corpus source (``path:`` in config.yaml's ``corpus.sources``) and what
``benchmarks/run.py`` measures on; see ``benchmarks.synthetic`` for how rows are made.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "scripts"), str(REPO)]

from benchmarks.synthetic import write_synthetic  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, help="number of rows")
    parser.add_argument("out", help="output .tsv/.csv/.parquet")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"n must be at least 1, got {args.n}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    df = write_synthetic(args.out, args.n, args.seed)
    print(f"wrote {len(df)} rows to {args.out}")


if __name__ == "__main__":
    main()
