"""bertlens: the importable logic behind the workflow stages (scripts/*.py are thin)."""

__version__ = "0.1.0"
