"""Starter templates: Haystack YAML files that validate and run offline."""

from __future__ import annotations

from pathlib import Path

TEMPLATES_DIR = Path(__file__).parent


def template_names() -> list[str]:
    return sorted(path.stem for path in TEMPLATES_DIR.glob("*.yaml"))


def template_path(name: str) -> Path:
    path = TEMPLATES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise KeyError(f"No template '{name}'; choose one of {', '.join(template_names())}.")
    return path
