"""The knowledge page's handlers, called directly (no browser): a base is created from the form, bad numbers and
bad files are refused by field with nothing stored, uploads land under the files root in a folder of their own,
and the page shows progress and a re-index the way the API does."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.documents import UPLOADS
from ui import knowledge_page as page


def make(name: str = "handbook", length=50, overlap=5) -> str:
    status, _ = page.create_base(name, "", "word", length, overlap, "hybrid", 3)
    return status


def test_a_base_is_created_from_the_form_and_bad_numbers_are_refused_by_field(database):
    assert make().startswith("✅ Knowledge base 'handbook' created")
    assert page.base_names() == ["handbook"]
    assert make("other", length="abc").startswith("⚠️ Chunk length 'abc' is not a whole number")
    assert make("other", length=5000).startswith("⚠️ chunking.length must be from 1 to 256 words")
    assert make("other", overlap=50).startswith("⚠️ chunking.overlap (50) must be less than")
    assert make("handbook").startswith("⚠️ A knowledge base named 'handbook' exists")
    assert page.create_base("ranked", "", "word", 50, 5, "dense", 3, "acme/not-here")[0].startswith(
        "⚠️ retrieval.ranker 'acme/not-here' is not on this machine")
    assert page.base_names() == ["handbook"]
    summary = page.summary_html("handbook")
    assert 'data-status="empty"' in summary and "hybrid retrieval, top 3" in summary


@pytest.fixture
def inbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where Gradio puts what the browser uploads (GRADIO_TEMP_DIR)."""
    folder = tmp_path / "gradio"
    folder.mkdir()
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(folder))
    return folder


def test_uploads_are_kept_under_the_files_root_and_the_same_content_is_skipped(database, data_dir: Path, inbox):
    make()
    sent = inbox / "browser"
    sent.mkdir()
    (sent / "policy ü?.txt").write_text("Thirty days of vacation.")
    (sent / "parking.md").write_text("# Parking\n\nBikes go in the cellar.")
    status = page.add_documents("handbook", [str(sent / "policy ü?.txt"), str(sent / "parking.md")], "", "wifi",
                                "The guest wifi password is on the badge.")
    assert status == "✅ 3 document(s) queued for indexing.", status
    bars, rows = page.documents_view("handbook")
    assert [(r[2], r[3]) for r in rows] == [("queued", "0%")] * 3 and bars.count('class="kb-doc"') == 3
    stored = sorted((data_dir / "files" / UPLOADS / "handbook").rglob("*.*"))
    assert [p.name for p in stored] == ["parking.md", "policy_.txt"]
    again = page.add_documents("handbook", [str(sent / "parking.md")], "", "", "")
    assert again.startswith("✅ 0 document(s) queued") and "Skipped 1 already there" in again


def test_an_uploaded_folder_adds_what_a_base_reads_and_says_what_it_left_out(database, data_dir: Path, inbox):
    make()
    folder = inbox / "browser" / "handbook"
    (folder / "rooms").mkdir(parents=True)
    (folder / "policy.txt").write_text("Thirty days of vacation.")
    (folder / "rooms" / "library.md").write_text("# Library\n\nThe library is on the third floor.")
    (folder / "logo.png").write_bytes(b"\x89PNG")
    (folder / "rooms" / "notes.tmp").write_text("scratch")
    status = page.add_documents("handbook", None, "", "", "", "", [str(p) for p in sorted(folder.rglob("*.*"))])
    assert status == ("✅ 2 document(s) queued for indexing. Left out 2 file(s) of the folder a knowledge base "
                      "cannot read (it reads .csv, .docx, .htm, .html, .md, .pdf, .txt)."), status
    assert sorted(p.name for p in (data_dir / "files" / UPLOADS / "handbook").rglob("*.*")) == ["library.md",
                                                                                                 "policy.txt"]
    outside = page.add_documents("handbook", None, "", "", "", "", [str(data_dir / "files" / "x.txt")])
    assert outside.startswith("⚠️") and "is not a file this page received" in outside


def test_bad_files_refuse_the_whole_request_before_anything_is_copied(database, data_dir: Path, inbox, tmp_path):
    make()
    (inbox / "tool.exe").write_bytes(b"MZ")
    (inbox / "empty.txt").write_text("")
    (inbox / "fine.txt").write_text("fine")
    (tmp_path / "secret.txt").write_text("a file the browser named but never uploaded")
    for bad, named in (("tool.exe", "is a .exe file"), ("empty.txt", "is empty (0 bytes)")):
        status = page.add_documents("handbook", [str(inbox / "fine.txt"), str(inbox / bad)], "", "", "")
        assert status.startswith("⚠️ files: ") and named in status, status
    named = page.add_documents("handbook", [str(tmp_path / "secret.txt")], "", "", "")
    assert named == "⚠️ files: 'secret.txt' is not a file this page received; upload it again."
    guarded = page.add_documents("handbook", [str(inbox / "fine.txt")], "", "", "", "http://169.254.169.254/")
    assert guarded.startswith("⚠️ URLs: ")
    assert not (data_dir / "files" / "uploads").exists()     # nothing copied for a request that was refused
    outside = page.add_documents("handbook", None, "../../etc/passwd", "", "")
    assert outside.startswith("⚠️") and "files root" in outside
    assert page.add_documents("handbook", None, "", "", "").startswith("⚠️ Upload files")
    metadata = page.add_documents("handbook", None, "", "", "", "http://169.254.169.254/latest/")
    assert metadata.startswith("⚠️ URLs: ") and "metadata" in metadata
    assert page.documents_view("handbook")[1] == []


def test_a_query_on_an_empty_base_says_so_and_a_reindex_of_it_switches_at_once(database):
    make()
    line, chart, rows = page.ask("handbook", "vacation", "keyword", 5)
    assert line.startswith("**0 hit(s)**") and "BM25" in line and "no indexed chunks yet" in line
    assert rows == [] and "kb-bar" not in chart
    assert page.ask("handbook", "vacation", "dense", 500)[0].startswith("⚠️ Top k '500' is not a whole number")
    [recorded] = page.history_table("handbook")
    assert recorded[2:6] == ["vacation", "keyword", 1, 0]
    again, _, _ = page.rerun("handbook", recorded[0])
    assert again.startswith("**Asked again** on generation 1 (recorded on 1): the same chunks in the same order")
    assert page.save_case("handbook", recorded[0]).startswith("⚠️ This query found nothing")
    assert page.rerun("handbook", "")[0] == "⚠️ Pick a recorded query first."
    assert page.reindex("handbook", 80, 8).startswith("✅ Re-indexing 0 document(s) with chunks of 80")
    assert 'data-generation="2"' in page.summary_html("handbook")
    assert "chunks of 80 words (overlap 8)" in page.summary_html("handbook")
    assert page.reindex("handbook", 9999, None).startswith("⚠️ chunking.length must be from 1 to 256")
    assert page.reindex("handbook", None, None, 20).startswith("⚠️ chunking.parent_length must be more than")
    assert page.reindex("handbook", None, None, 400).startswith(
        "✅ Re-indexing 0 document(s) with chunks of 80 cut from parents of 400 words")
    assert "chunks of 80 words (overlap 8) cut from parents of 400 words" in page.summary_html("handbook")
    assert page.reindex("handbook", None, None, 0).startswith("✅ Re-indexing 0 document(s) with chunks of 80;")


def test_a_parent_child_base_is_created_from_the_form_and_its_passage_hits_say_what_matched(database):
    assert page.create_base("passages", "", "word", 50, 5, "dense", 3, "", 49)[0].startswith(
        "⚠️ chunking.parent_length must be more than chunking.length (50)")
    assert page.create_base("passages", "", "word", 50, 5, "dense", 3, "", 300)[0].startswith("✅")
    assert "cut from parents of 300 words" in page.summary_html("passages")
    hit = {"chunk_id": "p1", "document": "a.md", "position": 4, "score": 0.9, "dense": None, "keyword": None,
           "text": "a whole passage", "chunks": ["c1aaaaaaaaaa", "c2bbbbbbbbbb"]}
    assert page._hit_rows([hit])[0][-1] == "parent of 2 matched chunk(s): c1aaaaaa, c2bbbbbb"
    assert "a.md · passage 4" in page.chart_html([hit], "dense")


def test_the_score_chart_draws_one_bar_per_hit_on_its_scale():
    hits = [{"chunk_id": "a", "document": "uploads/x/parking.md", "position": 0, "score": 0.8},
            {"chunk_id": "b", "document": "policy.txt", "position": 3, "score": -0.2}]
    dense = page.chart_html(hits, "dense")
    assert dense.count('class="kb-bar"') == 2 and "width:80.0%" in dense and "width:0.0%" in dense
    assert "#1 parking.md · chunk 0" in dense and "cosine similarity" in dense
    keyword = page.chart_html([{**hits[0], "score": 6.0}, {**hits[1], "score": 3.0}], "keyword")
    assert "width:100.0%" in keyword and "width:50.0%" in keyword and "BM25" in keyword
    assert page.chart_html([{**hits[0], "document": "<img src=x onerror=alert(1)>"}], "dense").count("<img") == 0
    assert "(cross-encoder relevance" in page.chart_html(hits, "hybrid", "cross-encoder relevance, 0 to 1")


def test_a_document_is_deleted_from_the_page_and_switched_only_once_indexed(database):
    make()
    page.add_documents("handbook", None, "", "wifi", "The guest wifi password is on the badge.")
    [row] = page.documents_view("handbook")[1]
    assert page.document_switch("handbook", row[0], False).startswith("⚠️ Document 'wifi' is queued; change it once")
    assert page.delete_document("handbook", "") == "⚠️ Pick a document in the table first."
    assert page.delete_document("handbook", row[0]) == "✅ 'wifi' deleted with its chunks."
    assert page.documents_view("handbook")[1] == []
    assert page.delete_document("handbook", row[0]).startswith("⚠️ Knowledge base 'handbook' has no document")


def test_a_preview_shows_the_first_chunks_of_what_is_picked_under_the_bases_or_typed_chunking(
        database, data_dir: Path, inbox):
    make(length=4, overlap=0)
    sent = inbox / "browser"
    sent.mkdir()
    (sent / "policy.txt").write_text(" ".join(f"w{n}" for n in range(10)))
    line, rows = page.preview_chunks("handbook", [str(sent / "policy.txt")], None, "", "", None, None, None)
    assert line.startswith("**3 chunk(s)** from 'policy.txt' with chunks of 4 words (overlap 0); the first 3")
    assert [r[2].split() for r in rows] == [["w0", "w1", "w2", "w3"], ["w4", "w5", "w6", "w7"], ["w8", "w9"]]
    line, rows = page.preview_chunks("handbook", None, None, "", "one two three four five six", 2, 0, 4)
    assert line.startswith("**3 chunk(s)** from 'pasted text' with chunks of 2 words (overlap 0) cut from parents "
                           "of 4 words") and len(rows) == 3
    assert page.preview_chunks("handbook", None, None, "", "text", 9999, None, None)[0].startswith(
        "⚠️ chunking.length must be from 1 to 256")
    outside = page.preview_chunks("handbook", [str(data_dir / "files" / "x.txt")], None, "", "", None, None, None)
    assert outside[0].startswith("⚠️") and "is not a file this page received" in outside[0]
    assert page.preview_chunks("handbook", None, None, "", "", None, None, None)[0].startswith("⚠️ Pick a file")
    assert not (data_dir / "files" / UPLOADS).exists()            # nothing was copied or stored
