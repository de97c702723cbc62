"""Files under the files root (``STACKYARD_FILES_ROOT``), and nothing else.

:func:`confine_path` turns a user-supplied path into a real path inside the root, refusing ``..`` escapes,
absolute paths elsewhere, links that lead out and NUL bytes with :class:`~nodes.errors.FileAccessError`.
:func:`confine_file_inputs` makes a component that opens files (every Haystack converter) apply it to each
path it is given, whatever fed it: a declared input, a router, a prompt, a joiner. :func:`confine_model_path`
does the same for local model folders, against the model roots. :class:`FileSource` is the canvas's
"Files" node: it expands paths, folders and glob patterns into the list of files that Haystack's
converters take as ``sources``.

The check is made when it runs: a link swapped in between the check and the read is not caught, so
whoever can write under the root must be trusted not to plant links (workflow authors cannot).

Example::

    from nodes.files import FileSource, confine_file_inputs, confine_path

    confine_path("reports/q1.pdf")         # PosixPath('<root>/reports/q1.pdf')
    confine_path("../../etc/passwd")       # raises FileAccessError
    FileSource().run(paths=["reports", "notes/*.md"])["sources"]
    # [<root>/reports/q1.pdf, <root>/reports/q2.pdf, <root>/notes/a.md]
    loader = confine_file_inputs(TextFileToDocument())
    loader.run(sources=["/etc/passwd"])    # raises FileAccessError
"""

from __future__ import annotations

import inspect
import os
import typing
from collections.abc import Iterable
from pathlib import Path, PurePath
from types import MethodType
from typing import Any, TypeVar

from haystack import component

from nodes.errors import FileAccessError
from stackyard.settings import Settings, get_settings

_GLOB_CHARS = frozenset("*?[")
_FIX = ("Use a path relative to the files root, without '..' or links that lead out of it, or move the file "
        "under the root (an operator sets it with STACKYARD_FILES_ROOT).")
_MODEL_FIX = ("Use a hub model name, a name mapped in STACKYARD_MODEL_PATHS, or a folder under one of these roots "
              "(relative paths start at the files root); an operator adds folders with STACKYARD_MODEL_ROOTS.")

T = TypeVar("T")


def confine_path(path: str | Path, root: Path | None = None, *, field: str = "sources") -> Path:
    """Resolve ``path`` (relative to ``root``, or absolute) to a real path that lies inside ``root``.

    :param path: The user-supplied path; it need not exist.
    :param root: The folder to stay in; the settings' files root when None.
    :param field: The input the path came from, recorded on the error.
    :returns: The absolute path with every link resolved.
    :raises FileAccessError: if the path is empty, holds a NUL byte, or leads outside the root.
    """
    base = Path(root if root is not None else get_settings().resolved_files_root).resolve()
    return _confine(str(path), base, (base,), field=field, place="files root", fix=_FIX)


def confine_model_path(path: str | Path, settings: Settings | None = None, *, field: str = "model") -> Path:
    """Resolve a local model folder (relative to the files root, or absolute) inside one of :func:`model_roots`.

    :param path: The user-supplied model path; it need not exist.
    :param settings: Where the roots come from; the process settings when None.
    :param field: The parameter the path came from, recorded on the error.
    :returns: The absolute path with every link resolved.
    :raises FileAccessError: if the path is empty, holds a NUL byte, or leads outside every model root; the
        message names STACKYARD_MODEL_ROOTS.
    """
    settings = settings or get_settings()
    return _confine(str(path), settings.resolved_files_root, model_roots(settings), field=field,
                    place="model roots", fix=_MODEL_FIX)


def model_roots(settings: Settings | None = None) -> tuple[Path, ...]:
    """Folders local models may load from: the files root, STACKYARD_MODEL_PATHS' folders, STACKYARD_MODEL_ROOTS."""
    settings = settings or get_settings()
    folders = [settings.resolved_files_root, *map(Path, settings.model_paths.values()), *settings.model_roots]
    return tuple(dict.fromkeys(Path(folder).resolve() for folder in folders))


def looks_like_model_path(value: str) -> bool:
    """Whether a model parameter names a folder rather than a hub model id.

    Model loaders read any existing folder before asking the hub, so a value is a path when it starts with
    ``/``, ``.`` or ``~``, holds ``..``, a backslash or a NUL byte, or exists relative to the working directory.
    """
    if value.startswith(("/", ".", "~")) or "\\" in value or "\x00" in value or ".." in PurePath(value).parts:
        return True
    return os.path.exists(value)


def _confine(text: str, base: Path, roots: Iterable[Path], *, field: str, place: str, fix: str) -> Path:
    roots = tuple(roots)
    shown = ", ".join(map(str, roots))

    def refuse(problem: str) -> FileAccessError:
        return FileAccessError(f"Path {text!r} {problem} ({place}: {shown}). {fix}", field=field, path=text, root=shown)

    if "\x00" in text:
        raise refuse("contains a NUL byte")
    if not text.strip():
        raise refuse("is empty")
    try:
        resolved = (base / text).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a link loop
        raise refuse(f"cannot be resolved ({exc})") from None
    if not any(resolved.is_relative_to(root) for root in roots):
        raise refuse(f"leads outside the {place}")
    return resolved


# --- components that open files ---------------------------------------------------------------------

def path_sockets(instance: Any) -> tuple[str, ...]:
    """The input sockets of a Haystack component that take file paths: those whose type admits ``pathlib.Path``.

    Haystack's converters type theirs ``sources: list[str | Path | ByteStream]``; a ``str`` arriving there is
    read as a path too. :class:`FileSource` takes patterns (``list[str]``) and confines them itself.
    """
    sockets = instance.__haystack_input__._sockets_dict
    return tuple(name for name, socket in sockets.items() if _admits_path(socket.type))


def _admits_path(tp: Any) -> bool:
    if isinstance(tp, type) and issubclass(tp, PurePath):
        return True
    return any(_admits_path(arg) for arg in typing.get_args(tp))


def confine_file_inputs(instance: T) -> T:
    """Make a component confine every path it is given to the files root, whatever feeds it.

    Each path (``str``, ``Path``, ``bytes``) arriving on one of its :func:`path_sockets`, inside lists and dicts
    too, is replaced by :func:`confine_path`'s real path before the component's own ``run`` or ``run_async`` sees it;
    ``ByteStream`` and other values pass. A refused path raises :class:`~nodes.errors.FileAccessError` with the
    socket as its ``field``. Only the instance changes, so the class, sockets, ``to_dict``, ``warm_up`` and
    ``Pipeline.connect``'s type checks stay Haystack's. A component that opens the files its documents' meta
    names (:func:`reads_meta_paths`) has each such file checked the same way before it runs. Any other
    component is returned as it is.

    :param instance: A Haystack component instance.
    :returns: The same instance.
    """
    if not (path_sockets(instance) or reads_meta_paths(instance)) or getattr(instance.run, "__func__", None) is _confined_run:
        return instance
    # Bound to the instance (not a closure over it), so a deep copy of the component stays confined to itself.
    instance.run = MethodType(_confined_run, instance)  # type: ignore[attr-defined]
    if inspect.iscoroutinefunction(getattr(type(instance), "run_async", None)):
        instance.run_async = MethodType(_confined_run_async, instance)  # type: ignore[attr-defined]
    return instance


def _confined_run(self: Any, *args: Any, **kwargs: Any) -> Any:
    run = MethodType(type(self).run, self)
    bound = _confined_arguments(self, run, args, kwargs)
    return run(*bound.args, **bound.kwargs)


async def _confined_run_async(self: Any, *args: Any, **kwargs: Any) -> Any:
    run_async = MethodType(type(self).run_async, self)
    bound = _confined_arguments(self, run_async, args, kwargs)
    return await run_async(*bound.args, **bound.kwargs)


def _confined_arguments(instance: Any, method: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                        ) -> inspect.BoundArguments:
    bound = inspect.signature(method).bind(*args, **kwargs)
    for name in path_sockets(instance):
        if name in bound.arguments:
            bound.arguments[name] = confine_paths(bound.arguments[name], field=name)
    if reads_meta_paths(instance):
        _confine_meta_paths(instance, bound.arguments.get("documents") or [])
    return bound


def reads_meta_paths(instance: Any) -> bool:
    """Whether a component opens files named in its documents' meta: Haystack's image components
    (``DocumentToImageContent``, the image embedders and content extractors) read ``root_path /
    meta[file_path_meta_field]``, a path that came with the document, from wherever it was written."""
    return hasattr(instance, "root_path") and "documents" in instance.__haystack_input__._sockets_dict


def _confine_meta_paths(instance: Any, documents: Any) -> None:
    """Refuse a document whose meta names a file outside the files root, as the component would open it."""
    key = getattr(instance, "file_path_meta_field", "file_path")
    for document in documents if isinstance(documents, list) else []:
        named = (getattr(document, "meta", None) or {}).get(key)
        if isinstance(named, (str, os.PathLike)):
            opened = os.path.abspath(os.path.join(os.fsdecode(instance.root_path or ""), os.fsdecode(named)))
            confine_path(opened, field=f"documents.meta.{key}")


def confine_paths(value: Any, *, field: str = "sources") -> Any:
    """``value`` with every path in it (inside lists, tuples, sets and dict values) confined.

    A path is a ``str``, ``bytes`` (decoded as the filesystem does) or any ``os.PathLike``; each becomes the
    ``Path`` :func:`confine_path` returns.

    :param value: What arrived on a socket that takes paths; ``ByteStream`` and other values pass unchanged.
    :param field: The socket, recorded on the error.
    :raises FileAccessError: on the first path :func:`confine_path` refuses.
    """
    if isinstance(value, (str, bytes, os.PathLike)):
        return confine_path(os.fsdecode(value), field=field)
    if type(value) in (list, tuple, set, frozenset):
        return type(value)(confine_paths(item, field=field) for item in value)
    if type(value) is dict:
        return {key: confine_paths(item, field=field) for key, item in value.items()}
    return value


@component
class FileSource:
    """Lists the files named by paths, folders and glob patterns under the files root.

    Each entry of ``paths`` is relative to the root (absolute paths inside it also work):

    * a file — itself;
    * a folder — every file below it, recursively (links to folders are not followed);
    * a glob pattern (``*``, ``?``, ``[...]``; ``**`` spans folders) — every match, folders expanded.

    Entries keep their order, each one's files are sorted, and a file named twice is listed once.
    """

    def __init__(self, *, root: str | None = None) -> None:
        """
        :param root: A folder inside the files root to scope this node to (relative to the files root);
            the files root itself when None. It cannot widen access beyond ``STACKYARD_FILES_ROOT``.
        """
        self.root = None if root is None else str(root)

    @component.output_types(sources=list[Path])
    def run(self, paths: list[str]) -> dict[str, list[Path]]:
        """
        Expand ``paths`` into files.

        :param paths: Files, folders or glob patterns relative to the root.
        :returns: ``sources``: real absolute paths of the files, ready for a converter's ``sources``.
        :raises FileAccessError: if an entry leads outside the root, or names or matches nothing.
        """
        settings_root = get_settings().resolved_files_root
        base = settings_root if self.root is None else confine_path(self.root, settings_root, field="root")
        if isinstance(paths, str):  # a run input posted as a single string
            paths = [paths]
        found: dict[Path, None] = {}
        for entry in paths:
            found.update(dict.fromkeys(_expand(str(entry), base)))
        return {"sources": list(found)}


def _expand(entry: str, base: Path) -> list[Path]:
    if _GLOB_CHARS.isdisjoint(entry):
        matches = [confine_path(entry, base, field="paths")]
        if not matches[0].exists():
            raise FileAccessError(f"No file or folder {entry!r} under the files root {base}; check the spelling "
                                  "(paths are relative to the root).", field="paths", path=entry, root=str(base))
    else:
        matches = _glob(entry, base)
    files: list[Path] = []
    for match in matches:
        files.extend(_files_in(match, base) if match.is_dir() else [match])
    return sorted(files)


def _glob(pattern: str, base: Path) -> list[Path]:
    def refuse(problem: str) -> FileAccessError:
        return FileAccessError(f"Pattern {pattern!r} {problem} (files root: {base}). {_FIX}",
                               field="paths", path=pattern, root=str(base))

    if "\x00" in pattern:
        raise refuse("contains a NUL byte")
    relative = Path(pattern)
    if ".." in relative.parts:
        raise refuse("contains '..'")
    if relative.is_absolute():
        if not relative.is_relative_to(base):
            raise refuse("leads outside the files root")
        relative = relative.relative_to(base)
    # Every match is confined too: a link inside the root may point out of it.
    matches = [confine_path(match, base, field="paths") for match in base.glob(str(relative))]
    if not matches:
        raise FileAccessError(f"No files match {pattern!r} under the files root {base}; check the pattern "
                              "(it is relative to the root).", field="paths", path=pattern, root=str(base))
    return sorted(matches)


def _files_in(folder: Path, base: Path) -> list[Path]:
    # rglob does not descend into linked folders; each entry is confined, so a link out of the root is refused.
    return [real for entry in folder.rglob("*") if (real := confine_path(entry, base, field="paths")).is_file()]
