"""Workflow and run helpers shared by test modules (fixtures that use them live in ``tests/conftest.py``)."""

from __future__ import annotations

from tests.support.specs import PROMPT, greet

GREET_YAML = f"components:\n  p: {{type: {PROMPT}, init_parameters: {{template: 'Hi {{{{ name }}}}'}}}}\ninputs: {{name: p.name}}\n"


def billion_laughs(levels: int = 7) -> str:
    """A valid workflow whose metadata is nested aliases: each level repeats the one before nine times
    (unchecked, 7 levels of it were stored as a 30 MB version)."""
    lines = [GREET_YAML.rstrip("\n"), "metadata:", '  l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        lines.append(f"  l{level}: &l{level} [" + ",".join([f"*l{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def create_greet(name: str = "greet") -> str:
    """Store a one-node workflow (input ``name``, output ``greeting``) in the current database; its name."""
    from store.db import session_scope
    from workflows import crud
    from workflows.spec import spec_from_dict

    with session_scope() as session:
        crud.create_workflow(session=session, name=name, spec=spec_from_dict(greet()))
    return name


def new_run(workflow: str) -> str:
    """Queue a run of ``workflow`` (not sent to any broker); its id."""
    from runs import lifecycle
    from store.db import session_scope

    with session_scope() as session:
        return lifecycle.create_run(session=session, workflow_ref=workflow, inputs={"name": "Ada"}).id


def state_of(run_id: str):  # noqa: ANN201 - a Run row
    from runs import lifecycle
    from store.db import session_scope

    with session_scope() as session:
        return lifecycle.get_run(session=session, run_id=run_id)
