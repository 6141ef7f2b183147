"""bertlens: the importable logic behind the workflow stages (scripts/*.py are thin)."""

import os

# Idle OpenMP threads sleep instead of spinning: Snakemake runs several torch jobs side by side,
# and spinning threads of one job starve the others (measured: a padding study took 100-216 s
# instead of 16-50 s next to other jobs on 2 cores). Set before any submodule imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
