"""Hostile definitions are refused before anything they name is imported, and nothing is stored."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

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


def test_secrets_cannot_read_stackyards_own_settings():
    issues = refused(one_node(LLM, "{api_key: {type: env_var, env_vars: [STACKYARD_DATABASE_URL], strict: false}}"))
    assert issues[0].code == IssueCode.DANGEROUS_PARAM and "STACKYARD_DATABASE_URL" in issues[0].message


@pytest.mark.parametrize("template", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
])
def test_jinja_escapes_from_the_sandbox_are_refused_at_validation(template):
    issues = refused(one_node(PROMPT, "{template: " + repr(template) + "}"))
    assert issues[0].code == IssueCode.DANGEROUS_PARAM and (issues[0].node, issues[0].port) == ("n", "template")
    assert "private attribute" in issues[0].message


def test_jinja_in_user_input_is_not_evaluated():
    from workflows.build import build_pipeline
    from workflows.execute import run_pipeline

    spec = import_text(one_node(PROMPT, "{template: 'Q: {{ q }}'}") + "inputs: {q: n.q}\noutputs: {prompt: n.prompt}\n")
    outputs = run_pipeline(spec, build_pipeline(spec), {"q": "{{ 7*7 }} {% for x in range(3) %}x{% endfor %}"})
    assert outputs["prompt"] == "Q: {{ 7*7 }} {% for x in range(3) %}x{% endfor %}"


def test_a_refused_import_stores_nothing(database):
    from sqlmodel import select

    from workflows import crud
    from workflows.db import session_scope
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
