"""What tests of published chat apps share: API keys, the official `openai` client, and an LLM reply that shows
what reached its prompt."""

from __future__ import annotations

import openai

from tests.support.stack import Stack


def new_key(stack: Stack, **body) -> str:
    """A new API key (``body``: name, app, rate_per_minute)."""
    response = stack.api("POST", "/api/v1/keys", json=body)
    assert response.status_code == 201, response.text
    return response.json()["key"]


def client_for(stack: Stack, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=key, max_retries=0, timeout=60)


def heard(body: dict) -> str:
    """A scripted reply (``ChatServer(reply=heard)``): what the user said in the prompt, in order, so a
    follow-up's reply shows which turns reached it."""
    return "heard: " + " / ".join(m["content"] for m in body["messages"] if m["role"] == "user")
