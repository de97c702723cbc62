"""confine_path, FileSource, confine_file_inputs and model folders on a real files root under tmp_path, real links."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from haystack import Pipeline, component
from haystack.components.builders import PromptBuilder
from haystack.components.converters import TextFileToDocument
from haystack.core.errors import PipelineRuntimeError
from haystack.core.serialization import component_from_dict, component_to_dict
from haystack.dataclasses import ByteStream

from nodes.errors import FileAccessError
from nodes.files import (
    FileSource,
    confine_file_inputs,
    confine_model_path,
    confine_path,
    looks_like_model_path,
    model_roots,
    path_sockets,
)
from stackyard.settings import reset_settings_cache


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A files root holding a small tree, next to a secret file and folder outside it."""
    files = tmp_path / "files"
    for name, text in {"a.txt": "alpha", "b/c.txt": "gamma", "b/d/e.md": "# e", "b/d/f.txt": "phi", "z.txt": "zeta"}.items():
        (files / name).parent.mkdir(parents=True, exist_ok=True)
        (files / name).write_text(text)
    (tmp_path / "secret.txt").write_text("secret")
    (tmp_path / "secret_dir").mkdir()
    (tmp_path / "secret_dir" / "key.txt").write_text("key")
    monkeypatch.setenv("STACKYARD_FILES_ROOT", str(files))
    reset_settings_cache()
    yield files.resolve()
    reset_settings_cache()


# --- confine_path ----------------------------------------------------------------------------------

def test_paths_inside_the_root_resolve(root: Path) -> None:
    assert confine_path("a.txt") == root / "a.txt"
    assert confine_path("b/d/../c.txt") == root / "b" / "c.txt"
    assert confine_path(root / "b" / "c.txt") == root / "b" / "c.txt"
    assert confine_path("not/yet/there.txt") == root / "not" / "yet" / "there.txt"


@pytest.mark.parametrize("path", ["../secret.txt", "b/../../secret.txt", "/etc/passwd", "..", "/"])
def test_paths_leading_outside_the_root_are_refused(root: Path, path: str) -> None:
    with pytest.raises(FileAccessError, match="leads outside the files root") as caught:
        confine_path(path)
    error = caught.value
    assert (error.path, error.root, error.field) == (path, str(root), "sources")
    assert repr(path) in str(error) and str(root) in str(error) and "STACKYARD_FILES_ROOT" in str(error)


def test_a_symlink_pointing_outside_is_refused(root: Path) -> None:
    (root / "innocent.txt").symlink_to(root.parent / "secret.txt")
    (root / "linked_dir").symlink_to(root.parent / "secret_dir", target_is_directory=True)

    for path in ("innocent.txt", "linked_dir/key.txt", "linked_dir"):
        with pytest.raises(FileAccessError, match="leads outside"):
            confine_path(path)


def test_a_symlink_staying_inside_is_resolved(root: Path) -> None:
    (root / "alias.txt").symlink_to(root / "b" / "c.txt")
    assert confine_path("alias.txt") == root / "b" / "c.txt"


@pytest.mark.parametrize(("path", "problem"), [("a.txt\x00.pdf", "NUL byte"), ("", "is empty"), ("  ", "is empty")])
def test_malformed_paths_are_refused(root: Path, path: str, problem: str) -> None:
    with pytest.raises(FileAccessError, match=problem):
        confine_path(path)


def test_an_explicit_root_and_field(root: Path) -> None:
    assert confine_path("c.txt", root / "b") == root / "b" / "c.txt"
    with pytest.raises(FileAccessError) as caught:
        confine_path("../a.txt", root / "b", field="paths")
    assert (caught.value.root, caught.value.field) == (str(root / "b"), "paths")


# --- FileSource ------------------------------------------------------------------------------------

def sources(paths: list[str], **init: str) -> list[Path]:
    return FileSource(**init).run(paths=paths)["sources"]


def test_files_folders_and_globs_expand_sorted(root: Path) -> None:
    assert sources(["b"]) == [root / "b/c.txt", root / "b/d/e.md", root / "b/d/f.txt"]
    assert sources(["*.txt"]) == [root / "a.txt", root / "z.txt"]
    assert sources(["**/*.txt"]) == [root / "a.txt", root / "b/c.txt", root / "b/d/f.txt", root / "z.txt"]
    assert sources(["b/d/?.md"]) == [root / "b/d/e.md"]
    assert sources([str(root / "b" / "d" / "*.txt")]) == [root / "b/d/f.txt"]
    assert sources(["b/*"]) == [root / "b/c.txt", root / "b/d/e.md", root / "b/d/f.txt"]


def test_entries_keep_their_order_and_duplicates_are_dropped(root: Path) -> None:
    assert sources(["z.txt", "b/d", "b/d/f.txt", "a.txt", "z.txt"]) == [
        root / "z.txt", root / "b/d/e.md", root / "b/d/f.txt", root / "a.txt"]
    assert sources([]) == []


@pytest.mark.parametrize("pattern", ["../*.txt", "../secret_dir/*", "b/../../*", "**/../../*", "/etc/*", "/*/passwd"])
def test_globs_that_would_escape_are_refused(root: Path, pattern: str) -> None:
    with pytest.raises(FileAccessError) as caught:
        sources([pattern])
    assert (caught.value.path, caught.value.field) == (pattern, "paths")


def test_links_out_of_the_root_are_refused_when_listing_folders_and_globs(root: Path) -> None:
    (root / "b" / "d" / "leak.txt").symlink_to(root.parent / "secret.txt")

    for entry in ("b", "b/d/*.txt", "**/*"):
        with pytest.raises(FileAccessError, match="leads outside"):
            sources([entry])


def test_a_linked_folder_is_not_descended(root: Path) -> None:
    (root / "b" / "again").symlink_to(root / "b" / "d", target_is_directory=True)
    assert sources(["b"]) == [root / "b/c.txt", root / "b/d/e.md", root / "b/d/f.txt"]


@pytest.mark.parametrize(("entry", "message"), [("missing.txt", "No file or folder 'missing.txt'"),
                                                ("*.pdf", "No files match '\\*.pdf'"),
                                                ("../secret.txt", "leads outside"),
                                                ("a.txt\x00", "NUL byte"),
                                                ("*\x00", "NUL byte")])
def test_bad_entries_name_the_path_and_root(root: Path, entry: str, message: str) -> None:
    with pytest.raises(FileAccessError, match=message) as caught:
        sources([entry])
    assert caught.value.path == entry and str(root) in str(caught.value)


def test_root_scopes_the_node_inside_the_files_root(root: Path) -> None:
    assert sources(["*.txt"], root="b") == [root / "b/c.txt"]
    with pytest.raises(FileAccessError) as caught:
        sources(["a.txt"], root="b")
    assert "No file or folder 'a.txt'" in str(caught.value)

    for outside in ("/etc", "..", str(root.parent)):
        with pytest.raises(FileAccessError, match="leads outside") as caught:
            sources(["passwd"], root=outside)
        assert caught.value.field == "root"


def test_round_trips_through_haystack_serialization(root: Path) -> None:
    data = component_to_dict(FileSource(root="b"), "files")
    assert data == {"type": "nodes.files.FileSource", "init_parameters": {"root": "b"}}
    assert component_to_dict(component_from_dict(FileSource, data, "files"), "files") == data


def test_feeds_a_converter_in_a_pipeline_loaded_from_yaml(root: Path) -> None:
    pipeline = Pipeline()
    pipeline.add_component("files", FileSource())
    pipeline.add_component("loader", TextFileToDocument())
    pipeline.connect("files.sources", "loader.sources")

    loaded = Pipeline.loads(pipeline.dumps(), allowed_modules=["nodes"])
    documents = loaded.run({"files": {"paths": ["b/d/*.txt", "a.txt"]}})["loader"]["documents"]

    assert [(doc.content, doc.meta["file_path"]) for doc in documents] == [("phi", "f.txt"), ("alpha", "a.txt")]


# --- confine_file_inputs: a node that opens files confines what it is given -----------------------

CONVERTERS = ["txt.TextFileToDocument", "markdown.MarkdownToDocument", "html.HTMLToDocument",
              "pypdf.PyPDFToDocument", "docx.DOCXToDocument", "csv.CSVToDocument"]


@component
class _AsyncReader:
    """Reads text files on both of Haystack's call paths (``run`` and ``run_async``)."""

    @component.output_types(texts=list[str])
    def run(self, sources: list[str | Path | ByteStream]) -> dict[str, list[str]]:
        return {"texts": [Path(source).read_text() for source in sources]}

    @component.output_types(texts=list[str])
    async def run_async(self, sources: list[str | Path | ByteStream]) -> dict[str, list[str]]:
        return self.run(sources)


def _converter(dotted: str) -> object:
    from haystack.core.serialization import import_class_by_name

    return import_class_by_name(f"haystack.components.converters.{dotted}")()


@pytest.mark.parametrize("dotted", CONVERTERS)
def test_every_catalog_converter_takes_paths_by_its_socket_type(dotted: str) -> None:
    assert path_sockets(_converter(dotted)) == ("sources",)


def test_nodes_without_path_typed_sockets_are_left_alone(root: Path) -> None:
    for instance in (FileSource(), PromptBuilder(template="{{ path }}")):
        assert path_sockets(instance) == ()
        assert confine_file_inputs(instance) is instance and "run" not in vars(instance)


@pytest.mark.parametrize("dotted", CONVERTERS)
@pytest.mark.parametrize("path", ["/etc/passwd", "../../../../../../etc/passwd", "../secret.txt", "innocent.txt",
                                  "a.txt\x00"])
def test_every_catalog_converter_refuses_paths_outside_the_root(root: Path, dotted: str, path: str) -> None:
    (root / "innocent.txt").symlink_to(root.parent / "secret.txt")
    loader = confine_file_inputs(_converter(dotted))
    for sources in ([path], [Path(path)]):
        with pytest.raises(FileAccessError) as caught:
            loader.run(sources=sources)
        assert caught.value.field == "sources" and caught.value.path == path


def test_paths_are_read_under_the_root_not_the_working_directory(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(root.parent)  # where secret.txt lies, relative to the worker's cwd
    loader = confine_file_inputs(TextFileToDocument())
    assert [doc.content for doc in loader.run(sources=["a.txt", root / "z.txt", "b/c.txt"])["documents"]] == [
        "alpha", "zeta", "gamma"]
    # Unconfined, the converter would read ./secret.txt; under the root there is none, so nothing is read.
    assert TextFileToDocument().run(sources=["secret.txt"])["documents"][0].content == "secret"
    assert loader.run(sources=["secret.txt"])["documents"] == []


def test_byte_streams_pass_and_positional_calls_and_bytes_paths_are_confined_too(root: Path) -> None:
    loader = confine_file_inputs(TextFileToDocument())
    assert loader.run(sources=[ByteStream(b"inline")])["documents"][0].content == "inline"
    for sources in (["/etc/passwd"], [b"/etc/passwd"], [b"b/../../secret.txt"], [b"a.txt\x00"]):
        with pytest.raises(FileAccessError):
            loader.run(sources)


def test_the_wrapped_node_keeps_its_class_sockets_and_yaml(root: Path) -> None:
    plain, loader = TextFileToDocument(store_full_path=True), confine_file_inputs(TextFileToDocument(store_full_path=True))
    assert type(loader) is TextFileToDocument
    assert component_to_dict(loader, "loader") == component_to_dict(plain, "loader")
    assert loader.__haystack_input__._sockets_dict.keys() == plain.__haystack_input__._sockets_dict.keys()
    run = vars(loader)["run"]
    assert confine_file_inputs(loader) is loader and vars(loader)["run"] is run  # wrapping twice changes nothing
    copied = copy.deepcopy(loader)  # a copy confines its own inputs, not through the original
    assert copied.run.__self__ is copied
    with pytest.raises(FileAccessError):
        copied.run(sources=["/etc/passwd"])


def test_a_path_from_a_prompt_is_refused_on_the_sync_and_async_paths(root: Path) -> None:
    pipeline = Pipeline()
    pipeline.add_component("prompt", PromptBuilder(template="{{ path }}", required_variables=["path"]))
    pipeline.add_component("reader", confine_file_inputs(_AsyncReader()))
    pipeline.connect("prompt.prompt", "reader.sources")  # still passes Haystack's type check
    exported = pipeline.dumps()

    assert pipeline.run({"prompt": {"path": "a.txt"}})["reader"]["texts"] == ["alpha"]
    assert asyncio.run(pipeline.run_async({"prompt": {"path": "b/c.txt"}}))["reader"]["texts"] == ["gamma"]
    for path in ("/etc/passwd", "../secret.txt"):
        with pytest.raises(PipelineRuntimeError) as caught:
            pipeline.run({"prompt": {"path": path}})
        assert caught.value.component_name == "reader" and isinstance(caught.value.__cause__, FileAccessError)
        with pytest.raises(PipelineRuntimeError) as caught:
            asyncio.run(pipeline.run_async({"prompt": {"path": path}}))
        assert caught.value.component_name == "reader" and isinstance(caught.value.__cause__, FileAccessError)
    assert pipeline.dumps() == exported


def test_a_sync_converter_is_confined_when_the_pipeline_runs_async(root: Path) -> None:
    pipeline = Pipeline()
    pipeline.add_component("prompt", PromptBuilder(template="{{ path }}", required_variables=["path"]))
    pipeline.add_component("loader", confine_file_inputs(TextFileToDocument()))
    pipeline.connect("prompt.prompt", "loader.sources")
    with pytest.raises(PipelineRuntimeError, match="leads outside the files root") as caught:
        asyncio.run(pipeline.run_async({"prompt": {"path": "/etc/passwd"}}))
    assert caught.value.component_name == "loader"


# --- model folders --------------------------------------------------------------------------------

@pytest.fixture
def models(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Model roots: the files root, a STACKYARD_MODEL_PATHS folder and a STACKYARD_MODEL_ROOTS folder."""
    for folder in ("mapped/qwen", "shelf/minilm", "elsewhere/model"):
        (root.parent / folder).mkdir(parents=True)
    monkeypatch.setenv("STACKYARD_MODEL_PATHS", json.dumps({"org/qwen": str(root.parent / "mapped" / "qwen")}))
    monkeypatch.setenv("STACKYARD_MODEL_ROOTS", str(root.parent / "shelf"))
    reset_settings_cache()
    return root.parent


def test_model_roots_are_the_files_root_the_mapped_folders_and_the_operators_roots(models: Path, root: Path) -> None:
    assert model_roots() == (root, models / "mapped" / "qwen", models / "shelf")
    assert confine_model_path(str(models / "shelf" / "minilm")) == models / "shelf" / "minilm"
    assert confine_model_path(str(models / "mapped" / "qwen")) == models / "mapped" / "qwen"
    assert confine_model_path("./b") == root / "b"  # relative paths start at the files root


@pytest.mark.parametrize("path", ["{m}/elsewhere/model", "/etc", "../elsewhere/model", "{m}/mapped", "{m}/shelf/../elsewhere",
                                  "x\x00"])
def test_model_paths_outside_every_root_are_refused_naming_the_setting(models: Path, path: str) -> None:
    with pytest.raises(FileAccessError) as caught:
        confine_model_path(path.format(m=models), field="model")
    assert caught.value.field == "model" and "STACKYARD_MODEL_ROOTS" in str(caught.value)


@pytest.mark.parametrize(("value", "is_path"), [
    ("sentence-transformers/all-MiniLM-L6-v2", False), ("gpt2", False), ("/models/x", True), ("./x", True),
    ("~/x", True), ("etc/..", True), ("org\\model", True), ("x\x00", True), ("present", True), ("present/inner", True)])
def test_a_model_value_is_a_path_when_it_looks_like_one_or_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  value: str, is_path: bool) -> None:
    (tmp_path / "present" / "inner").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)  # a bare name a loader would read from the working directory
    assert looks_like_model_path(value) is is_path


def test_a_file_a_documents_meta_names_is_opened_only_inside_the_root(root: Path) -> None:
    """Haystack's image components open ``root_path / meta['file_path']``: a path that came with the document
    (a converter, a store, a job item wrote it), so it is checked where it is opened."""
    from haystack import Document
    from haystack.components.converters.image import DocumentToImageContent
    from PIL import Image

    Image.new("RGB", (4, 4), "red").save(root / "red.png")
    (root.parent / "outside.png").write_bytes((root / "red.png").read_bytes())
    for root_path in (None, str(root)):
        reader = confine_file_inputs(DocumentToImageContent(root_path=root_path))
        inside = Document(content="", meta={"file_path": str(root / "red.png")})
        assert reader.run(documents=[inside])["image_contents"][0] is not None
        for named in ("../outside.png", str(root.parent / "outside.png")):
            with pytest.raises(FileAccessError) as caught:
                reader.run(documents=[inside, Document(content="", meta={"file_path": named})])
            assert caught.value.field == "documents.meta.file_path"
    # Unconfined, the component reads it.
    outside = Document(content="", meta={"file_path": str(root.parent / "outside.png")})
    assert DocumentToImageContent().run(documents=[outside])["image_contents"][0] is not None
