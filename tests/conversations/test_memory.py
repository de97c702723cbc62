"""An app's memory policy cuts the history as documented: the last N turns, or the recent turns within a token
budget (Haystack's SlidingWindowCompactor, with a note where older turns were removed); system messages stay."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from conversations.memory import Memory, cut
from workflows.execute import BadRunInputs, chat_messages


def conversation(turns: int) -> list[dict[str, str]]:
    history = [{"role": "system", "content": "Be brief."}]
    for n in range(turns):
        history += [{"role": "user", "content": f"q{n} " + "x" * 36}, {"role": "assistant", "content": f"a{n} " + "y" * 36}]
    return history


def test_the_last_n_turns_are_kept_with_the_system_message():
    history = conversation(5)
    assert cut(history, Memory(turns=2)) == [history[0], *history[-4:]]
    assert cut(history, Memory(turns=10)) == history
    assert cut(history, Memory(turns=0)) == [history[0]]
    # A turn is a user message and every reply after it.
    odd = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"},
           {"role": "assistant", "content": "d"}]
    assert cut(odd, Memory(turns=1)) == odd[1:]


def test_a_token_budget_keeps_the_newest_turns_that_fit_and_notes_the_rest():
    history = conversation(10)                     # each turn ~20 tokens at 4 characters a token
    kept = cut(history, Memory(mode="tokens", tokens=70))
    assert kept[0] == history[0]
    assert kept[1]["role"] == "user" and "16 earlier messages were removed" in kept[1]["content"]
    assert kept[2:] == history[-4:]
    assert cut(history, Memory(mode="tokens", tokens=100_000)) == history


def test_bad_policies_and_histories_are_refused_naming_the_field():
    with pytest.raises(ValidationError, match="turns"):
        Memory(turns=201)
    with pytest.raises(ValidationError, match="mode"):
        Memory(mode="summary")
    with pytest.raises(BadRunInputs, match=r"inputs.history\[1\] must be") as refused:
        chat_messages([{"role": "user", "content": "hi"}, {"role": "tool", "content": "x"}], field="inputs.history")
    assert refused.value.field == "inputs.history[1]"
    with pytest.raises(BadRunInputs, match="at most 10000 messages"):
        chat_messages([{"role": "user", "content": "x"}] * 10_001, field="inputs.history")
    with pytest.raises(BadRunInputs, match="more than 2,000,000 characters"):
        chat_messages([{"role": "user", "content": "x" * 1_000_000}] * 3, field="inputs.history")
    assert [m.text for m in chat_messages([{"role": "assistant", "content": "ok"}], field="h")] == ["ok"]


def test_a_history_longer_than_a_run_takes_keeps_its_newest_messages():
    """Stored turns of 1.9 MB each: the policy still answers (the newest that fit), in both modes."""
    big = [{"role": "user", "content": "u" * 1_900_000}, {"role": "assistant", "content": "a" * 1_900_000},
           {"role": "user", "content": "short"}, {"role": "assistant", "content": "reply"}]
    assert cut(big, Memory(turns=10)) == big[1:]
    kept = cut(big, Memory(mode="tokens", tokens=1000))
    assert "earlier messages were removed" in kept[0]["content"] and kept[1:] == big[2:]
    chat_messages(cut(big, Memory(turns=10)), field="inputs.history")          # what the worker then accepts


def test_a_summary_policy_summarizes_the_turns_before_the_window_and_a_failing_summarizer_keeps_the_window(
        monkeypatch):
    from conversations.memory import SUMMARY_INSTRUCTION, SUMMARY_NOTE, Earlier, remember
    from stackyard.settings import reset_settings_cache
    from tests.support.openai_server import ChatServer

    history = conversation(4)
    with ChatServer(reply="The user asked four questions.") as server:
        monkeypatch.setenv("STACKYARD_FETCH_ALLOWED_HOSTS", f"127.0.0.1:{server.port},127.0.0.1:9")
        reset_settings_cache()
        memory = Memory(mode="summary", turns=1, summarizer={"model": "s", "api_base_url": server.base_url})
        kept, stored = remember(history, memory)                  # a client that sent everything: nothing stored
        assert kept == [history[0], {"role": "system", "content": SUMMARY_NOTE + "The user asked four questions."},
                        *history[-2:]] and stored is None
        asked = server.requests[-1]["messages"]
        assert asked[0]["content"] == SUMMARY_INSTRUCTION and "q0" in asked[1]["content"] and "q3" not in asked[1][
            "content"]
        # A kept conversation: only the turns that left the window since the stored summary, after it.
        earlier = Earlier(summary="Earlier: q0.", summarized=1, upto=3, messages=history[3:7])
        kept, stored = remember(history[-2:], memory, earlier)
        assert stored == ("The user asked four questions.", 3)
        assert server.requests[-1]["messages"][1]["content"].startswith("Summary so far: Earlier: q0.")
        assert kept[0]["content"] == SUMMARY_NOTE + "The user asked four questions."
        calls = len(server.requests)
        kept, stored = remember(history[-2:], memory, Earlier("Earlier: q0.", 3, 3, []))   # nothing new: no call
        assert len(server.requests) == calls and stored is None and kept[0]["content"].endswith("Earlier: q0.")
    down = memory.model_copy(update={"summarizer": memory.summarizer.model_copy(
        update={"api_base_url": "http://127.0.0.1:9/v1"})})
    kept, stored = remember(history, down)                         # unreachable: the window alone, said in the log
    assert kept == [history[0], *history[-2:]] and stored is None
    reset_settings_cache()
    with pytest.raises(ValidationError, match="needs a summarizer"):
        Memory(mode="summary")
    with pytest.raises(ValidationError, match="is not a public address"):
        Memory(mode="summary", summarizer={"model": "s", "api_base_url": "http://169.254.169.254/v1"})
