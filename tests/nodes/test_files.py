"""confine_path and FileSource on a real files root under tmp_path, with real symlinks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from haystack import Pipeline
from haystack.components.converters import TextFileToDocument
from haystack.core.serialization import component_from_dict, component_to_dict

from nodes.errors import FileAccessError
from nodes.files import FileSource, confine_path
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
