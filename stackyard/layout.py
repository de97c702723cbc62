"""Stackyard's rooms and the rules between them, checked from the source.

``python -m stackyard.layout`` prints each top-level package with its line count, the packages it may import
and the ones it does, then every broken rule; it exits 1 when a rule is broken. The rules:

- a package imports only the packages :data:`ROOMS` allows it (so dependencies point one way);
- no import cycle between top-level packages, nor between modules; ``api`` and ``ui`` never import each other;
- no module imports another module's ``_private`` name (``from a.b import _x``, or ``b._x`` on an imported
  module), nor another package's private module (``a._b``);
- state decisions live in their lifecycle modules (:data:`STATE_OWNERS`): elsewhere a state enum's member is
  only compared with, never passed, returned or stored; and states are compared by their enum, not spelled
  as strings;
- one compare-and-set writes every ``state`` column: no other ``UPDATE … SET state`` and no ``row.state =``;
- one convention for sessions: a function that takes one takes it first, as ``session``, not keyword-only
  (a route handler's ``SessionDep`` is injected by name, wherever it stands); whoever opens a session
  commits it (``store.db``'s scopes, ``api.deps.SessionDep``), and only the modules in :data:`COMMITTERS`
  commit inside: a step other processes must see before it returns (a claim, a dispatch plan, a run or
  job written before its message is sent).

Imports are read with :mod:`ast`, those inside functions included: an import moved into a function to dodge
a cycle is still a dependency.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The rooms from the top down, with what each holds. A room may import the rooms listed after it, except that
# api and ui sit side by side: neither may import the other (``NEVER``).
_TOP_DOWN = (
    ("stackyard", "settings, logs, redaction, the error base, JSON limits; the CLI, processes, web app and this check"),
    ("ui", "Gradio pages and their static files"),
    ("api", "FastAPI: app, errors, auth and admin sessions, metrics, thin routes, request and response shapes"),
    ("apps", "published apps: their tables, publishing, API keys, limits, chat serving (one reply reader)"),
    ("worker", "Celery: app, tasks, the attempt executor, reaper, model cache"),
    ("conversations", "chat apps' conversations: threads and exchanges, memory, logs, feedback"),
    ("evaluations", "test sets and their revisions, evaluation runs (a batch job, then scoring), metrics, "
                    "comparison and the publishing gate"),
    ("jobs", "batch jobs and schedules: their tables, lifecycle, sources, dispatch, stats"),
    ("runs", "runs: their tables, the lifecycle (every run decision), the attempt policy runs and job items share, "
             "the trace, worker liveness, stats"),
    ("workflows", "the definition: spec, allowlist, validation, build, io, execute, graph, palette, versions"),
    ("knowledge", "knowledge bases: their tables, documents (reading, chunking), the indexing lifecycle and worker "
                  "step, the index and the one retrieval path"),
    ("store", "persistence plumbing: engine and sessions, race handling, the compare-and-set, migrations"),
    ("nodes", "the palette's catalog and Stackyard's own components"),
)
NEVER = (("api", "ui"), ("ui", "api"))
# Each room: (what it holds, the rooms it may import).
ROOMS: dict[str, tuple[str, frozenset[str]]] = {
    name: (what, frozenset(below for below, _ in _TOP_DOWN[index + 1:]) - {other for room, other in NEVER if room == name})
    for index, (name, what) in enumerate(_TOP_DOWN)}
# Modules of the base package every room may use: they import no room.
BASE = "stackyard"
BASE_MODULES = frozenset({"stackyard", "stackyard.settings", "stackyard.logs", "stackyard.redact", "stackyard.errors",
                          "stackyard.json_limits"})
# Alembic loads these by path; nothing imports them. Revisions are frozen history, and env.py gathers
# every room's tables: the one place allowed to look at all of them.
SCRIPTS = ("store.migrations",)
# Each state enum, and the modules that decide its moves (the enum's own module defines it).
STATE_OWNERS: dict[str, frozenset[str]] = {
    "RunState": frozenset({"runs.lifecycle", "runs.models"}),
    "NodeState": frozenset({"runs.trace", "runs.models"}),
    "JobState": frozenset({"jobs.lifecycle", "jobs.dispatch", "jobs.models"}),
    "ItemState": frozenset({"jobs.lifecycle", "jobs.dispatch", "jobs.models"}),
    "ScheduleState": frozenset({"jobs.schedules", "jobs.models"}),
    "FireState": frozenset({"jobs.schedules", "jobs.models"}),
    "DocState": frozenset({"knowledge.lifecycle", "knowledge.models"}),
    "EvalState": frozenset({"evaluations.lifecycle", "evaluations.models"}),
}
THE_CAS = "store.transitions"
COMMITTERS = frozenset({"store.db", "store.transitions", "runs.lifecycle", "jobs.lifecycle", "jobs.dispatch",
                        "jobs.schedules", "evaluations.lifecycle"})


@dataclass(frozen=True)
class Import:
    module: str         # the importing module, dotted
    target: str         # the imported module, dotted
    name: str | None    # the name taken from it (``from target import name``), if any
    line: int


@dataclass
class Report:
    lines: dict[str, int] = field(default_factory=dict)
    uses: dict[str, set[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def modules(root: Path = ROOT) -> Iterator[tuple[str, Path]]:
    """Every module of every room: its dotted name and file."""
    for package in ROOMS:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            dotted = ".".join(parts)
            if any(dotted == script or dotted.startswith(script + ".") for script in SCRIPTS):
                continue
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


@dataclass(frozen=True)
class Facts:
    """What the rules need of one module: its line count, project imports and own broken rules."""
    lines: int
    imports: tuple[Import, ...]
    problems: tuple[str, ...]


# (module, is a package, source text, the project's modules) → its facts: the analysis is a function of these,
# so checking a copy of the project with one file changed reads only that file afresh.
_FACTS: dict[tuple[str, bool, str, frozenset[str]], Facts] = {}


def facts(name: str, path: Path, known: frozenset[str]) -> Facts:
    source = path.read_text(encoding="utf-8")
    key = (name, path.name == "__init__.py", source, known)
    if key not in _FACTS:
        if len(_FACTS) > 4096:
            _FACTS.clear()
        tree = ast.parse(source, filename=str(path))
        _FACTS[key] = Facts(len(source.splitlines()), tuple(imports_of(name, path, tree, known)),
                            (*state_problems(name, tree), *session_problems(name, tree)))
    return _FACTS[key]


def imports_of(name: str, path: Path, tree: ast.Module, known: frozenset[str]) -> Iterator[Import]:
    """The project imports of one module, resolved to the modules they name."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    aliases: dict[str, str] = {}   # a local name bound to a project module
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _room(alias.name):
                    yield Import(name, alias.name, None, node.lineno)
                    aliases[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            if not _room(base):
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in known:   # ``from a import b`` where b is a module
                    yield Import(name, submodule, None, node.lineno)
                    aliases[alias.asname or alias.name] = submodule
                else:
                    yield Import(name, base, alias.name, node.lineno)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and _private(node.attr)):
            yield Import(name, aliases[node.value.id], node.attr, node.lineno)


def check(root: Path = ROOT) -> Report:
    """Line counts, package dependencies and every broken rule of the tree at ``root``."""
    report = Report()
    found = dict(modules(root))
    known = frozenset(found)
    edges: list[Import] = []
    for name, path in found.items():
        module = facts(name, path, known)
        room = name.split(".")[0]
        report.lines[room] = report.lines.get(room, 0) + module.lines
        edges.extend(module.imports)
        report.problems.extend(module.problems)
    for edge in edges:
        source, target = edge.module.split(".")[0], edge.target.split(".")[0]
        where = f"{edge.module}:{edge.line}"
        if source != target and not (target == BASE and edge.target in BASE_MODULES):
            report.uses.setdefault(source, set()).add(target)
            if (source, target) in NEVER:
                report.problems.append(f"{where} imports {edge.target}: api and ui never import each other; move "
                                       "what both need into the room below them")
            elif target not in ROOMS[source][1]:
                report.problems.append(f"{where} imports {edge.target}: {source} may import only "
                                       f"{_names(ROOMS[source][1])}")
        if edge.name and _private(edge.name) and edge.target != edge.module:
            report.problems.append(f"{where} uses {edge.target}.{edge.name}, a private name of another module; "
                                   "make it public or move the caller next to it")
        if any(_private(part) for part in edge.target.split(".")[1:]) and edge.target != edge.module \
                and edge.target.rpartition(".")[0] != edge.module.rpartition(".")[0]:
            report.problems.append(f"{where} imports {edge.target}, a private module of another package")
    for cycle in cycles(report.uses):
        report.problems.append("import cycle between packages: " + " → ".join([*cycle, cycle[0]]))
    between_modules: dict[str, set[str]] = {}
    for edge in edges:
        if edge.target in known and edge.target != edge.module and not edge.module.startswith(edge.target + "."):
            between_modules.setdefault(edge.module, set()).add(edge.target)
    for cycle in cycles(between_modules):
        report.problems.append("import cycle between modules: " + " → ".join([*cycle, cycle[0]])
                               + "; move what they share into one of them or a module both import")
    return report


def state_problems(name: str, tree: ast.AST) -> Iterator[str]:
    """Where module ``name`` decides a state it does not own, spells one as a string, or writes one itself."""
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        where = f"{name}:{getattr(node, 'lineno', 0)}"
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in STATE_OWNERS
                and node.attr.isupper() and name not in STATE_OWNERS[node.value.id] and not _compared(node, parents)):
            yield (f"{where} decides a {node.value.id} ({node.value.id}.{node.attr}) outside "
                   f"{_names(STATE_OWNERS[node.value.id] - {'runs.models', 'jobs.models'})}: ask the lifecycle "
                   "module for the move, or only compare with the state")
        elif isinstance(node, ast.Compare) and any(_is_state(side) for side in (node.left, *node.comparators)) and any(
                _spelled(side) for side in (node.left, *node.comparators)):
            yield f"{where} spells a state as a string; compare with the state enum (or its lifecycle's sets)"
        elif name != THE_CAS and _writes_state(node):
            yield f"{where} writes a state column itself; move the state through its lifecycle's transition"


def session_problems(name: str, tree: ast.AST) -> Iterator[str]:
    """Where module ``name`` takes a session other than first, or commits one it did not open."""
    for node in ast.walk(tree):
        where = f"{name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not _injected(node):
            positional = [arg.arg for arg in (*node.args.posonlyargs, *node.args.args)
                          if arg.arg not in ("self", "cls")]
            if "session" in [arg.arg for arg in node.args.kwonlyargs] or (
                    "session" in positional and positional[0] != "session"):
                yield f"{where} {node.name}() takes its session other than first; make `session` its first parameter"
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "commit"
              and isinstance(node.func.value, ast.Name) and node.func.value.id == "session" and name not in COMMITTERS):
            yield (f"{where} commits a session it did not open; leave the commit to whoever opened it (or move "
                   "the step into a lifecycle module)")


def _injected(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A route handler's ``session: SessionDep`` is injected by name, wherever it stands."""
    return any(arg.arg == "session" and isinstance(arg.annotation, ast.Name) and arg.annotation.id == "SessionDep"
               for arg in (*node.args.args, *node.args.kwonlyargs))


def _compared(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """``node`` only takes part in a comparison (``x.state == S.A``, ``x in (S.A, S.B)``, ``S.A.value != y``)."""
    up = parents.get(node)
    while isinstance(up, ast.Attribute | ast.Tuple | ast.List | ast.Set) or (
            isinstance(up, ast.Call) and isinstance(up.func, ast.Name) and up.func.id in ("frozenset", "set", "tuple")):
        up = parents.get(up)
    return isinstance(up, ast.Compare | ast.MatchValue)


def _is_state(node: ast.AST) -> bool:
    if isinstance(node, ast.Attribute) and node.attr == "value":
        node = node.value
    return isinstance(node, ast.Attribute) and node.attr == "state"


def _spelled(node: ast.AST) -> bool:
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(_spelled(element) for element in node.elts)
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _writes_state(node: ast.AST) -> bool:
    """``UPDATE … .values(state=…)`` / ``.values({"state": …})`` / ``.values(**columns)``, or ``row.state = …``."""
    if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return any(isinstance(target, ast.Attribute) and target.attr == "state" for target in targets)
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "values"):
        return False
    chain: ast.AST = node.func.value
    while isinstance(chain, ast.Call | ast.Attribute):
        if isinstance(chain, ast.Call) and isinstance(chain.func, ast.Name) and chain.func.id == "update":
            # ``**values`` may hold ``state``: the check cannot tell, so it counts as a write.
            return any(keyword.arg in ("state", None) for keyword in node.keywords) or any(
                isinstance(arg, ast.Dict) and any(isinstance(key, ast.Constant) and key.value == "state"
                                                  for key in arg.keys) for arg in node.args)
        chain = chain.func if isinstance(chain, ast.Call) else chain.value
    return False


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one package (Tarjan), each in a stable order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def render(report: Report) -> str:
    width = max(map(len, ROOMS))
    rows = [f"{'package':<{width}}  {'lines':>6}  may import → imports", "-" * 80]
    for room, (what, allowed) in ROOMS.items():
        rows.append(f"{room:<{width}}  {report.lines.get(room, 0):>6}  {_names(allowed)} → "
                    f"{_names(report.uses.get(room, set()))}")
        rows.append(f"{'':<{width}}          {what}")
    rows.append("")
    rows.extend(f"✗ {problem}" for problem in report.problems)
    rows.append(f"{len(report.problems)} broken rule(s)" if report.problems else "✓ every rule holds")
    return "\n".join(rows)


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = ".".join(parts[: len(parts) - node.level + 1])
    return f"{base}.{node.module}" if node.module else base


def _room(module: str) -> bool:
    return module.split(".")[0] in ROOMS


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _names(rooms: Iterable[str]) -> str:
    return ", ".join(sorted(rooms)) or "nothing"


def main(root: Path = ROOT) -> int:
    report = check(root)
    print(render(report))
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
