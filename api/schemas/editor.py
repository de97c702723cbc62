"""Shapes of the editor's own endpoints."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ConnectCheck(BaseModel):
    spec: dict[str, Any]
    sender: str
    receiver: str
