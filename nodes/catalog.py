"""The palette: every component a workflow may use, grouped by category.

A ``NodeType`` says what the canvas needs to draw and edit a node (title, category, ports, params,
``needs_gpu``). The catalog is also Stackyard's allowlist of component **classes**: a workflow may only
name a class listed here or in ``STACKYARD_ALLOWED_COMPONENTS``, and that check runs on the class path
string before any module is imported (see ``workflows.allowlist``).

Example::

    from nodes.catalog import get_node_type, palette
    palette()["embedders"][0].title            # 'Document embedder'
    get_node_type("haystack.components.builders.prompt_builder.PromptBuilder").needs_gpu   # False
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_CHAT_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
MILVUS_STORE = "milvus_haystack.document_store.MilvusDocumentStore"
AUTO_MERGING_RETRIEVER = "haystack.components.retrievers.auto_merging_retriever.AutoMergingRetriever"
# Stackyard's own component in the knowledge room (named here as a string: the catalog imports nothing).
KNOWLEDGE_BASE_WRITER = "knowledge.writer.KnowledgeBaseWriter"
IN_MEMORY_STORE = "haystack.document_stores.in_memory.document_store.InMemoryDocumentStore"
AGENT = "haystack.components.agents.agent.Agent"

CATEGORIES = (
    "inputs", "loaders", "splitters", "embedders", "stores", "retrievers",
    "rankers", "prompts", "generators", "agents", "routers", "joiners", "other",
)

# Classes other than components that may appear nested in init parameters (document stores).
# A knowledge base's Milvus store computes BM25 vectors with Milvus's built-in function; the hybrid retriever fuses
# with a pymilvus ranker.
MILVUS_BM25 = "milvus_haystack.function.BM25BuiltInFunction"
NESTED_TYPES = frozenset({MILVUS_STORE, IN_MEMORY_STORE, MILVUS_BM25, "pymilvus.client.abstract.RRFRanker",
                          "pymilvus.client.abstract.WeightedRanker"})


def milvus_store_params(collection: str = "documents") -> dict[str, Any]:
    """A nested Milvus store as Haystack serializes it; the URI is set per deployment at build time."""
    return {"type": MILVUS_STORE, "init_parameters": {"collection_name": collection, "consistency_level": "Strong"}}


@dataclass(frozen=True)
class NodeType:
    """One palette entry. ``type`` is the Haystack class path as it appears in pipeline YAML."""

    type: str
    title: str
    category: str
    description: str
    needs_gpu: bool = False
    defaults: dict[str, Any] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    templates: tuple[str, ...] = ()
    model_params: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        return self.type.rsplit(".", 1)[0]


def _n(type_: str, title: str, category: str, description: str, **kw: Any) -> NodeType:
    return NodeType(type=type_, title=title, category=category, description=description, **kw)


_HS = "haystack.components"
_ST = "haystack_integrations.components"
_CONV = f"{_HS}.converters"

CATALOG: tuple[NodeType, ...] = (
    _n("nodes.files.FileSource", "Files", "inputs", "Files or folders under the data root, as paths for loaders."),
    _n(f"{_HS}.routers.file_type_router.FileTypeRouter", "File type router", "routers",
       "Sends each file to the loader for its MIME type.",
       defaults={"mime_types": ["text/plain", "text/markdown", "text/html", "application/pdf",
                                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"],
                 "additional_mimetypes": {"text/markdown": ".md"}}),
    _n(f"{_CONV}.txt.TextFileToDocument", "Text loader", "loaders", "Reads .txt files into documents."),
    _n(f"{_CONV}.markdown.MarkdownToDocument", "Markdown loader", "loaders", "Reads Markdown files into plain-text documents."),
    _n(f"{_CONV}.html.HTMLToDocument", "HTML loader", "loaders", "Extracts the main text of HTML pages."),
    _n(f"{_CONV}.pypdf.PyPDFToDocument", "PDF loader", "loaders", "Extracts the text layer of PDF files."),
    _n(f"{_CONV}.docx.DOCXToDocument", "DOCX loader", "loaders", "Reads Word .docx files."),
    _n(f"{_CONV}.csv.CSVToDocument", "CSV loader", "loaders", "Reads CSV files into documents."),
    _n("nodes.fetchers.GuardedLinkContentFetcher", "URL fetcher", "loaders",
       "Fetches web pages; refuses private, loopback and metadata addresses."),
    _n(f"{_HS}.preprocessors.document_cleaner.DocumentCleaner", "Cleaner", "splitters", "Removes empty lines and extra whitespace."),
    _n(f"{_HS}.preprocessors.document_splitter.DocumentSplitter", "Splitter", "splitters",
       "Splits documents by words, sentences or passages.", defaults={"split_by": "word", "split_length": 200, "split_overlap": 20}),
    _n(f"{_HS}.preprocessors.recursive_splitter.RecursiveDocumentSplitter", "Recursive splitter", "splitters",
       "Splits on paragraph, line, then word boundaries.",
       defaults={"split_length": 200, "split_overlap": 20, "separators": ["\n\n", "\n", " "]}),
    _n(f"{_ST}.embedders.sentence_transformers.sentence_transformers_document_embedder.SentenceTransformersDocumentEmbedder",
       "Document embedder", "embedders", "Embeds documents with a Sentence Transformers model.",
       defaults={"model": MINILM}, model_params=("model",)),
    _n(f"{_ST}.embedders.sentence_transformers.sentence_transformers_text_embedder.SentenceTransformersTextEmbedder",
       "Text embedder", "embedders", "Embeds a query with a Sentence Transformers model.",
       defaults={"model": MINILM}, model_params=("model",)),
    _n(f"{_HS}.writers.document_writer.DocumentWriter", "Document writer", "stores",
       "Writes documents to the vector store (overwrites by id, so re-runs add no duplicates).",
       defaults={"document_store": milvus_store_params(), "policy": "OVERWRITE"}),
    _n(KNOWLEDGE_BASE_WRITER, "Knowledge base writer", "stores",
       "Adds documents to a knowledge base as /knowledge does: its chunking and model, the same content skipped, "
       "kept through a re-index. The run ends when they are queued; the workers index them.",
       defaults={"knowledge_base": ""}),
    _n("milvus_haystack.milvus_embedding_retriever.MilvusEmbeddingRetriever", "Milvus retriever", "retrievers",
       "Finds the documents closest to a query embedding.", defaults={"document_store": milvus_store_params(), "top_k": 5}),
    _n("milvus_haystack.milvus_embedding_retriever.MilvusSparseEmbeddingRetriever", "Milvus keyword retriever",
       "retrievers", "BM25 keyword search (query_text) over a knowledge base's chunks.",
       defaults={"document_store": milvus_store_params(), "top_k": 5}),
    _n("milvus_haystack.milvus_embedding_retriever.MilvusHybridRetriever", "Milvus hybrid retriever", "retrievers",
       "Dense and BM25 keyword search over a knowledge base, fused by rank (query_embedding and query_text).",
       defaults={"document_store": milvus_store_params(), "top_k": 5}),
    _n(AUTO_MERGING_RETRIEVER, "Auto-merging retriever", "retrievers",
       "After a retriever on a parent–child knowledge base: returns a chunk's whole parent passage when more than "
       "`threshold` of its chunks were found (pick the same knowledge base as its store).",
       defaults={"document_store": milvus_store_params(), "threshold": 0.5}),
    _n(f"{_HS}.retrievers.in_memory.bm25_retriever.InMemoryBM25Retriever", "BM25 retriever", "retrievers",
       "Keyword search over an in-memory store.", defaults={"document_store": {"type": IN_MEMORY_STORE, "init_parameters": {}}, "top_k": 5}),
    _n(f"{_ST}.rankers.sentence_transformers.sentence_transformers_similarity.SentenceTransformersSimilarityRanker",
       "Cross-encoder ranker", "rankers", "Re-orders documents by relevance to the query.", model_params=("model",)),
    _n(f"{_HS}.rankers.lost_in_the_middle.LostInTheMiddleRanker", "Lost-in-the-middle ranker", "rankers",
       "Puts the most relevant documents at the start and end of the context."),
    _n(f"{_HS}.rankers.meta_field.MetaFieldRanker", "Metadata ranker", "rankers", "Orders documents by a metadata field.",
       defaults={"meta_field": "rank"}),
    _n(f"{_HS}.builders.prompt_builder.PromptBuilder", "Prompt", "prompts",
       "A Jinja prompt; each {{ variable }} becomes an input port.",
       defaults={"template": "Answer the question.\nQuestion: {{ question }}\nAnswer:"}, templates=("template",)),
    _n(f"{_HS}.builders.chat_prompt_builder.ChatPromptBuilder", "Chat prompt", "prompts",
       "Chat messages with Jinja variables; each variable becomes an input port.", templates=("template",)),
    _n(f"{_HS}.builders.answer_builder.AnswerBuilder", "Answer builder", "prompts", "Turns replies and documents into answers."),
    _n(f"{_ST}.generators.transformers.chat.chat_generator.TransformersChatGenerator", "Local LLM", "generators",
       "Runs a Hugging Face model on the worker (GPU when available).", needs_gpu=True,
       defaults={"model": DEFAULT_CHAT_MODEL, "task": "text-generation", "generation_kwargs": {"max_new_tokens": 256}},
       secrets=("token",), model_params=("model",)),
    _n(f"{_HS}.generators.chat.openai.OpenAIChatGenerator", "OpenAI-compatible LLM", "generators",
       "OpenAI, Ollama, vLLM or any OpenAI-compatible server (set api_base_url).",
       defaults={"model": "gpt-4o-mini"}, secrets=("api_key",)),
    _n(AGENT, "Agent", "agents",
       "A chat model that calls tools (nodes, saved workflows) until it can answer, within max steps. Streams the "
       "final answer only with a local model (it cannot stream and call tools at once); an OpenAI-compatible "
       "server streams every step.",
       defaults={"chat_generator": {"type": f"{_HS}.generators.chat.openai.OpenAIChatGenerator",
                                    "init_parameters": {"model": "gpt-4o-mini"}},
                 "system_prompt": "You are a helpful assistant. Use a tool when it helps; answer in a few sentences.",
                 "max_agent_steps": 8, "exit_conditions": ["text"], "tools": []},
       templates=("system_prompt",)),
    _n(f"{_HS}.routers.conditional_router.ConditionalRouter", "Router", "routers",
       "Sends data down the first route whose condition holds; each route becomes an output port.",
       defaults={"routes": [{"condition": "{{ true }}", "output": "{{ query }}", "output_name": "default", "output_type": "str"}]},
       templates=("routes",)),
    _n(f"{_HS}.joiners.branch.BranchJoiner", "Branch joiner", "joiners", "Passes on whichever branch produced a value.",
       defaults={"type_": "str"}),
    _n(f"{_HS}.joiners.document_joiner.DocumentJoiner", "Document joiner", "joiners",
       "Merges document lists (concatenate, merge, reciprocal rank fusion).", defaults={"join_mode": "reciprocal_rank_fusion"}),
    _n(f"{_HS}.joiners.string_joiner.StringJoiner", "String joiner", "joiners", "Collects strings into a list."),
)

_BY_TYPE = {node.type: node for node in CATALOG}
# Haystack serializes classes by their defining module; the catalog accepts the public alias too.
_ALIASES: dict[str, str] = {}


def register_alias(alias: str, canonical: str) -> None:
    _ALIASES[alias] = canonical


def get_node_type(type_: str) -> NodeType | None:
    return _BY_TYPE.get(_ALIASES.get(type_, type_))


def palette() -> dict[str, list[NodeType]]:
    """Catalog entries grouped by category, in the card's order."""
    grouped: dict[str, list[NodeType]] = {category: [] for category in CATEGORIES}
    for node in CATALOG:
        grouped[node.category].append(node)
    return {category: nodes for category, nodes in grouped.items() if nodes}
