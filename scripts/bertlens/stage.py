"""What every stage script shares: logging into the rule's log file, one-line user errors, device
choice and thread settings."""

from __future__ import annotations

import errno
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("bertlens")


class UserError(Exception):
    """A problem the user can fix: its message says what is wrong and how to fix it, in one line."""


def setup_logging(logfile: str | None = None, level: int = logging.INFO) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if logfile:
        os.makedirs(os.path.dirname(os.path.abspath(logfile)), exist_ok=True)
        handlers.append(logging.FileHandler(logfile, mode="w", encoding="utf-8"))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    logging.captureWarnings(True)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask; a cgroup or ``taskset`` may allow fewer
    than the machine has)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def configure_threads(threads: int | None) -> int:
    """Threads this job uses: the ones Snakemake granted it, never more than the CPUs it may run
    on (``--cores 8`` on a 2-core machine must not start 8 threads per job). The limit goes to
    torch, to every BLAS/OpenMP pool (threadpoolctl) and to libraries started later
    (``OMP_NUM_THREADS``). Returns the number set."""
    n = max(1, min(int(threads or 1), usable_cpus()))
    os.environ["OMP_NUM_THREADS"] = str(n)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n)
    try:
        import torch
    except ImportError:  # the light stages' environments have no torch
        return n
    torch.set_num_threads(n)
    return n


def pick_device(preferred: str = "auto") -> str:
    """cuda when present (or asked for), else cpu."""
    import torch

    if preferred == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if preferred.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(
            f"device '{preferred}' was requested but torch sees no CUDA GPU; "
            "set device: auto (or cpu) in the config"
        )
    return preferred


def has_bf16_units(device: str) -> bool:
    """Whether ``device`` computes in bfloat16 natively: a CUDA GPU from Ampere on, a CPU with
    AMX or AVX512-BF16 (elsewhere bf16 is emulated, slower than float32)."""
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return False
        with torch.cuda.device(torch.device(device)):
            return torch.cuda.is_bf16_supported(including_emulation=False)
    return torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()


def bf16_if_supported(asked: bool, device: str, what: str) -> bool:
    """``asked``, unless ``device`` has no bfloat16 units: then a warning that ``what`` runs in
    float32, and False."""
    if not asked:
        return False
    native = has_bf16_units(device)
    if not native:
        units = "a GPU from Ampere on" if device.startswith("cuda") else "AMX or AVX512-BF16"
        log.warning(
            "bf16 was asked for, but %s has no bfloat16 units (%s); %s in float32",
            device,
            units,
            what,
        )
    return native


def run(snakemake: Any, main: Callable[[Any], Any]) -> None:
    """Entry point for ``script:`` stages: log to the rule's log file, turn UserError into one
    clear line and a non-zero exit, and let anything else show its traceback in the log."""
    logfile = snakemake.log[0] if len(snakemake.log) else None
    setup_logging(logfile)
    # The job's threads, capped at the CPUs it may use: what every stage passes to its libraries.
    snakemake.threads = configure_threads(getattr(snakemake, "threads", None))
    start = time.perf_counter()
    log.info("rule %s started (wildcards: %s)", snakemake.rule, dict(snakemake.wildcards))
    try:
        main(snakemake)
    except UserError as err:
        _fail(snakemake.rule, str(err))
    except Exception as err:
        full = disk_full(err, snakemake.output[0] if len(snakemake.output) else None)
        if full:
            _fail(snakemake.rule, full)
        log.exception("rule %s failed with an unexpected error", snakemake.rule)
        raise
    log.info(
        "rule %s finished in %.1f s (peak RSS %.0f MiB)",
        snakemake.rule,
        time.perf_counter() - start,
        peak_rss_mib(),
    )


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB (what benchmarks/scaling.py reads from the
    logs): VmHWM of this process image (ru_maxrss would include the parent's pages from before
    exec)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:  # not Linux
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _fail(rule: str, message: str) -> None:
    log.error("%s", message)
    print(f"ERROR [{rule}]: {message}", file=sys.stderr)
    sys.exit(1)


def disk_full(err: BaseException, output: str | None = None) -> str | None:
    """The one line for a full disk (errno 28 anywhere in the chain of ``err``, also inside the
    messages of libraries that wrap it), naming the folder; None for any other error."""
    e: BaseException | None = err
    for _ in range(10):
        if e is None:
            break
        if (isinstance(e, OSError) and e.errno == errno.ENOSPC) or (
            "No space left on device" in str(e) or "os error 28" in str(e)
        ):
            name = getattr(e, "filename", None) or output
            where = os.path.dirname(os.path.abspath(name)) if name else os.getcwd()
            return (
                f"no space left on {where} (the device filled up while this job wrote "
                f"{os.path.basename(name) if name else 'its outputs'}); free disk space there "
                f"(see 'df -h {where}') and rerun: nothing incomplete was kept"
            )
        e = e.__cause__ or e.__context__
    return None
