"""Shared checks for deploy/: commands must parse with the real CLI, env vars must be real settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def settings_env_names() -> set[str]:
    from stackyard.settings import Settings

    return {f"STACKYARD_{name.upper()}" for name in Settings.model_fields}


def unknown_settings(names: set[str]) -> set[str]:
    """STACKYARD_* names that no Settings field reads (a typo here is a setting silently ignored)."""
    return {name for name in names if name.startswith("STACKYARD_")} - settings_env_names()


def settings_from_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    """The Settings a process would read from exactly these variables (values are parsed as from real env)."""
    from stackyard.settings import Settings

    for name in [name for name in os.environ if name.startswith("STACKYARD_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def parse_command(args: list[str]):
    """Parse a container command with Stackyard's own argparse parser; fail the test if it would not start.
    Options must be spelled out: argparse would also take an abbreviation (`--queue`), which breaks as soon
    as another option shares the prefix."""
    import argparse

    from stackyard.cli import build_parser

    parser = build_parser()
    try:
        parsed = parser.parse_args(args)
    except SystemExit:
        pytest.fail(f"`stackyard {' '.join(args)}` is not a valid Stackyard command line")
    (subcommands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    options = subcommands.choices[parsed.command]._option_string_actions
    for token in args[1:]:
        if token.startswith("--"):
            assert token.partition("=")[0] in options, f"`{token}` is not an option of `stackyard {parsed.command}`"
    if parsed.command == "worker":
        from worker.app import QUEUES

        queues = set(parsed.queues.split(","))
        assert queues <= set(QUEUES), f"unknown queue(s) {queues - set(QUEUES)} in `stackyard {' '.join(args)}`"
    return parsed
