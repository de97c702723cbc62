"""A model path outside the model roots is a validation issue over HTTP, pinned to the node's param: never a 500."""

from __future__ import annotations

import pytest
import yaml
from fastapi.testclient import TestClient

EMBEDDER = ("haystack_integrations.components.embedders.sentence_transformers."
            "sentence_transformers_text_embedder.SentenceTransformersTextEmbedder")
FIELD = "components.embed.init_parameters.model"


def spec(model: str) -> dict:
    return {"components": {"embed": {"type": EMBEDDER, "init_parameters": {"model": model}}},
            "inputs": {"text": ["embed.text"]}, "outputs": {"embedding": "embed.embedding"}}


@pytest.fixture
def client(database):
    from api.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.mark.parametrize("model", ["/etc", "../../../etc"])
def test_validate_and_create_name_the_model_param_and_the_setting(client, model: str) -> None:
    checked = client.post("/api/v1/validate", content=yaml.safe_dump(spec(model)),
                          headers={"content-type": "application/yaml"})
    assert checked.status_code == 200 and checked.json()["valid"] is False
    [issue] = checked.json()["issues"]
    assert (issue["node"], issue["port"], issue["field"]) == ("embed", "model", FIELD)
    assert "STACKYARD_MODEL_ROOTS" in issue["message"]

    created = client.post("/api/v1/workflows", json={"name": "embed", "spec": spec(model)})
    assert created.status_code == 422, created.text
    assert [i["field"] for i in created.json()["error"]["issues"]] == [FIELD]
    assert client.post("/api/v1/workflows", json={"name": "embed", "spec": spec("org/hub-model")}).status_code == 201
