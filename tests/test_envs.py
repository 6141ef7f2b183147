"""The per-stage conda environments pin the same versions as requirements.txt, the one place
where Python dependencies are pinned; every rule names an environment."""

from __future__ import annotations

import ast
import re
import sys
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


# import name -> the pip distribution in envs/*.yaml that provides it (when they differ)
DISTRIBUTION = {
    "sklearn": "scikit-learn",
    "openTSNE": "opentsne",
    "faiss": "faiss-cpu",
    "umap": "umap-learn",
    "yaml": "pyyaml",
}
# provided by another pinned package of every environment that imports them
DEPENDENCIES = {"numpy": "pandas"}


def module_imports(path: Path) -> set[str]:
    """Modules a file imports when it is loaded (imports inside functions are left out: they
    run only when called); ``bertlens.x`` for relative ones."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        for n in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
            if isinstance(n, ast.Import):
                found |= {a.name for a in n.names}
            elif isinstance(n, ast.ImportFrom):
                found.add(f"bertlens.{n.module or ''}" if n.level else n.module)
    return found


def third_party_imports(script: Path) -> set[str]:
    """Top-level packages outside bertlens and the standard library that loading ``script``
    imports, following bertlens modules."""
    seen: set[Path] = set()
    todo, found = [script], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in module_imports(path):
            top = name.split(".")[0]
            if top == "bertlens":
                parts = [p for p in name.split(".") if p]
                module = REPO / "scripts" / Path(*parts)
                todo += [
                    p for p in (module.with_suffix(".py"), module / "__init__.py") if p.is_file()
                ]
            elif top not in sys.stdlib_module_names and top != "snakemake":
                found.add(top)
    return found


def rule_scripts_and_envs() -> list[tuple[str, str, str]]:
    out = []
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"^(?=rule \w+:)", smk.read_text(), flags=re.M)[1:]:
            name = re.match(r"rule (\w+):", block).group(1)
            env = re.search(r'conda:\n\s+"\.\./(envs/[\w.-]+)"', block)
            script = re.search(r'script:\n\s+"\.\./(scripts/[\w.]+)"', block)
            if env and script:
                out.append((name, script.group(1), env.group(1)))
    return out


def test_every_script_imports_only_what_its_env_installs():
    """With --software-deployment-method conda each rule runs in its own environment: a module
    the script imports at load time (itself or through bertlens) must be installed there, or the
    stage fails before it starts."""
    checked = rule_scripts_and_envs()
    assert len(checked) >= 20
    for rule, script, env in checked:
        data = yaml.safe_load((REPO / env).read_text())
        pip = next(d["pip"] for d in data["dependencies"] if isinstance(d, dict))
        installed = {canonical(re.split(r"[=<>]", spec)[0]) for spec in pip}
        for module in sorted(third_party_imports(REPO / script)):
            dist = canonical(DISTRIBUTION.get(module, module))
            provided = dist in installed or DEPENDENCIES.get(module) in installed
            assert provided, f"rule {rule}: {script} imports {module}, which {env} does not install"
