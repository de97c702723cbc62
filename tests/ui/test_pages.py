"""Pages answer at the paths links and README write, with or without the trailing slash; only a page with a
file field takes uploads."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from ui.editor_page import STATIC_DIR


@pytest.mark.parametrize("path", ["/apps", "/jobs", "/knowledge", "/evaluations", "/conversations", "/chat-app"])
def test_a_page_answers_without_its_trailing_slash(client: TestClient, path: str):
    moved = client.get(path, follow_redirects=False)
    assert moved.status_code == 307 and moved.headers["location"] == f"{path}/"
    page = client.get(path)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert client.get(f"{path}?app=hello", follow_redirects=False).headers["location"] == f"{path}/?app=hello"


def test_the_editors_page_links_open_pages(client: TestClient):
    links = set(re.findall(r'href: "(/[^"]*)"', (STATIC_DIR / "editor.js").read_text()))
    assert {"/apps", "/jobs", "/knowledge", "/evaluations", "/conversations"} <= links
    for link in links:
        page = client.get(link)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"], link


def test_only_the_jobs_and_knowledge_pages_take_gradio_uploads(client: TestClient):
    """Gradio's upload route exists under every page and had no size limit, and /chat-app is public: a
    stranger could fill the disk. Only the jobs and knowledge pages have a file field; each takes its size."""
    file = {"files": ("items.jsonl", b'{"q": "x"}\n' * 20_000, "application/octet-stream")}
    for page in ("", "/chat-app", "/apps", "/models"):
        refused = client.post(f"{page}/gradio_api/upload", files=file)
        assert refused.status_code == 413, (page, refused.text)
        assert "takes no file uploads" in refused.json()["error"]["message"]
    for page in ("/jobs", "/knowledge"):
        taken = client.post(f"{page}/gradio_api/upload", files=file)
        assert taken.status_code == 200, (page, taken.text)


def test_the_guide_serves_the_readme_with_a_link_to_each_section(client: TestClient):
    from ui.help_page import README, slug

    guide = client.get("/help")
    assert guide.status_code == 200 and "text/html" in guide.headers["content-type"]
    sections = re.findall(r"^## (.+)$", README.read_text(), re.MULTILINE)
    assert "Security model" in sections
    for title in sections:  # every "?" link lands on a heading
        assert f'id="{slug(title)}"' in guide.text and f'href="#{slug(title)}"' in guide.text
    assert 'href="/docs"' in guide.text and "<script" not in guide.text


def test_a_page_without_uploads_refuses_files_on_any_gradio_route(client: TestClient):
    """Gradio takes files on routes other than upload (process_recording, under every page): multipart is an
    upload wherever it is sent."""
    file = {"files": ("clip.wav", b"RIFF" + b"\0" * 5000, "audio/wav")}
    for route in ("process_recording", "queue/join"):
        refused = client.post(f"/chat-app/gradio_api/{route}", files=file)
        assert refused.status_code == 413 and "takes no file uploads" in refused.json()["error"]["message"], route
