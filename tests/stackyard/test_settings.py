"""Settings refuse values that would fail later, naming the variable and the fix."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from stackyard.settings import Settings


@pytest.mark.parametrize("url", ["localhost:11434", "ftp://models.example/v1", "http://", "/v1"])
def test_a_model_server_that_is_not_an_http_url_is_refused_naming_the_setting(url: str):
    with pytest.raises(ValidationError, match="STACKYARD_LLM_SERVERS: 'local' has") as caught:
        Settings(llm_servers={"local": url})
    assert "http://host:port/v1" in str(caught.value)


def test_http_and_https_servers_are_taken():
    servers = {"vllm": "http://vllm:8000/v1", "hosted": "https://llm.example/v1"}
    assert Settings(llm_servers=servers).llm_servers == servers
