"""Reading and splitting a knowledge base's sources, and checking them before anything is stored: supported types
only, nothing empty, nothing outside the files root, chunk lengths the embedding model can read."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.documents import BadDocument, file_sources, preview, read, split, text_source
from knowledge.settings import BadKnowledgeSettings, Chunking, model_window
from stackyard.settings import get_settings

WORDS = " ".join(f"word{i}" for i in range(500))


def test_chunk_lengths_are_refused_past_the_embedding_models_window_and_overlap_below_length(data_dir):
    window = model_window("sentence-transformers/all-MiniLM-L6-v2", get_settings())
    assert window == 256   # the bundled MiniLM's sentence_bert_config.json
    assert Chunking(length=256).check(window).length == 256
    for chunking, field in ((Chunking(length=0), "chunking.length"), (Chunking(length=257), "chunking.length"),
                            (Chunking(unit="char", length=256 * 8 + 1), "chunking.length"),
                            (Chunking(length=50, overlap=50), "chunking.overlap"),
                            (Chunking(separators=[""]), "chunking.separators"),
                            (Chunking(separators=["sentence"]), "chunking.separators")):
        with pytest.raises(BadKnowledgeSettings) as caught:
            chunking.check(window)
        assert caught.value.field == field and caught.value.status == 422


def test_a_model_folder_says_its_window_and_an_unknown_one_gets_the_default(data_dir, monkeypatch, tmp_path):
    from stackyard.settings import reset_settings_cache

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "tokenizer_config.json").write_text('{"model_max_length": 128}')
    monkeypatch.setenv("STACKYARD_MODEL_PATHS", f'{{"mine": "{tmp_path / "m"}"}}')
    reset_settings_cache()
    assert model_window("mine", get_settings()) == 128
    assert model_window("someone/else", get_settings()) == 512


def test_a_preview_shows_the_first_chunks_and_the_total_without_embedding(data_dir):
    shown = preview(text_source("notes", WORDS), Chunking(length=100, overlap=10), first=2)
    assert shown["total"] == 6   # 500 words in pieces of 100 that overlap by 10
    assert [c["position"] for c in shown["chunks"]] == [0, 1]
    first, second = (c["text"].split() for c in shown["chunks"])
    assert first[0] == "word0" and len(first) == 100 and second[:10] == first[-10:]


def test_files_are_read_by_type_and_folders_expanded(data_dir: Path):
    folder = data_dir / "files" / "handbook"
    folder.mkdir()
    (folder / "a.txt").write_text("The vacation policy grants 30 days.")
    (folder / "b.md").write_text("# Parking\n\nBikes go in the **cellar**.")
    (folder / "c.html").write_text("<html><body><article><p>The canteen opens at noon every weekday for "
                                   "everyone who works here.</p></article></body></html>")
    (folder / "d.csv").write_text("room,floor\nlibrary,3\n")
    sources = file_sources(["handbook"])
    assert [s.name for s in sources] == ["handbook/a.txt", "handbook/b.md", "handbook/c.html", "handbook/d.csv"]
    texts = [" ".join(d.content for d in read(s.name, path=s.path)) for s in sources]
    assert "30 days" in texts[0] and "cellar" in texts[1] and "**" not in texts[1]
    assert "canteen opens at noon" in texts[2] and "<p>" not in texts[2] and "library,3" in texts[3]
    chunks = split(read(sources[0].name, path=sources[0].path), Chunking(length=4, overlap=0))
    assert [c.content.split() for c in chunks][0] == ["The", "vacation", "policy", "grants"]


@pytest.mark.parametrize(("name", "content", "says"), [
    ("scan.png", b"\x89PNG", "is a .png file"),
    ("empty.txt", b"", r"is empty \(0 bytes\)"),
])
def test_an_unsupported_or_empty_file_refuses_the_whole_request(data_dir: Path, name, content, says):
    folder = data_dir / "files" / "mixed"
    folder.mkdir()
    (folder / "fine.txt").write_text("fine")
    (folder / name).write_bytes(content)
    with pytest.raises(BadDocument, match=says) as caught:
        file_sources(["mixed"])
    assert caught.value.field == "paths" and name in str(caught.value)


@pytest.mark.parametrize("path", ["../outside.txt", "/etc/passwd", "nowhere.txt"])
def test_paths_outside_the_files_root_or_naming_nothing_are_refused(data_dir: Path, path):
    (data_dir / "outside.txt").write_text("secret")
    with pytest.raises(BadDocument) as caught:
        file_sources([path])
    assert caught.value.field == "paths"


def test_pasted_text_needs_a_name_and_some_text(data_dir):
    with pytest.raises(BadDocument, match="empty"):
        text_source("blank", "   \n")
    with pytest.raises(BadDocument, match="name"):
        text_source("", "text")
    assert text_source("a", "same").content_hash == text_source("b", "same").content_hash


def test_parent_child_cuts_parents_and_their_chunks_and_a_short_document_is_its_own_parent(data_dir):
    from haystack import Document

    from knowledge.documents import preview, split_in_parents, text_source

    chunking = Chunking(length=4, overlap=0, parent_length=10).check(256)
    words = " ".join(f"w{n}" for n in range(25))
    chunks, parents = split_in_parents([Document(content=words)], chunking)
    assert [p.split() for p in parents] == [[f"w{n}" for n in range(a, min(a + 10, 25))] for a in (0, 10, 20)]
    assert [(c.content.split(), at) for c, at in chunks][:4] == [
        (["w0", "w1", "w2", "w3"], 0), (["w4", "w5", "w6", "w7"], 0), (["w8", "w9"], 0), (["w10", "w11", "w12", "w13"], 1)]
    assert all(not any(k.startswith("__") for k in c.meta) for c, _ in chunks)   # the hierarchy is the index's
    [(short, parent)], none = split_in_parents([Document(content="two words")], chunking)
    assert (short.content, parent, none) == ("two words", None, [])
    assert preview(text_source("w", words), chunking)["total"] == len(chunks) == 3 + 3 + 2
