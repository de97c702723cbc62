"""Workflow specs used by the worker tests."""

from __future__ import annotations

from workflows.templates import template_path

PROMPT = "haystack.components.builders.prompt_builder.PromptBuilder"
LOCAL_LLM = "haystack_integrations.components.generators.transformers.chat.chat_generator.TransformersChatGenerator"
# What an operator sets so workflows may call the in-test OpenAI-compatible server (tests/support/openai_server.py,
# on 127.0.0.1) with a test key: TEST_LLM_KEY is granted explicitly, like any variable beyond the provider keys.
REMOTE_LLM_ENV = {"STACKYARD_SECRET_ENV": "TEST_LLM_KEY", "STACKYARD_FETCH_ALLOWED_HOSTS": "127.0.0.1"}


def greet() -> dict:
    return {"components": {"p": {"type": PROMPT, "init_parameters": {"template": "Hello {{ name }}"}}},
            "inputs": {"name": ["p.name"]}, "outputs": {"greeting": "p.prompt"}}


def chat(model: str, tokens: int | None = None, chain: int = 1) -> dict:
    """prompt → local LLM (→ LLM …, ``chain`` of them, each fed the previous reply).

    With ``tokens`` every LLM must generate exactly that many tokens: a long run made of real work.
    The tiny model has 4,096 positions, so keep ``tokens`` under ~2,000 when chaining.
    """
    kwargs = {"max_new_tokens": tokens or 16, "do_sample": False}
    if tokens:
        kwargs["min_new_tokens"] = tokens
    names = ["llm"] + [f"llm{i}" for i in range(2, chain + 1)]
    components = {"prompt": {"type": PROMPT, "init_parameters": {"template": "Question: {{ question }}"}}}
    connections = [{"sender": "prompt.prompt", "receiver": "llm.messages"}]
    for index, name in enumerate(names):
        components[name] = {"type": LOCAL_LLM, "init_parameters": {"model": model, "task": "text-generation",
                                                                  "generation_kwargs": kwargs}}
        if index:
            connections.append({"sender": f"{names[index - 1]}.replies", "receiver": f"{name}.messages"})
    return {"components": components, "connections": connections,
            "inputs": {"question": ["prompt.question"]}, "outputs": {"answer": f"{names[-1]}.replies"}}


def ingest(collection: str) -> dict:
    import yaml

    spec = yaml.safe_load(template_path("ingest").read_text())
    spec["components"]["writer"]["init_parameters"]["document_store"]["init_parameters"]["collection_name"] = collection
    return spec


def knowledge_ingest(base: str) -> dict:
    """The ingest template with its writer writing into knowledge base ``base``."""
    spec = ingest("unused")
    spec["components"]["writer"]["init_parameters"]["document_store"] = {"type": "knowledge_base",
                                                                         "init_parameters": {"name": base}}
    return spec


def remote_chat(base_url: str, key_env: str = "TEST_LLM_KEY") -> dict:
    """prompt → OpenAI-compatible server (no client-side retries: Stackyard's own retry policy applies).

    The API key is read from ``key_env``; see ``REMOTE_LLM_ENV`` for the settings that let it and the URL pass.
    """
    return {
        "components": {
            "prompt": {"type": PROMPT, "init_parameters": {"template": "Question: {{ question }}"}},
            "llm": {"type": "haystack.components.generators.chat.openai.OpenAIChatGenerator", "init_parameters": {
                "model": "local-model", "api_base_url": base_url, "max_retries": 0, "timeout": 5,
                "api_key": {"type": "env_var", "env_vars": [key_env], "strict": False}}},
        },
        "connections": [{"sender": "prompt.prompt", "receiver": "llm.messages"}],
        "inputs": {"question": ["prompt.question"]},
        "outputs": {"answer": "llm.replies"},
    }


def memory_chat(base_url: str, key_env: str = "TEST_LLM_KEY") -> dict:
    """The ``chat_memory`` template (history as chat messages in the prompt) answering through an
    OpenAI-compatible server, declared a chat app with a history input."""
    import yaml

    spec = yaml.safe_load(template_path("chat_memory").read_text())
    spec["components"]["llm"] = remote_chat(base_url, key_env)["components"]["llm"]
    return spec


def knowledge_rag(base: str, top_k: int = 3, mode: str = "dense", llm_url: str | None = None) -> dict:
    """question → MiniLM → a retriever reading knowledge base ``base`` (dense, or hybrid: the question's words
    too) → a prompt holding the chunks it found; outputs ``documents`` and ``prompt``, and with ``llm_url`` the
    ``answer`` of an OpenAI-compatible server given that prompt."""
    embedder = ("haystack_integrations.components.embedders.sentence_transformers."
                "sentence_transformers_text_embedder.SentenceTransformersTextEmbedder")
    retriever = {"dense": "MilvusEmbeddingRetriever", "hybrid": "MilvusHybridRetriever"}[mode]
    spec = {"components": {
        "embed": {"type": embedder, "init_parameters": {"model": "sentence-transformers/all-MiniLM-L6-v2"}},
        "retriever": {"type": f"milvus_haystack.milvus_embedding_retriever.{retriever}", "init_parameters": {
            "document_store": {"type": "knowledge_base", "init_parameters": {"name": base}}, "top_k": top_k}},
        "prompt": {"type": PROMPT, "init_parameters": {
            "template": "{% for d in documents %}[{{ d.content }}]{% endfor %} Q: {{ question }}"}}},
        "connections": [{"sender": "embed.embedding", "receiver": "retriever.query_embedding"},
                        {"sender": "retriever.documents", "receiver": "prompt.documents"}],
        "inputs": {"question": ["embed.text", "prompt.question", *(["retriever.query_text"] if mode == "hybrid"
                                                                   else [])]},
        "outputs": {"documents": "retriever.documents", "prompt": "prompt.prompt"}}
    if llm_url:                       # no api_key: a keyless local server (Stackyard sends a placeholder)
        llm = remote_chat(llm_url)["components"]["llm"]
        llm["init_parameters"].pop("api_key")
        spec["components"]["llm"] = llm
        spec["connections"].append({"sender": "prompt.prompt", "receiver": "llm.messages"})
        spec["outputs"]["answer"] = "llm.replies"
    return spec


CHAT_PROMPT = "haystack.components.builders.chat_prompt_builder.ChatPromptBuilder"


def agent_chat(base_url: str, tools: list[dict], *, max_steps: int = 5, key_env: str = "TEST_LLM_KEY") -> dict:
    """question → chat prompt → an Agent thinking with an OpenAI-compatible server, with ``tools``; its answer is
    the agent's last message."""
    llm = remote_chat(base_url, key_env)["components"]["llm"]
    return {
        "components": {
            "prompt": {"type": CHAT_PROMPT, "init_parameters": {
                "template": '{% message role="user" %}{{ question }}{% endmessage %}', "required_variables": ["question"]}},
            "agent": {"type": "haystack.components.agents.agent.Agent", "init_parameters": {
                "chat_generator": llm, "system_prompt": "Use the tools, then answer.", "max_agent_steps": max_steps,
                "exit_conditions": ["text"], "tools": tools}},
        },
        "connections": [{"sender": "prompt.prompt", "receiver": "agent.messages"}],
        "inputs": {"question": ["prompt.question"]},
        "outputs": {"answer": "agent.last_message"},
    }


def note_tool(name: str, template: str, description: str = "Looks something up.") -> dict:
    """A node as a tool: a prompt node whose template is what the tool returns, its variables the arguments."""
    return {"type": "haystack.tools.component_tool.ComponentTool", "data": {
        "component": {"type": PROMPT, "init_parameters": {"template": template}},
        "name": name, "description": description, "parameters": None}}


def note_workflow(template: str) -> dict:
    """A saved workflow to call as a tool: ``item`` in, the rendered ``template`` out as ``note``."""
    return {"components": {"p": {"type": PROMPT, "init_parameters": {"template": template}}},
            "connections": [], "inputs": {"item": ["p.item"]}, "outputs": {"note": "p.prompt"}}


def mcp_tools(url: str, names: list[str] | None = None, token_env: str | None = None, seconds: float = 10.0) -> dict:
    """An MCP server as an agent's toolset, as Haystack serializes it (Streamable HTTP)."""
    token = {"type": "env_var", "env_vars": [token_env], "strict": True} if token_env else None
    return {"type": "haystack_integrations.tools.mcp.mcp_toolset.MCPToolset", "data": {
        "server_info": {"type": "haystack_integrations.tools.mcp.mcp_tool.StreamableHttpServerInfo", "url": url,
                        "token": token, "headers": None, "timeout": 10, "max_retries": 0, "base_delay": 1.0,
                        "max_delay": 5.0, "oauth_config": None},
        "tool_names": names, "connection_timeout": seconds, "invocation_timeout": seconds, "eager_connect": False,
        "inputs_from_state": None, "outputs_to_state": None, "outputs_to_string": None}}
