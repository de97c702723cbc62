"""Pages answer at the paths links and README write, with or without the trailing slash."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from ui.editor_page import STATIC_DIR


@pytest.mark.parametrize("path", ["/apps", "/jobs", "/chat-app"])
def test_a_page_answers_without_its_trailing_slash(client: TestClient, path: str):
    moved = client.get(path, follow_redirects=False)
    assert moved.status_code == 307 and moved.headers["location"] == f"{path}/"
    page = client.get(path)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert client.get(f"{path}?app=hello", follow_redirects=False).headers["location"] == f"{path}/?app=hello"


def test_the_editors_page_links_open_pages(client: TestClient):
    links = set(re.findall(r'href: "(/[^"]*)"', (STATIC_DIR / "editor.js").read_text()))
    assert {"/apps", "/jobs"} <= links
    for link in links:
        page = client.get(link)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"], link
