"""The ``stackyard`` command line.

    stackyard validate FILE                 check a Haystack/Hayhooks YAML file
    stackyard run FILE --inputs JSON        run it in this process and print the outputs
    stackyard import FILE [--name N]        store it as a workflow (or a new version of N)
    stackyard export NAME[@VERSION]         print a stored version as Haystack YAML
    stackyard templates                     list the starter templates
    stackyard list                          list stored workflows
    stackyard migrate                       bring the database schema up to date
    stackyard publish WORKFLOW[@VERSION] --slug SLUG / unpublish SLUG
    stackyard keys create [--app SLUG] [--rate N] / keys list / keys revoke ID
    stackyard eval import FILE --set SET / eval run WORKFLOW[@VERSION] --set SET [--gate --threshold M=MIN] / eval compare A --set B
    stackyard kb list / kb create NAME [--length N --overlap N --parent-length N] / kb add NAME PATH... / kb docs NAME /
                 kb query NAME TEXT [--top-k N]        knowledge bases (a worker indexes what ``add`` queues)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from stackyard import cli_eval
from stackyard.errors import StackyardError
from workflows.errors import WorkflowInvalid


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SystemExit(f"error: cannot read {path}: {exc.strerror}") from None


def _print_issues(issues) -> None:
    for issue in issues:
        where = ".".join(part for part in (issue.node, issue.port) if part) or issue.field or "workflow"
        print(f"  [{issue.code}] {where}: {issue.message}", file=sys.stderr)


def cmd_validate(args: argparse.Namespace) -> int:
    from workflows.io import import_text

    import_text(_read(args.file))
    print(f"{args.file}: valid")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from haystack.core.errors import PipelineRuntimeError

    from stackyard.redact import redact
    from worker.cache import WarmPipelines
    from workflows.execute import run_pipeline
    from workflows.io import import_text

    try:
        inputs = json.loads(args.inputs)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"error: --inputs is not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(inputs, dict):
        raise SystemExit('error: --inputs must be a JSON object such as {"query": "..."}')
    spec = import_text(_read(args.file))
    _, pipeline, _ = WarmPipelines(size=1).get(args.file, lambda: spec)  # a model that cannot load names its node
    try:
        outputs = run_pipeline(spec, pipeline, inputs)
    except PipelineRuntimeError as exc:  # Haystack's message names the node that failed
        raise SystemExit(f"error: {redact(str(exc))}") from None
    print(json.dumps(outputs, indent=2, ensure_ascii=False))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from store.db import migrate, session_scope
    from workflows import crud
    from workflows.io import import_text

    spec = import_text(_read(args.file))
    migrate()
    name = args.name or Path(args.file).stem
    with session_scope() as session:
        version = crud.import_definition(session=session, spec=spec, name=name)
        print(f"imported {name}@{version.number} (workflow id {version.workflow_id})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from store.db import migrate, session_scope
    from workflows import crud
    from workflows.io import export_yaml

    name, _, number = args.ref.partition("@")
    if number and not number.isdigit():
        raise SystemExit(f"error: version must be a number, as in {name}@3")
    migrate()
    with session_scope() as session:
        version = crud.get_version(session=session, ref=name, number=int(number) if number else None)
        sys.stdout.write(export_yaml(crud.version_spec(version)))
    return 0


def cmd_templates(_: argparse.Namespace) -> int:
    from workflows.spec import parse_definition
    from workflows.templates import template_names, template_path

    for name in template_names():
        path = template_path(name)
        meta = parse_definition(path.read_text()).metadata
        print(f"{name:12} {meta.get('title', '')} — {meta.get('description', '')}\n{'':12} {path}")
    return 0


def cmd_list(_: argparse.Namespace) -> int:
    from store.db import migrate, session_scope
    from workflows import crud

    migrate()
    with session_scope() as session:
        for workflow in crud.list_workflows(session=session):
            versions = crud.list_versions(session=session, ref=workflow.id)
            print(f"{workflow.name:30} {len(versions)} version(s)  id {workflow.id}")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from apps import checks, publishing
    from store.db import migrate, session_scope

    name, _, number = args.ref.partition("@")
    if number and not number.isdigit():
        raise SystemExit(f"error: version must be a number, as in {name}@3")
    migrate()
    with session_scope() as session:
        try:
            given = {"message": args.message, "history": args.history, "reply": args.reply, "sources": args.sources}
            publication, result = checks.publish_checked(session, ref=name, slug=args.slug,
                                                         version=int(number) if number else None, given=given,
                                                         check=not args.no_check, force=args.force,
                                                         max_concurrency=args.max_concurrency)
        except checks.PublishCheckFailed as exc:
            raise SystemExit(f"error: {exc} Or pass --force (publish and warn) or --no-check.") from None
        except publishing.BadPublication as exc:
            if exc.field in ("message", "history", "reply", "sources"):
                raise SystemExit(f"error: {exc} Or pass --{exc.field} NAME.") from None
            raise
        live = publishing.live_version_numbers(session=session, workflow_id=publication.workflow_id)[publication.slug]
    print(f"published {name}@{live} as '{args.slug}': POST /v1/chat/completions with model '{args.slug}'")
    if result is not None and result.ok:
        print(f"checked: it answered {checks.DEFAULT_MESSAGE!r} with {result.reply[:200]!r}")
    if publication.check_warning:
        print(f"warning: {publication.check_warning}", file=sys.stderr)
    return 0


def cmd_unpublish(args: argparse.Namespace) -> int:
    from apps import publishing
    from store.db import migrate, session_scope

    migrate()
    with session_scope() as session:
        publishing.unpublish(session=session, slug=args.slug)
    print(f"unpublished '{args.slug}'")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from apps import keys, publishing
    from store.db import migrate, session_scope

    migrate()
    with session_scope() as session:
        if args.action == "create":
            if args.app:
                publishing.get_publication(session=session, slug=args.app)
            row, key = keys.create_key(session=session, name=args.name or "", app_slug=args.app, rate_per_minute=args.rate)
            print(key)
            print(f"# id {row.id}, scope {row.app_slug or 'all apps'}, {row.rate_per_minute} requests/min. "
                  "Shown once: only its hash is stored.", file=sys.stderr)
        elif args.action == "list":
            for row in keys.list_keys(session=session):
                state = "revoked" if row.revoked_at else f"last used {row.last_used_at or 'never'}"
                print(f"{row.id}  {row.prefix}…  {row.app_slug or '*':20} {row.rate_per_minute:>6}/min  {state}  {row.name}")
        else:
            if not args.id:
                raise SystemExit("error: keys revoke needs the key id (see `stackyard keys list`)")
            row = keys.revoke_key(session=session, key_id=args.id)
            print(f"revoked {row.prefix}…")
    return 0


def cmd_kb(args: argparse.Namespace) -> int:
    from apps.publishing import apps_using_knowledge_base
    from knowledge import bases, generations, lifecycle, queries
    from knowledge.documents import file_sources
    from knowledge.settings import Chunking
    from stackyard.settings import get_settings
    from store.db import migrate, session_scope
    from worker.enqueue import enqueue_documents

    migrate()
    settings, queued = get_settings(), []
    args.length_set, args.overlap_set = args.length is not None, args.overlap is not None
    args.length = 200 if args.length is None else args.length
    args.overlap = 20 if args.overlap is None else args.overlap
    if args.action != "list" and not args.name:
        raise SystemExit(f"error: kb {args.action} needs the knowledge base's name")
    with session_scope() as session:
        if args.action == "list":
            for base in bases.list_all(session):
                counted = lifecycle.counts(session, base.id)
                status = lifecycle.status(counted, reindexing=base.next_generation is not None)
                print(f"{base.name:30} {status:10} {counted['done']:>5} documents {counted['chunks']:>7} "
                      f"chunks  generation {base.generation}  {base.embedding_model}")
        elif args.action == "create":
            base = bases.create(session, settings, name=args.name, chunking=Chunking(
                length=args.length, overlap=args.overlap, parent_length=args.parent_length or None))
            print(f"created '{base.name}' ({base.embedding_model}, chunks of {args.length} words"
                  f"{f', parents of {args.parent_length}' if args.parent_length else ''})")
        elif args.action == "add":
            if not args.rest:
                raise SystemExit("error: kb add needs files or folders under the files root")
            added = bases.add_documents(session, bases.get(session, args.name), file_sources(args.rest))
            queued = [d.id for d in added.added]
            for skipped in added.skipped:
                print(f"skipped {skipped['name']}: {skipped['reason']}")
        elif args.action == "docs":
            for document in bases.documents(session, bases.get(session, args.name)):
                print(f"{document.id}  {document.state.value:9} {document.progress:>4.0%} {document.chunk_count:>6} chunks  "
                      f"{document.name}{'  ' + document.error if document.error else ''}")
        elif args.action == "reindex":
            base = bases.get(session, args.name)
            current = Chunking(**base.chunking)
            chunking = Chunking(**{**current.model_dump(),
                                   "length": args.length if args.length_set else current.length,
                                   "overlap": args.overlap if args.overlap_set else current.overlap,
                                   "parent_length": current.parent_length if args.parent_length is None
                                   else args.parent_length or None})
            queued = generations.start(session, base, settings, chunking=chunking, embedding_model=args.model,
                                       apps=apps_using_knowledge_base(session, base.name))
            print(f"re-indexing '{base.name}' with chunks of {chunking.length}; generation {base.generation} answers "
                  "until the new one holds every document")
        else:
            answer = queries.ask(session, bases.get(session, args.name), " ".join(args.rest), settings,
                                 mode=args.mode, top_k=args.top_k)
            print(f"{len(answer.hits)} hit(s), {answer.mode} (scores: {answer.scale}), generation {answer.generation}"
                  + (f"\n{answer.notice}" if answer.notice else ""))
            for hit in answer.hits:
                print(f"{hit['score']:.3f}  {hit['chunk_id']}  {hit['document']}:{hit['position']}  "
                      f"{hit['text'][:100]!r}")
    if queued:
        enqueue_documents(queued)
        print(f"queued {len(queued)} document(s) for indexing (a worker on the gpu queue indexes them: "
              f"`stackyard kb docs {args.name}` shows their progress)")
    return 0


def cmd_migrate(_: argparse.Namespace) -> int:
    from store.db import migrate

    migrate()
    print("database schema is up to date")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stackyard", description="Build, run and serve Haystack workflows.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.set_defaults(fn=fn)
        return p

    add("validate", cmd_validate, "check a workflow YAML file").add_argument("file")
    p = add("run", cmd_run, "run a workflow YAML file in this process and print its outputs")
    p.add_argument("file")
    p.add_argument("--inputs", default="{}", help='JSON object of declared inputs, e.g. \'{"query": "hi"}\'')
    p = add("import", cmd_import, "store a Haystack/Hayhooks YAML file as a workflow version")
    p.add_argument("file")
    p.add_argument("--name", help="workflow name (default: the file name); an existing name gets a new version")
    add("export", cmd_export, "print a stored version as Haystack YAML").add_argument("ref", metavar="NAME[@VERSION]")
    add("templates", cmd_templates, "list starter templates")
    add("list", cmd_list, "list stored workflows")
    add("migrate", cmd_migrate, "bring the database schema up to date")
    p = add("publish", cmd_publish, "serve a version as a chat app")
    p.add_argument("ref", metavar="WORKFLOW[@VERSION]")
    p.add_argument("--slug", required=True)
    for role in ("message", "history", "reply", "sources"):
        p.add_argument(f"--{role}", help=f"declared {'input' if role in ('message', 'history') else 'output'} for the chat {role}")
    p.add_argument("--max-concurrency", type=int, dest="max_concurrency")
    p.add_argument("--no-check", action="store_true", dest="no_check",
                   help="do not send a test message through the version on a worker first (the app shows a warning)")
    p.add_argument("--force", action="store_true", help="publish even if the test message fails (the app shows why)")
    add("unpublish", cmd_unpublish, "stop serving a chat app").add_argument("slug")
    cli_eval.add_parser(add)
    p = add("keys", cmd_keys, "create, list or revoke API keys")
    p.add_argument("action", choices=["create", "list", "revoke"])
    p.add_argument("id", nargs="?", help="key id or prefix (revoke)")
    p.add_argument("--app", help="limit the key to this app slug")
    p.add_argument("--rate", type=int, default=60, help="requests per minute")
    p.add_argument("--name")
    p = add("kb", cmd_kb, "knowledge bases: list, create, add files, list documents, test a query, re-index")
    p.add_argument("action", choices=["list", "create", "add", "docs", "query", "reindex"])
    p.add_argument("name", nargs="?")
    p.add_argument("rest", nargs="*", metavar="PATH_OR_QUERY")
    p.add_argument("--length", type=int, default=None, help="create, reindex: words per chunk (create: 200)")
    p.add_argument("--overlap", type=int, default=None,
                   help="create, reindex: words a chunk repeats from the one before (create: 20)")
    p.add_argument("--parent-length", type=int, default=None, dest="parent_length",
                   help="create, reindex: parent–child chunking, parents of this many words (reindex: 0 for none)")
    p.add_argument("--model", default=None, help="reindex: another embedding model")
    p.add_argument("--mode", choices=["dense", "keyword", "hybrid"], default=None, help="query: default the base's")
    p.add_argument("--top-k", type=int, default=None, dest="top_k", help="query: chunks to return")
    _add_process_commands(sub)
    return parser


def _add_process_commands(sub: argparse._SubParsersAction) -> None:
    from stackyard.processes import register

    register(sub)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except WorkflowInvalid as exc:
        print(f"error: the workflow is invalid ({len(exc.issues)} problem(s)):", file=sys.stderr)
        _print_issues(exc.issues)
        return 1
    except StackyardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
