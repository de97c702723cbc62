"""What the database columns hold, for every number and string a request carries into a query.

An INTEGER column holds -2**31 .. 2**31 - 1, and a text column no NUL character. PostgreSQL refuses a
statement that breaks either (``NumericValueOutOfRange``, or psycopg's "cannot contain NUL (0x00) bytes"),
which reached callers as a 500; SQLite stores or compares such values silently. Request models and route
parameters declare these types, so an out-of-range value is a 422 naming the field and the OpenAPI schema
states the range.

Example::

    class RunCreate(BaseModel):
        version: PositiveInt32 | None = None              # a version number: 1 .. 2**31 - 1

    def get_workflow(ref: Text): ...                      # a path parameter
    def list_items(after: int = Query(default=-1, ge=-1, le=INT32_MAX)): ...
    def import_workflow(name: str = Query(pattern=NO_NUL)): ...   # Query(...) drops an Annotated pattern
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

INT32_MAX = 2**31 - 1
"""The largest value of an INTEGER column."""

PositiveInt32 = Annotated[int, Field(ge=1, le=INT32_MAX)]
"""A version number or another count from 1 that an INTEGER column holds."""

NO_NUL = r"^[^\x00]*$"
"""The pattern of a string a text column can hold."""

Text = Annotated[str, Field(pattern=NO_NUL)]
"""A string a text column (or a query on one) can take."""
