"""Schemathesis hooks of the fuzz pass (``SCHEMATHESIS_HOOKS=tests.support.fuzz_hooks``, set by
:func:`tests.support.fuzz.run_fuzz`).

Path parameters sometimes name the objects :func:`tests.support.fuzz.seed` stored (their ids arrive in
``STACKYARD_FUZZ_KNOWN``), so generated requests get past "404 no such workflow" into the code behind it.
Only GET and POST operations get them: a DELETE or rename of the seeded workflow would leave every later
request a 404 again.

One check is answered here rather than by the API: ``/api/v1/workflows/import`` is also the workflow named
"import" (``/api/v1/workflows/{ref}``), and ``/api/v1/schedules/preview`` the schedule named "preview", so the
``Allow`` header of a 405 there rightly lists those templates' methods too. The check reads the allowed
methods off one template, so its complaint about exactly these two paths is dropped.
"""

from __future__ import annotations

import json
import os
import re

import schemathesis
from hypothesis import strategies as st

KNOWN: dict[str, str] = json.loads(os.environ.get("STACKYARD_FUZZ_KNOWN", "{}"))
_KEEPS_OBJECTS = frozenset({"GET", "POST"})
_SHARED_PATHS = frozenset({"/api/v1/workflows/import", "/api/v1/schedules/preview"})


def known_parameters(path: str) -> dict[str, object] | None:
    """Path parameters of ``path`` (an OpenAPI template) that name seeded objects, or None."""
    names = re.findall(r"{(\w+)}", path)
    if not names or not KNOWN:
        return None
    ref = KNOWN["schedule"] if path.startswith("/api/v1/schedules/") else KNOWN["workflow"]
    values = {"ref": ref, "number": 1, "run_id": KNOWN["run"], "job_id": KNOWN["job"], "slug": KNOWN["slug"],
              "key_id": KNOWN["key_id"]}
    return {name: values[name] for name in names} if all(name in values for name in names) else None


@schemathesis.hook
def before_generate_path_parameters(context: schemathesis.HookContext, strategy: st.SearchStrategy) -> st.SearchStrategy:
    operation = context.operation
    if operation is None or operation.method.upper() not in _KEEPS_OBJECTS:
        return strategy
    known = known_parameters(operation.path)
    return st.one_of(strategy, st.just(known)) if known else strategy


@schemathesis.hook
def filter_failure(context: schemathesis.HookContext, failure, case: schemathesis.Case, response) -> bool:
    return not (failure.code == "ST205" and case.operation.path in _SHARED_PATHS)
