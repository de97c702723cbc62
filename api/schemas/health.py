"""Shapes of the health endpoints."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Readiness(BaseModel):
    status: str = Field(description="ready, or not ready")
    checks: dict[str, str] = Field(description="database / broker → ok, or why it is unreachable")
