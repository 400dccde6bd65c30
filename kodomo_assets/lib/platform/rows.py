"""The one row of a query that always returns one (an aggregate, a count).

DuckDB types fetchone() as `tuple | None`; one_row() says that no row is an error, so
`(n,) = one_row(con.execute("SELECT count(*) ..."))` type-checks."""

from __future__ import annotations

from typing import Any, Protocol


class _Fetches(Protocol):
    def fetchone(self) -> tuple[Any, ...] | None: ...


def one_row(result: _Fetches) -> tuple[Any, ...]:
    """The next row of a DuckDB connection or relation; a query that returned no row is an
    error (it cannot happen for an aggregate without GROUP BY)."""
    row = result.fetchone()
    if row is None:
        raise LookupError("the query returned no row")
    return row
