"""The test tree's own rules: shared helpers live in tests/support (fixtures in conftest.py, which pytest loads),
so no test module and no bench script imports another test module; and a test that starts a process is marked
integration, so `make check` starts none."""

from __future__ import annotations

import ast
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def foreign_imports(path: Path, root: Path = ROOT) -> list[str]:
    """``tests.*`` imports of ``path`` that are not ``tests.support``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else (
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
        for name in names:
            if name == "tests" or (name.startswith("tests.") and not name.startswith("tests.support")):
                found.append(f"{path.relative_to(root)}:{node.lineno} imports {name}")
    return found


def test_tests_and_benchmarks_import_helpers_only_from_tests_support():
    files = [*sorted((ROOT / "tests").rglob("*.py")), *sorted((ROOT / "bench").glob("*.py"))]
    assert len(files) > 50
    problems = [problem for path in files for problem in foreign_imports(path)]
    assert problems == [], "move the shared code into tests/support:\n" + "\n".join(problems)


def test_a_test_importing_another_test_module_is_named(tmp_path: Path):
    planted = tmp_path / "tests" / "ui" / "test_planted.py"
    planted.parent.mkdir(parents=True)
    planted.write_text("import tests.support.stack\nfrom tests.ui.test_chat_page import respond\n")
    assert foreign_imports(planted, tmp_path) == ["tests/ui/test_planted.py:2 imports tests.ui.test_chat_page"]


def test_a_unit_test_that_starts_a_process_fails_naming_the_marker():
    for spawn in (lambda: subprocess.run(["true"]), lambda: os.system("true")):
        with pytest.raises(RuntimeError, match="test_a_unit_test_that_starts_a_process.*mark it @pytest.mark.integration"):
            spawn()


@pytest.mark.integration
def test_an_integration_test_may_start_one():
    assert subprocess.run(["true"]).returncode == 0 and os.system("true") == 0
