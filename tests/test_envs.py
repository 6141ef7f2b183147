"""The per-stage conda environments pin the same versions as requirements.txt, the one place
where Python dependencies are pinned; every rule names an environment."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements.txt: '{line}' is not pinned with =="
            pins[canonical(name)] = version
    return pins


def test_requirements_pin_torch_cpu_wheel_version():
    assert requirements()["torch"] == "2.13.0"


def test_every_env_pin_matches_requirements():
    pins = requirements()
    envs = sorted((REPO / "envs").glob("*.yaml"))
    assert len(envs) >= 3
    for env in envs:
        data = yaml.safe_load(env.read_text())
        pip = next(d["pip"] for d in data["dependencies"] if isinstance(d, dict))
        assert pip, env
        for spec in pip:
            name, _, version = spec.partition("==")
            assert version, f"{env.name}: {spec} is not pinned"
            assert canonical(name) in pins, f"{env.name}: {name} is not in requirements.txt"
            assert pins[canonical(name)] == version, (
                f"{env.name}: {spec} != {pins[canonical(name)]}"
            )


def test_every_rule_names_an_existing_env():
    for smk in (REPO / "rules").glob("*.smk"):
        text = smk.read_text()
        rules = re.findall(r"^rule (\w+):", text, re.M)
        envs = re.findall(r'conda:\n\s+"\.\./(envs/[\w.-]+)"', text)
        assert len(envs) == len(rules), f"{smk.name}: {len(rules)} rules, {len(envs)} conda:"
        for env in envs:
            assert (REPO / env).is_file(), env
