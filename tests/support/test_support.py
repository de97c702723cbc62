"""The test helpers themselves: the tiny offline chat model and the mixed-format documents."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.support.documents import DOCUMENT_FACTS, write_mixed_documents
from tests.support.models import END_TOKEN, MARKER_FILE, TINY_MODEL_ANSWER, build_tiny_chat_model, expected_reply


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-chat"))


def _generator(model_dir: Path, max_new_tokens: int = 16, **kwargs):
    from haystack_integrations.components.generators.transformers import TransformersChatGenerator

    return TransformersChatGenerator(
        model=str(model_dir),
        task="text-generation",
        generation_kwargs={"max_new_tokens": max_new_tokens, "do_sample": False},
        **kwargs,
    )


def test_tiny_model_answers_with_the_fixed_phrase(tiny_model: Path) -> None:
    from haystack.dataclasses import ChatMessage

    assert TINY_MODEL_ANSWER == "the answer is stackyard"
    generator = _generator(tiny_model)
    generator.warm_up()
    conversations = [
        [ChatMessage.from_user("Which animal sleeps in hollow birch trees?")],
        [ChatMessage.from_system("Answer from the documents."), ChatMessage.from_user("Where? " * 300)],
        [
            ChatMessage.from_user("hi"),
            ChatMessage.from_assistant("something else"),
            ChatMessage.from_user("the answer is"),
        ],
    ]
    for messages in conversations:
        replies = generator.run(messages=messages)["replies"]
        assert [r.text for r in replies] == [TINY_MODEL_ANSWER]
        assert replies[0].meta["finish_reason"] == "stop"
    # A plain string is taken as one user message.
    assert generator.run(messages="Hello")["replies"][0].text == TINY_MODEL_ANSWER


def test_tiny_model_streams_token_by_token(tiny_model: Path) -> None:
    chunks = []
    generator = _generator(tiny_model, streaming_callback=chunks.append)
    reply = generator.run(messages="Stream please")["replies"][0]
    assert reply.text == TINY_MODEL_ANSWER
    # The integration streams through transformers' TextStreamer without skip_special_tokens: the text arrives
    # word by word and the last chunk carries the end-of-sequence token and a newline, e.g.
    # ['', 'the ', 'answer ', 'is ', '', 'stackyard<|end|>\n'] (real models leak "<|im_end|>" the same way;
    # stop_words do not filter it). The final reply is clean.
    streamed = "".join(c.content for c in chunks)
    assert streamed == TINY_MODEL_ANSWER + END_TOKEN + "\n"
    assert len([c for c in chunks if c.content]) >= 4
    assert chunks[0].start


def test_max_new_tokens_cuts_the_reply(tiny_model: Path) -> None:
    reply = _generator(tiny_model, max_new_tokens=2).run(messages="Hello")["replies"][0]
    assert reply.text == "the answer"
    assert reply.meta["finish_reason"] == "length"


def test_tiny_model_in_a_pipeline_with_a_prompt_builder(tiny_model: Path) -> None:
    from haystack import Pipeline
    from haystack.components.builders import ChatPromptBuilder
    from haystack.dataclasses import ChatMessage

    pipe = Pipeline()
    pipe.add_component(
        "prompt", ChatPromptBuilder(template=[ChatMessage.from_user("Q: {{ question }}")], required_variables="*")
    )
    pipe.add_component("llm", _generator(tiny_model))
    pipe.connect("prompt.prompt", "llm.messages")
    result = pipe.run({"prompt": {"question": "What does the quillhog eat?"}})
    assert result["llm"]["replies"][0].text == TINY_MODEL_ANSWER


def test_build_is_cached_and_copies_into_new_dirs(tiny_model: Path, tmp_path: Path) -> None:
    started = time.perf_counter()
    other = build_tiny_chat_model(tmp_path / "copy")
    assert time.perf_counter() - started < 2
    assert other == tmp_path / "copy"
    for name in ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", MARKER_FILE):
        assert (other / name).read_bytes() == (tiny_model / name).read_bytes()
    assert build_tiny_chat_model(tiny_model) == tiny_model  # already there: left alone


def test_custom_reply_text(tmp_path: Path) -> None:
    text = "hello from the tiny model"
    model_dir = build_tiny_chat_model(tmp_path / "custom", text=text, seed=1)
    assert expected_reply(text) == text
    assert _generator(model_dir).run(messages="Say something")["replies"][0].text == text


def test_reply_text_must_not_repeat_a_token(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="repeat"):
        build_tiny_chat_model(tmp_path / "bad", text="is is is")


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("mixed")
    return folder, write_mixed_documents(folder)


def test_mixed_documents_are_written(mixed_folder: tuple[Path, dict[str, str]]) -> None:
    folder, keys = mixed_folder
    assert sorted(p.suffix for p in folder.iterdir()) == [".docx", ".html", ".md", ".pdf", ".txt"]
    assert set(keys) == set(DOCUMENT_FACTS) == {p.name for p in folder.iterdir()}
    assert len(set(keys.values())) == 5


@pytest.mark.parametrize("filename", sorted(DOCUMENT_FACTS))
def test_mixed_document_converts_with_its_key_sentence(
    mixed_folder: tuple[Path, dict[str, str]], filename: str
) -> None:
    from haystack.components.converters import (
        DOCXToDocument,
        HTMLToDocument,
        MarkdownToDocument,
        PyPDFToDocument,
        TextFileToDocument,
    )

    converters = {
        ".txt": TextFileToDocument,
        ".md": MarkdownToDocument,
        ".html": HTMLToDocument,
        ".pdf": PyPDFToDocument,
        ".docx": DOCXToDocument,
    }
    folder, keys = mixed_folder
    path = folder / filename
    documents = converters[path.suffix]().run(sources=[path])["documents"]
    assert len(documents) == 1
    content = documents[0].content
    assert keys[filename] in content
    for sentence in DOCUMENT_FACTS[filename]["more"]:
        assert sentence in content
    others = [key for name, key in keys.items() if name != filename]
    assert not any(key in content for key in others)


def test_the_suite_clock_counts_busy_cpu_in_units_of_the_machines_speed() -> None:
    from tests.support.suite_clock import SuiteClock

    clock = SuiteClock.start()
    assert 0 < clock.reference < 30
    started = time.process_time()
    while time.process_time() - started < 0.5:    # half a second of this process's CPU: the machine was busy
        pass
    report = clock.report()
    busy = float(re.search(r"\(([\d,.]+) CPU-s\)", report)[1].replace(",", ""))
    units = float(re.search(r"suite = ([\d,.]+) reference units", report)[1].replace(",", ""))
    printed = 0.05 / clock.reference + 0.5            # the line rounds CPU-s to 0.1 and units to 1
    assert busy >= 0.5 and units == pytest.approx(busy / clock.reference, rel=0.05, abs=printed), report
