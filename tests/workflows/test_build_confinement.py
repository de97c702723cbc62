"""Built pipelines read files only under the files root, whatever feeds the loader a path.

Each workflow hands a TextFileToDocument a path through another route: a router, a prompt, a joiner, a
hard-coded parameter, a declared input, and (for ``stackyard run``) the CLI. ``/etc/passwd`` and
``../../etc/passwd`` must fail the run pinned to the loader, and a file under the root must still load.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from haystack.core.errors import PipelineRuntimeError

from nodes.errors import FileAccessError
from stackyard.processes import STACKYARD
from workflows.execute import BadRunInputs, run_pipeline
from workflows.spec import WorkflowSpec, spec_from_dict
from workflows.validation import build_pipeline

TXT = "haystack.components.converters.txt.TextFileToDocument"
PROMPT = "haystack.components.builders.prompt_builder.PromptBuilder"
ROUTER = "haystack.components.routers.conditional_router.ConditionalRouter"
STRINGS = "haystack.components.joiners.string_joiner.StringJoiner"
BRANCH = "haystack.components.joiners.branch.BranchJoiner"
FILES = "nodes.files.FileSource"
ESCAPES = ["/etc/passwd", "../../etc/passwd"]
PASSWD = Path("/etc/passwd").read_text()


def _loading(feeder: dict[str, dict], edges: list[tuple[str, str]], inputs: dict[str, list[str]]) -> WorkflowSpec:
    """``feeder`` components → loader (TextFileToDocument) → output ``documents``."""
    return spec_from_dict({"components": {**feeder, "loader": {"type": TXT, "init_parameters": {}}},
                           "connections": [{"sender": s, "receiver": r} for s, r in edges],
                           "inputs": inputs, "outputs": {"documents": "loader.documents"}})


def via_router() -> WorkflowSpec:
    route = {"condition": "{{ path | length > 0 }}", "output": "{{ path }}", "output_name": "file", "output_type": "str"}
    return _loading({"route": {"type": ROUTER, "init_parameters": {"routes": [route]}}},
                    [("route.file", "loader.sources")], {"path": ["route.path"]})


def via_prompt() -> WorkflowSpec:
    return _loading({"prompt": {"type": PROMPT, "init_parameters": {"template": "{{ path }}"}}},
                    [("prompt.prompt", "loader.sources")], {"path": ["prompt.path"]})


def via_string_joiner() -> WorkflowSpec:
    return _loading({"prompt": {"type": PROMPT, "init_parameters": {"template": "{{ path }}"}},
                     "join": {"type": STRINGS, "init_parameters": {}}},
                    [("prompt.prompt", "join.strings"), ("join.strings", "loader.sources")], {"path": ["prompt.path"]})


def via_branch_joiner() -> WorkflowSpec:
    return _loading({"prompt": {"type": PROMPT, "init_parameters": {"template": "{{ path }}"}},
                     "branch": {"type": BRANCH, "init_parameters": {"type_": "str"}}},
                    [("prompt.prompt", "branch.value"), ("branch.value", "loader.sources")], {"path": ["prompt.path"]})


FEEDS = [via_router, via_prompt, via_string_joiner, via_branch_joiner]


@pytest.fixture
def root(data_dir: Path) -> Path:
    files = data_dir / "files"
    (files / "notes").mkdir()
    (files / "notes" / "ok.txt").write_text("fine to read")
    return files.resolve()


def refused(spec: WorkflowSpec, inputs: dict, node: str = "loader") -> PipelineRuntimeError:
    with pytest.raises(PipelineRuntimeError) as caught:
        run_pipeline(spec, build_pipeline(spec), inputs)
    error = caught.value
    assert error.component_name == node
    assert isinstance(error.__cause__, FileAccessError)
    assert "leads outside the files root" in str(error) and "STACKYARD_FILES_ROOT" in str(error)
    assert PASSWD not in str(error)
    return error


@pytest.mark.parametrize("feed", FEEDS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("path", ESCAPES)
def test_a_path_fed_to_a_loader_by_another_node_is_refused(root: Path, feed, path: str) -> None:
    refused(feed(), {"path": path})


@pytest.mark.parametrize("feed", FEEDS, ids=lambda f: f.__name__)
def test_a_file_under_the_root_still_loads_whatever_feeds_the_loader(root: Path, feed, monkeypatch) -> None:
    monkeypatch.chdir(root.parent.parent)  # relative paths start at the files root, not the worker's cwd
    outputs = run_pipeline(feed(), build_pipeline(feed()), {"path": "notes/ok.txt"})
    assert [doc["content"] for doc in outputs["documents"]] == ["fine to read"]


@pytest.mark.parametrize("path", ESCAPES)
def test_a_path_hard_coded_in_a_parameter_is_refused(root: Path, path: str) -> None:
    route = {"condition": "{{ go }}", "output": path, "output_name": "file", "output_type": "str"}
    spec = _loading({"route": {"type": ROUTER, "init_parameters": {"routes": [route]}}},
                    [("route.file", "loader.sources")], {"go": ["route.go"]})
    refused(spec, {"go": True})


def test_a_files_node_rooted_outside_the_files_root_is_refused(root: Path) -> None:
    spec = _loading({"files": {"type": FILES, "init_parameters": {"root": "/etc"}}},
                    [("files.sources", "loader.sources")], {"paths": ["files.paths"]})
    refused(spec, {"paths": ["passwd"]}, node="files")


@pytest.mark.parametrize("path", ESCAPES)
def test_a_declared_input_is_refused_up_front_naming_it(root: Path, path: str) -> None:
    spec = _loading({}, [], {"file": ["loader.sources"]})
    with pytest.raises(BadRunInputs) as caught:
        run_pipeline(spec, build_pipeline(spec), {"file": [path]})
    assert caught.value.field == "inputs.file" and caught.value.status == 422
    assert "Input 'file' (node 'loader')" in str(caught.value) and "STACKYARD_FILES_ROOT" in str(caught.value)
    outputs = run_pipeline(spec, build_pipeline(spec), {"file": ["notes/ok.txt"]})
    assert [doc["content"] for doc in outputs["documents"]] == ["fine to read"]


@pytest.mark.integration
def test_stackyard_run_refuses_a_path_from_a_prompt(root: Path, data_dir: Path, tmp_path: Path) -> None:
    from workflows.io import export_yaml

    workflow = tmp_path / "prompt_loader.yaml"
    workflow.write_text(export_yaml(via_prompt()))
    env = {**os.environ, "STACKYARD_DATA_DIR": str(data_dir)}
    env.pop("STACKYARD_FILES_ROOT", None)
    result = subprocess.run([*STACKYARD, "run", str(workflow), "--inputs", json.dumps({"path": "/etc/passwd"})],
                            env=env, capture_output=True, text=True, timeout=180, cwd="/")
    assert result.returncode != 0
    assert "Component name: 'loader'" in result.stderr and "leads outside the files root" in result.stderr
    assert PASSWD not in result.stdout + result.stderr
    ok = subprocess.run([*STACKYARD, "run", str(workflow), "--inputs", json.dumps({"path": "notes/ok.txt"})],
                        env=env, capture_output=True, text=True, timeout=180, cwd="/")
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert json.loads(ok.stdout)["documents"][0]["content"] == "fine to read"


def test_a_milvus_store_cannot_name_files_for_the_worker_to_read() -> None:
    from nodes.catalog import MILVUS_STORE
    from workflows.errors import IssueCode
    from workflows.validation import validate

    retriever = "milvus_haystack.milvus_embedding_retriever.MilvusEmbeddingRetriever"
    store = {"type": MILVUS_STORE, "init_parameters": {"collection_name": "docs",
                                                       "connection_args": {"server_pem_path": "/etc/passwd"}}}
    spec = spec_from_dict({"components": {"r": {"type": retriever, "init_parameters": {"document_store": store}}},
                           "inputs": {"query_embedding": ["r.query_embedding"]}})
    [issue] = validate(spec)
    assert (issue.code, issue.node, issue.port) == (IssueCode.DANGEROUS_PARAM, "r", "document_store")
    assert "connection_args.server_pem_path" in issue.message and "STACKYARD_MILVUS_URI" in issue.message
