"""The one way tests run the pipeline's scripts: a stage script in this process with a stand-in
``snakemake`` object (as Snakemake's ``script:`` directive runs it), or the real snakemake CLI in a
subprocess. Which script a rule runs is read from the rule files, so tests name rules, never
script files."""

from __future__ import annotations

import logging
import os
import re
import runpy
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.helpers.tiny import REPO

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
PROXIES = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


def script_of(rule: str) -> Path:
    """The script that ``rule`` runs (its ``script:`` directive in rules/*.smk)."""
    for smk in sorted((REPO / "rules").glob("*.smk")):
        text = smk.read_text(encoding="utf-8")
        for block in re.split(r"^(?=rule \w+:)", text, flags=re.M):
            if block.startswith(f"rule {rule}:"):
                found = re.search(r"^\s+script:\s*\n\s+\"([^\"]+)\"", block, re.M)
                if found:
                    return (smk.parent / found.group(1)).resolve()
    raise LookupError(f"no rule {rule!r} with a script: directive in rules/*.smk")


def _files(cls, value) -> Any:
    """Snakemake's named file list: names for a mapping (a list value is a named slice)."""
    files = cls()
    items = value.items() if isinstance(value, Mapping) else [(None, v) for v in value or []]
    for name, item in items:
        start = len(files)
        many = isinstance(item, list | tuple)
        files.extend(str(p) for p in (item if many else [item]))
        if name is not None:
            files._set_name(name, start, end=len(files) if many else None)
    return files


def fake_snakemake(
    rule: str,
    *,
    input: Mapping | list | None = None,  # noqa: A002 - the name Snakemake gives it
    output: Mapping | list | None = None,
    params: Mapping | None = None,
    wildcards: Mapping | None = None,
    log: list | None = None,
    threads: int = 1,
):
    """The ``snakemake`` object a ``script:`` job sees, built from Snakemake's own classes."""
    from snakemake import iocontainers as io

    return io.Snakemake(
        input_=_files(io.InputFiles, input),
        output=_files(io.OutputFiles, output),
        params=io.Params(fromdict=dict(params or {})),
        wildcards=io.Wildcards(fromdict=dict(wildcards or {})),
        threads=threads,
        resources=io.ResourceList(fromdict={"_cores": threads, "_nodes": 1}),
        log=_files(io.Log, log),
        config={},
        rulename=rule,
        bench_iteration=None,
        scriptdir=str(REPO / "scripts"),
    )


def run_script(sm) -> None:
    """Run the script of rule ``sm.rule`` in this process with ``sm`` as its ``snakemake``; the
    logging handlers the stage adds are closed and removed afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        runpy.run_path(str(script_of(sm.rule)), init_globals={"snakemake": sm})
    finally:
        for h in root.handlers:
            if h not in handlers:
                h.close()
        root.handlers[:] = handlers
        root.setLevel(level)


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: offline, unbuffered, no proxy (servers are local)."""
    return {
        **{k: v for k, v in os.environ.items() if k not in PROXIES},
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    """The real snakemake CLI on this repository's Snakefile in ``workdir``."""
    return [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), *args]


def snakemake(
    workdir: Path, *args: str, check: bool = True, timeout: int = 900
) -> subprocess.CompletedProcess:
    """Run the real snakemake CLI in ``workdir`` to its end; with ``check``, a failure raises."""
    proc = subprocess.run(
        snakemake_command(workdir, *args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=subprocess_env(),
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
            f"{proc.stderr[-6000:]}"
        )
    return proc


def start_snakemake(workdir: Path, *args: str, **popen: Any) -> subprocess.Popen:
    """Start the real snakemake CLI in ``workdir`` in the background (``popen``: Popen's
    arguments, such as stdout)."""
    return subprocess.Popen(snakemake_command(workdir, *args), env=subprocess_env(), **popen)
