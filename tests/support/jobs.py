"""Batch-job helpers over a running stack's HTTP API, and a corpus whose ingest result is known."""

from __future__ import annotations

from pathlib import Path

from tests.support.stack import Stack, wait_until

WORDS = "amber basalt cedar delta ember fjord garnet harbor indigo juniper kelp lichen".split()


def create_job(stack: Stack, **body) -> dict:
    response = stack.api("POST", "/api/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def job(stack: Stack, job_id: str) -> dict:
    return stack.api("GET", f"/api/v1/jobs/{job_id}").json()


def wait_job(stack: Stack, job_id: str, states=("succeeded", "failed", "cancelled"), timeout: float = 120) -> dict:
    return wait_until(lambda: (j := job(stack, job_id))["state"] in states and j, timeout=timeout, interval=0.2,
                      message=f"job {job_id} to reach {states}")


def items(stack: Stack, job_id: str, **params) -> list[dict]:
    rows, after = [], -1
    while page := stack.api("GET", f"/api/v1/jobs/{job_id}/items", params={"after": after, "limit": 1000, **params}).json():
        rows += page
        after = page[-1]["index"]
    return rows


def stored_ids(stack: Stack, collection: str) -> list[str]:
    """Ids in the store, read over a connection of its own (an idle shared gRPC channel may have been dropped)."""
    from nodes.stores import milvus_document_store
    from stackyard.settings import Settings

    settings = Settings(data_dir=stack.data_dir, milvus_lite_port=stack.milvus_port)
    store = milvus_document_store(collection, settings, connection_args={"dedicated": True})
    try:
        return [doc.id for doc in store.filter_documents()]
    finally:
        store.client.close()


def write_corpus(folder: Path, files: int, words: int = 450) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(files):
        text = " ".join(f"{WORDS[(index * 5 + n) % len(WORDS)]}{index}x{n % 40}" for n in range(words))
        (folder / f"doc{index:03d}.txt").write_text(text)


def expected_documents(folder: Path) -> int:
    """Chunks the ingest template makes of these files (its splitter, run here without embedding)."""
    import yaml
    from haystack.components.converters import TextFileToDocument
    from haystack.components.preprocessors import RecursiveDocumentSplitter

    from workflows.templates import template_path

    params = yaml.safe_load(template_path("ingest").read_text())["components"]["splitter"]["init_parameters"]
    splitter = RecursiveDocumentSplitter(**params)
    splitter.warm_up()
    docs = TextFileToDocument().run(sources=sorted(folder.iterdir()))["documents"]
    return len(splitter.run(documents=docs)["documents"])
