"""Hostile definitions are refused before anything they name is imported, and nothing is stored."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stackyard.settings import reset_settings_cache
from workflows.errors import IssueCode, WorkflowInvalid
from workflows.io import import_text

PROMPT = "haystack.components.builders.prompt_builder.PromptBuilder"
ROUTER = "haystack.components.routers.conditional_router.ConditionalRouter"
LLM = "haystack.components.generators.chat.openai.OpenAIChatGenerator"
LOCAL_LLM = "haystack_integrations.components.generators.transformers.chat.chat_generator.TransformersChatGenerator"


def one_node(type_: str, params: str = "{}") -> str:
    return f"components:\n  n:\n    type: {type_}\n    init_parameters: {params}\n"


def refused(text: str) -> list:
    with pytest.raises(WorkflowInvalid) as err:
        import_text(text)
    return err.value.issues


@pytest.mark.parametrize("type_", [
    "os.system",
    "subprocess.Popen",
    "builtins.eval",
    "haystack.core.serialization.import_class_by_name",   # allowlisted module, not a component
    "haystack.utils.auth.Secret",                          # allowlisted module, not a component
    "haystack.components.builders.prompt_builder.os",      # attribute traversal inside an allowed module
    "collections.OrderedDict",
])
def test_non_component_types_are_refused(type_):
    issues = refused(one_node(type_))
    assert issues[0].code == IssueCode.NOT_ALLOWED and issues[0].node == "n"
    assert type_ in issues[0].message


@pytest.fixture
def tripwire(tmp_path: Path) -> Path:
    """A module on sys.path that leaves a marker file if anything imports it."""
    marker = tmp_path / "imported.marker"
    (tmp_path / "evilmod.py").write_text(textwrap.dedent(f"""
        import pathlib
        pathlib.Path({str(marker)!r}).write_text("imported")
        def cb(*a, **k): pass
        class Store: pass
        class Comp: pass
    """))
    return tmp_path


@pytest.mark.parametrize("definition", [
    one_node("evilmod.Comp"),
    one_node("haystack.components.writers.document_writer.DocumentWriter",
             "{document_store: {type: evilmod.Store, init_parameters: {}}}"),
    one_node(LLM, "{streaming_callback: evilmod.cb}"),
    one_node(ROUTER, "{routes: [], custom_filters: {f: evilmod.cb}}"),
    one_node("haystack.components.preprocessors.document_splitter.DocumentSplitter",
             "{split_by: function, splitting_function: evilmod.cb}"),
])
@pytest.mark.integration
def test_refused_before_the_named_module_is_imported(tripwire: Path, definition: str):
    # A separate interpreter, so that no earlier test has imported anything for us.
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tripwire)!r})
        from workflows.errors import WorkflowInvalid
        from workflows.io import import_text
        try:
            import_text({definition!r})
        except WorkflowInvalid as exc:
            print("REFUSED", [i.code for i in exc.issues])
        print("evilmod" in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "REFUSED" in result.stdout, result.stderr
    assert result.stdout.strip().endswith("False")
    assert not (tripwire / "imported.marker").exists()


def test_unsafe_router_is_refused():
    issues = refused(one_node(ROUTER, "{routes: [], unsafe: true}"))
    assert issues[0].code == IssueCode.DANGEROUS_PARAM and issues[0].port == "unsafe"
    assert "sandbox" in issues[0].message


def test_trust_remote_code_is_refused_even_when_nested():
    issues = refused(one_node(LOCAL_LLM, "{model: some/model, huggingface_pipeline_kwargs: {model_kwargs: {trust_remote_code: true}}}"))
    assert issues[0].code == IssueCode.DANGEROUS_PARAM and "trust_remote_code" in issues[0].message


@pytest.fixture
def operator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Set an operator's STACKYARD_* settings for one test (none by default)."""
    for name in ("STACKYARD_SECRET_ENV", "STACKYARD_FETCH_ALLOWED_HOSTS"):
        monkeypatch.delenv(name, raising=False)

    def configure(**settings: str) -> None:
        for name, value in settings.items():
            monkeypatch.setenv(f"STACKYARD_{name.upper()}", value)
        reset_settings_cache()

    configure()
    yield configure
    reset_settings_cache()


def llm(params: str) -> str:
    """A valid one-node workflow but for ``params``."""
    return one_node(LLM, params) + "inputs: {messages: n.messages}\n"


def secret(*names: str) -> str:
    return llm("{api_key: {type: env_var, env_vars: [" + ", ".join(names) + "], strict: false}}")


def test_secrets_cannot_read_stackyards_own_settings(operator):
    operator(secret_env="STACKYARD_DATABASE_URL")  # not even when an operator lists one
    issues = refused(secret("STACKYARD_DATABASE_URL"))
    assert issues[0].code == IssueCode.DANGEROUS_PARAM and "STACKYARD_DATABASE_URL" in issues[0].message


def test_secrets_may_name_only_the_variables_an_operator_granted(operator):
    (issue,) = refused(secret("OPENAI_API_KEY", "POSTGRES_PASSWORD"))
    assert (issue.code, issue.node, issue.port) == (IssueCode.DANGEROUS_PARAM, "n", "api_key")
    assert issue.field == "components.n.init_parameters.api_key.env_vars"
    assert "POSTGRES_PASSWORD" in issue.message and "STACKYARD_SECRET_ENV" in issue.message
    assert "OPENAI_API_KEY" in issue.message  # the default list, offered as the fix

    operator(secret_env="LLM_GATEWAY_KEY")
    assert import_text(secret("LLM_GATEWAY_KEY")).components["n"].type == LLM
    (issue,) = refused(secret("OPENAI_API_KEY"))  # the operator's list replaces the default one
    assert "OPENAI_API_KEY" in issue.message and "LLM_GATEWAY_KEY" in issue.message


def llm_calling(url: str, key: str = "api_base_url") -> str:
    params = f"{{http_client_kwargs: {{{key}: '{url}'}}}}" if key == "proxy" else f"{{{key}: '{url}'}}"
    return llm(params)


@pytest.mark.parametrize(("url", "key", "why"), [
    ("http://169.254.169.254/latest/meta-data/", "api_base_url", "cloud metadata"),
    ("http://[fd00:ec2::254]/v1", "api_base_url", "cloud metadata"),
    ("http://10.0.0.7:8000/v1", "api_base_url", "private"),
    ("http://127.0.0.1:5432/", "api_base_url", "loopback"),
    ("http://localhost:11434/v1", "api_base_url", "localhost"),
    ("http://ollama.localhost:11434/v1", "api_base_url", "loopback"),
    ("http://0.0.0.0:8000/v1", "api_base_url", "unspecified"),
    ("file:///etc/passwd", "api_base_url", "only http:// and https://"),
    ("gopher://example.com/", "api_base_url", "only http:// and https://"),
    ("http://10.1.2.3:3128", "proxy", "private"),
])
def test_outbound_urls_pass_the_fetchers_address_policy_at_validation(operator, url: str, key: str, why: str):
    (issue,) = refused(llm_calling(url, key))
    assert (issue.code, issue.node) == (IssueCode.DANGEROUS_PARAM, "n")
    assert issue.port == ("http_client_kwargs" if key == "proxy" else key) and issue.field.endswith(f".{key}")
    assert why in issue.message and url in issue.message and f"'{key}'" in issue.message
    if why != "only http:// and https://":
        assert "STACKYARD_FETCH_ALLOWED_HOSTS" in issue.message


def test_an_operator_admits_a_local_model_server(operator):
    operator(fetch_allowed_hosts="localhost:11434, 10.0.0.0/8")
    assert import_text(llm_calling("http://localhost:11434/v1"))
    assert import_text(llm_calling("http://10.0.0.7:8000/v1"))
    (issue,) = refused(llm_calling("http://localhost:8080/v1"))  # the entry names a port: only that one
    assert "localhost" in issue.message


def test_an_unresolvable_host_is_accepted_at_validation_but_not_when_the_pipeline_is_built_to_run(operator):
    from workflows.allowlist import check_params

    spec = import_text(llm_calling("http://llm.invalid:8000/v1"))  # .invalid never resolves (RFC 6761)
    params = spec.components["n"].init_parameters

    assert check_params("n", params) == []
    (issue,) = check_params("n", params, running=True)
    assert issue.port == "api_base_url" and "does not resolve" in issue.message
    assert "STACKYARD_FETCH_ALLOWED_HOSTS" in issue.message
    operator(fetch_allowed_hosts="llm.invalid")  # a host-name entry is trusted by name, unresolved
    assert check_params("n", params, running=True) == []


@pytest.mark.parametrize("template", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
])
def test_jinja_escapes_from_the_sandbox_are_refused_at_validation(template):
    issues = refused(one_node(PROMPT, "{template: " + repr(template) + "}"))
    assert issues[0].code == IssueCode.DANGEROUS_PARAM and (issues[0].node, issues[0].port) == ("n", "template")
    assert "private attribute" in issues[0].message


def test_jinja_in_user_input_is_not_evaluated():
    from workflows.execute import run_pipeline
    from workflows.validation import build_pipeline

    spec = import_text(one_node(PROMPT, "{template: 'Q: {{ q }}'}") + "inputs: {q: n.q}\noutputs: {prompt: n.prompt}\n")
    outputs = run_pipeline(spec, build_pipeline(spec), {"q": "{{ 7*7 }} {% for x in range(3) %}x{% endfor %}"})
    assert outputs["prompt"] == "Q: {{ 7*7 }} {% for x in range(3) %}x{% endfor %}"


def test_a_refused_import_stores_nothing(database):
    from sqlmodel import select

    from store.db import session_scope
    from workflows import crud
    from workflows.models import Workflow, WorkflowVersion

    good = import_text(one_node(PROMPT, "{template: 'Q: {{ q }}'}") + "inputs: {q: n.q}\n")
    bad = good.model_copy(deep=True)
    bad.components["x"] = bad.components["n"].model_copy(update={"type": "os.system"})
    with pytest.raises(WorkflowInvalid):
        with session_scope() as session:
            crud.import_definition(session=session, spec=bad, name="hostile")
    with pytest.raises(WorkflowInvalid):
        with session_scope() as session:
            crud.create_workflow(session=session, name="hostile2", spec=bad)
    with session_scope() as session:
        assert session.exec(select(Workflow)).all() == []
        assert session.exec(select(WorkflowVersion)).all() == []


def test_a_workflow_cannot_widen_the_url_guard():
    issues = refused(one_node("nodes.fetchers.GuardedLinkContentFetcher", "{allowed_hosts: ['0.0.0.0/0']}"))
    assert issues[0].code == IssueCode.DANGEROUS_PARAM and "STACKYARD_FETCH_ALLOWED_HOSTS" in issues[0].message


def test_a_pipeline_built_to_run_refuses_an_outbound_host_that_does_not_resolve(operator):
    from workflows.build import BuildMode
    from workflows.validation import build_pipeline

    spec = import_text(llm_calling("http://llm.invalid:8000/v1"))  # accepted while offline-tolerant
    with pytest.raises(WorkflowInvalid) as err:
        build_pipeline(spec, mode=BuildMode.RUN)
    (issue,) = err.value.issues
    assert (issue.node, issue.port) == ("n", "api_base_url") and "does not resolve" in issue.message


def test_an_empty_env_vars_names_its_param(operator):
    (issue,) = refused(secret())
    assert (issue.code, issue.node, issue.port) == (IssueCode.BAD_PARAM, "n", "api_key")
    assert issue.field == "components.n.init_parameters.api_key.env_vars"
    assert "'api_key' names no environment variable" in issue.message


@pytest.mark.parametrize("type_", ["haystack.components.fetchers.LinkContentFetcher",
                                   "haystack.components.fetchers.link_content.LinkContentFetcher"])
def test_haystacks_fetcher_is_refused_naming_the_guarded_one(type_: str):
    (issue,) = refused(one_node(type_) + "inputs: {urls: n.urls}\n")
    assert (issue.code, issue.node) == (IssueCode.NOT_ALLOWED, "n")
    assert "nodes.fetchers.GuardedLinkContentFetcher" in issue.message and "STACKYARD_FETCH_ALLOWED_HOSTS" in issue.message
