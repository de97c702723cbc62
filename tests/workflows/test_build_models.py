"""Model parameters load only from the model roots: the files root, STACKYARD_MODEL_PATHS' folders, STACKYARD_MODEL_ROOTS.

A model path outside them is a validation issue pinned to the node and its parameter (a 4xx, never a 500);
a bare name that exists relative to the working directory is a path too, read under the files root.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stackyard.settings import get_settings, reset_settings_cache
from workflows.build import BuildMode, ComponentBuildError, instantiate, prepare_component_data
from workflows.errors import IssueCode
from workflows.spec import ComponentSpec, spec_from_dict
from workflows.validation import build_pipeline, validate

EMBEDDER = ("haystack_integrations.components.embedders.sentence_transformers."
            "sentence_transformers_text_embedder.SentenceTransformersTextEmbedder")
SPARSE = ("haystack_integrations.components.embedders.sentence_transformers."
          "sentence_transformers_sparse_text_embedder.SentenceTransformersSparseTextEmbedder")


@pytest.fixture
def roots(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Beside the data dir: a mapped model folder, an operator's model root, and a folder outside them all."""
    base = data_dir.parent
    for folder in ("mapped/qwen", "shelf/minilm", "elsewhere/model"):
        (base / folder).mkdir(parents=True)
    monkeypatch.setenv("STACKYARD_MODEL_PATHS", json.dumps({"org/qwen": str(base / "mapped" / "qwen")}))
    monkeypatch.setenv("STACKYARD_MODEL_ROOTS", str(base / "shelf"))
    reset_settings_cache()
    yield base
    reset_settings_cache()


def embedder(model: str, type_: str = EMBEDDER) -> dict:
    return {"components": {"embed": {"type": type_, "init_parameters": {"model": model}}}, "inputs": {"text": ["embed.text"]}}


def built_model(model: str, mode: BuildMode = BuildMode.RUN) -> str:
    return instantiate("embed", ComponentSpec(type=EMBEDDER, init_parameters={"model": model}), mode=mode).model


@pytest.mark.parametrize("model", ["/etc", "{base}/elsewhere/model", "../../elsewhere/model", "{base}/shelf/../elsewhere",
                                   "{base}/mapped", "./x\x00"])
def test_a_model_path_outside_the_roots_is_an_issue_on_the_param(roots: Path, model: str) -> None:
    issues = validate(spec_from_dict(embedder(model.format(base=roots))))
    assert len(issues) == 1
    issue = issues[0]
    assert (issue.code, issue.node, issue.port, issue.field) == (
        IssueCode.DANGEROUS_PARAM, "embed", "model", "components.embed.init_parameters.model")
    assert "parameter 'model'" in issue.message and "STACKYARD_MODEL_ROOTS" in issue.message
    with pytest.raises(ComponentBuildError):  # the worker's build refuses it too
        built_model(model.format(base=roots))


def test_model_paths_inside_the_roots_and_names_are_kept(roots: Path, data_dir: Path) -> None:
    files = (data_dir / "files").resolve()
    assert built_model(str(roots / "shelf" / "minilm")) == str(roots / "shelf" / "minilm")
    assert built_model(str(roots / "mapped" / "qwen"), BuildMode.VALIDATE) == str(roots / "mapped" / "qwen")
    assert built_model("./models/mini") == str(files / "models" / "mini")
    assert built_model("org/qwen") == str(roots / "mapped" / "qwen")
    assert built_model("org/hub-model") == "org/hub-model"


def test_a_bare_name_that_exists_in_the_working_directory_is_read_under_the_files_root(
        roots: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = (data_dir / "files").resolve()
    (roots / "cwd" / "stolen" / "inner").mkdir(parents=True)
    monkeypatch.chdir(roots / "cwd")
    # A loader would read ./stolen from the worker's cwd; the build hands it <files root>/stolen instead.
    assert built_model("stolen") == str(files / "stolen")
    assert built_model("stolen/inner") == str(files / "stolen" / "inner")
    assert built_model("etc/..") == str(files)
    with pytest.raises(ComponentBuildError) as caught:
        built_model("stolen/../../../elsewhere/model")
    assert caught.value.issues[0].field == "components.embed.init_parameters.model"


def test_an_operator_allowed_component_has_its_model_confined_too(roots: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACKYARD_ALLOWED_COMPONENTS", SPARSE)
    reset_settings_cache()
    issues = validate(spec_from_dict(embedder("/etc", SPARSE)))
    assert [(i.code, i.node, i.port) for i in issues] == [(IssueCode.DANGEROUS_PARAM, "embed", "model")]
    pipeline = build_pipeline(spec_from_dict(embedder(str(roots / "shelf" / "minilm"), SPARSE)))
    assert pipeline.get_component("embed").model == str(roots / "shelf" / "minilm")


GENERATOR = "haystack_integrations.components.generators.transformers.chat.chat_generator.TransformersChatGenerator"


@pytest.mark.parametrize(("type_", "param", "key"), [
    (GENERATOR, "huggingface_pipeline_kwargs", "model"),      # Haystack lets it override the node's own model
    (GENERATOR, "huggingface_pipeline_kwargs", "tokenizer"),
    (EMBEDDER, "model_kwargs", "cache_dir"),
    (EMBEDDER, "tokenizer_kwargs", "cache_dir"),
    (GENERATOR, "huggingface_pipeline_kwargs", "model_kwargs.cache_dir"),   # nested options too
    (EMBEDDER, "tokenizer_kwargs", "vocab_file"),
])
def test_a_model_path_in_the_loader_options_is_confined_too(roots: Path, type_: str, param: str, key: str) -> None:
    outer, _, inner = key.rpartition(".")
    options = {outer: {inner: "/etc"}} if outer else {key: "/etc"}
    spec = {"components": {"embed": {"type": type_, "init_parameters": {param: options}}}}
    [issue] = validate(spec_from_dict(spec))
    assert (issue.code, issue.node, issue.port) == (IssueCode.DANGEROUS_PARAM, "embed", param)
    assert issue.field == f"components.embed.init_parameters.{param}.{key}"
    assert f"parameter '{param}.{key}'" in issue.message and "STACKYARD_MODEL_ROOTS" in issue.message
    inside = str(roots / "shelf" / "minilm")
    options = {outer: {inner: inside}} if outer else {key: inside}
    built = prepare_component_data("embed", ComponentSpec(type=type_, init_parameters={param: options}),
                                   BuildMode.VALIDATE, get_settings())[1]
    assert built["init_parameters"][param] == options
