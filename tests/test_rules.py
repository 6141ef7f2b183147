"""Names and rerun triggers of the rules: each rule runs a script named like it, and each rule's
`code` input lists every module its script reaches (checked against a second reading of the
imports: the standard library's modulefinder, which scans the bytecode instead of the syntax
tree)."""

from __future__ import annotations

import modulefinder
import re
from pathlib import Path

import pytest

from bertlens.imports import reached_modules

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
# The one script not named like its rule: scripts/ comes first on sys.path in the benchmarks, so a
# scripts/tokenize.py would be imported in place of the standard library's tokenize module.
SCRIPT_OF = {"tokenize": "tokenize_corpus.py"}


def rule_blocks() -> list[tuple[str, str, str]]:
    """(rule file, rule name, rule text) of every rule under rules/."""
    blocks = []
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"(?m)^(?=rule )", smk.read_text()):
            if m := re.match(r"rule (\w+):", block):
                blocks.append((smk.name, m.group(1), block))
    return blocks


def script_of(block: str) -> str:
    m = re.search(r'^    script:\n        "\.\./scripts/([\w.]+)"', block, re.M)
    assert m, block[:200]
    return m.group(1)


def finder_modules(script: Path) -> list[str]:
    """The files under the script's folder that modulefinder sees the script reach."""
    finder = modulefinder.ModuleFinder(path=[str(script.parent)])
    finder.run_script(str(script))
    files = {m.__file__ for name, m in finder.modules.items() if name != "__main__" and m.__file__}
    return sorted(str(Path(f).resolve()) for f in files)


def short(path: str) -> str:
    return Path(path).relative_to(SCRIPTS).as_posix()


RULES = rule_blocks()


def test_each_rule_runs_a_script_named_like_it():
    """The script is `<rule>.py`, or `<group>.py` for rules named `<group>_<part>` that share it
    (attention, attention_png, attention_page -> attention.py)."""
    wrong = []
    for smk, rule, block in RULES:
        stem = script_of(block).removesuffix(".py")
        if SCRIPT_OF.get(rule, f"{rule}.py") != f"{stem}.py" and not rule.startswith(f"{stem}_"):
            wrong.append(f"{smk}: rule {rule} runs {stem}.py")
    assert not wrong, wrong
    scripts = {p.name for p in SCRIPTS.glob("*.py")}
    assert scripts == {script_of(block) for _, _, block in RULES}, "scripts without a rule"


@pytest.mark.parametrize("smk, rule, block", RULES, ids=[r for _, r, _ in RULES])
def test_code_input_lists_every_module_the_script_reaches(smk, rule, block):
    script = script_of(block)
    assert f'code=modules_of("{script}"),' in block, f"{smk}: rule {rule} lists its code by hand"
    listed = reached_modules(SCRIPTS / script)
    reached = finder_modules(SCRIPTS / script)
    assert reached, script
    missing = [short(p) for p in reached if p not in listed]
    assert not missing, f"rule {rule}: {script} reaches {missing}, not in its code input"
    extra = [short(p) for p in listed if p not in reached]
    assert not extra, f"rule {rule}: {extra} in its code input, not reached by {script}"


def test_vocab_matrix_code_is_apart_from_the_forward_pass_and_the_tokens():
    """Editing the sentence-vector code must not rerun the input matrix, and editing the input
    matrix's code must not rerun the tokens (and so every model stage)."""

    def reached(script):
        return {Path(p).relative_to(SCRIPTS).as_posix() for p in reached_modules(SCRIPTS / script)}

    matrix = reached("vocab_matrix.py")
    assert "bertlens/vocab_matrix.py" in matrix and "bertlens/embeddings.py" not in matrix
    for script in ("tokenize_corpus.py", "mecab_stats.py", "embed.py"):
        assert "bertlens/vocab_matrix.py" not in reached(script), script


def test_reached_modules_follows_function_level_and_relative_imports(tmp_path):
    """A module imported inside a function, through a relative import of a module imported by
    another, is reached; a module nobody imports and modules outside the folder are not."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("import json\n\ndef f():\n    from .b import g\n    return g\n")
    (pkg / "b.py").write_text("from . import c\n\ng = c\n")
    (pkg / "c.py").write_text("import numpy\n")
    (pkg / "unused.py").write_text("")
    (tmp_path / "other.py").write_text("")
    script = tmp_path / "stage.py"
    script.write_text("import os\n\nfrom pkg.a import f\n\nf()\n")
    expected = sorted(str(pkg / f) for f in ("__init__.py", "a.py", "b.py", "c.py"))
    assert reached_modules(script) == expected
    assert finder_modules(script) == expected
