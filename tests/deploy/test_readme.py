"""deploy/README.md: its settings table lists exactly the settings class's fields, and its commands are real."""

from __future__ import annotations

import re

from tests.deploy.conftest import DEPLOY, parse_command, settings_env_names

README = (DEPLOY / "README.md").read_text()


def test_settings_table_matches_the_settings_class():
    rows = set(re.findall(r"^\| `(STACKYARD_[A-Z_]+)` \|", README, re.MULTILINE))
    assert rows == settings_env_names()


def test_process_table_commands_parse():
    commands = re.findall(r"^\|[^|]+\| `stackyard ([^`]+)` \|", README, re.MULTILINE)
    assert len(commands) == 5
    for command in commands:
        parse_command(command.replace(" N", " 4").split())
