"""FastAPI dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sqlmodel import Session

from store.db import get_session

# Scoped to the function: the commit after the yield runs before the response is sent. With FastAPI's
# default (the request scope) it runs after, and a client's next request may not see what it just created.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
