"""Files under the files root (``STACKYARD_FILES_ROOT``), and nothing else.

:func:`confine_path` turns a user-supplied path into a real path inside the root, refusing ``..`` escapes,
absolute paths elsewhere, links that lead out and NUL bytes with :class:`~nodes.errors.FileAccessError`.
:class:`FileSource` is the canvas's "Files" node: it expands paths, folders and glob patterns into the
list of files that Haystack's converters take as ``sources``.

The check is made when it runs: a link swapped in between the check and the read is not caught, so
whoever can write under the root must be trusted not to plant links (workflow authors cannot).

Example::

    from nodes.files import FileSource, confine_path

    confine_path("reports/q1.pdf")         # PosixPath('<root>/reports/q1.pdf')
    confine_path("../../etc/passwd")       # raises FileAccessError
    FileSource().run(paths=["reports", "notes/*.md"])["sources"]
    # [<root>/reports/q1.pdf, <root>/reports/q2.pdf, <root>/notes/a.md]
"""

from __future__ import annotations

from pathlib import Path

from haystack import component

from nodes.errors import FileAccessError
from stackyard.settings import get_settings

_GLOB_CHARS = frozenset("*?[")
_FIX = ("Use a path relative to the files root, without '..' or links that lead out of it, or move the file "
        "under the root (an operator sets it with STACKYARD_FILES_ROOT).")


def confine_path(path: str | Path, root: Path | None = None, *, field: str = "sources") -> Path:
    """Resolve ``path`` (relative to ``root``, or absolute) to a real path that lies inside ``root``.

    :param path: The user-supplied path; it need not exist.
    :param root: The folder to stay in; the settings' files root when None.
    :param field: The input the path came from, recorded on the error.
    :returns: The absolute path with every link resolved.
    :raises FileAccessError: if the path is empty, holds a NUL byte, or leads outside the root.
    """
    base = Path(root if root is not None else get_settings().resolved_files_root).resolve()
    text = str(path)

    def refuse(problem: str) -> FileAccessError:
        return FileAccessError(f"Path {text!r} {problem} (files root: {base}). {_FIX}", field=field, path=text, root=str(base))

    if "\x00" in text:
        raise refuse("contains a NUL byte")
    if not text.strip():
        raise refuse("is empty")
    try:
        resolved = (base / text).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a link loop
        raise refuse(f"cannot be resolved ({exc})") from None
    if not resolved.is_relative_to(base):
        raise refuse("leads outside the files root")
    return resolved


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
