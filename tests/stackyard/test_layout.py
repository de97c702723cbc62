"""The rooms and the rules between them (stackyard/layout.py), on the real tree and on planted breaches."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stackyard import layout


def test_the_tree_keeps_every_rule():
    report = layout.check()
    assert report.problems == [], "\n".join(report.problems)
    assert set(report.lines) == set(layout.ROOMS) and all(report.lines.values())


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the project's rooms to plant breaches in."""
    for room in layout.ROOMS:
        shutil.copytree(layout.ROOT / room, tmp_path / room, ignore=shutil.ignore_patterns("__pycache__", "static"))
    return tmp_path


def plant(tree: Path, module: str, line: str) -> None:
    path = tree / module
    path.write_text(path.read_text() + f"\n\ndef _planted():\n    {line}\n")


@pytest.mark.parametrize("module,line,expected", [
    ("ui/app.py", "from api import errors", "api and ui never import each other"),
    ("api/app.py", "import ui.editor_page", "api and ui never import each other"),
    ("nodes/files.py", "from workflows.spec import WorkflowSpec", "nodes may import only nothing"),
    ("store/db.py", "from runs import lifecycle", "imports runs.lifecycle: store may import only nodes"),
    ("runs/trace.py", "from worker.app import celery_app", "runs may import only"),
    ("ui/handlers.py", "from worker.notify import _redis_url", "a private name of another module"),
    ("api/metrics.py", "from worker import notify; notify._redis_url()", "worker.notify._redis_url, a private name"),
    ("worker/app.py", "from nodes import _milvus_lite_server", "a private module of another package"),
    ("workflows/spec.py", "from workflows import validation", "import cycle between modules: workflows.agents → workflows.build → workflows.spec → workflows.validation"),
    ("worker/runner.py", "return RunState.FAILED", "decides a RunState (RunState.FAILED) outside runs.lifecycle"),
    ("worker/batch.py", "job_dispatch.transition_items(None, ItemState.PENDING)", "decides a ItemState"),
    ("api/routes/runs.py", "run = None; run.state = RunState.CANCELLED", "writes a state column itself"),
    ("jobs/lifecycle.py", "from sqlalchemy import update; update(Job).values(state=JobState.FAILED)",
     "writes a state column itself"),
    ("runs/trace.py", "update(NodeRun).where(True).values({'state': 'done'})", "writes a state column itself"),
    ("api/routes/apps.py", "x = None; x.state.value in ('succeeded', 'failed')", "spells a state as a string"),
    ("apps/keys.py", "def touch(key, session): pass", "touch() takes its session other than first"),
    ("workflows/crud.py", "def touch(*, session): pass", "touch() takes its session other than first"),
    ("apps/publishing.py", "session = None; session.commit()", "commits a session it did not open"),
])
def test_a_planted_breach_is_named(tree: Path, module: str, line: str, expected: str):
    assert layout.check(tree).problems == []
    plant(tree, module, line)
    problems = layout.check(tree).problems
    assert any(expected in problem for problem in problems), problems
    assert any(problem.startswith(module[:-3].replace("/", ".") + ":") or "cycle" in problem for problem in problems)


def test_a_route_handler_gets_its_session_injected_wherever_it_stands(tree: Path):
    plant(tree, "api/routes/runs.py", "def handler(run_id: str, session: SessionDep): pass")
    assert layout.check(tree).problems == []


def test_comparing_with_a_state_is_reading_not_deciding(tree: Path):
    plant(tree, "worker/runner.py", "run = None; return run.state == RunState.RETRYING or run.state in (RunState.FAILED,)")
    assert layout.check(tree).problems == []


def test_an_import_inside_a_function_counts(tree: Path):
    plant(tree, "workflows/spec.py", "import jobs.models")
    assert any("workflows.spec" in problem and "jobs.models" in problem for problem in layout.check(tree).problems)


def test_the_command_prints_each_room_and_fails_on_a_breach(tree: Path, capsys: pytest.CaptureFixture[str]):
    assert layout.main(tree) == 0
    printed = capsys.readouterr().out
    rows = [row.split() for row in printed.splitlines()]
    for room in layout.ROOMS:
        assert any(row[:1] == [room] and row[1].isdigit() for row in rows), room
    assert "every rule holds" in printed
    plant(tree, "ui/app.py", "from api import errors")
    assert layout.main(tree) == 1
    printed = capsys.readouterr().out
    assert "ui.app:" in printed and "broken rule(s)" in printed


def test_every_room_is_installed():
    import tomllib

    project = tomllib.loads((layout.ROOT / "pyproject.toml").read_text())
    assert {name.rstrip("*") for name in project["tool"]["setuptools"]["packages"]["find"]["include"]} == set(layout.ROOMS)


def test_the_readme_layout_table_lists_the_rooms_in_order():
    readme = (layout.ROOT / "README.md").read_text()
    section = readme[readme.index("## Layout"):]
    section = section[:section.find("\n## ", 1)] if "\n## " in section[1:] else section
    rows = [line.split("`")[1].rstrip("/") for line in section.splitlines() if line.startswith("| `")]
    assert rows == list(layout.ROOMS)
