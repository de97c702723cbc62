"""Chat apps that remember, on a real web server, worker, Redis and PostgreSQL, through the official `openai`
client and the REST API. The in-test OpenAI-compatible server answers with the messages it was sent, so each
reply shows which turns reached the prompt."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.chat import client_for, heard, new_key
from tests.support.openai_server import ChatServer
from tests.support.specs import memory_chat
from tests.support.stack import Stack, process_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def prompt(llm: ChatServer) -> list[tuple[str, str]]:
    """The messages of the last prompt the LLM got (the template's system message left out)."""
    return [(m["role"], m["content"]) for m in llm.requests[-1]["messages"] if m["role"] != "system"]


@pytest.fixture(scope="module")
def llm() -> Iterator[ChatServer]:
    with ChatServer(reply=heard) as server:
        yield server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, cold_model: Path,
           llm: ChatServer) -> Iterator[Stack]:
    gen = process_stack("redis", tmp_path_factory.mktemp("conversations"), tiny_model, cold_model)
    stack = next(gen)
    stack.extra_env["TEST_LLM_KEY"] = "k"
    stack.start_web()
    worker = stack.start_worker(queues="cpu,gpu", concurrency=2, name="worker-conversations")
    stack.create("memory-chat", memory_chat(llm.base_url))
    for slug in ("mem", "short"):
        made = stack.api("POST", "/api/v1/publications", json={"workflow": "memory-chat", "slug": slug,
                                                                 "check": False})
        assert made.status_code == 201, made.text
        assert made.json()["history_input"] == "history"
    yield stack
    stack.discard(worker)
    for _ in gen:
        pass


def ask(client: openai.OpenAI, messages: list[dict], conversation: str | None = None, app: str = "mem") -> tuple[
        str, dict]:
    headers = {"X-Conversation-Id": conversation} if conversation else None
    completion = client.chat.completions.create(model=app, messages=messages, extra_headers=headers)
    return completion.choices[0].message.content, completion.model_extra


def test_a_follow_up_is_answered_from_the_turn_before_with_full_messages_or_a_conversation_id(served: Stack,
                                                                                                llm: ChatServer):
    client = client_for(served, new_key(served, name="memory"))
    first = [{"role": "user", "content": "My cat is called Miso."}]
    reply, ids = ask(client, first)
    assert reply == "heard: My cat is called Miso."
    # The OpenAI convention: the client sends the whole conversation.
    follow_up = [*first, {"role": "assistant", "content": reply}, {"role": "user", "content": "What is my cat called?"}]
    reply, _ = ask(client, follow_up)
    assert reply == "heard: My cat is called Miso. / What is my cat called?"
    assert prompt(llm) == [("user", "My cat is called Miso."), ("assistant", "heard: My cat is called Miso."),
                           ("user", "What is my cat called?")]
    # Only the new message, with the conversation id the first reply gave: the stored turns are the history.
    reply, again = ask(client, [{"role": "user", "content": "What is my cat called?"}], ids["conversation_id"])
    assert reply == "heard: My cat is called Miso. / What is my cat called?"
    assert prompt(llm) == [("user", "My cat is called Miso."), ("assistant", "heard: My cat is called Miso."),
                           ("user", "What is my cat called?")]
    assert again["conversation_id"] == ids["conversation_id"] and again["message_id"] != ids["message_id"]
    # Streaming works the same (the id in metadata this time), and the last chunk names the conversation.
    stream = client.chat.completions.create(model="mem", stream=True, extra_body={
        "metadata": {"conversation_id": ids["conversation_id"]}}, messages=[{"role": "user", "content": "And?"}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "heard: My cat is called Miso. / What is my cat called? / And?"
    assert chunks[-1].model_extra["conversation_id"] == ids["conversation_id"]


def test_a_memory_policy_cuts_the_history_as_documented(served: Stack, llm: ChatServer):
    client = client_for(served, new_key(served, name="short"))
    assert served.api("PUT", "/api/v1/publications/short/memory", json={"mode": "turns", "turns": 1}).status_code == 200
    _, ids = ask(client, [{"role": "user", "content": "one"}], app="short")
    conversation = ids["conversation_id"]
    ask(client, [{"role": "user", "content": "two"}], conversation, app="short")
    ask(client, [{"role": "user", "content": "three"}], conversation, app="short")
    assert prompt(llm) == [("user", "two"), ("assistant", "heard: one / two"), ("user", "three")]
    # A token budget keeps the recent turns that fit (about 4 characters a token) and says what it dropped.
    assert served.api("PUT", "/api/v1/publications/short/memory", json={"mode": "tokens", "tokens": 60}).status_code == 200
    history = []
    for n in range(10):
        history += [{"role": "user", "content": f"question {n} " + "x" * 40},
                    {"role": "assistant", "content": f"answer {n} " + "y" * 40}]
    ask(client, [*history, {"role": "user", "content": "last"}], app="short")
    sent = prompt(llm)
    assert sent[0][0] == "user" and "earlier messages were removed" in sent[0][1]
    assert sent[1:] == [("user", "question 9 " + "x" * 40), ("assistant", "answer 9 " + "y" * 40), ("user", "last")]
    # 10,000 messages are accepted and cut by the policy; more is refused, naming the limit.
    assert served.api("PUT", "/api/v1/publications/short/memory", json={"mode": "turns", "turns": 2}).status_code == 200
    many = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i}"} for i in range(10_000)]
    ask(client, [*many, {"role": "user", "content": "now"}], app="short")
    assert prompt(llm) == [("user", "m9996"), ("assistant", "m9997"), ("user", "m9998"), ("assistant", "m9999"),
                           ("user", "now")]
    with pytest.raises(openai.BadRequestError, match="at most 10,000"):
        ask(client, [*many, {"role": "user", "content": "m"}, {"role": "user", "content": "now"}], app="short")
    assert served.api("PUT", "/api/v1/publications/short/memory", json={"mode": "turns", "turns": 999}
                      ).status_code == 422


def test_a_summary_policy_keeps_a_summary_of_the_turns_that_left_the_window(served: Stack, llm: ChatServer):
    from conversations.memory import SUMMARY_INSTRUCTION, SUMMARY_NOTE

    client = client_for(served, new_key(served, name="summary"))
    memory = {"mode": "summary", "turns": 1, "summarizer": {"model": "s", "api_base_url": llm.base_url}}
    assert served.api("PUT", "/api/v1/publications/short/memory", json=memory).status_code == 200

    def summaries() -> list[str]:
        return [r["messages"][1]["content"] for r in llm.requests if r["messages"][0]["content"] == SUMMARY_INSTRUCTION]

    before = len(summaries())
    _, ids = ask(client, [{"role": "user", "content": "one"}], app="short")
    for word in ("two", "three", "four"):
        ask(client, [{"role": "user", "content": word}], ids["conversation_id"], app="short")
    made = summaries()[before:]                    # turn 3 summarized turn 1; turn 4 only turn 2, after that summary
    assert len(made) == 2 and "user: one" in made[0] and "two" not in made[0]
    # The server "summarizes" by echoing what it was asked, so the second request holds the first summary, then
    # only turn 2.
    assert made[1].startswith("Summary so far: heard: ") and made[1].rsplit("Conversation:\n", 1)[1] == (
        "user: two\nassistant: heard: one / two")
    sent = llm.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "system", "user", "assistant", "user"]
    assert sent[1]["content"].startswith(SUMMARY_NOTE) and [m["content"] for m in sent[2::2]] == ["three", "four"]


def test_conversations_belong_to_their_key_and_feedback_becomes_a_test_case(served: Stack):
    mine, theirs = new_key(served, name="mine"), new_key(served, name="theirs", app="mem")
    reply, ids = ask(client_for(served, mine), [{"role": "user", "content": "Where is the tower?"}])
    conversation, message = ids["conversation_id"], ids["message_id"]
    for client, given in ((client_for(served, theirs), conversation), (client_for(served, mine), "f" * 32)):
        with pytest.raises(openai.NotFoundError, match="No conversation"):
            ask(client, [{"role": "user", "content": "and?"}], given)
    # The REST chat route: the same conversation, continued by its owner only.
    turn = httpx.post(f"{served.base_url}/api/v1/apps/mem/chat", headers={"Authorization": f"Bearer {mine}"},
                      json={"message": "How tall is it?", "conversation_id": conversation}, timeout=60)
    assert turn.status_code == 200, turn.text
    assert turn.json()["reply"] == "heard: Where is the tower? / How tall is it?"
    assert turn.json()["conversation_id"] == conversation
    refused = httpx.post(f"{served.base_url}/api/v1/apps/mem/chat", headers={"Authorization": f"Bearer {theirs}"},
                         json={"message": "hi", "conversation_id": conversation}, timeout=60)
    assert refused.status_code == 404 and "Where is the tower" not in refused.text
    # Feedback by the owner; another key or an unknown message is a 404.
    url = f"{served.base_url}/api/v1/apps/mem/messages/{message}/feedback"
    down = httpx.post(url, headers={"Authorization": f"Bearer {mine}"}, json={"rating": "down", "comment": "vague"})
    assert down.status_code == 200 and down.json()["rating"] == "down", down.text
    assert httpx.post(url, headers={"Authorization": f"Bearer {theirs}"}, json={"rating": "up"}).status_code == 404
    assert httpx.post(url.replace(message, "0" * 32), headers={"Authorization": f"Bearer {mine}"},
                      json={"rating": "up"}).status_code == 404
    assert httpx.post(url, headers={"Authorization": f"Bearer {mine}"}, json={"rating": "meh"}).status_code == 422
    # The log: the rated exchange with its run (the trace), and the thread in order.
    logged = served.api("GET", "/api/v1/conversations", params={"app": "mem", "rating": "down"}).json()
    assert [e["id"] for e in logged] == [message]
    assert logged[0]["reply"] == reply and logged[0]["comment"] == "vague" and logged[0]["ended"]
    assert served.api("GET", f"/api/v1/runs/{logged[0]['run_id']}").status_code == 200
    thread = served.api("GET", f"/api/v1/conversations/{conversation}").json()
    assert [e["message"] for e in thread["exchanges"]] == ["Where is the tower?", "How tall is it?"]
    exported = served.api("GET", "/api/v1/conversations/export", params={"format": "jsonl", "app": "mem"}).text
    assert message in {json.loads(line)["id"] for line in exported.splitlines()}
    as_csv = served.api("GET", "/api/v1/conversations/export", params={"format": "csv", "rating": "down"}).text
    assert as_csv.splitlines()[0].startswith("created_at,app,conversation_id") and message in as_csv
    # A thumbs-down becomes a test case with the answer the PM expects.
    # It replays what the workflow was given: a follow-up's case keeps the turn before it.
    for asked, expected in ((message, "On the hill."), (turn.json()["message_id"], "About 40 m.")):
        made = served.api("POST", f"/api/v1/conversations/messages/{asked}/test-case",
                          json={"test_set": "from-chat", "expected_answer": expected})
        assert made.status_code == 201, made.text
    cases = served.api("GET", "/api/v1/test-sets/from-chat/cases").json()["cases"]
    assert [(c["inputs"]["question"], c["expected_answer"]) for c in cases] == [
        ("Where is the tower?", "On the hill."), ("How tall is it?", "About 40 m.")]
    assert [[m["content"] for m in c["inputs"]["history"]] for c in cases] == [
        [], ["Where is the tower?", "heard: Where is the tower?"]]
    for bad in ("2020-01-01T00:00:00", "0001-01-01T00:00:00+01:00", "soon"):   # naive, out of range, not a time
        for path in ("/api/v1/conversations", "/api/v1/conversations/export"):
            refused = served.api("GET", path, params={"since": bad})
            assert refused.status_code == 422 and "since" in refused.text, (path, bad, refused.text)
    assert [e["id"] for e in served.api("GET", "/api/v1/conversations", params={
        "rating": "down", "since": "2020-01-01T00:00:00Z"}).json()] == [message]
    assert served.api("GET", "/api/v1/conversations", params={"rating": "down", "until": "2020-01-01T00:00:00Z"}
                      ).json() == []
    # Deleting a conversation deletes its messages and the runs that answered them.
    assert served.api("DELETE", f"/api/v1/conversations/{conversation}").status_code == 204
    assert served.api("GET", f"/api/v1/conversations/{conversation}").status_code == 404
    assert served.api("GET", f"/api/v1/runs/{logged[0]['run_id']}").status_code == 404
    assert served.api("GET", "/api/v1/conversations", params={"app": "mem", "rating": "down"}).json() == []
