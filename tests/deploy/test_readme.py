"""deploy/README.md: its settings table lists exactly the settings class's fields, and its commands are real."""

from __future__ import annotations

import re

from tests.support.deploy import DEPLOY, parse_command, settings_env_names

README = (DEPLOY / "README.md").read_text()


def test_settings_table_matches_the_settings_class():
    rows = set(re.findall(r"^\| `(STACKYARD_[A-Z_]+)` \|", README, re.MULTILINE))
    assert rows == settings_env_names()


def test_process_table_commands_parse():
    commands = re.findall(r"^\|[^|]+\| `stackyard ([^`]+)` \|", README, re.MULTILINE)
    assert len(commands) == 5
    for command in commands:
        parse_command(command.replace(" N", " 4").split())


def shown(value) -> str:
    """A default as the table writes it."""
    from enum import Enum
    from pathlib import Path

    if value is None:
        return "unset"
    if value in ([], {}, (), ""):
        return "empty"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, Path):
        return str(value).replace(str(Path.home()), "~", 1)
    if isinstance(value, list):  # lists are set comma-separated, and shown that way
        return ",".join(str(item) for item in value)
    return str(value)


def test_embedded_defaults_in_the_table_are_the_settings_defaults(monkeypatch):
    import os

    from stackyard.settings import Settings

    for name in [n for n in os.environ if n.startswith("STACKYARD_")]:
        monkeypatch.delenv(name)
    defaults = Settings()
    rows = dict(re.findall(r"^\| `STACKYARD_([A-Z_]+)` \| ([^|]+?) \|", README, re.MULTILINE))
    assert {name.lower(): shown(getattr(defaults, name.lower())) for name in rows} == \
        {name.lower(): value for name, value in rows.items()}
