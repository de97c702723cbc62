"""The command line: its entry point as a real subprocess, its commands through ``main`` in this process
(a subprocess costs 4 s of imports per command: 50 s for the publish test alone)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from haystack import Pipeline

from stackyard.processes import STACKYARD
from workflows.templates import template_path

PROMPT = "haystack.components.builders.prompt_builder.PromptBuilder"


def cli(*args: str, env_dir: Path, process: bool = False) -> subprocess.CompletedProcess:
    """``stackyard ARGS`` with its data in ``env_dir`` and no other STACKYARD_ setting: exit code and output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STACKYARD_")}
    env.update({"STACKYARD_DATA_DIR": str(env_dir), "HF_HUB_OFFLINE": "1"})
    if process:
        return subprocess.run([*STACKYARD, *args], env=env, capture_output=True, text=True, timeout=180)
    from stackyard.cli import main
    from stackyard.settings import reset_settings_cache

    saved = dict(os.environ)
    out, err = io.StringIO(), io.StringIO()
    os.environ.clear()
    os.environ.update(env)
    reset_settings_cache()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse refusing the arguments, or a message as Python prints it
                code = exc.code if isinstance(exc.code, int) else 1
                if isinstance(exc.code, str):
                    print(exc.code, file=sys.stderr)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        reset_settings_cache()
    return subprocess.CompletedProcess(["stackyard", *args], code, out.getvalue(), err.getvalue())


@pytest.fixture
def greet_file(tmp_path: Path) -> Path:
    path = tmp_path / "greet.yaml"
    path.write_text(yaml.safe_dump({
        "components": {"p": {"type": PROMPT, "init_parameters": {"template": "Hello {{ name }}"}}},
        "connections": [], "inputs": {"name": "p.name"}, "outputs": {"greeting": "p.prompt"}}))
    return path


@pytest.mark.integration
def test_validate_ok_and_errors_pinned_to_node_and_port(tmp_path: Path, greet_file: Path):
    ok = cli("validate", str(greet_file), env_dir=tmp_path, process=True)   # the installed entry point
    assert ok.returncode == 0 and "valid" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(greet_file.read_text().replace("p.prompt", "p.answer"))
    result = cli("validate", str(bad), env_dir=tmp_path)
    assert result.returncode == 1
    assert "[bad_output_mapping] p.answer" in result.stderr and "its outputs are prompt" in result.stderr


def test_run_prints_outputs_and_refuses_bad_inputs(tmp_path: Path, greet_file: Path):
    result = cli("run", str(greet_file), "--inputs", '{"name": "Ada"}', env_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert '"greeting": "Hello Ada"' in result.stdout
    unknown = cli("run", str(greet_file), "--inputs", '{"nom": "Ada"}', env_dir=tmp_path)
    assert unknown.returncode == 1 and "Unknown input 'nom'" in unknown.stderr
    broken = cli("run", str(greet_file), "--inputs", "{nope", env_dir=tmp_path)
    assert broken.returncode != 0 and "--inputs is not valid JSON" in broken.stderr


def test_run_names_the_node_that_fails_and_the_fix_without_a_traceback(tmp_path: Path, greet_file: Path):
    from tests.support.specs import chat

    missing = tmp_path / "missing.yaml"
    missing.write_text(yaml.safe_dump(chat("acme/not-on-this-machine")))
    result = cli("run", str(missing), "--inputs", '{"question": "hi"}', env_dir=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "Node 'llm' cannot load model 'acme/not-on-this-machine'" in result.stderr
    assert "STACKYARD_MODEL_PATHS" in result.stderr
    failing = tmp_path / "failing.yaml"  # a node that fails while running: Haystack's error names it
    failing.write_text(greet_file.read_text().replace("Hello {{ name }}", "Hello {{ (name | length) // 0 }}"))
    result = cli("run", str(failing), "--inputs", '{"name": "Ada"}', env_dir=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "Component name: 'p'" in result.stderr and "division or modulo by zero" in result.stderr


def test_import_export_round_trip_and_versions(tmp_path: Path, greet_file: Path):
    first = cli("import", str(greet_file), "--name", "greeter", env_dir=tmp_path)
    assert first.returncode == 0 and "greeter@1" in first.stdout
    changed = tmp_path / "greet2.yaml"
    changed.write_text(greet_file.read_text().replace("Hello", "Hi"))
    assert "greeter@2" in cli("import", str(changed), "--name", "greeter", env_dir=tmp_path).stdout
    v1 = cli("export", "greeter@1", env_dir=tmp_path)
    latest = cli("export", "greeter", env_dir=tmp_path)
    assert "Hello {{ name }}" in v1.stdout and "Hi {{ name }}" in latest.stdout
    loaded = Pipeline.loads(latest.stdout)
    assert loaded.get_component("p").to_dict()["init_parameters"]["template"] == "Hi {{ name }}"
    assert yaml.safe_load(latest.stdout)["inputs"] == {"name": ["p.name"]}
    listed = cli("list", env_dir=tmp_path)
    assert "greeter" in listed.stdout and "2 version(s)" in listed.stdout
    missing = cli("export", "nobody", env_dir=tmp_path)
    assert missing.returncode == 1 and "No workflow 'nobody'" in missing.stderr


def test_hostile_import_stores_nothing(tmp_path: Path):
    hostile = tmp_path / "hostile.yaml"
    hostile.write_text("components:\n  x:\n    type: os.system\n    init_parameters: {}\n")
    result = cli("import", str(hostile), "--name", "evil", env_dir=tmp_path)
    assert result.returncode == 1 and "os.system is not an allowed component" in result.stderr
    assert "evil" not in cli("list", env_dir=tmp_path).stdout


def test_templates_lists_the_starters(tmp_path: Path):
    result = cli("templates", env_dir=tmp_path)
    assert result.returncode == 0
    for name in ("ingest", "rag_chat", "summarize", "classify"):
        assert name in result.stdout
    assert str(template_path("ingest")) in result.stdout


def test_publish_keys_and_unpublish(tmp_path: Path, greet_file: Path):
    assert cli("import", str(greet_file), "--name", "greeter", env_dir=tmp_path).returncode == 0
    missing_roles = cli("publish", "greeter", "--slug", "hello", env_dir=tmp_path)
    assert missing_roles.returncode == 1 and "--message NAME" in missing_roles.stderr
    bad_slug = cli("publish", "greeter", "--slug", "Not A Slug", "--message", "name", "--reply", "greeting", env_dir=tmp_path)
    assert bad_slug.returncode == 1 and "lowercase" in bad_slug.stderr
    unchecked = cli("publish", "greeter@1", "--slug", "hello", "--message", "name", "--reply", "greeting", env_dir=tmp_path)
    assert unchecked.returncode == 1 and "no worker serves the 'cpu' queue" in unchecked.stderr  # nothing to answer
    assert "--no-check" in unchecked.stderr
    done = cli("publish", "greeter@1", "--slug", "hello", "--message", "name", "--reply", "greeting", "--no-check",
               env_dir=tmp_path)
    assert done.returncode == 0 and "published greeter@1 as 'hello'" in done.stdout
    assert "without the publish check" in done.stderr
    created = cli("keys", "create", "--app", "hello", "--rate", "5", "--name", "ci", env_dir=tmp_path)
    key = created.stdout.strip()
    assert created.returncode == 0 and key.startswith("sy_") and "Shown once" in created.stderr
    listed = cli("keys", "list", env_dir=tmp_path).stdout
    assert key[:11] in listed and key not in listed and "hello" in listed and "5/min" in listed
    key_id = listed.split()[0]
    assert "revoked" in cli("keys", "revoke", key_id, env_dir=tmp_path).stdout
    assert "revoked" in cli("keys", "list", env_dir=tmp_path).stdout
    wrong_app = cli("keys", "create", "--app", "nope", env_dir=tmp_path)
    assert wrong_app.returncode == 1 and "No published app 'nope'" in wrong_app.stderr
    assert cli("unpublish", "hello", env_dir=tmp_path).returncode == 0
    again = cli("unpublish", "hello", env_dir=tmp_path)
    assert again.returncode == 1 and "No published app 'hello'" in again.stderr


def test_knowledge_bases_are_created_filled_and_listed(tmp_path: Path):
    (tmp_path / "files" / "handbook").mkdir(parents=True)
    (tmp_path / "files" / "handbook" / "policy.txt").write_text("Thirty days of vacation.")
    (tmp_path / "files" / "handbook" / "parking.md").write_text("Bikes go in the cellar.")
    created = cli("kb", "create", "handbook", "--length", "50", "--overlap", "5", env_dir=tmp_path)
    assert created.returncode == 0 and "created 'handbook'" in created.stdout
    too_long = cli("kb", "create", "other", "--length", "1000", env_dir=tmp_path)
    assert too_long.returncode == 1 and "chunking.length must be from 1 to 256" in too_long.stderr
    added = cli("kb", "add", "handbook", "handbook", env_dir=tmp_path)
    assert added.returncode == 0 and "queued 2 document(s)" in added.stdout
    again = cli("kb", "add", "handbook", "handbook/policy.txt", env_dir=tmp_path)
    assert "skipped handbook/policy.txt: the same content is already in this knowledge base" in again.stdout
    outside = cli("kb", "add", "handbook", "../secrets.txt", env_dir=tmp_path)
    assert outside.returncode == 1 and "leads outside the files root" in outside.stderr
    docs = cli("kb", "docs", "handbook", env_dir=tmp_path).stdout.splitlines()
    assert sorted(line.split()[1] + " " + line.split()[-1] for line in docs) == [
        "queued handbook/parking.md", "queued handbook/policy.txt"]
    assert cli("kb", "list", env_dir=tmp_path).stdout.split()[:2] == ["handbook", "indexing"]
    assert cli("kb", "docs", "nope", env_dir=tmp_path).returncode == 1
    query = cli("kb", "query", "handbook", "cellar", "--mode", "keyword", env_dir=tmp_path)
    assert query.returncode == 0 and query.stdout.startswith("0 hit(s), keyword (scores: BM25")
    reindex = cli("kb", "reindex", "handbook", "--length", "80", env_dir=tmp_path)
    assert reindex.returncode == 0 and "re-indexing 'handbook' with chunks of 80" in reindex.stdout
    assert cli("kb", "list", env_dir=tmp_path).stdout.split()[:2] == ["handbook", "reindexing"]
    busy = cli("kb", "reindex", "handbook", env_dir=tmp_path)
    assert busy.returncode == 1 and "already re-indexing" in busy.stderr
