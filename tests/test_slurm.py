"""The workflow on a real SLURM cluster with profiles/slurm: every job that is not a `localrules`
stage runs as a SLURM job, the GPU stages ask SLURM for a GPU and get one while the CPU stages do
not, the light stages stay on the submitting node, and the results equal a local run's.

The cluster is the single-node one of ``tests/slurm/cluster.sh start`` (slurm-wlm, munge,
placeholder GPUs, partitions ``cpu`` and ``gpu``); without it these tests are skipped with the
reason. The profile's own consistency with the workflow is checked without a cluster."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.helpers.runner import snakemake
from tests.helpers.tiny import REPO, tiny_config, write_config, write_tiny_corpus

PROFILE = REPO / "profiles" / "slurm"
# What the tiny run has at least (stages added later must not break the test).
TINY_RULES = {
    "corpus",
    "mecab_stats",
    "tokenize",
    "vocab_matrix",
    "embed",
    "project",
    "plot_vocab_png",
    "plot_sentences_png",
}
# Executor settings for this test cluster only, not for the profile: it has no accounting
# database (job status from squeue; sacct cannot answer), and its jobs are short, so the first
# status check comes after 5 s rather than the default 40 s. Successful jobs' SLURM logs are kept
# for the assertions; --verbose makes the executor log each sbatch call.
CLUSTER_ARGS = (
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "5",
    "--slurm-keep-successful-logs",
    "--verbose",
)
START_HINT = "start the test cluster with `tests/slurm/cluster.sh start` (as root)"


# --- what the workflow says: local rules and GPU rules, read from its source -----------------


def _rule_files() -> list[Path]:
    return [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]


def workflow_local_rules() -> set[str]:
    """Every rule named in a `localrules:` directive."""
    names: set[str] = set()
    for path in _rule_files():
        for m in re.finditer(r"^localrules:(.*?)(?:\n\s*\n|\Z)", path.read_text(), re.M | re.S):
            names |= {n for n in re.split(r"[\s,]+", m.group(1)) if n}
    return names


def workflow_rules() -> dict[str, str]:
    """Rule name -> the rule's text."""
    rules = {}
    for path in _rule_files():
        for m in re.finditer(r"^rule (\w+):\n((?:[ \t]+.*\n|[ \t]*\n)*)", path.read_text(), re.M):
            rules[m.group(1)] = m.group(2)
    return rules


def workflow_gpu_keys() -> dict[str, str]:
    """GPU rule -> its key under the config's `resources:` (gpu_resources("<key>"))."""
    keys = {}
    for name, text in workflow_rules().items():
        if m := re.search(r'gpu_resources\("(\w+)"\)', text):
            keys[name] = m.group(1)
    return keys


def cpu_only_gpu_rule() -> str | None:
    """The GPU stage the cluster test switches to CPU through the config (embed stays on GPU)."""
    others = sorted(set(workflow_gpu_keys()) - {"embed"})
    return "padding" if "padding" in others else next(iter(others), None)


def workflow_gpu_rules() -> set[str]:
    """Rules whose resources ask for `gpu` (via gpu_resources(...))."""
    return {name for name, text in workflow_rules().items() if re.search(r"\bgpu\s*=", text)}


def load_profile() -> dict:
    return yaml.safe_load((PROFILE / "config.yaml").read_text())


# --- the profile, without a cluster -----------------------------------------------------------


def test_profile_matches_the_workflow():
    profile = load_profile()
    rules = workflow_rules()
    local = workflow_local_rules()
    gpu = workflow_gpu_rules()
    assert profile["executor"] == "slurm"
    assert {"embed", "train_mlm", "padding"} <= gpu, gpu
    assert {
        "all",
        "download",
        "corpus",
        "mecab_stats",
        "plot_vocab_png",
        "plot_sentences_png",
    } <= local
    assert not local & gpu
    set_resources = profile.get("set-resources", {})
    assert set(set_resources) <= set(rules), f"unknown rules in set-resources: {set(set_resources)}"
    for name in gpu:
        res = set_resources.get(name, {})
        assert res.get("cpus_per_gpu"), f"{name}: no cpus_per_gpu in the profile"
        assert res.get("slurm_partition"), f"{name}: no GPU partition in the profile"
    every = [profile.get("default-resources", {}), *set_resources.values()]
    for res in every:
        # whether a stage gets a GPU is the workflow's (config `resources:`) call, not the profile's
        assert "gpu" not in res and "gres" not in res, res
        assert not re.search(r"--(gres|gpus)\b", str(res.get("slurm_extra", ""))), res
    assert profile["default-resources"].get("slurm_partition")
    assert profile["default-resources"].get("runtime")
    assert profile["default-resources"].get("mem_mb")


# --- the cluster ----------------------------------------------------------------------------


def profile_partitions() -> tuple[str, set[str]]:
    """(default partition, every partition the profile names)."""
    profile = load_profile()
    default = profile["default-resources"]["slurm_partition"]
    named = {
        r["slurm_partition"] for r in profile["set-resources"].values() if "slurm_partition" in r
    }
    return default, {default, *named}


def cluster_problem() -> str | None:
    """Why the test cluster cannot run the workflow, or None when it can."""
    for tool in ("sinfo", "sbatch", "squeue", "scontrol"):
        if shutil.which(tool) is None:
            return f"SLURM is not installed here (no {tool}); {START_HINT}"
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%N %P %T %G %m"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired:
        return f"sinfo timed out (no slurmctld answering); {START_HINT}"
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:]
        return f"sinfo failed ({' '.join(last)}); {START_HINT}"
    # the biggest job of the profile must fit on a node (memory in MB; the runs use 1 thread)
    profile = load_profile()
    mem = max(
        int(r.get("mem_mb", 0))
        for r in [profile["default-resources"], *profile["set-resources"].values()]
    )
    ready = set()
    for row in proc.stdout.splitlines():
        parts = row.split()
        if (
            len(parts) == 5
            and parts[2] in ("idle", "mixed")
            and "gpu" in parts[3]
            and int(parts[4]) >= mem
        ):
            ready.add(parts[1].rstrip("*"))
    _, wanted = profile_partitions()
    if missing := sorted(wanted - ready):
        return (
            f"no idle node with a GPU GRES and >= {mem} MB in partition(s) {missing} "
            f"that profiles/slurm uses (sinfo: {proc.stdout.strip()!r}); {START_HINT}"
        )
    return None


def scontrol_jobs() -> dict[str, dict[str, str]]:
    """slurmctld's records of current and recently finished jobs (kept MinJobAge seconds)."""
    out = subprocess.run(
        ["scontrol", "show", "job", "-d", "-o"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    jobs = {}
    for line in out.splitlines():
        fields = dict(re.findall(r"(\S+?)=(\S*)", line))
        if "JobId" in fields:
            jobs[fields["JobId"]] = fields
    return jobs


@dataclass
class Job:
    """One job as the main snakemake process logged it."""

    rule: str
    local: bool
    jobid: str
    resources: dict[str, str] = field(default_factory=dict)
    slurm_id: str | None = None
    sbatch: str | None = None
    record: dict[str, str] | None = None


def parse_run(output: str, workdir: Path) -> list[Job]:
    jobs: dict[str, Job] = {}
    for m in re.finditer(r"^(local)?rule (\w+):\n((?:    .*\n)+)", output, re.M):
        body = dict(re.findall(r"^    (\w+): (.*)$", m.group(3), re.M))
        resources = dict(re.findall(r"(\w+)=([^,\s]+)", body.get("resources", "")))
        jobs[body["jobid"]] = Job(m.group(2), bool(m.group(1)), body["jobid"], resources)
    submitted = re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", output)
    calls = {
        re.search(r"--comment (\S+)", c).group(1): c
        for c in re.findall(r"sbatch call: (sbatch .*)", output)
    }
    records = scontrol_jobs()
    for jobid, slurm_id in submitted:
        job = jobs[jobid]
        job.slurm_id = slurm_id
        job.record = records.get(slurm_id)
        if job.record:
            job.sbatch = calls.get(job.record.get("Comment", ""))
    # jobs of this run that slurmctld knows about but the log does not name: there must be none
    ours = {i for i, r in records.items() if r.get("WorkDir") == str(workdir)}
    assert ours == {s for _, s in submitted}, (ours, submitted)
    return list(jobs.values())


def run_on_cluster(work: Path, cfg: Path, *extra: str):
    proc = snakemake(
        work,
        "--configfile",
        str(cfg),
        "--workflow-profile",
        str(PROFILE),
        *CLUSTER_ARGS,
        *extra,
    )  # the runner's timeout guards against a hang: this run takes 5 to 7 minutes on 2 cores
    return proc, parse_run(proc.stdout + proc.stderr, work)


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory):
    """The tiny workflow with profiles/slurm on the test cluster and, at the same time (the waits
    between the executor's status checks leave room), locally up to the results compared. Both
    with one GPU stage other than embed made CPU-only by the config."""
    if problem := cluster_problem():
        pytest.skip(problem)
    tiny_model = request.getfixturevalue("tiny_model")
    # One thread per stage in both runs: the same threads give the same t-SNE and training
    # results, and one thread a job suits a test machine that runs all the jobs on few cores.
    stages = set()
    for path in _rule_files():
        stages |= set(re.findall(r'stage_threads\("(\w+)"\)', path.read_text()))
    off = cpu_only_gpu_rule()
    resources = {workflow_gpu_keys()[off]: {"gpu": 0}} if off else {}

    def prepare(name: str):
        work = tmp_path_factory.mktemp(name)
        corpus = write_tiny_corpus(work / "tiny.tsv")
        threads = dict.fromkeys(stages, 1)
        cfg = tiny_config(work, tiny_model, corpus, threads=threads, resources=resources)
        return work, write_config(work / "tiny.yaml", cfg), cfg

    cluster, cluster_cfg, cfg = prepare("slurm-run")
    local, local_cfg, _ = prepare("local-run")
    compared = [
        "results/corpus/corpus.parquet",
        *(f"results/mecab/{c}/stats.json" for c in cfg["mecab"]["columns"]),
        *(
            f"results/projection/{m['name']}/{target}.parquet"
            for m in cfg["models"]
            for target in ("vocab", "sentences")
        ),
    ]
    with ThreadPoolExecutor(1) as pool:
        local_run = pool.submit(
            snakemake, local, "--configfile", str(local_cfg), "--cores", "2", *compared
        )
        _, jobs = run_on_cluster(cluster, cluster_cfg)
        local_run.result()
    return SimpleNamespace(local=local, cluster=cluster, jobs=jobs, off=off)


@pytest.mark.slurm
def test_every_job_but_the_local_rules_ran_as_a_slurm_job(runs):
    local_rules = workflow_local_rules()
    ran = {j.rule for j in runs.jobs}
    assert ran >= TINY_RULES, ran
    for job in runs.jobs:
        if job.rule in local_rules:
            # on the submitting node: logged as a localrule, never given to sbatch
            assert job.local and job.slurm_id is None, job
            continue
        assert not job.local and job.slurm_id, f"{job.rule} was not submitted to SLURM: {job}"
        rec = job.record
        assert rec, f"slurmctld has no record of {job.rule}'s SLURM job {job.slurm_id}"
        assert rec["JobState"] == "COMPLETED" and rec["ExitCode"] == "0:0", rec
        assert rec["WorkDir"] == str(runs.cluster)
        assert rec["Comment"].startswith(f"rule_{job.rule}"), rec["Comment"]
        # the job's output, written by slurmstepd under the executor's log folder
        log = Path(rec["StdOut"])
        assert log.is_file() and log.stat().st_size > 0, log
        assert runs.cluster / ".snakemake" / "slurm_logs" in log.parents
    assert any(j.slurm_id for j in runs.jobs) and any(j.local for j in runs.jobs)


@pytest.mark.slurm
def test_gpu_stages_get_a_gpu_and_cpu_stages_do_not(runs):
    gpu_rules = workflow_gpu_rules()
    profile = load_profile()
    default_partition, _ = profile_partitions()
    remote = [j for j in runs.jobs if j.slurm_id]
    assert "embed" in {j.rule for j in remote}
    for job in remote:
        call, rec = job.sbatch, job.record
        assert call, f"no sbatch call logged for {job.rule}"
        if job.rule == runs.off:
            continue  # CPU-only by the config: test_config_makes_a_gpu_stage_a_cpu_job
        if job.rule in gpu_rules:
            # gpu=1 comes from the workflow (config `resources:` default), the plugin turns it
            # into --gpus=1 and slurmctld allocated one of the node's GPUs to the job
            assert job.resources.get("gpu") == "1", job.resources
            assert "--gpus=1" in call and "--gres" not in call, call
            assert re.search(r"--cpus-per-gpu=\d+", call), call
            assert rec["TresPerJob"] == "gres:gpu:1", rec
            assert rec["JOB_GRES"] == "gpu:1", rec
            assert rec["Partition"] == profile["set-resources"][job.rule]["slurm_partition"]
        else:
            assert job.resources.get("gpu", "0") == "0", job.resources
            assert not re.search(r"--(gpus|gres)\b", call), call
            assert re.search(r"--cpus-per-task=\d+", call), call
            assert "TresPerJob" not in rec and rec.get("JOB_GRES", "(null)") == "(null)", rec
            wanted = profile["set-resources"].get(job.rule, {}).get("slurm_partition")
            assert rec["Partition"] == (wanted or default_partition)


def _same(a: Path, b: Path) -> None:
    if a.suffix == ".npy":
        np.testing.assert_allclose(np.load(b), np.load(a), rtol=0, atol=1e-6, err_msg=str(b))
    elif a.suffix == ".parquet":
        pd.testing.assert_frame_equal(
            pd.read_parquet(b), pd.read_parquet(a), check_exact=False, rtol=0, atol=1e-6, obj=str(b)
        )
    else:
        assert json.loads(b.read_text()) == json.loads(a.read_text()), b


@pytest.mark.slurm
def test_results_equal_a_local_run(runs):
    res_local, res_cluster = runs.local / "results", runs.cluster / "results"
    compared = set()
    for pattern in (
        "corpus/*.parquet",
        "mecab/*/stats.json",
        "tokens/*/*.parquet",
        "embeddings/*/*.npy",
        "embeddings/*/*.parquet",
        "projection/*/*.parquet",
    ):
        for a in sorted(res_local.glob(pattern)):
            rel = a.relative_to(res_local)
            b = res_cluster / rel
            assert b.is_file(), f"the cluster run has no {rel}"
            _same(a, b)
            compared.add(str(rel))
    assert {
        "corpus/corpus.parquet",
        "tokens/tiny-en/tokens.parquet",
        "embeddings/tiny-en/vocab.npy",
        "embeddings/tiny-en/sentences_mean.npy",
        "embeddings/tiny-en/sentences_cls.npy",
        "projection/tiny-en/vocab.parquet",
        "projection/tiny-en/sentences.parquet",
    } <= compared, compared
    for name in ("plots/tiny-en/vocab_tsne.png", "plots/tiny-en/sentences.png"):
        assert (res_cluster / name).stat().st_size > 1000, name
    for name in ("explore/tiny-en/vocab.html", "explore/tiny-en/sentences.html"):
        assert (res_cluster / name).stat().st_size > 1000, name


@pytest.mark.slurm
def test_config_makes_a_gpu_stage_a_cpu_job(runs):
    """`resources: {<stage>: {gpu: 0}}` in the config: the same profile submits that GPU stage
    without a GPU (while embed, in the same run, gets one)."""
    if runs.off is None:
        pytest.skip("the workflow has no GPU stage besides embed")
    key = workflow_gpu_keys()[runs.off]
    jobs = [j for j in runs.jobs if j.rule == runs.off]
    assert jobs, f"the tiny run has no {runs.off} job; pick another GPU stage for this check"
    for job in jobs:
        assert job.resources.get("gpu") == "0", (key, job.resources)
        assert job.slurm_id and job.record["JobState"] == "COMPLETED", job
        assert not re.search(r"--(gpus|gres)\b", job.sbatch), job.sbatch
        assert re.search(r"--cpus-per-task=\d+", job.sbatch), job.sbatch
        assert "TresPerJob" not in job.record, job.record
        assert job.record.get("JOB_GRES", "(null)") == "(null)", job.record
